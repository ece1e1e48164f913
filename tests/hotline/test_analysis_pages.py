"""The analysts' pages (hotspots, the sentiment index), their CSV files and the JSON API, over HTTP."""

from __future__ import annotations

import csv
import datetime as dt
import io

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.conftest import bearer, csrf, make_account, staff_login
from tests.hotline.test_analysis import CELL, WATER, WEEK, WEEK_START, add, flat, ticket
from tongban.core.auth import Principal, system_principal
from tongban.core.clock import FixedClock
from tongban.hotline import analysis
from tongban.hotline.vocab import ANALYSE


@pytest.fixture
def hl(session: Session, clock: FixedClock, client: httpx.Client) -> dict[str, dict[str, str]]:
    """Signed-in analyst, operator and supervisor (fewer accounts than the hotline's ``hl``: faster)."""
    roles = {
        "ana.zhou": ["hotline_analyst"],
        "op.li": ["hotline_operator"],
        "sup.wang": ["hotline_supervisor"],
    }
    for name, r in roles.items():
        make_account(session, clock, name, r)
    session.commit()
    return {name: bearer(client, name) for name in roles}


@pytest.fixture
def data(session: Session, clock: FixedClock) -> None:
    """Flat weeks and a burst of water outages in Chaoyang in 2026-W09, both jobs computed; the rated return
    visits make the index's dissatisfaction and resolution known."""
    flat(session)
    burst = [
        ticket(WEEK_START + dt.timedelta(days=2), path=WATER, place=CELL, hour=8 + i % 10,
               satisfaction=1 + i % 5, resolved=i % 3 != 0)
        for i in range(30)
    ]  # fmt: skip
    add(session, burst)
    analysis.run_hotspots(session, period=WEEK, clock=clock)
    analysis.run_index(session, period=WEEK, clock=clock)
    session.commit()


def test_hotspots_page_in_zh_and_en(client: httpx.Client, hl: dict[str, dict[str, str]], data: None) -> None:
    h = hl["ana.zhou"]
    en = client.get(f"/hotline/analysis?period={WEEK}&lang=en", headers=h)
    assert en.status_code == 200, en.text
    assert '<html lang="en">' in en.text
    assert "Hotspots and trends" in en.text
    assert "城乡建设 / 供水排水" in en.text
    assert "Chaoyang" in en.text
    assert "Burst" in en.text
    assert "<svg" in en.text
    assert 'name="csrf_token"' in en.text
    zh = client.get(f"/hotline/analysis?period={WEEK}&lang=zh-Hans", headers=h)
    assert zh.status_code == 200
    assert '<html lang="zh-Hans">' in zh.text
    assert "朝阳区" in zh.text
    # Without a period: the last complete week.
    assert client.get("/hotline/analysis", headers=h).status_code == 200
    # A period not computed yet offers to compute it.
    other = client.get("/hotline/analysis?period=2026-W08&lang=en", headers=h)
    assert other.status_code == 200
    assert "Not computed yet" in other.text


def test_index_page_in_zh_and_en(client: httpx.Client, hl: dict[str, dict[str, str]], data: None) -> None:
    h = hl["ana.zhou"]
    en = client.get(f"/hotline/analysis/index?period={WEEK}&lang=en", headers=h)
    assert en.status_code == 200, en.text
    assert "Sentiment index" in en.text
    assert "Dongcheng" in en.text
    assert en.text.count("<svg") >= 3
    assert "Weight of volume" in en.text
    zh = client.get(f"/hotline/analysis/index?period={WEEK}&lang=zh-Hans", headers=h)
    assert zh.status_code == 200
    assert "东城区" in zh.text


def _rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(response.text.lstrip("\ufeff"))))


def test_csv_exports(
    client: httpx.Client, hl: dict[str, dict[str, str]], data: None, session: Session
) -> None:
    h = hl["ana.zhou"]
    rows = _rows(client.get(f"/hotline/analysis/hotspots.csv?period={WEEK}&family=region_topic", headers=h))
    assert rows[0]["key"] == "110105|城乡建设/供水排水"
    assert rows[0]["flag"] == "burst"
    assert rows[0]["region_name"] == "朝阳区"
    assert rows[0]["count"] == "40"
    assert {r["family"] for r in rows} == {"region_topic"}
    every = _rows(client.get(f"/hotline/analysis/hotspots.csv?period={WEEK}", headers=h))
    assert {r["family"] for r in every} == set(analysis.FAMILIES)
    snap = analysis.snapshot(session, _analyst(session), kind="index", period=WEEK)
    assert snap is not None
    districts = _rows(client.get(f"/hotline/analysis/index.csv?period={WEEK}&table=districts", headers=h))
    stored = {d["key"]: d for d in snap.result["districts"]}
    assert {r["key"] for r in districts} == set(stored)
    for r in districts:
        assert float(r["index"]) == stored[r["key"]]["index"]
        assert int(r["tickets"]) == stored[r["key"]]["tickets"]
    whole = _rows(client.get(f"/hotline/analysis/index.csv?period={WEEK}", headers=h))
    assert {r["table"] for r in whole} == {"city", "districts", "topics", "cells"}
    recurring = _rows(client.get(f"/hotline/analysis/recurring.csv?period={WEEK}", headers=h))
    assert len(recurring) == 9
    assert {(r["weeks_with_tickets"], r["week_8"]) for r in recurring} == {("8", "10")}
    bad = client.get(f"/hotline/analysis/index.csv?period={WEEK}&table=nope", headers=h)
    assert bad.status_code == 422


