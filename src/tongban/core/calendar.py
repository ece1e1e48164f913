"""The holiday schedules operators load, and the working calendar built from them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tongban.core import audit
from tongban.core.clock import Clock
from tongban.core.models import HolidaySchedule
from tongban.core.workdays import WorkingCalendar, YearSchedule


def load_schedule(session: Session, schedule: YearSchedule, *, actor: str, clock: Clock) -> bool:
    """Store (or replace) a year's official schedule. Returns False when the same schedule was loaded."""
    data = schedule.to_json()
    row = session.get(HolidaySchedule, schedule.year)
    if row is not None and row.schedule == data:
        return False
    if row is None:
        session.add(
            HolidaySchedule(year=schedule.year, schedule=data, loaded_at=clock.now(), loaded_by=actor)
        )
    else:
        row.schedule, row.loaded_at, row.loaded_by = data, clock.now(), actor
    audit.record(
        session,
        actor=actor,
        action="calendar.load",
        target_type="holiday_schedule",
        target_id=str(schedule.year),
        clock=clock,
        detail={"source": schedule.source, "replaced": row is not None},
    )
    session.flush()
    return True


def loaded_schedules(session: Session) -> list[YearSchedule]:
    rows = session.scalars(select(HolidaySchedule).order_by(HolidaySchedule.year))
    return [YearSchedule.from_json(r.schedule) for r in rows]


def working_calendar(session: Session) -> WorkingCalendar:
    return WorkingCalendar(loaded_schedules(session))
