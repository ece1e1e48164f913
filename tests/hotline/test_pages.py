"""The hotline's pages over real HTTP, posted as a browser without JavaScript would, in Chinese and English:
the web intake form (problems linked to their fields with the input kept, a double submission filed once,
the consultation's hand-off), the requester's tickets and return visit, the operator's desk (classify,
dispatch, a stale form, answer directly, merge, cancel, the phone entry, the contact details), the unit's
inbox (sign, contact, note, return, reply; deadlines), the supervisor's decisions and the three rates;
who may see what."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import csrf, make_account
from tests.hotline.conftest import act, new_ticket
from tests.intake.test_pages import fields_of, signed_in, text_of
from tongban.core.clock import FixedClock
from tongban.core.models import AuditEvent

H = dict[str, dict[str, str]]
ROAD = "城乡建设/市政设施/道路维修"


def post(
    client: httpx.Client,
    html: str,
    action: str,
    changes: Mapping[str, Any] | None = None,
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


def ticket(client: httpx.Client, hl: H, ref: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/tickets/{ref}", headers=hl["op.li"])
    assert r.status_code == 200, r.text
    return dict(r.json())


def web_form(
    *, body: str = "小区门口的路灯坏了一个星期，晚上很黑，请尽快维修。", **extra: str
) -> dict[str, str]:
    return {
        "request_type": "request",
        "subject": "路灯不亮",
        "body": body,
        "address": "北京市朝阳区建国路88号",
        "name": "陈先生",
        "phone": "13812345678",
        **extra,
    }


def test_web_intake_keeps_the_input_on_problems_then_files_once_and_confirms(
    client: httpx.Client, hl: H
) -> None:
    page = client.get("/hotline/new")
    assert page.status_code == 200
    assert '<html lang="zh-Hans">' in page.text
    assert "请描述您的诉求" in text_of(page.text)
    token = csrf(page.text)
    idem = fields_of(page.text, "/hotline/new")["_idem"][0]

    bad = client.post(
        "/hotline/new",
        data={
            "csrf_token": token,
            "_idem": idem,
            "channel": "web",
            "request_type": "request",
            "subject": "路灯不亮（保留）",
            "body": "",
            "phone": "abc",
            "enterprise": "true",
            "lat": "39.9",
        },
    )
    assert bad.status_code == 422
    assert set(summary_links(bad.text)) >= {"t-body", "t-phone", "t-enterprise_name", "t-lat"}
    assert 'value="路灯不亮（保留）"' in bad.text  # what was typed is kept
    assert re.search(r'<textarea id="t-body" name="body"[^>]* aria-invalid="true"', bad.text)
    # Signed out and not anonymous: a way to be told the outcome is needed.
    nobody = client.post(
        "/hotline/new", data={**web_form(phone=""), "csrf_token": token, "_idem": idem, "channel": "web"}
    )
    assert nobody.status_code == 422
    assert summary_links(nobody.text) == ["t-phone"]
    nul = client.post(
        "/hotline/new", data={**web_form(body="路灯\x00坏了"), "csrf_token": token, "_idem": idem}
    )
    assert nul.status_code == 422

    good = client.post(
        "/hotline/new", data={**web_form(), "csrf_token": token, "_idem": idem, "channel": "web"}
    )
    assert good.status_code == 303, good.text
    target = good.headers["location"]
    assert target.startswith("/hotline/new/received?ref=")
    again = client.post(
        "/hotline/new", data={**web_form(), "csrf_token": token, "_idem": idem, "channel": "web"}
    )
    assert again.status_code == 303
    assert again.headers["location"] == target  # a double submission files it once
    ref = re.search(r"ref=(\d+)", target).group(1)  # type: ignore[union-attr]
    done = client.get(target)
    assert done.status_code == 200
    assert ref in done.text
    assert "您的诉求已受理" in text_of(done.text)
    listed = client.get("/api/v1/tickets", params={"q": "路灯坏了一个星期"}, headers=hl["op.li"]).json()
    assert [t["ref"] for t in listed["items"]] == [ref]
    t = ticket(client, hl, ref)
    assert t["channel"] == "web"
    assert t["contact_hint"] == "138****5678"
    assert t["region_code"] == "110105"
    # The confirmation is not a way to make the site say anything about any number.
    assert client.get(target.replace("sig=", "sig=0")).status_code == 404
    assert client.get("/hotline/new/received?ref=1&sig=abc").status_code == 404

    en = client.get("/hotline/new", params={"lang": "en"})
    assert '<html lang="en">' in en.text
    assert "Describe your request" in en.text
    anon = client.post(
        "/hotline/new",
        params={"lang": "en"},
        data={
            "csrf_token": csrf(en.text),
            "_idem": fields_of(en.text, "/hotline/new")["_idem"][0],
            "request_type": "complaint",
            "body": "Noise from a building site at 2 am on Jianguo Road.",
            "anonymous": "true",
            "phone": "13900000000",
            "enterprise": "true",
            "enterprise_name": "某某科技有限公司",
            "lat": "39.9087",
            "lon": "116.3975",
        },
    )
    assert anon.status_code == 303, anon.text
    anon_ref = re.search(r"ref=(\d+)", anon.headers["location"]).group(1)  # type: ignore[union-attr]
    t = ticket(client, hl, anon_ref)
    assert t["anonymous"] is True
    assert t["contact_hint"] == ""  # nothing of the requester is kept
    assert t["enterprise"] is True
    assert t["lat"] == 39.9087
    confirmed = client.get(anon.headers["location"] + "&lang=en")
    assert anon_ref in confirmed.text
    assert "Your request was received" in confirmed.text


def test_the_consultation_hand_off_fills_in_the_form_and_marks_the_channel(
    client: httpx.Client, hl: H
) -> None:
    question = "我想咨询建国路88号门前的路面塌陷归哪个部门管？"
    page = client.get(f"/hotline/new?content={quote(question)}")
    assert page.status_code == 200
    fields = fields_of(page.text, "/hotline/new")
    assert fields["body"] == [question]
    assert fields["channel"] == ["consult"]
    r = post(client, page.text, "/hotline/new", {"phone": "13700001111"})
    assert r.status_code == 303, r.text
    ref = re.search(r"ref=(\d+)", r.headers["location"]).group(1)  # type: ignore[union-attr]
    assert ticket(client, hl, ref)["channel"] == "consult"
    # The public form files web (or hand-off) tickets only, whatever is posted as the channel.
    plain = client.get("/hotline/new")
    r = post(client, plain.text, "/hotline/new", {**web_form(body="路灯坏了很多天"), "channel": "phone"})
    assert r.status_code == 303, r.text
    ref = re.search(r"ref=(\d+)", r.headers["location"]).group(1)  # type: ignore[union-attr]
    assert ticket(client, hl, ref)["channel"] == "web"


def test_the_requester_follows_the_ticket_and_answers_the_return_visit(
    client: httpx.Client, hl: H, base_url: str
) -> None:
    assert client.get("/hotline/tickets").status_code == 303  # sign in first
    with signed_in(base_url, "citizen.chen") as me:
        form = me.get("/hotline/new")
        r = post(me, form.text, "/hotline/new", web_form(phone=""))  # signed in: no contact needed
        assert r.status_code == 303, r.text
        done = me.get(r.headers["location"])
        ref = re.search(r'<strong id="ticket-ref" class="hl-ref">(\d+)</strong>', done.text).group(1)  # type: ignore[union-attr]
        assert f'href="/hotline/tickets/{ref}"' in done.text
        mine = me.get("/hotline/tickets")
        assert f'href="/hotline/tickets/{ref}"' in mine.text

        act(client, hl["op.li"], ref, "classify", {"category_path": "城乡建设/市政设施/路灯照明"})
        act(client, hl["op.li"], ref, "dispatch", {})
        act(client, hl["u.roads"], ref, "sign")
        act(client, hl["u.roads"], ref, "notes", {"note": "内部备注：需协调供电公司"})
        act(client, hl["u.roads"], ref, "reply", {"reply": "已更换路灯灯泡，现已恢复照明。"})

        page = me.get(f"/hotline/tickets/{ref}")
        text = text_of(page.text)
        assert "已更换路灯灯泡" in text
        assert "内部备注" not in text  # the public steps only
        assert "u.roads" not in text
        assert f'action="/hotline/tickets/{ref}/revisit"' in page.text
        assert "回访：问题解决了吗？" in text
        action = f"/hotline/tickets/{ref}/revisit"

        empty = post(me, page.text, action)
        assert empty.status_code == 422
        assert summary_links(empty.text) == ["v-resolved-yes", "v-satisfaction-5"]
        pleased = post(me, page.text, action, {"resolved": "yes", "satisfaction": "5", "reopen": "true"})
        assert pleased.status_code == 422
        assert summary_links(pleased.text) == ["v-reopen"]
        assert 'id="v-satisfaction-5" name="satisfaction" value="5" checked' in pleased.text  # kept
        stale = post(me, page.text, action, {"resolved": "yes", "satisfaction": "4", "version": "1"})
        assert stale.status_code == 412
        assert "他人已修改该工单" in text_of(stale.text)

        ok = post(me, page.text, action, {"resolved": "yes", "satisfaction": "4", "comment": "很好"})
        assert ok.status_code == 303, ok.text
        assert ok.headers["location"] == f"/hotline/tickets/{ref}?done=revisit"
        after = me.get(ok.headers["location"])
        assert action not in after.text
        t = ticket(client, hl, ref)
        assert (t["status"], t["resolved"], t["satisfaction"]) == ("closed", True, 4)
        en = me.get(f"/hotline/tickets/{ref}", params={"lang": "en"})
        assert "Closed" in text_of(en.text)
        assert "Satisfied" in text_of(en.text)
        again = post(me, page.text, action, {"resolved": "yes", "satisfaction": "4"})
        assert again.status_code in (409, 412)  # closed (and changed) since: said in the page
        assert 'role="alert"' in again.text

    with signed_in(base_url, "citizen.zhao") as other:
        assert other.get(f"/hotline/tickets/{ref}").status_code == 404
        assert ref not in other.get("/hotline/tickets").text


def test_the_operator_desk(client: httpx.Client, hl: H, base_url: str, session: Session) -> None:
    road = new_ticket(client, hl["citizen.chen"])["ref"]
    dup = new_ticket(
        client,
        hl["citizen.zhao"],
        body="建国路88号门口路面塌陷出现大坑，夜里很危险，希望尽快修复。",
        contact={"name": "赵女士", "phone": "13900001111"},
    )["ref"]
    question = new_ticket(
        client, hl["citizen.chen"], request_type="consultation", subject="咨询", body="社保卡丢了怎么补办？"
    )["ref"]
    junk = new_ticket(client, hl["citizen.chen"], subject="测试", body="测试测试")["ref"]

    for who in ("citizen.chen", "u.roads"):
        with signed_in(base_url, who) as c:
            assert c.get("/hotline/desk").status_code == 403
            assert c.get(f"/hotline/desk/{road}").status_code == 403
    assert client.get("/hotline/desk").status_code == 303

    with signed_in(base_url, "op.li") as op:
        desk = op.get("/hotline/desk")
        assert desk.status_code == 200
        for ref in (road, dup, question, junk):
            assert f'href="/hotline/desk/{ref}"' in desk.text
        found = op.get("/hotline/desk", params={"q": "社保卡"})
        assert f'href="/hotline/desk/{question}"' in found.text
        assert f'href="/hotline/desk/{road}"' not in found.text

        page = op.get(f"/hotline/desk/{road}")
        assert 'id="h-assistant"' in page.text
        assert "坐席助手" in text_of(page.text)
        assert "尚未训练分类模型" in text_of(page.text)
        assert f'action="/hotline/desk/{road}/dispatch"' not in page.text  # classify first
        classify = f"/hotline/desk/{road}/classify"
        r = post(op, page.text, classify, {"category_path": "不存在/的/分类"})
        assert r.status_code == 422
        assert summary_links(r.text) == ["c-category"]
        r = post(op, page.text, classify, {"category_path": ROAD})
        assert r.status_code == 303, r.text
        page = op.get(r.headers["location"])
        assert "市交通委员会" in text_of(page.text)  # the catalogue's plan is shown
        dispatch = f"/hotline/desk/{road}/dispatch"
        stale = post(op, page.text, dispatch, {"version": "1"})
        assert stale.status_code == 412
        assert 'role="alert"' in stale.text
        r = post(op, page.text, dispatch, {"note": "请尽快处理"})
        assert r.status_code == 303, r.text
        t = ticket(client, hl, road)
        assert (t["status"], t["lead_unit"]) == ("dispatched", "roads")

        # The duplicate: merged into the first ticket from its proposal.
        page = op.get(f"/hotline/desk/{dup}")
        assert f'<input type="hidden" name="into" value="{road}">' in page.text
        r = op.post(
            f"/hotline/desk/{dup}/merge",
            data={
                "csrf_token": csrf(page.text),
                "version": fields_of(page.text, classify.replace(road, dup))["version"][0],
                "into": road,
            },
        )
        assert r.status_code == 303, r.text
        assert ticket(client, hl, dup)["status"] == "merged"

        # A question answered directly; the requester is not satisfied: it comes back to the desk.
        page = op.get(f"/hotline/desk/{question}")
        answer = f"/hotline/desk/{question}/answer"
        r = post(op, page.text, answer, {"answer": "x"})
        assert r.status_code == 422
        assert summary_links(r.text) == ["a-answer"]
        r = post(op, page.text, answer, {"answer": "请携带身份证到社保经办机构补办社保卡。"})
        assert r.status_code == 303, r.text
        page = op.get(f"/hotline/desk/{question}")
        visit = f"/hotline/desk/{question}/revisit"
        r = post(op, page.text, visit, {"resolved": "no"})
        assert r.status_code == 422
        assert summary_links(r.text) == ["ov-satisfaction-5"]
        r = post(op, page.text, visit, {"resolved": "no", "satisfaction": "2", "reopen": "true"})
        assert r.status_code == 303, r.text
        t = ticket(client, hl, question)
        assert (t["status"], t["reopen_count"]) == ("received", 1)

        # A test call is cancelled, with the reason.
        page = op.get(f"/hotline/desk/{junk}")
        cancel = f"/hotline/desk/{junk}/cancel"
        r = post(op, page.text, cancel, {"note": "x"})
        assert r.status_code == 422
        assert summary_links(r.text) == ["x-note"]
        r = post(op, page.text, cancel, {"note": "测试电话，非诉求"})
        assert r.status_code == 303
        assert ticket(client, hl, junk)["status"] == "cancelled"
        closed = op.get(f"/hotline/desk/{junk}")
        assert closed.status_code == 200
        assert 'id="h-assistant"' not in closed.text  # no assistant for a finished ticket

        # A call entered at the desk, then the caller's number looked up (audited).
        desk = op.get("/hotline/desk")
        r = post(
            op,
            desk.text,
            "/hotline/desk",
            {"body": "", "name": "李女士", "phone": "13600002222", "urgency": "emergency"},
        )
        assert r.status_code == 422
        assert summary_links(r.text) == ["t-body"]
        assert 'value="13600002222"' in r.text
        r = post(
            op,
            r.text,
            "/hotline/desk",
            {
                "body": "小区燃气管道漏气，味道很大。",
                "name": "李女士",
                "phone": "13600002222",
                "urgency": "emergency",
            },
        )
        assert r.status_code == 303, r.text
        assert r.headers["location"].endswith("?done=created")
        phone_ref = r.headers["location"].split("/")[-1].split("?")[0]
        t = ticket(client, hl, phone_ref)
        assert (t["channel"], t["urgency"], t["contact_hint"]) == ("phone", "emergency", "136****2222")
        page = op.get(r.headers["location"])
        assert "13600002222" not in page.text
        shown = op.post(f"/hotline/desk/{phone_ref}/show-contact", data={"csrf_token": csrf(page.text)})
        assert shown.status_code == 200
        assert "13600002222" in shown.text
        looks = session.scalars(select(AuditEvent).where(AuditEvent.action == "hotline.contact_viewed")).all()
        assert [e.target_id for e in looks] == [phone_ref]

        en = op.get(f"/hotline/desk/{road}", params={"lang": "en"})
        assert "Dispatched" in text_of(en.text)
        assert "Assistant" in en.text


def test_the_unit_inbox_and_the_supervisor_decide_a_return(
    client: httpx.Client, hl: H, base_url: str, session: Session, clock: FixedClock
) -> None:
    make_account(session, clock, "u.jsq", ["hotline_unit:cy-jsq"])
    session.commit()
    ref = new_ticket(client, hl["citizen.chen"])["ref"]
    act(client, hl["op.li"], ref, "classify", {"category_path": ROAD})
    act(client, hl["op.li"], ref, "dispatch", {})

    with signed_in(base_url, "u.water") as water:
        assert ref not in water.get("/hotline/inbox").text
        assert water.get(f"/hotline/inbox/{ref}").status_code == 404
    with signed_in(base_url, "citizen.zhao") as nobody:
        assert nobody.get("/hotline/inbox").status_code == 403

    with signed_in(base_url, "u.roads") as unit:
        inbox = unit.get("/hotline/inbox")
        assert f'href="/hotline/inbox/{ref}"' in inbox.text
        assert "市交通委员会" in inbox.text
        page = unit.get(f"/hotline/inbox/{ref}")
        base = f"/hotline/inbox/{ref}"
        assert f'action="{base}/reply"' not in page.text  # sign first
        r = post(unit, page.text, f"{base}/sign")
        assert r.status_code == 303, r.text
        page = unit.get(r.headers["location"])
        r = post(unit, page.text, f"{base}/contact", {"note": "已电话联系诉求人"})
        assert r.status_code == 303
        page = unit.get(r.headers["location"])
        r = post(unit, page.text, f"{base}/note", {"note": "现场查看，属于小区内部道路"})
        assert r.status_code == 303
        page = unit.get(r.headers["location"])
        r = post(unit, page.text, f"{base}/return", {"reason": "x", "suggested_unit": "cy-jsq"})
        assert r.status_code == 422
        assert summary_links(r.text) == ["b-reason"]
        r = post(
            unit,
            page.text,
            f"{base}/return",
            {"reason": "属于街道管辖的小区内部道路", "suggested_unit": "cy-jsq"},
        )
        assert r.status_code == 303, r.text
        assert ticket(client, hl, ref)["status"] == "return_requested"

    with signed_in(base_url, "sup.wang") as sup:
        page = sup.get("/hotline/supervise")
        assert "属于街道管辖的小区内部道路" in page.text
        assert re.search(r'<option value="cy-jsq" lang="zh-Hans" selected>', page.text)  # the suggestion
        decide = f"/hotline/supervise/returns/{ref}"
        reject = sup.post(
            decide, data={"csrf_token": csrf(page.text), "decision": "reject", "note": "", "version": "0"}
        )
        assert reject.status_code in (412, 422)
        version = str(ticket(client, hl, ref)["version"])
        reject = sup.post(
            decide, data={"csrf_token": csrf(page.text), "decision": "reject", "note": "", "version": version}
        )
        assert reject.status_code == 422
        assert summary_links(reject.text) == [f"reject-note-{ref}"]
        accept = sup.post(
            decide,
            data={
                "csrf_token": csrf(page.text),
                "decision": "accept",
                "lead_unit": "cy-jsq",
                "version": version,
            },
        )
        assert accept.status_code == 303, accept.text
        t = ticket(client, hl, ref)
        assert (t["status"], t["lead_unit"], t["dispatch_count"]) == ("dispatched", "cy-jsq", 2)
        assert ref not in sup.get("/hotline/supervise").text.split('id="h-overdue"')[0]

    with signed_in(base_url, "u.roads") as unit:
        assert unit.get(f"/hotline/inbox/{ref}").status_code == 404  # no longer theirs

    with signed_in(base_url, "u.jsq") as street:
        page = street.get(f"/hotline/inbox/{ref}")
        base = f"/hotline/inbox/{ref}"
        r = post(street, page.text, f"{base}/sign")
        assert r.status_code == 303
        page = street.get(r.headers["location"])
        r = post(street, page.text, f"{base}/reply", {"reply": "x"})
        assert r.status_code == 422
        assert summary_links(r.text) == ["r-reply"]
        r = post(street, page.text, f"{base}/reply", {"reply": "已组织维修小区内部道路。"})
        assert r.status_code == 303
        assert ticket(client, hl, ref)["status"] == "replied"

    # Deadlines: a ticket left alone past its time is marked overdue, then escalated.
    late = new_ticket(client, hl["citizen.zhao"], subject="路面", body="道路坑洼不平，请修复。")["ref"]
    act(client, hl["op.li"], late, "classify", {"category_path": ROAD})
    act(client, hl["op.li"], late, "dispatch", {})
    clock.advance(dt.timedelta(days=8))
    with signed_in(base_url, "u.roads") as unit:
        inbox = unit.get("/hotline/inbox", params={"overdue": "1", "lang": "en"})
        assert f'href="/hotline/inbox/{late}"' in inbox.text
        assert "Overdue" in text_of(inbox.text)
        assert "No contact with the requester yet" in text_of(inbox.text)
    with signed_in(base_url, "sup.wang") as sup:
        page = sup.get("/hotline/supervise")
        overdue = page.text.split('id="h-overdue"')[1].split('id="h-escalated"')[0]
        assert late in overdue
        r = sup.post("/hotline/supervise/deadlines", data={"csrf_token": csrf(page.text)})
        assert r.status_code == 303
        page = sup.get(r.headers["location"] + "&lang=en")
        assert "escalations: 1" in text_of(page.text)
        escalated = page.text.split('id="h-escalated"')[1].split('id="h-duplicates"')[0]
        assert late in escalated


def rate_values(html: str, row: str) -> dict[str, str]:
    found = re.search(rf'<tr id="{re.escape(row)}">(.*?)</tr>', html, re.S)
    assert found, f"no row {row}"
    return dict(re.findall(r'data-rate="(\w+)" data-value="([^"]*)"', found.group(1)))


def test_the_three_rates_and_the_duplicates_of_the_supervisor(
    client: httpx.Client, hl: H, base_url: str
) -> None:
    closed = new_ticket(client, hl["citizen.chen"])["ref"]
    act(client, hl["op.li"], closed, "classify", {"category_path": ROAD})
    act(client, hl["op.li"], closed, "dispatch", {})
    act(client, hl["u.roads"], closed, "sign")
    act(client, hl["u.roads"], closed, "reply", {"reply": "已修复。"})
    act(client, hl["op.li"], closed, "revisit", {"resolved": True, "satisfaction": 2})
    waiting = new_ticket(client, hl["citizen.zhao"], subject="停水", body="小区停水两天了，何时恢复？")["ref"]
    act(client, hl["op.li"], waiting, "classify", {"category_path": "城乡建设/供水/停水"})
    act(client, hl["op.li"], waiting, "dispatch", {})
    first = new_ticket(
        client, hl["citizen.chen"], subject="噪音", body="工地夜间施工噪音扰民，凌晨两点还在打桩。"
    )["ref"]
    second = new_ticket(
        client, hl["citizen.zhao"], subject="噪音", body="工地夜间施工噪音扰民，凌晨两点还在打桩施工。"
    )["ref"]

    for who in ("op.li", "u.roads"):
        with signed_in(base_url, who) as c:
            assert c.get("/hotline/rates").status_code == 403
            assert c.get("/hotline/supervise").status_code == 403

    with signed_in(base_url, "sup.wang") as sup:
        page = sup.get("/hotline/rates")
        assert page.status_code == 200
        assert "响应率" in text_of(page.text)
        assert "市交通委员会" in text_of(page.text)
        roads = rate_values(page.text, "rate-roads")
        assert roads == {
            "dispatched": "1",
            "response": "1.0",
            "resolution": "1.0",
            "satisfaction": "0.0",
            "score": "60.0",
        }
        total = rate_values(page.text, "rates-total")
        assert total["dispatched"] == "2"
        assert total["response"] == "0.5"
        assert re.search(r'<svg[^>]* role="img"', page.text)
        csv_link = re.search(r'<a href="([^"]+)" id="rates-csv">', page.text).group(1)  # type: ignore[union-attr]
        assert csv_link == "/api/v1/hotline/rates.csv?by=unit"
        got = sup.get(csv_link.replace("&amp;", "&"))
        assert got.status_code == 200
        assert got.text.splitlines()[0].startswith("key,label,dispatched")
        by_category = sup.get("/hotline/rates", params={"by": "category", "date_from": "2026-03-01"})
        assert rate_values(by_category.text, "rate-城乡建设")["dispatched"] == "2"
        by_month = sup.get("/hotline/rates", params={"by": "month", "lang": "en"})
        assert rate_values(by_month.text, "rate-2026-03")["dispatched"] == "2"
        assert "Response rate" in by_month.text
        later = sup.get("/hotline/rates", params={"date_from": "2026-04-01"})
        assert rate_values(later.text, "rates-total")["dispatched"] == "0"
        bad = sup.get("/hotline/rates", params={"date_from": "2026-13-01", "date_to": "2026-01-01"})
        assert bad.status_code == 422
        assert summary_links(bad.text) == ["r-from"]
        assert 'value="2026-13-01"' in bad.text
        backwards = sup.get("/hotline/rates", params={"date_from": "2026-03-05", "date_to": "2026-03-01"})
        assert backwards.status_code == 422
        assert summary_links(backwards.text) == ["r-to"]

        page = sup.get("/hotline/supervise")
        dups = page.text.split('id="h-duplicates"')[1]
        assert second in dups
        assert first in dups
        row = next(r for r in dups.split("<tr>") if f'href="/hotline/desk/{second}"' in r)
        proposal = re.search(r'action="(/hotline/supervise/duplicates/\d+)/merge"', row).group(1)  # type: ignore[union-attr]
        r = sup.post(f"{proposal}/merge", data={"csrf_token": csrf(page.text)})
        assert r.status_code == 303, r.text
        t = ticket(client, hl, second)
        assert (t["status"], t["merged_into"]) == ("merged", first)
        again = sup.post(f"{proposal}/dismiss", data={"csrf_token": csrf(page.text)})
        assert again.status_code == 409  # decided already: said in the page, no 500
        assert 'role="alert"' in again.text