def _analyst(session: Session) -> Principal:
    return system_principal("test", frozenset({ANALYSE}))


def test_permissions(client: httpx.Client, hl: dict[str, dict[str, str]], data: None) -> None:
    operator = hl["op.li"]
    for path in (
        f"/hotline/analysis?period={WEEK}",
        f"/hotline/analysis/index?period={WEEK}",
        f"/hotline/analysis/hotspots.csv?period={WEEK}",
        f"/hotline/analysis/index.csv?period={WEEK}",
        f"/api/v1/hotline/analysis/hotspots?period={WEEK}",
        f"/api/v1/hotline/analysis/index?period={WEEK}",
    ):
        assert client.get(path, headers=operator).status_code == 403, path
    refused = client.post(
        "/api/v1/hotline/analysis/run", json={"kind": "index", "period": WEEK}, headers=operator
    )
    assert refused.status_code == 403
    assert client.get(f"/api/v1/hotline/analysis/hotspots?period={WEEK}").status_code == 401
    page = client.get(f"/hotline/analysis?period={WEEK}")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/staff/login")
    # Supervisors analyse too.
    assert client.get(f"/hotline/analysis?period={WEEK}", headers=hl["sup.wang"]).status_code == 200


def test_bad_periods(client: httpx.Client, hl: dict[str, dict[str, str]], data: None) -> None:
    h = hl["ana.zhou"]
    page = client.get("/hotline/analysis?period=2026-13&lang=en", headers=h)
    assert page.status_code == 422
    assert 'role="alert"' in page.text
    assert "2026-13" in page.text
    assert client.get("/hotline/analysis/index?period=W09", headers=h).status_code == 422
    api = client.get("/api/v1/hotline/analysis/hotspots?period=2026-02-30", headers=h)
    assert api.status_code == 422
    assert api.headers["content-type"].startswith("application/problem+json")
    assert client.get("/hotline/analysis/hotspots.csv?period=nope", headers=h).status_code == 422
    missing = client.get("/api/v1/hotline/analysis/index?period=2026-W08", headers=h)
    assert missing.status_code == 404
    future = client.post(
        "/api/v1/hotline/analysis/run", json={"kind": "hotspots", "period": "2026-W20"}, headers=h
    )
    assert future.status_code == 422


def test_compute_now_form(client: httpx.Client, hl: dict[str, dict[str, str]], data: None) -> None:
    staff_login(client, "ana.zhou")
    page = client.get("/hotline/analysis/index?period=2026-W08&lang=en")
    assert "Not computed yet" in page.text
    token = csrf(page.text)
    form = {
        "kind": "index",
        "period": "2026-W08",
        "w_volume": "1",
        "w_dissatisfaction": "1",
        "w_resolution": "2",
    }
    assert client.post("/hotline/analysis/run", data=form).status_code == 403  # no CSRF token
    done = client.post("/hotline/analysis/run", data={**form, "csrf_token": token})
    assert done.status_code == 303
    assert done.headers["location"] == "/hotline/analysis/index?period=2026-W08&done=1"
    shown = client.get(done.headers["location"] + "&lang=en")
    assert shown.status_code == 200
    assert "Computed." in shown.text
    api = client.get("/api/v1/hotline/analysis/index?period=2026-W08", headers=hl["ana.zhou"])
    assert api.json()["params"]["weights"] == {"volume": 0.25, "dissatisfaction": 0.25, "resolution": 0.5}
    wrong = client.post("/hotline/analysis/run", data={**form, "w_volume": "lots", "csrf_token": token})
    assert wrong.status_code == 422
    assert "weights.volume" in wrong.text
    early = client.post(
        "/hotline/analysis/run", data={"kind": "hotspots", "period": "2025-W40", "csrf_token": token}
    )
    assert early.status_code == 422
    assert "no baseline" in early.text


def test_api(client: httpx.Client, hl: dict[str, dict[str, str]], data: None) -> None:
    h = hl["ana.zhou"]
    got = client.get(f"/api/v1/hotline/analysis/hotspots?period={WEEK}", headers=h)
    assert got.status_code == 200
    body = got.json()
    assert body["kind"] == "hotspots"
    assert body["period"] == WEEK
    assert body["result"]["families"]["region_topic"]["top"][0]["flag"] == "burst"
    again = client.post("/api/v1/hotline/analysis/run", json={"kind": "hotspots", "period": WEEK}, headers=h)
    assert again.status_code == 200
    assert again.json()["result"] == body["result"]
    history = client.post(
        "/api/v1/hotline/analysis/run", json={"kind": "index", "period": WEEK, "previous": 2}, headers=h
    )
    assert history.status_code == 200
    listed = client.get("/api/v1/hotline/analysis/snapshots?kind=index&granularity=week", headers=h).json()
    assert [s["period"] for s in listed] == [WEEK, "2026-W08", "2026-W07"]
    wrong = client.post(
        "/api/v1/hotline/analysis/run",
        json={"kind": "hotspots", "period": WEEK, "weights": {"volume": 1}},
        headers=h,
    )
    assert wrong.status_code == 422
    extra = client.post(
        "/api/v1/hotline/analysis/run", json={"kind": "index", "period": WEEK, "x": 1}, headers=h
    )
    assert extra.status_code == 422
