import datetime as dt
import json

import pytest

from tongban.core.errors import CalendarUnknown, InvalidInput
from tongban.core.workdays import WorkingCalendar, YearSchedule, package_years

D = dt.date

# The State Council's 2027 schedule shape, as an operator would load it (dates here are the test's own).
SCHEDULE_2027 = {
    "year": 2027,
    "source": "国务院办公厅关于2027年部分节假日安排的通知",
    "holidays": [
        {"name": "元旦", "start": "2027-01-01", "end": "2027-01-03"},
        {"name": "春节", "start": "2027-02-05", "end": "2027-02-13"},
        {"name": "国庆节", "start": "2027-10-01", "end": "2027-10-07"},
    ],
    "workdays": ["2027-02-14", "2027-10-09"],
}


def test_package_knows_2026_not_2027() -> None:
    assert 2026 in package_years()
    assert 2027 not in package_years()


def test_weekend_and_holiday_and_makeup_day_2026() -> None:
    cal = WorkingCalendar()
    assert cal.is_workday(D(2026, 3, 2))  # Monday
    assert not cal.is_workday(D(2026, 3, 7))  # Saturday
    assert not cal.is_workday(D(2026, 10, 1))  # National Day
    assert cal.is_workday(D(2026, 2, 14))  # a make-up working Saturday of the 2026 Spring Festival


def test_add_working_days_skips_the_national_day_week() -> None:
    cal = WorkingCalendar()
    # Accepted on Tuesday 2026-09-29; holidays run 10-01..10-07 (10-08 may also be off in some years).
    due = cal.add_working_days(D(2026, 9, 29), 3)
    assert due > D(2026, 10, 7)
    assert cal.working_days_between(D(2026, 9, 29), due) == 3


def test_add_zero_days_is_the_start() -> None:
    assert WorkingCalendar().add_working_days(D(2026, 5, 6), 0) == D(2026, 5, 6)


def test_working_days_between_is_antisymmetric() -> None:
    cal = WorkingCalendar()
    a, b = D(2026, 1, 5), D(2026, 3, 2)
    assert cal.working_days_between(a, b) == -cal.working_days_between(b, a)
    assert cal.working_days_between(a, a) == 0


def test_a_year_nobody_loaded_is_refused_not_guessed() -> None:
    cal = WorkingCalendar()
    with pytest.raises(CalendarUnknown, match="2027"):
        cal.is_workday(D(2027, 1, 4))
    with pytest.raises(CalendarUnknown):
        cal.add_working_days(D(2026, 12, 28), 10)  # runs into 2027


def test_loaded_schedule_extends_the_calendar() -> None:
    cal = WorkingCalendar([YearSchedule.from_json(SCHEDULE_2027)])
    assert 2027 in cal.known_years
    assert not cal.is_workday(D(2027, 1, 1))
    assert cal.is_workday(D(2027, 1, 4))
    assert cal.is_workday(D(2027, 2, 14))  # make-up Sunday
    assert not cal.is_workday(D(2027, 2, 8))  # Monday inside the Spring Festival
    # 2026-12-31 (Thu) + 1 working day: Jan 1-3 are off, so Monday Jan 4.
    assert cal.add_working_days(D(2026, 12, 31), 1) == D(2027, 1, 4)
    with pytest.raises(CalendarUnknown):
        cal.is_workday(D(2028, 1, 3))


def test_calendar_day_limits_move_off_a_holiday() -> None:
    cal = WorkingCalendar()
    # 2026-09-21 + 10 natural days = 2026-10-01, a holiday: the deadline moves to the next working day.
    due = cal.add_calendar_days(D(2026, 9, 21), 10)
    assert due > D(2026, 10, 1)
    assert cal.is_workday(due)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"year": "2027"}, "year"),
        ({"holidays": []}, "holidays"),
        ({"holidays": [{"name": "x", "start": "2027-13-01", "end": "2027-01-02"}]}, "not a date"),
        ({"holidays": [{"name": "x", "start": "2027-05-05", "end": "2027-05-01"}]}, "impossible range"),
        ({"workdays": ["2027-01-05"]}, "not a weekend"),
        ({"workdays": ["2027-02-06"]}, "inside a holiday"),
        ({"extra": 1}, "unknown field"),
    ],
)
def test_bad_schedules_are_rejected_clearly(change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        YearSchedule.from_json({**SCHEDULE_2027, **change})


def test_schedule_round_trips_through_json() -> None:
    schedule = YearSchedule.from_json(SCHEDULE_2027)
    assert YearSchedule.from_text(json.dumps(schedule.to_json())) == schedule
    with pytest.raises(InvalidInput, match="JSON"):
        YearSchedule.from_text("{not json")


def test_negative_days_rejected() -> None:
    with pytest.raises(InvalidInput):
        WorkingCalendar().add_working_days(D(2026, 3, 2), -1)
