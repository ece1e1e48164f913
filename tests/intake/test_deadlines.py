"""Time limits in working days with suspensions (pure), and the deadline flow over HTTP: 受理 starts the
clock, 补正 and special procedures pause it, two thirds warn, overdue escalates once."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.conftest import bearer, make_account
from tests.intake.helpers import ID, step, submit, upload
from tests.intake.pdfs import pdf
from tongban.core.clock import FixedClock
from tongban.core.workdays import WorkingCalendar
from tongban.intake import deadlines, service
from tongban.intake.deadlines import Period

CAL = WorkingCalendar()
MON = dt.date(2026, 3, 2)


def _at(day: dt.date, **kw: Any) -> deadlines.Standing:
    return deadlines.standing(
        CAL, limit=5, unit="working_day", started=MON, today=day, suspensions=kw.get("s", ())
    )


@pytest.mark.parametrize(
    ("day", "used", "level"),
    [
        (dt.date(2026, 3, 2), 0, "green"),
        (dt.date(2026, 3, 5), 3, "green"),
        (dt.date(2026, 3, 6), 4, "yellow"),  # ceil(5 × 2/3) = 4
        (dt.date(2026, 3, 8), 4, "yellow"),  # Sunday counts nothing
        (dt.date(2026, 3, 9), 5, "yellow"),  # the due day itself is still on time
        (dt.date(2026, 3, 10), 6, "red"),
    ],
)
def test_working_days_used_and_the_warning_level(day: dt.date, used: int, level: str) -> None:
    st = _at(day)
    assert (st.used, st.level, st.due) == (used, level, dt.date(2026, 3, 9))


def test_suspensions_extend_the_deadline_and_pause_the_clock() -> None:
    closed = _at(dt.date(2026, 3, 6), s=[Period(dt.date(2026, 3, 3), dt.date(2026, 3, 5))])
    assert closed.suspended == 2
    assert closed.used == 2
    assert closed.due == dt.date(2026, 3, 11)
    assert closed.level == "green"
    still_open = _at(dt.date(2026, 3, 6), s=[Period(dt.date(2026, 3, 4), None)])
    assert still_open.paused
    assert still_open.due is None
    assert still_open.level == "paused"
    assert still_open.used == 2  # Mon→Wed counted; the days after the suspension began do not


def test_holidays_do_not_count() -> None:
    st = deadlines.standing(
        CAL,
        limit=1,
        unit="working_day",
        started=dt.date(2026, 9, 30),
        today=dt.date(2026, 9, 30),
        suspensions=(),
    )
    assert st.due is not None
    assert st.due > dt.date(2026, 10, 7)
    assert CAL.is_workday(st.due)
    assert all(not CAL.is_workday(dt.date(2026, 10, d)) for d in range(1, 8))


def test_natural_day_limits_move_off_days_off() -> None:
    st = deadlines.standing(CAL, limit=5, unit="calendar_day", started=MON, today=MON, suspensions=())
    assert st.due == dt.date(2026, 3, 9)  # 5 days → Saturday the 7th → Monday


def test_an_instant_item_is_overdue_the_next_working_day() -> None:
    st = deadlines.standing(
        CAL, limit=0, unit="working_day", started=MON, today=dt.date(2026, 3, 3), suspensions=()
    )
    assert st.level == "red"


# --- over HTTP ---------------------------------------------------------------------------------------


@pytest.fixture
def monitor(session: Session, clock: FixedClock, client: httpx.Client) -> dict[str, str]:
    make_account(session, clock, "supervisor.zhao", ["intake_supervisor"])
    session.commit()
    return bearer(client, "supervisor.zhao")


def test_acceptance_starts_the_clock_and_suspensions_pause_it(
    client: httpx.Client,
    staff: dict[str, dict[str, str]],
    clock: FixedClock,
    monitor: dict[str, str],
    session: Session,
) -> None:
    app = submit(client, staff)
    receipt = app["receipt_no"]
    assert app["deadline"] is None  # not accepted yet
    app = step(client, staff["officer.wang"], app, "accept").json()
    assert app["deadline"]["accepted_on"] == "2026-03-02"
    assert app["deadline"]["due"] == "2026-03-09"  # 5 working days promised
    clock.advance(dt.timedelta(days=4))  # Friday (sessions last hours: sign in again)
    monitor, officer = bearer(client, "supervisor.zhao"), bearer(client, "officer.wang")
    window, officer = officer, bearer(client, "reviewer.zhou")  # the application waits for 审查 now
    listed = client.get("/api/v1/intake/deadlines", headers=monitor)
    assert listed.status_code == 200, listed.text
    rows = listed.json()
    assert [(r["receipt_no"], r["deadline"]["level"], r["deadline"]["used"]) for r in rows] == [
        (receipt, "yellow", 4)
    ]
    assert client.get("/api/v1/intake/deadlines?level=red", headers=monitor).json() == []
    assert client.get("/api/v1/intake/deadlines", headers=officer).status_code == 403
    not_theirs = client.post(
        f"/api/v1/intake/applications/{receipt}/suspensions",
        headers=window,
        json={"kind": "现场勘验", "note": "越权"},
    )
    assert not_theirs.status_code == 403  # it waits in no lane of the window's

    # a special procedure of the item pauses the clock
    bad = client.post(
        f"/api/v1/intake/applications/{receipt}/suspensions",
        headers=officer,
        json={"kind": "占卜", "note": "不存在的程序"},
    )
    assert bad.status_code == 422
    started = client.post(
        f"/api/v1/intake/applications/{receipt}/suspensions",
        headers=officer,
        json={"kind": "现场勘验", "note": "安排现场勘验"},
    )
    assert started.status_code == 200, started.text
    assert started.json()["deadline"]["level"] == "paused"
    twice = client.post(
        f"/api/v1/intake/applications/{receipt}/suspensions",
        headers=officer,
        json={"kind": "现场勘验", "note": "again"},
    )
    assert twice.status_code == 409
    clock.advance(dt.timedelta(days=3))  # Monday 9th
    officer = bearer(client, "reviewer.zhou")
    sid = started.json()["suspensions"][0]["id"]
    ended = client.post(f"/api/v1/intake/applications/{receipt}/suspensions/{sid}/end", headers=officer)
    assert ended.status_code == 200
    d = ended.json()["deadline"]
    assert (d["used"], d["suspended"], d["due"], d["level"]) == (4, 1, "2026-03-10", "yellow")

    # overdue: escalated once
    clock.advance(dt.timedelta(days=2))  # Wednesday 11th
    monitor = bearer(client, "supervisor.zhao")
    assert service.escalate_overdue(session, clock=clock) == [receipt]
    assert service.escalate_overdue(session, clock=clock) == []
    session.commit()
    red = client.get("/api/v1/intake/deadlines?level=red", headers=monitor).json()
    assert [(r["receipt_no"], r["escalated_at"] is not None) for r in red] == [(receipt, True)]


def test_supplement_after_acceptance_suspends_the_limit(
    client: httpx.Client,
    staff: dict[str, dict[str, str]],
    clock: FixedClock,
) -> None:
    app = submit(client, staff)
    receipt = app["receipt_no"]
    app = step(client, staff["officer.wang"], app, "accept").json()
    clock.advance(dt.timedelta(days=1))  # Tuesday
    app = step(client, bearer(client, "reviewer.zhou"), app, "supplement", "请补充出租人身份证明。").json()
    assert app["deadline"]["level"] == "paused"
    assert [(s["kind"], s["ended_at"]) for s in app["suspensions"]] == [("补正", None)]
    clock.advance(dt.timedelta(days=7))  # the next Tuesday
    citizen = bearer(client, "citizen.li")
    lease = upload(client, citizen, "lease-2.pdf", pdf(f"Lessor and lessee {ID}")).json()["id"]
    done = client.post(
        f"/api/v1/me/applications/{receipt}/supplement", headers=citizen, json={"values": {"lease": [lease]}}
    )
    assert done.status_code == 200, done.text
    d = done.json()["deadline"]
    assert d["paused"] is False
    assert d["used"] == 1  # Monday→Tuesday before 补正; the five working days of 补正 do not count
    assert d["suspended"] == 5
    assert d["due"] == "2026-03-16"


def test_overlapping_suspensions_pause_the_clock_once() -> None:
    both = _at(
        dt.date(2026, 3, 13),
        s=[
            Period(dt.date(2026, 3, 3), dt.date(2026, 3, 10)),
            Period(dt.date(2026, 3, 5), dt.date(2026, 3, 9)),
        ],
    )
    alone = _at(dt.date(2026, 3, 13), s=[Period(dt.date(2026, 3, 3), dt.date(2026, 3, 10))])
    assert both.suspended == alone.suspended == 5
    assert both.due == alone.due


def test_a_limit_beyond_the_known_holiday_schedules_is_unknown_not_guessed(
    session: Session, clock: FixedClock
) -> None:
    from tongban.intake.models import Application

    years = CAL.known_years
    application = Application(
        status="in_progress",
        limit_value=400,
        limit_unit="working_day",
        accepted_on=dt.date(years[-1], 3, 2),
        item_code="x",
        receipt_no="x",
    )
    late = FixedClock(dt.datetime(years[-1], 3, 3, 2, 0, tzinfo=dt.UTC))
    d = service._deadline(session, application, [], late)
    assert d is not None
    assert (d.level, d.due) == ("unknown", None)
