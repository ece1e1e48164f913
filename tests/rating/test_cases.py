"""Cases other than this platform's applications (visits, consultations, other systems' tickets) and the
indicator API: drill-down, CSV, pain points, targets and alerts, published results."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.rating.conftest import UNIT
from tests.rating.test_ratings import BAD, problem, rate
from tongban.consult.models import ConsultConversation, ConsultTurn
from tongban.core.clock import FixedClock
from tongban.core.models import Account

H = dict[str, dict[str, str]]


def ticket(n: int, *, department: str, closed: dt.datetime | None, **extra: Any) -> dict[str, Any]:
    opened = (closed or dt.datetime(2026, 3, 1, tzinfo=dt.UTC)) - dt.timedelta(days=3)
    body = {
        "department": department,
        "channel": "phone",
        "opened_at": opened.isoformat(),
        "closed_at": closed.isoformat() if closed else None,
        "outcome": "solved",
        "limit_days": 7,
        "work_days": 2 + n % 5,
        "region": "朝阳区",
        "region_code": "110105",
        **extra,
    }
    return body


def register(client: httpx.Client, h: H, ref: str, body: dict[str, Any]) -> httpx.Response:
    return client.put(f"/api/v1/ratings/cases/ticket/{ref}", headers=h["hotline.sys"], json=body)


def test_a_ticket_registered_by_the_hotline_is_rated_by_its_requester(
    client: httpx.Client, quality: H, session: Session, clock: FixedClock
) -> None:
    owner = session.scalar(select(Account.id).where(Account.username == "citizen.zhang"))
    body = ticket(1, department="朝阳区城管委", closed=None, owner_account_id=owner)
    assert register(client, quality, "GD2026000001", body).status_code == 200
    problem(rate(client, quality["citizen.zhang"], "x", {"level": 5}), 404, "not-found")
    open_rate = client.post(
        "/api/v1/ratings/ticket/GD2026000001", headers=quality["citizen.zhang"], json={"level": 5}
    )
    problem(open_rate, 409, "case-not-closed")
    body["closed_at"] = clock.now().isoformat()
    again = register(client, quality, "GD2026000001", body)
    assert again.status_code == 200
    assert again.json()["on_time"] is True
    reopened = register(client, quality, "GD2026000001", {**body, "closed_at": None})
    problem(reopened, 409, "conflict")
    problem(
        client.post("/api/v1/ratings/ticket/GD2026000001", headers=quality["citizen.li"], json={"level": 5}),
        403,
        "not-your-case",
    )
    bad = client.post("/api/v1/ratings/ticket/GD2026000001", headers=quality["citizen.zhang"], json=BAD)
    assert bad.status_code == 201, bad.text
    units = client.get("/api/v1/rectifications", headers=quality["super.he"]).json()
    assert [(r["ref"], r["unit"]) for r in units] == [("GD2026000001", "朝阳区城管委")]
    assert client.get("/api/v1/rectifications", headers=quality["unit.zhao"]).json() == []
    # only systems register cases; bad facts are refused with the field named
    assert register(client, {"hotline.sys": quality["citizen.li"]}, "GD2026000002", body).status_code == 403
    wrong = register(client, quality, "GD2026000002", {**body, "opened_at": "2026-03-01T08:00:00"})
    assert "time zone" in problem(wrong, 422, "invalid-input")["detail"]
    late = {**body, "closed_at": "2020-01-01T00:00:00+08:00"}
    problem(register(client, quality, "GD2026000003", late), 422, "invalid-input")


def test_a_visit_is_rated_at_the_terminal_within_its_window(
    client: httpx.Client, quality: H, closed: str, clock: FixedClock
) -> None:
    officer = quality["officer.wang"]
    visit = client.post(
        "/api/v1/ratings/visits",
        headers=officer,
        json={"department": UNIT, "item_name": "租房提取住房公积金", "receipt_no": closed},
    )
    assert visit.status_code == 201, visit.text
    ref = visit.json()["ref"]
    assert (
        client.post(
            "/api/v1/ratings/visits", headers=quality["citizen.li"], json={"department": UNIT}
        ).status_code
        == 403
    )
    unknown = client.post(
        "/api/v1/ratings/visits", headers=officer, json={"department": UNIT, "receipt_no": "NOPE"}
    )
    problem(unknown, 422, "invalid-input")
    case = client.get(f"/api/v1/ratings/application/{closed}", headers=quality["citizen.li"]).json()["case"]
    assert case["visits"] == 1  # the application's 跑动次数
    problem(
        client.post(f"/api/v1/ratings/visit/{ref}", headers=quality["citizen.li"], json={"level": 5}),
        403,
        "not-your-case",
    )
    given = client.post(
        f"/api/v1/ratings/visit/{ref}",
        headers=quality["terminal.01"],
        json={"level": 4, "channel": "terminal"},
    )
    assert given.status_code == 201, given.text
    second = client.post(f"/api/v1/ratings/visit/{ref}", headers=quality["terminal.01"], json={"level": 1})
    problem(second, 409, "already-rated")
    late = client.post("/api/v1/ratings/visits", headers=officer, json={"department": UNIT}).json()["ref"]
    clock.advance(dt.timedelta(days=1, minutes=1))
    from tests.conftest import bearer

    terminal = bearer(client, "terminal.01")
    problem(
        client.post(f"/api/v1/ratings/visit/{late}", headers=terminal, json={"level": 5}),
        409,
        "rating-window-closed",
    )


def conversation(session: Session, clock: FixedClock, *, answered: bool = True) -> str:
    """An anonymous live conversation, with one answered turn unless ``answered`` is false."""
    cid = uuid.uuid4().hex
    session.add(
        ConsultConversation(
            id=cid,
            language="zh-Hans",
            account=None,
            created_at=clock.now(),
            last_at=clock.now(),
            expires_at=clock.now() + dt.timedelta(minutes=30),
            turns=1 if answered else 0,
            guidance={},
        )
    )
    session.flush()
    if answered:
        session.add(
            ConsultTurn(
                conversation_id=cid,
                seq=1,
                question="公积金怎么提取？",
                answer="可以在线申请。",
                refused=False,
                reason="",
                citations=[],
                mode="extractive",
                confidence=0.8,
                latency_ms=10,
                created_at=clock.now(),
            )
        )
    session.commit()
    return cid


def test_an_anonymous_consultation_is_rated_by_whoever_holds_its_id(
    client: httpx.Client, quality: H, session: Session, clock: FixedClock
) -> None:
    conv_id = conversation(session, clock)
    empty_id = conversation(session, clock, answered=False)
    problem(
        client.post(f"/api/v1/ratings/consultation/{empty_id}", json={"level": 5}), 409, "case-not-closed"
    )
    problem(
        client.post(f"/api/v1/ratings/consultation/{uuid.uuid4().hex}", json={"level": 5}), 404, "not-found"
    )
    given = client.post(f"/api/v1/ratings/consultation/{conv_id}", json={"level": 2, "text": "答非所问"})
    assert given.status_code == 201, given.text
    assert given.json()["kind"] == "consultation"
    problem(client.post(f"/api/v1/ratings/consultation/{conv_id}", json={"level": 5}), 409, "already-rated")
    rect = client.get(
        f"/api/v1/rectifications/{given.json()['rectification_id']}", headers=quality["super.he"]
    ).json()
    assert rect["contact_due"] is None  # nobody to call back


def _data(client: httpx.Client, quality: H, clock: FixedClock) -> None:
    """Tickets of two departments over two months, some rated bad."""
    for n in range(12):
        closed = clock.now() - dt.timedelta(days=40 if n < 6 else 1, hours=n)
        department = "朝阳区城管委" if n % 2 else "朝阳区住建委"
        extra = {"work_days": 10} if n == 0 else {}
        body = ticket(n, department=department, closed=closed, owner_account_id=None, **extra)
        assert register(client, quality, f"GD20260{n:05d}", body).status_code == 200


def test_indicators_group_drill_down_and_csv(client: httpx.Client, quality: H, clock: FixedClock) -> None:
    _data(client, quality, clock)
    analyst = quality["analyst.ma"]
    report = client.get("/api/v1/quality/indicators?group_by=department&kind=ticket", headers=analyst).json()
    total = report["total"]
    assert total["cases"] == 12
    assert total["on_time_rate"] == 11 / 12  # one took 10 working days against 7
    assert total["p90_work_days"] == 6.0  # nearest rank: the 11th of 12 sorted
    assert [(g["group"], g["cases"]) for g in report["groups"]] == [("朝阳区住建委", 6), ("朝阳区城管委", 6)]
    month = client.get("/api/v1/quality/indicators?group_by=month&kind=ticket", headers=analyst).json()
    assert sum(g["cases"] for g in month["groups"]) == 12
    assert len(month["groups"]) == 2
    late = client.get("/api/v1/quality/cases?only=late&kind=ticket", headers=analyst).json()
    assert late["total"] == 1
    assert late["cases"][0]["work_days"] == 10
    dept = client.get(
        "/api/v1/quality/cases?group=department:朝阳区城管委&per_page=2", headers=analyst
    ).json()
    assert dept["total"] == 6
    assert len(dept["cases"]) == 2
    exported = client.get("/api/v1/quality/cases.csv?kind=ticket", headers=analyst)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert len(rows) == 12
    assert {r["department"] for r in rows} == {"朝阳区城管委", "朝阳区住建委"}
    assert "owner_account_id" not in rows[0]
    for url, slug in (
        ("/api/v1/quality/indicators?group_by=rater", "invalid-input"),
        ("/api/v1/quality/indicators?date_from=2026-13-01", "invalid-input"),
        ("/api/v1/quality/indicators?date_from=2026-03-02&date_to=2026-03-01", "invalid-input"),
        ("/api/v1/quality/cases?only=everything", "invalid-input"),
        ("/api/v1/quality/cases?group=department", "invalid-input"),
        ("/api/v1/quality/cases.csv?only=everything", "invalid-input"),
    ):
        problem(client.get(url, headers=analyst), 422, slug)
    assert client.get("/api/v1/quality/indicators", headers=quality["citizen.li"]).status_code == 403
    assert client.get("/api/v1/quality/cases.csv").status_code == 401


def test_pain_points_name_the_department_and_reasons(
    client: httpx.Client, quality: H, closed: str, clock: FixedClock
) -> None:
    rate(client, quality["citizen.li"], closed, BAD)
    report = client.get("/api/v1/quality/pain-points", headers=quality["analyst.ma"]).json()
    assert report["rated"] == 1
    assert report["bad"] == 1
    reasons = {r["reason"] for r in report["reasons"]}
    assert {"attitude", "repeat_materials"} <= reasons
    for row in report["concentrations"] + report["predictors"]:
        assert row["low"] <= row["bad_rate"] <= row["high"]
        assert row["share_of_bad"] == row["bad"] / report["bad"]


def test_targets_raise_alerts_once_and_results_are_published(
    client: httpx.Client, quality: H, clock: FixedClock
) -> None:
    _data(client, quality, clock)
    sup, analyst = quality["super.he"], quality["analyst.ma"]
    month = clock.now().astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")
    assert (
        client.put(
            "/api/v1/quality/targets", headers=analyst, json={"indicator": "on_time_rate", "low": 0.95}
        ).status_code
        == 403
    )
    problem(
        client.put("/api/v1/quality/targets", headers=sup, json={"indicator": "nope", "low": 1}),
        422,
        "invalid-input",
    )
    problem(
        client.put("/api/v1/quality/targets", headers=sup, json={"indicator": "on_time_rate", "low": 95}),
        422,
        "invalid-input",
    )
    problem(
        client.put(
            "/api/v1/quality/targets",
            headers=sup,
            json={"indicator": "on_time_rate", "low": 0.9, "high": 0.5},
        ),
        422,
        "invalid-input",
    )
    set_ = client.put(
        "/api/v1/quality/targets", headers=sup, json={"indicator": "avg_work_days", "high": 3.5}
    )
    assert set_.status_code == 200, set_.text
    dept = {"indicator": "avg_work_days", "scope": "department", "scope_value": "朝阳区住建委", "high": 100}
    assert client.put("/api/v1/quality/targets", headers=sup, json=dept).status_code == 200
    raised = client.post(
        "/api/v1/quality/alerts/check", headers=sup, json={"period": month, "min_cases": 1}
    ).json()
    assert [(a["indicator"], a["scope"]) for a in raised] == [("avg_work_days", "all")]
    assert (
        client.post(
            "/api/v1/quality/alerts/check", headers=sup, json={"period": month, "min_cases": 1}
        ).json()
        == []
    )
    problem(
        client.post("/api/v1/quality/alerts/check", headers=sup, json={"period": "2026-3"}),
        422,
        "invalid-input",
    )
    alerts = client.get("/api/v1/quality/alerts", headers=analyst).json()
    assert len(alerts) == 1
    acked = client.post(f"/api/v1/quality/alerts/{alerts[0]['id']}/acknowledge", headers=sup).json()
    assert acked["acknowledged_by"] == "super.he"
    assert client.get("/api/v1/quality/alerts", headers=analyst).json() == []

    problem(
        client.post("/api/v1/quality/publications", headers=sup, json={"period": month}),
        409,
        "conflict",
    )
    earlier = (clock.now() - dt.timedelta(days=40)).strftime("%Y-%m")
    published = client.post("/api/v1/quality/publications", headers=sup, json={"period": earlier})
    assert published.status_code == 201, published.text
    problem(
        client.post("/api/v1/quality/publications", headers=sup, json={"period": earlier}), 409, "conflict"
    )
    public = client.get(f"/api/v1/quality/publications/{earlier}")
    assert public.status_code == 200
    data = public.json()["data"]
    assert data["total"]["cases"] == sum(d["cases"] for d in data["departments"])
    assert [p["period"] for p in client.get("/api/v1/quality/publications").json()] == [earlier]
    problem(client.get("/api/v1/quality/publications/1999-01"), 404, "not-found")
    # a snapshot: later cases of that month do not change what was published
    register(
        client,
        quality,
        "GD2026LATE",
        ticket(99, department="朝阳区城管委", closed=clock.now() - dt.timedelta(days=40)),
    )
    assert client.get(f"/api/v1/quality/publications/{earlier}").json()["data"] == data
