"""Edges found in review: who may rate again, anonymity towards the unit, appeals pausing deadlines,
the order of the units' list, and bad input that must be a 4xx."""

from __future__ import annotations

import datetime as dt

import httpx
from fastapi import FastAPI
from sqlalchemy.orm import Session

from tests.conftest import bearer
from tests.rating.conftest import UNIT
from tests.rating.test_cases import conversation, register, ticket
from tests.rating.test_ratings import BAD, problem, rate
from tongban.core.clock import FixedClock
from tongban.rating import service, synthetic

H = dict[str, dict[str, str]]


def test_a_consultation_is_known_to_staff_by_a_digest_and_nobody_rates_it_twice(
    client: httpx.Client, quality: H, session: Session, clock: FixedClock
) -> None:
    cid = conversation(session, clock)
    given = client.post(f"/api/v1/ratings/consultation/{cid}", json={"level": 1, "text": "答非所问"}).json()
    sup = quality["super.he"]
    rect = client.get(f"/api/v1/rectifications/{given['rectification_id']}", headers=sup).json()
    assert rect["ref"] == service.consultation_ref(cid)
    assert cid not in client.get("/api/v1/quality/cases.csv", headers=quality["analyst.ma"]).text
    done = client.post(
        f"/api/v1/rectifications/{rect['id']}/rectify",
        headers=quality["unit.other"],
        json={"note": "无权整改此项"},
    )
    assert done.status_code == 404  # another unit's
    fixed = client.post(
        f"/api/v1/rectifications/{rect['id']}/rectify", headers=sup, json={"note": "已补充知识条目"}
    )
    assert fixed.json()["state"] == "closed"  # nobody known to rate again
    problem(client.post(f"/api/v1/ratings/consultation/{cid}", json={"level": 5}), 409, "already-rated")
    problem(
        client.post(f"/api/v1/ratings/consultation/{cid}", headers=quality["unit.zhao"], json={"level": 5}),
        409,
        "already-rated",
    )


def test_an_anonymous_rater_is_not_identified_to_the_unit(
    client: httpx.Client, quality: H, closed: str
) -> None:
    rect_id = rate(client, quality["citizen.li"], closed, {**BAD, "anonymous": True}).json()[
        "rectification_id"
    ]
    seen = client.get(f"/api/v1/rectifications/{rect_id}", headers=quality["unit.zhao"]).json()
    assert seen["ref"] == ""
    assert seen["case"]["ref"] == ""
    assert seen["rater"] is None
    assert closed not in client.get("/api/v1/rectifications", headers=quality["unit.zhao"]).text
    assert (
        client.get(f"/api/v1/rectifications/{rect_id}", headers=quality["super.he"]).json()["ref"] == closed
    )


def test_a_pending_appeal_pauses_the_units_deadlines_and_escalates_to_supervisors(
    client: httpx.Client, quality: H, closed: str, session: Session, clock: FixedClock
) -> None:
    rect = rate(client, quality["citizen.li"], closed, BAD).json()
    rect_id = rect["rectification_id"]
    before = client.get(f"/api/v1/rectifications/{rect_id}", headers=quality["unit.zhao"]).json()
    client.post(
        f"/api/v1/rectifications/{rect_id}/appeal", headers=quality["unit.zhao"], json={"note": "恶意评价"}
    )
    clock.advance(dt.timedelta(days=40))
    counts = service.run_deadlines(session, clock=clock)
    assert counts == {"appeal_escalated": 1}  # the unit is not blamed for the supervisor's wait
    assert service.run_deadlines(session, clock=clock) == {}
    session.commit()
    sup, unit = bearer(client, "super.lu"), bearer(client, "unit.zhao")
    pending = client.get("/api/v1/rectifications?appeal=pending", headers=sup).json()
    assert [r["id"] for r in pending] == [rect_id]
    assert pending[0]["overdue"] == []
    decided = client.post(
        f"/api/v1/rectifications/{rect_id}/appeal-decision",
        headers=sup,
        json={"upheld": False, "note": "评价属实"},
    ).json()
    assert decided["rectify_due"] > before["rectify_due"]
    assert decided["contact_due"] > before["contact_due"]
    client.post(f"/api/v1/rectifications/{rect_id}/contact", headers=unit, json={"note": "已回访申请人"})
    client.post(f"/api/v1/rectifications/{rect_id}/rectify", headers=unit, json={"note": "已整改到位"})
    total = client.get("/api/v1/quality/indicators", headers=bearer(client, "analyst.ma")).json()["total"]
    assert total["rectified_on_time_rate"] == 1.0


