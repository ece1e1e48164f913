"""Quality monitoring pages over HTTP: the dashboard against the API, filters, drill-down, CSV, pain points,
rules and targets with alerts, publication and the public results."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from babel.numbers import format_percent
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import csrf, staff_login
from tests.rating.conftest import UNIT
from tongban.core.models import Account
from tongban.rating import quality_pages
from tongban.rating.vocab import INDICATORS

H = dict[str, dict[str, str]]
POLICE = "北京市公安局"
#: The default range of the dashboard at the tests' clock (2026-03-02): the last 12 months, whole months.
DEFAULT_FROM, DEFAULT_TO = "2025-04-01", "2026-03-02"
#: Tickets of two departments: (ref, department, closed on, level, working days of a 5-day limit).
TICKETS = [
    ("T-U1", UNIT, "2026-02-10", 2, 7),
    ("T-U2", UNIT, "2026-02-11", 1, 6),
    ("T-U3", UNIT, "2026-02-12", 5, 3),
    ("T-U4", UNIT, "2026-02-13", 4, 2),
    ("T-U5", UNIT, "2026-02-16", 3, 4),
    ("T-P1", POLICE, "2026-01-20", 5, 2),
    ("T-P2", POLICE, "2026-01-21", 5, 3),
    ("T-P3", POLICE, "2026-02-17", 4, 1),
    ("T-P4", POLICE, "2026-02-18", 4, 4),
    ("T-P5", POLICE, "2026-02-19", 5, 5),
]
TEXT_OF_BAD = "工作人员态度很差，办了很久都没有办好。"


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def row_of(html: str, code: str) -> str:
    match = re.search(rf'<tr id="ind-{code}">(.*?)</tr>', html, re.S)
    assert match, f"no row of {code}"
    return text_of(match.group(1))


def pct(value: float, locale: str = "zh_Hans") -> str:
    return str(format_percent(value, "#,##0.0%", locale=locale))


def refs_in(html: str) -> set[str]:
    return set(re.findall(r"<code>([A-Za-z0-9_.:-]+)</code>", html))


@contextmanager
def signed_in(base_url: str, username: str, lang: str | None = None) -> Iterator[httpx.Client]:
    """A client signed in through the sign-in form; with ``lang`` its pages come in that language."""
    with httpx.Client(base_url=base_url, timeout=30) as c:
        if lang is not None:
            c.cookies.set("tongban_lang", lang)
        staff_login(c, username)
        yield c


def post_form(client: httpx.Client, page: str, action: str, data: dict[str, str]) -> httpx.Response:
    return client.post(action, data={"csrf_token": csrf(page), **data}, follow_redirects=False)


@pytest.fixture
def data(client: httpx.Client, quality: H, closed: str, session: Session) -> dict[str, Any]:
    """The closed application rated very dissatisfied, and ten hotline tickets of two departments in
    January and February, all rated by citizen.li (the rating period widened to a year)."""
    widened = client.put("/api/v1/quality/settings", headers=quality["super.he"], json={"window_days": 365})
    assert widened.status_code == 200, widened.text
    rated = client.post(
        f"/api/v1/ratings/application/{closed}",
        headers=quality["citizen.li"],
        json={"level": 1, "text": TEXT_OF_BAD},
    )
    assert rated.status_code == 201, rated.text
    owner = session.scalar(select(Account.id).where(Account.username == "citizen.li"))
    for ref, department, day, level, work_days in TICKETS:
        closed_at = dt.datetime.fromisoformat(f"{day}T10:00:00+08:00")
        body = {
            "owner_account_id": owner,
            "item_code": "HOTLINE01",
            "item_name": "12345热线工单",
            "department": department,
            "channel": "phone",
            "opened_at": (closed_at - dt.timedelta(days=work_days + 2)).isoformat(),
            "closed_at": closed_at.isoformat(),
            "outcome": "solved",
            "limit_days": 5,
            "work_days": work_days,
        }
        put = client.put(f"/api/v1/ratings/cases/ticket/{ref}", headers=quality["hotline.sys"], json=body)
        assert put.status_code == 200, put.text
        text = TEXT_OF_BAD if level <= 2 else "不错"
        given = client.post(
            f"/api/v1/ratings/ticket/{ref}",
            headers=quality["citizen.li"],
            json={"level": level, "text": text},
        )
        assert given.status_code == 201, given.text
    bad = {closed} | {ref for ref, _, _, level, _ in TICKETS if level <= 2}
    return {"receipt": closed, "bad": bad, "all": {closed} | {t[0] for t in TICKETS}}


def api_indicators(client: httpx.Client, headers: dict[str, str], **params: str) -> dict[str, Any]:
    response = client.get("/api/v1/quality/indicators", headers=headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_dashboard_matches_the_api_and_filters_change_it(
    client: httpx.Client, base_url: str, quality: H, data: dict[str, Any]
) -> None:
    analyst = quality["analyst.ma"]
    api = api_indicators(client, analyst, date_from=DEFAULT_FROM, date_to=DEFAULT_TO)["total"]
    assert api["cases"] == 11
    assert api["bad"] == 3
    with signed_in(base_url, "analyst.ma") as c:
        page = c.get("/quality")
        assert page.status_code == 200, page.text
        html = page.text
        assert f'value="{DEFAULT_FROM}"' in html
        assert f'value="{DEFAULT_TO}"' in html
        for code in ("satisfaction_rate", "bad_rate", "rating_rate", "on_time_rate"):
            assert pct(api[code]) in row_of(html, code), code
        for i in INDICATORS:
            assert i.name in row_of(html, i.code)  # every indicator has its row, named in Chinese first
        # the bad reviews' count links to exactly that drill-down, with the filter
        link = re.search(r'<tr id="ind-bad_rate">.*?<a href="([^"]+)">3</a>', html, re.S)
        assert link
        query = parse_qs(urlsplit(unescape(link.group(1))).query, keep_blank_values=True)
        assert query["only"] == ["bad"]
        assert query["date_from"] == [DEFAULT_FROM]
        # the charts: by month (with no-data months), by level, by department with drill-down links
        assert html.count('role="img"') + html.count('role="group"') >= 5
        assert "department%3A" + "%E5%8C%97%E4%BA%AC%E5%B8%82%E5%85%AC%E5%AE%89%E5%B1%80" in html
        assert 'href="/api/v1/quality/cases.csv?date_from=2025-04-01' in html

        police = c.get("/quality", params={"department": POLICE})
        api_police = api_indicators(
            client, analyst, date_from=DEFAULT_FROM, date_to=DEFAULT_TO, department=POLICE
        )
        assert api_police["total"]["cases"] == 5
        assert pct(api_police["total"]["bad_rate"]) in row_of(police.text, "bad_rate")
        assert pct(api_police["total"]["satisfaction_rate"]) in row_of(police.text, "satisfaction_rate")
        assert row_of(police.text, "satisfaction_rate") != row_of(html, "satisfaction_rate")
        january = c.get("/quality", params={"date_from": "2026-01-01", "date_to": "2026-01-31"})
        api_january = api_indicators(client, analyst, date_from="2026-01-01", date_to="2026-01-31")["total"]
        assert api_january["cases"] == 2
        assert pct(api_january["satisfaction_rate"]) in row_of(january.text, "satisfaction_rate")

        grouped = c.get("/quality", params={"group_by": "department"})
        table = re.search(r'<table class="groups">.*?<tbody>(.*?)</tbody>', grouped.text, re.S)
        assert table
        rows = re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)
        api_groups = api_indicators(
            client, analyst, date_from=DEFAULT_FROM, date_to=DEFAULT_TO, group_by="department"
        )["groups"]
        assert len(rows) == len(api_groups) == 2
        for g in api_groups:
            row = next(text_of(r) for r in rows if g["label"] in r)
            assert pct(g["satisfaction_rate"]) in row
            assert f" {g['cases']} " in f" {row} "

        invalid = c.get("/quality", params={"date_from": "2026-02-30"})
        assert invalid.status_code == 422
        assert "date_from" in invalid.text
        english = c.get("/quality", params={"lang": "en"}).text
        assert "Service quality indicators" in english
        assert '<h2 id="indicators">Indicators</h2>' in english
        assert "Satisfaction rate" in row_of(english, "satisfaction_rate")
        assert pct(api["satisfaction_rate"], "en") in row_of(english, "satisfaction_rate")
        assert f"bad reviews: {api['bad']}" in row_of(english, "bad_rate")
        assert f"counted ratings: {api['counts']['counted']}" in row_of(english, "satisfaction_rate")
        late = sum(1 for t in TICKETS if t[4] > 5)
        assert f"late: {late}" in row_of(english, "on_time_rate")


def test_drill_down_lists_exactly_the_cases_and_keeps_the_filter(
    base_url: str, quality: H, data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with signed_in(base_url, "analyst.ma") as c:
        bad = c.get("/quality/cases", params={"only": "bad"})
        assert bad.status_code == 200, bad.text
        assert refs_in(bad.text) == data["bad"]
        assert TEXT_OF_BAD[:8] not in bad.text  # no rating text, no rater: no personal data
        assert "citizen.li" not in bad.text.lower()
        everything = c.get("/quality/cases")
        assert refs_in(everything.text) == data["all"]
        police = c.get("/quality/cases", params={"group": f"department:{POLICE}", "only": "rated"})
        assert refs_in(police.text) == {t[0] for t in TICKETS if t[1] == POLICE}
        late = c.get("/quality/cases", params={"only": "late"})
        assert refs_in(late.text) == {t[0] for t in TICKETS if t[4] > 5}
        assert c.get("/quality/cases", params={"only": "nonsense"}).status_code == 422

        monkeypatch.setattr(quality_pages, "PER_PAGE", 2)
        seen: set[str] = set()
        url: str | None = f"/quality/cases?department={UNIT}&only=rated&date_from=2026-02-01&date_to="
        pages = 0
        while url:
            page = c.get(unescape(url))
            assert page.status_code == 200
            found = refs_in(page.text)
            assert len(found) <= 2
            assert not found & seen
            seen |= found
            pages += 1
            nxt = re.search(r'<a href="([^"]+)" rel="next">', page.text)
            url = nxt.group(1) if nxt else None
            if url:
                query = parse_qs(urlsplit(unescape(url)).query, keep_blank_values=True)
                assert query["department"] == [UNIT]
                assert query["only"] == ["rated"]
                assert query["date_to"] == [""]
        assert pages == 3  # five tickets in February and the application closed in March
        assert seen == {t[0] for t in TICKETS if t[1] == UNIT} | {data["receipt"]}


def test_indicators_csv_parses_and_matches_the_api(
    client: httpx.Client, base_url: str, quality: H, data: dict[str, Any]
) -> None:
    api = api_indicators(client, quality["analyst.ma"], group_by="department", date_from="2026-01-01")
    with signed_in(base_url, "analyst.ma") as c:
        response = c.get(
            "/quality/indicators.csv",
            params={"group_by": "department", "date_from": "2026-01-01", "date_to": ""},
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert response.text.startswith("\ufeff")
        rows = list(csv.DictReader(io.StringIO(response.text.lstrip("\ufeff"))))
        total = c.get("/quality/indicators.csv", params={"date_from": "2026-01-01", "date_to": ""})
    assert {r["group"] for r in rows} == {g["group"] for g in api["groups"]}
    for g in api["groups"]:
        row = next(r for r in rows if r["group"] == g["group"])
        assert row["group_by"] == "department"
        assert int(row["cases"]) == g["cases"]
        assert int(row["bad"]) == g["bad"]
        for i in INDICATORS:
            if g[i.code] is None:
                assert row[i.code] == ""
            else:
                assert float(row[i.code]) == pytest.approx(g[i.code])
        assert sum(int(row[f"level_{k}"]) for k in range(1, 6)) == g["rated"]
    (one,) = list(csv.DictReader(io.StringIO(total.text.lstrip("\ufeff"))))
    assert int(one["cases"]) == api["total"]["cases"]
    assert float(one["satisfaction_rate"]) == pytest.approx(api["total"]["satisfaction_rate"])


def test_who_may_see_and_change(
    client: httpx.Client, base_url: str, quality: H, data: dict[str, Any]
) -> None:
    assert client.get("/quality").status_code == 303  # anonymous: sign in first
    assert client.get("/quality/settings").status_code == 303
    with signed_in(base_url, "citizen.li") as citizen:
        desk = citizen.get("/staff").text
        assert 'href="/quality"' not in desk
        for path in (
            "/quality",
            "/quality/cases",
            "/quality/pain-points",
            "/quality/settings",
            "/quality/indicators.csv",
        ):
            assert citizen.get(path).status_code == 403, path
    with signed_in(base_url, "analyst.ma") as analyst:
        desk = analyst.get("/staff").text
        assert 'href="/quality"' in desk
        assert 'href="/quality/settings"' in desk
        page = analyst.get("/quality/settings")
        assert page.status_code == 200
        assert 'action="/quality/settings"' not in page.text
        refused = post_form(analyst, page.text, "/quality/settings", {"rectify_working_days": "5"})
        assert refused.status_code == 403
        refused = post_form(
            analyst, page.text, "/quality/settings/targets", {"indicator": "bad_rate", "high": "5"}
        )
        assert refused.status_code == 403
    with signed_in(base_url, "super.he") as boss:
        page = boss.get("/quality/settings")
        assert 'action="/quality/settings"' in page.text
        no_csrf = boss.post("/quality/settings", data={"rectify_working_days": "5"})
        assert no_csrf.status_code == 403
        saved = post_form(boss, page.text, "/quality/settings", {"rectify_working_days": "5"})
        assert saved.status_code == 303, saved.text
        after = boss.get(saved.headers["location"]).text
        assert 'value="5"' in after
        wrong = post_form(boss, page.text, "/quality/settings", {"rectify_working_days": "0"})
        assert wrong.status_code == 422
        assert "rectify_working_days" in wrong.text
        not_a_number = post_form(boss, page.text, "/quality/settings", {"window_days": "soon"})
        assert not_a_number.status_code == 422
    settings = client.get("/api/v1/quality/settings", headers=quality["analyst.ma"]).json()
    assert settings["rectify_working_days"] == 5
    assert settings["window_days"] == 365


def test_a_target_breach_shows_an_alert_after_the_check(
    client: httpx.Client, base_url: str, quality: H, data: dict[str, Any]
) -> None:
    with signed_in(base_url, "super.he", "en") as boss:
        page = boss.get("/quality/settings").text
        inverted = post_form(
            boss,
            page,
            "/quality/settings/targets",
            {"indicator": "satisfaction_rate", "scope": "all", "low": "99", "high": "90"},
        )
        assert inverted.status_code == 422
        assert "low is above high" in inverted.text
        saved = post_form(
            boss,
            page,
            "/quality/settings/targets",
            {"indicator": "satisfaction_rate", "scope": "all", "low": "95"},
        )
        assert saved.status_code == 303, saved.text
        (target,) = client.get("/api/v1/quality/targets", headers=quality["analyst.ma"]).json()
        assert target["low"] == pytest.approx(0.95)
        assert target["high"] is None

        dashboard = boss.get("/quality").text
        assert "✕ Outside the target band" in row_of(dashboard, "satisfaction_rate")
        assert "at least 95.0%" in row_of(dashboard, "satisfaction_rate")
        assert "No target" in row_of(dashboard, "bad_rate")
        assert "No open alert." in text_of(dashboard)

        bad_period = post_form(boss, page, "/quality/settings/alerts/check", {"period": "2026-13"})
        assert bad_period.status_code == 422
        checked = post_form(
            boss, page, "/quality/settings/alerts/check", {"period": "2026-02", "min_cases": "1"}
        )
        assert checked.status_code == 303
        assert "raised=1" in checked.headers["location"]
        shown = boss.get(checked.headers["location"]).text
        assert "1 new alert." in text_of(shown)
        again = post_form(
            boss, page, "/quality/settings/alerts/check", {"period": "2026-02", "min_cases": "1"}
        )
        assert "raised=0" in again.headers["location"]

        dashboard = boss.get("/quality").text
        alerts = re.search(r'<h2 id="alerts">.*?</table>', dashboard, re.S)
        assert alerts
        assert "Satisfaction rate" in alerts.group(0)
        assert "2026-02" in alerts.group(0)
        (alert,) = client.get("/api/v1/quality/alerts", headers=quality["analyst.ma"]).json()
        settings_page = boss.get("/quality/settings").text
        done = post_form(boss, settings_page, f"/quality/settings/alerts/{alert['id']}/acknowledge", {})
        assert done.status_code == 303
        assert "No open alert." in text_of(boss.get("/quality").text)
        missing = post_form(boss, settings_page, "/quality/settings/alerts/999999/acknowledge", {})
        assert missing.status_code == 404

        deleted = post_form(boss, settings_page, f"/quality/settings/targets/{target['id']}/delete", {})
        assert deleted.status_code == 303
        assert client.get("/api/v1/quality/targets", headers=quality["analyst.ma"]).json() == []
        assert "Outside the target band" not in boss.get("/quality").text


def test_publishing_a_period_shows_it_to_everyone(
    client: httpx.Client, base_url: str, quality: H, data: dict[str, Any]
) -> None:
    assert "2026-02" not in client.get("/results").text
    with signed_in(base_url, "super.he") as boss:
        page = boss.get("/quality/settings").text
        assert 'value="2026-02"' in page  # last month is offered
        unfinished = post_form(boss, page, "/quality/settings/publish", {"period": "2026-03"})
        assert unfinished.status_code == 409
        assert "2026-03" in unfinished.text
        published = post_form(
            boss, page, "/quality/settings/publish", {"period": "2026-02", "min_cases": "1"}
        )
        assert published.status_code == 303, published.text
        twice = post_form(boss, page, "/quality/settings/publish", {"period": "2026-02", "min_cases": "1"})
        assert twice.status_code == 409
    api = client.get("/api/v1/quality/publications/2026-02").json()["data"]
    listing = client.get("/results")
    assert listing.status_code == 200
    assert 'href="/results/2026-02"' in listing.text
    home = client.get("/").text
    assert 'href="/results"' in home
    public = client.get("/results/2026-02")
    assert public.status_code == 200
    html = public.text
    assert pct(api["total"]["satisfaction_rate"]) in row_of(html, "satisfaction_rate")
    assert pct(api["total"]["bad_rate"]) in row_of(html, "bad_rate")
    assert "满意率" in row_of(html, "satisfaction_rate")
    for d in api["departments"]:
        assert d["department"] in html
    assert html.count('role="img"') == 2
    english = client.get("/results/2026-02", params={"lang": "en"}).text
    assert "Service quality results" in english
    assert "Satisfaction rate" in english
    assert "By department" in english
    assert "counted ratings" in row_of(english, "satisfaction_rate")
    assert client.get("/results/2025-12").status_code == 404
    assert client.get("/results/garbage").status_code == 422


def test_pain_points_name_the_department_with_the_bad_reviews(
    base_url: str, quality: H, data: dict[str, Any]
) -> None:
    with signed_in(base_url, "analyst.ma") as c:
        page = c.get("/quality/pain-points")
        assert page.status_code == 200, page.text
        where = re.search(r'<h2 id="where">.*?</table>', page.text, re.S)
        assert where
        rows = re.findall(r"<tr>(.*?)</tr>", where.group(0), re.S)
        unit_rows = [text_of(r) for r in rows if UNIT in r]
        assert unit_rows
        assert "50.0%" in unit_rows[0]  # 3 of its 6 first ratings are bad
        assert "department%3A" in where.group(0)
        english = c.get("/quality/pain-points", params={"lang": "en"}).text
        assert "Where bad reviews concentrate" in english
        assert "Risk ratio" in english
        reasons = re.search(r'<h2 id="reasons">.*?</table>', english, re.S)
        assert reasons
        assert "Attitude" in reasons.group(0) or "attitude" in reasons.group(0)
        police = c.get("/quality/pain-points", params={"department": POLICE, "lang": "en"}).text
        assert "No bad review in these cases." in text_of(police)


def test_the_definitions_are_marked_for_translation() -> None:
    assert set(quality_pages.DEFINITIONS) == {i.definition for i in INDICATORS}
