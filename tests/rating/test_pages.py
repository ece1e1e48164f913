"""The rating pages over real HTTP, posted as a browser without JavaScript would: a citizen rates a closed
application (problems linked to their fields, a double submission done once, a second rating refused),
follows the rectification in "my ratings" and rates again; the unit records the return call and the
rectification (a stale form is a clear conflict); a supervisor decides an appeal; a window officer records
a visit that the hall's terminal rates; a signed-out person rates a consultation; who may see what."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.conftest import csrf
from tests.intake.test_pages import fields_of, signed_in, text_of
from tests.rating.conftest import UNIT
from tongban.core.clock import FixedClock
from tongban.knowledge import service as knowledge
from tongban.knowledge.schemas import EntryContent
from tongban.rating.reasons import REASON_TEXT
from tongban.rating.vocab import LEVELS

H = dict[str, dict[str, str]]
BAD = {
    "level": 1,
    "dimensions": {"efficiency": 1, "attitude": 2},
    "text": "窗口工作人员态度很差，材料让我反复补交，打电话13800138000也没人接。",
}


def post(
    client: httpx.Client,
    html: str,
    action: str,
    changes: dict[str, Any] | None = None,
    lang: str | None = None,
) -> httpx.Response:
    """Post the form of ``html`` whose action is ``action`` as shown, with ``changes`` (None removes)."""
    data: dict[str, Any] = fields_of(html, action)
    for name, value in (changes or {}).items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return client.post(action, data=data, params={"lang": lang} if lang else None)


def summary_links(html: str) -> list[str]:
    found = re.search(r'<div class="error-summary"(.*?)</div>', html, re.S)
    assert found, "no error summary"
    return re.findall(r'<a href="#([^"]+)">', found.group(1))


def settings(client: httpx.Client, h: H) -> dict[str, int]:
    response = client.get("/api/v1/quality/settings", headers=h["analyst.ma"])
    assert response.status_code == 200, response.text
    data: dict[str, int] = response.json()
    return data


def rect_of(client: httpx.Client, h: H, rect_id: int) -> dict[str, Any]:
    response = client.get(f"/api/v1/rectifications/{rect_id}", headers=h["super.he"])
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def rate_bad(client: httpx.Client, h: H, receipt: str, **extra: Any) -> int:
    given = client.post(
        f"/api/v1/ratings/application/{receipt}", headers=h["citizen.li"], json={**BAD, **extra}
    )
    assert given.status_code == 201, given.text
    rect_id: int = given.json()["rectification_id"]
    assert rect_id is not None
    return rect_id


def test_a_citizen_rates_a_closed_application_through_the_form(
    client: httpx.Client, base_url: str, quality: H, closed: str
) -> None:
    rules = settings(client, quality)
    page_url = f"/ratings/application/{closed}"
    with signed_in(base_url, "citizen.li") as citizen:
        # the closed application links to its rating; the navigation to "my ratings"
        application = citizen.get(f"/me/applications/{closed}").text
        assert f'href="{page_url}"' in application
        assert 'href="/ratings"' in application

        html = citizen.get(page_url).text
        assert '<html lang="zh-Hans">' in html
        assert "<fieldset" in html
        assert "<legend>" in html
        for level, (zh, _en) in LEVELS.items():
            assert re.search(rf'id="level-{level}" name="level" value="{level}"', html)
            assert zh in html
        assert 'name="anonymous" value="true"' in html
        assert 'name="_idem" value="' in html
        other_tab = citizen.get(page_url).text  # a second form, with a key of its own

        # no level: the form again, the problem linked to the first choice, what was typed kept
        missing = post(citizen, html, page_url, {"text": "还行吧", "level": None}, lang="en")
        assert missing.status_code == 422
        assert summary_links(missing.text) == ["level-5"]
        assert "Choose how satisfied you are overall." in text_of(missing.text)
        assert ">还行吧</textarea>" in missing.text
        listed = client.get("/api/v1/me/ratings", headers=quality["citizen.li"]).json()
        assert listed[0]["ratings"] == []

        # a bad review; sent twice (a double click) it is stored once and both go to the thank-you
        filled = {"level": "1", "dim.efficiency": "1", "dim.attitude": "2", "text": BAD["text"]}
        first = post(citizen, missing.text, page_url, filled)
        assert first.status_code == 303, first.text
        assert first.headers["location"] == f"{page_url}?rated=1"
        again = post(citizen, missing.text, page_url, filled)
        assert again.status_code == 303
        assert again.headers["location"] == first.headers["location"]
        mine = client.get(f"/api/v1/ratings/application/{closed}", headers=quality["citizen.li"]).json()
        assert [r["level"] for r in mine["ratings"]] == [1]
        assert mine["ratings"][0]["channel"] == "web"
        assert mine["rectification"]["state"] == "open"

        thanks = citizen.get(first.headers["location"] + "&lang=en").text
        text = text_of(thanks)
        assert "Thank you for your rating" in text
        days = rules["contact_working_days"]
        assert f"call you back within {days} working day" in text
        assert f"put things right within {rules['rectify_working_days']} working days" in text
        assert "13800138000" not in thanks
        assert "[手机号]" in thanks
        assert 'action="/ratings/application/' not in thanks  # rated: no form any more

        # the other tab: refused with a message, not an error page
        twice = post(citizen, other_tab, page_url, {"level": "5"}, lang="en")
        assert twice.status_code == 409
        assert "rated already" in text_of(twice.text)
        assert summary_links(twice.text) == []

        # my ratings: the case, the bad review and what the unit must do by when
        ratings = citizen.get("/ratings").text
        assert closed in ratings
        assert LEVELS[1][0] in ratings
        assert 'href="/ratings"' in citizen.get("/").text
        en = text_of(citizen.get("/ratings", params={"lang": "en"}).text)
        assert '<html lang="en">' in citizen.get("/ratings", params={"lang": "en"}).text
        assert "My ratings" in en
        assert "Very dissatisfied" in en
        assert "Return call due:" in en


def test_signed_out_people_are_asked_to_sign_in_except_for_consultations(
    client: httpx.Client, quality: H, closed: str, session: Session, clock: FixedClock
) -> None:
    assert client.get("/ratings").status_code == 303
    response = client.get(f"/ratings/application/{closed}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/staff/login?next=/ratings/application/{closed}"
    # a consultation may be rated signed out
    content = EntryContent.model_validate(
        {
            "title": "关于阶段性缓缴社会保险费的通知",
            "kind": "policy",
            "sections": [
                {
                    "heading": [],
                    "text": "受疫情影响生产经营出现严重困难的企业，可申请缓缴社会保险费，"
                    "缓缴期限原则上不超过6个月，缓缴期间免收滞纳金。",
                }
            ],
        }
    )
    knowledge.ingest_content(session, "defer-2020", content, actor="test", clock=clock, source="test")
    session.commit()
    asked = client.post("/api/v1/consult", json={"question": "企业缓缴社会保险费的期限最长多久？"})
    assert asked.status_code == 200, asked.text
    assert asked.json()["refused"] is False
    conversation = asked.json()["conversation_id"]
    action = f"/ratings/consultation/{conversation}"
    html = client.get(action).text
    assert 'name="anonymous"' not in html  # nobody to call back anyway
    done = post(client, html, action, {"level": "4"})
    assert done.status_code == 303, done.text
    thanks = text_of(client.get(done.headers["location"] + "&lang=en").text)
    assert "Thank you for your rating" in thanks
    assert "Satisfied" in thanks
    # an unknown consultation: the form again with the refusal, no sign-in asked
    nope = "/ratings/consultation/nope-0000"
    unknown = post(client, client.get(nope).text, nope, {"level": "4"}, lang="en")
    assert unknown.status_code == 404
    assert "error-summary" in unknown.text


def test_the_unit_calls_back_and_rectifies_and_the_citizen_rates_again(
    client: httpx.Client, base_url: str, quality: H, closed: str
) -> None:
    rect_id = rate_bad(client, quality, closed)
    detail_url = f"/quality/rectifications/{rect_id}"
    with signed_in(base_url, "unit.zhao") as unit:
        desk = unit.get("/staff").text
        assert 'href="/quality/rectifications"' in desk
        assert 'href="/quality/visits/new"' not in desk
        listed = unit.get("/quality/rectifications").text
        assert f'href="{detail_url}"' in listed
        assert REASON_TEXT["attitude"][0] in listed
        assert f'href="{detail_url}"' not in unit.get("/quality/rectifications?overdue=1").text
        assert f'href="{detail_url}"' not in unit.get("/quality/rectifications?state=rectified").text

        opened = unit.get(detail_url).text
        assert "Citizen.Li" in opened
        assert "[手机号]" in opened
        assert "13800138000" not in opened
        assert UNIT in opened
        assert f'action="{detail_url}/contact"' in opened
        assert f'action="{detail_url}/rectify"' not in opened  # the return call comes first
        assert f'action="{detail_url}/decide"' not in opened  # units do not decide appeals

        too_short = post(unit, opened, f"{detail_url}/contact", {"note": "好"}, lang="en")
        assert too_short.status_code == 422
        assert summary_links(too_short.text) == ["note-contact"]
        assert 'aria-invalid="true"' in too_short.text

        called = post(unit, opened, f"{detail_url}/contact", {"note": "已电话回访，申请人反映补交材料多次。"})
        assert called.status_code == 303, called.text
        assert called.headers["location"] == f"{detail_url}?done=contact"
        assert rect_of(client, quality, rect_id)["state"] == "contacted"

        # the form as it was before the return call: a clear conflict, nothing changed
        stale = post(unit, opened, f"{detail_url}/contact", {"note": "再回访一次"}, lang="en")
        assert stale.status_code == 409
        assert "Someone else changed this rectification" in text_of(stale.text)
        assert rect_of(client, quality, rect_id)["contact_note"] == "已电话回访，申请人反映补交材料多次。"

        now = unit.get(called.headers["location"]).text
        assert 'role="status"' in now
        fixed = post(unit, now, f"{detail_url}/rectify", {"note": "已修订一次性告知清单，窗口人员培训。"})
        assert fixed.status_code == 303, fixed.text
        history = text_of(unit.get(detail_url, params={"lang": "en"}).text)
        assert "Return call recorded" in history
        assert "Rectification recorded" in history
        assert rect_of(client, quality, rect_id)["state"] == "rectified"

    with signed_in(base_url, "citizen.li") as citizen:
        mine = citizen.get("/ratings").text
        assert "已修订一次性告知清单" in mine
        assert "已电话回访" in mine
        page = citizen.get(f"/ratings/application/{closed}").text
        assert "已修订一次性告知清单" in page
        assert f'action="/ratings/application/{closed}"' in page  # the follow-up form
        again = post(citizen, page, f"/ratings/application/{closed}", {"level": "4"})
        assert again.status_code == 303, again.text
    assert rect_of(client, quality, rect_id)["state"] == "closed"
    assert rect_of(client, quality, rect_id)["follow_up_level"] == 4


def test_a_supervisor_decides_the_appeal_of_another(
    client: httpx.Client, base_url: str, quality: H, closed: str
) -> None:
    rect_id = rate_bad(client, quality, closed, anonymous=True)
    detail_url = f"/quality/rectifications/{rect_id}"
    with signed_in(base_url, "super.he") as he:
        opened = he.get(detail_url, params={"lang": "en"}).text
        assert "Anonymous: the rater cannot be called back" in text_of(opened)
        assert f'action="{detail_url}/contact"' not in opened  # nobody to call
        filed = post(he, opened, f"{detail_url}/appeal", {"note": "评价内容与办件无关"})
        assert filed.status_code == 303, filed.text
        pending = he.get(detail_url, params={"lang": "en"}).text
        assert "Appeal pending" in text_of(pending)
        assert f'action="{detail_url}/decide"' not in pending  # not by the one who filed it
        assert "another supervisor decides it" in text_of(pending)
        # posted anyway: refused with a message, not an error page
        own = he.post(
            f"{detail_url}/decide",
            params={"lang": "en"},
            data={
                "csrf_token": csrf(pending),
                "upheld": "true",
                "note": "自己审自己的申诉",
                "version": str(rect_of(client, quality, rect_id)["version"]),
            },
        )
        assert own.status_code == 403
        assert "someone other than the person who filed it" in text_of(own.text)
        assert "error-summary" in own.text

    with signed_in(base_url, "super.lu") as lu:
        pending = lu.get(detail_url).text
        assert "评价内容与办件无关" in pending
        undecided = post(lu, pending, f"{detail_url}/decide", {"note": "经核实为误评，予以剔除。"}, lang="en")
        assert undecided.status_code == 422
        assert summary_links(undecided.text) == ["decide-upheld"]
        decided = post(
            lu, undecided.text, f"{detail_url}/decide", {"upheld": "true", "note": "经核实为误评，予以剔除。"}
        )
        assert decided.status_code == 303, decided.text
        assert "Void: the rating was struck out" in text_of(lu.get(detail_url, params={"lang": "en"}).text)
    rect = rect_of(client, quality, rect_id)
    assert rect["state"] == "void"
    assert rect["appeal"] == "upheld"
    assert rect["appeal_decided_by"] == "super.lu"


def test_a_window_officer_records_a_visit_and_the_terminal_rates_it(
    client: httpx.Client, base_url: str, quality: H, closed: str
) -> None:
    with signed_in(base_url, "officer.wang") as officer:
        assert 'href="/quality/visits/new"' in officer.get("/staff").text
        html = officer.get("/quality/visits/new").text
        missing = post(officer, html, "/quality/visits/new", {"department": ""}, lang="en")
        assert missing.status_code == 422
        assert summary_links(missing.text) == ["visit-department"]
        unknown = post(
            officer,
            html,
            "/quality/visits/new",
            {"department": UNIT, "receipt_no": "NOPE00000001"},
            lang="en",
        )
        assert unknown.status_code == 422
        assert summary_links(unknown.text) == ["visit-receipt_no"]
        assert "no application with this receipt number" in text_of(unknown.text)
        filled = {"department": UNIT, "item_name": "租房提取住房公积金", "receipt_no": closed}
        first = post(officer, unknown.text, "/quality/visits/new", filled)
        assert first.status_code == 303, first.text
        assert re.fullmatch(r"/quality/visits/new\?recorded=V\d{8}[0-9A-F]{10}", first.headers["location"])
        again = post(officer, unknown.text, "/quality/visits/new", filled)
        assert again.headers["location"] == first.headers["location"]  # one visit, not two
        ref = first.headers["location"].rsplit("=", 1)[1]
        shown = officer.get(first.headers["location"]).text
        assert ref in shown
        assert f'href="/ratings/visit/{ref}"' in shown

    with signed_in(base_url, "citizen.zhang") as stranger:
        assert stranger.get(f"/ratings/visit/{ref}").status_code == 403
        assert stranger.get("/quality/visits/new").status_code == 403

    with signed_in(base_url, "terminal.01") as terminal:
        page = terminal.get(f"/ratings/visit/{ref}").text
        assert 'name="anonymous"' not in page
        done = post(terminal, page, f"/ratings/visit/{ref}", {"level": "5", "dim.attitude": "5"})
        assert done.status_code == 303, done.text
        assert LEVELS[5][0] in terminal.get(done.headers["location"]).text
    rated = client.get(f"/api/v1/ratings/visit/{ref}", headers=quality["terminal.01"]).json()
    assert [(r["level"], r["channel"]) for r in rated["ratings"]] == [(5, "terminal")]
    assert rated["case"]["parent_ref"] == closed


def test_another_unit_and_citizens_cannot_open_the_rectification(
    client: httpx.Client, base_url: str, quality: H, closed: str
) -> None:
    rect_id = rate_bad(client, quality, closed)
    with signed_in(base_url, "unit.other") as other:
        assert f"/quality/rectifications/{rect_id}" not in other.get("/quality/rectifications").text
        page = other.get(f"/quality/rectifications/{rect_id}")
        assert page.status_code == 404
        assert "text/html" in page.headers["content-type"]
    with signed_in(base_url, "citizen.li") as citizen:
        assert citizen.get(f"/quality/rectifications/{rect_id}").status_code == 403
        assert 'href="/quality/rectifications"' not in citizen.get("/staff").text


@pytest.mark.parametrize("lang", ["zh-Hans", "en"])
def test_the_pages_render_in_both_languages(
    client: httpx.Client, base_url: str, quality: H, closed: str, lang: str
) -> None:
    rect_id = rate_bad(client, quality, closed)
    pages = {
        "citizen.li": ["/ratings", f"/ratings/application/{closed}"],
        "super.he": ["/quality/rectifications", f"/quality/rectifications/{rect_id}"],
        "officer.wang": ["/quality/visits/new"],
    }
    for username, urls in pages.items():
        with signed_in(base_url, username) as c:
            for url in urls:
                response = c.get(url, params={"lang": lang})
                assert response.status_code == 200, (url, response.text)
                assert f'<html lang="{lang}">' in response.text
                assert 'name="csrf_token"' in response.text or url == "/ratings"
                assert "/static/rating_pages.css" in response.text
    with signed_in(base_url, "super.he") as he:
        detail = he.get(f"/quality/rectifications/{rect_id}", params={"lang": lang}).text
        level = LEVELS[1][1 if lang == "en" else 0]
        assert level in detail
        reason = REASON_TEXT["attitude"][1 if lang == "en" else 0]
        assert reason in detail