def test_the_units_list_puts_what_to_act_on_first(
    client: httpx.Client, quality: H, session: Session, clock: FixedClock
) -> None:
    owner = None
    for n in range(3):
        body = ticket(n, department=UNIT, closed=clock.now(), owner_account_id=owner)
        register(client, quality, f"GDX{n}", body)
    sup = quality["super.he"]
    ids = []
    for n in range(3):
        problem_free = client.post(f"/api/v1/ratings/ticket/GDX{n}", headers=quality["terminal.01"], json=BAD)
        assert problem_free.status_code == 403  # not a visit: the terminal may not rate it
    # owner-less tickets are rated by nobody; register owned ones instead
    from sqlalchemy import select

    from tongban.core.models import Account

    zhang = session.scalar(select(Account.id).where(Account.username == "citizen.zhang"))
    for n in range(3):
        register(
            client, quality, f"GDY{n}", ticket(n, department=UNIT, closed=clock.now(), owner_account_id=zhang)
        )
        ids.append(
            client.post(f"/api/v1/ratings/ticket/GDY{n}", headers=quality["citizen.zhang"], json=BAD).json()[
                "rectification_id"
            ]
        )
    # the first one is done and closed by its follow-up
    client.post(f"/api/v1/rectifications/{ids[0]}/contact", headers=sup, json={"note": "已回访"})
    client.post(f"/api/v1/rectifications/{ids[0]}/rectify", headers=sup, json={"note": "已整改"})
    client.post("/api/v1/ratings/ticket/GDY0", headers=quality["citizen.zhang"], json={"level": 5})
    listed = [r["id"] for r in client.get("/api/v1/rectifications", headers=sup).json()]
    assert listed[-1] == ids[0]
    assert set(listed[:2]) == set(ids[1:])
    page2 = client.get("/api/v1/rectifications?per_page=2&page=2", headers=sup).json()
    assert [r["id"] for r in page2] == [ids[0]]


def test_bad_input_is_a_4xx_never_a_500(client: httpx.Client, quality: H) -> None:
    sup, analyst = quality["super.he"], quality["analyst.ma"]
    for url in (
        "/api/v1/rectifications/3000000000",
        "/api/v1/rectifications/99999999999999999999999",
        "/api/v1/quality/cases?page=999999999999999999",
        "/quality/rectifications/3000000000",
    ):
        assert 400 <= client.get(url, headers=sup).status_code < 500, url
    for url in ("/api/v1/quality/indicators?department=a%00b", "/api/v1/quality/publications/20%0026"):
        assert client.get(url, headers=analyst).status_code < 500, url  # PostgreSQL refuses NUL: a 422
    nul = client.post("/api/v1/ratings/ticket/ab%00c", headers=quality["citizen.li"], json={"level": 5})
    assert 400 <= nul.status_code < 500  # not a case number
    inf = client.put(
        "/api/v1/quality/targets", headers=sup, content=b'{"indicator": "avg_work_days", "high": Infinity}'
    )
    assert inf.status_code == 422
    huge = {"department": UNIT, "visitor_account_id": 2**40}
    assert (
        client.post("/api/v1/ratings/visits", headers=quality["officer.wang"], json=huge).status_code == 422
    )
    assert client.get("/quality?date_to=9999-12-31", headers=analyst).status_code in (200, 422)


def test_reminders_skip_cases_of_other_systems(
    client: httpx.Client, quality: H, closed: str, session: Session, clock: FixedClock, app: FastAPI
) -> None:
    assert synthetic.generate(session, clock=clock, cases=50) == 50  # cases no application stands behind
    register(client, quality, "GDZ1", ticket(1, department=UNIT, closed=clock.now(), owner_account_id=None))
    session.commit()
    clock.advance(dt.timedelta(days=3, minutes=1))
    assert service.remind(session, clock=clock, sealer=app.state.runtime.sealer) == 1  # citizen.li's only


def test_an_open_case_cannot_be_rated_yet(client: httpx.Client, quality: H, session: Session) -> None:
    from sqlalchemy import select

    from tongban.core.models import Account

    zhang = session.scalar(select(Account.id).where(Account.username == "citizen.zhang"))
    register(client, quality, "GDOPEN", ticket(1, department=UNIT, closed=None, owner_account_id=zhang))
    mine = client.get("/api/v1/ratings/ticket/GDOPEN", headers=quality["citizen.zhang"]).json()
    assert mine["may_rate"] is None
