"""Working-day arithmetic on the official Chinese holiday calendar.

Years up to the last one the maintained ``chinesecalendar`` package knows come from it; later years (and
corrections) come from the State Council's yearly notice, loaded by an operator as data
(:class:`YearSchedule`, ``tongban calendar load``). A date in a year nobody has loaded is refused with
:class:`~tongban.core.errors.CalendarUnknown`, never guessed from weekends.

Conventions (as in 行政许可法 art. 82 practice and the provinces' service rules): a time limit of N
working days starts the day *after* acceptance; the deadline is the N-th working day after the start date.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import chinese_calendar

from tongban.core.errors import CalendarUnknown, InvalidInput

#: Refuse arithmetic that would walk further than this many calendar days (guards bad input).
_MAX_SPAN_DAYS = 3 * 366


@dataclass(frozen=True)
class HolidayRange:
    name: str
    start: dt.date
    end: dt.date


@dataclass(frozen=True)
class YearSchedule:
    """One year's official schedule: the holiday ranges and the make-up working days (调休上班)."""

    year: int
    holidays: tuple[HolidayRange, ...]
    workdays: tuple[dt.date, ...]
    source: str = ""
    _off: frozenset[dt.date] = field(default=frozenset(), repr=False, compare=False)

    def __post_init__(self) -> None:
        off: set[dt.date] = set()
        for r in self.holidays:
            day = r.start
            while day <= r.end:
                off.add(day)
                day += dt.timedelta(days=1)
        object.__setattr__(self, "_off", frozenset(off))

    def is_workday(self, day: dt.date) -> bool:
        if day in self.workdays:
            return True
        if day in self._off:
            return False
        return day.weekday() < 5

    def to_json(self) -> dict[str, Any]:
        return {
            "year": self.year,
            "source": self.source,
            "holidays": [
                {"name": r.name, "start": r.start.isoformat(), "end": r.end.isoformat()}
                for r in self.holidays
            ],
            "workdays": [d.isoformat() for d in self.workdays],
        }

    @classmethod
    def from_json(cls, data: Any) -> YearSchedule:
        """Parse and validate a schedule; every problem is reported as :class:`InvalidInput`."""
        if not isinstance(data, dict):
            raise InvalidInput("a holiday schedule must be a JSON object")
        unknown = set(data) - {"year", "source", "holidays", "workdays"}
        if unknown:
            raise InvalidInput(f"unknown field(s) in holiday schedule: {', '.join(sorted(unknown))}")
        year = data.get("year")
        if not isinstance(year, int) or not 2000 <= year <= 2100:
            raise InvalidInput("'year' must be an integer between 2000 and 2100")
        holidays_raw = data.get("holidays")
        if not isinstance(holidays_raw, list) or not holidays_raw:
            raise InvalidInput("'holidays' must be a non-empty list of {name, start, end}")
        ranges: list[HolidayRange] = []
        for i, item in enumerate(holidays_raw, 1):
            if not isinstance(item, dict) or set(item) != {"name", "start", "end"}:
                raise InvalidInput(f"holiday #{i} must have exactly 'name', 'start' and 'end'")
            start, end = (
                _parse_date(item["start"], f"holiday #{i} start"),
                _parse_date(item["end"], f"holiday #{i} end"),
            )
            if end < start or (end - start).days > 15:
                raise InvalidInput(f"holiday #{i} ({item['name']}) has an impossible range {start}..{end}")
            if start.year != year and end.year != year:
                raise InvalidInput(f"holiday #{i} ({item['name']}) lies outside {year}")
            ranges.append(HolidayRange(str(item["name"]), start, end))
        workdays_raw = data.get("workdays", [])
        if not isinstance(workdays_raw, list):
            raise InvalidInput("'workdays' must be a list of dates")
        workdays = tuple(_parse_date(v, "workday") for v in workdays_raw)
        for d in workdays:
            if d.weekday() < 5:
                raise InvalidInput(f"make-up working day {d} is not a weekend day")
            if any(r.start <= d <= r.end for r in ranges):
                raise InvalidInput(f"make-up working day {d} falls inside a holiday")
        return cls(year=year, holidays=tuple(ranges), workdays=workdays, source=str(data.get("source", "")))

    @classmethod
    def from_text(cls, text: str) -> YearSchedule:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"holiday schedule is not valid JSON: {exc.msg} (line {exc.lineno})") from exc
        return cls.from_json(data)


def _parse_date(value: Any, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidInput(f"{what}: {value!r} is not a date (YYYY-MM-DD)") from exc


@lru_cache(maxsize=1)
def package_years() -> frozenset[int]:
    """The years the installed ``chinesecalendar`` release knows."""
    years = set()
    for year in range(2000, 2101):
        try:
            chinese_calendar.is_workday(dt.date(year, 6, 1))
        except NotImplementedError:
            continue
        years.add(year)
    return frozenset(years)


class WorkingCalendar:
    """Official working days: package years plus operator-loaded schedules (which take precedence)."""

    def __init__(self, schedules: Iterable[YearSchedule] = ()) -> None:
        self._schedules: Mapping[int, YearSchedule] = {s.year: s for s in schedules}

    @property
    def known_years(self) -> list[int]:
        return sorted(set(package_years()) | set(self._schedules))

    def is_workday(self, day: dt.date) -> bool:
        schedule = self._schedules.get(day.year)
        if schedule is not None:
            return schedule.is_workday(day)
        if day.year in package_years():
            return bool(chinese_calendar.is_workday(day))
        years = self.known_years
        raise CalendarUnknown(
            f"the official holiday schedule for {day.year} is not loaded "
            f"(known years: {years[0]}–{years[-1]}); load it with `tongban calendar load`",
            year=day.year,
        )

    def add_working_days(self, start: dt.date, days: int) -> dt.date:
        """The ``days``-th working day after ``start`` (``start`` itself is not counted)."""
        if days < 0:
            raise InvalidInput("the number of working days must not be negative")
        day, counted = start, 0
        while counted < days:
            day += dt.timedelta(days=1)
            if (day - start).days > _MAX_SPAN_DAYS:
                raise InvalidInput(f"{days} working days is beyond the supported span")
            if self.is_workday(day):
                counted += 1
        return day

    def working_days_between(self, start: dt.date, end: dt.date) -> int:
        """Working days elapsed after ``start`` up to and including ``end`` (negative when reversed)."""
        if end < start:
            return -self.working_days_between(end, start)
        if (end - start).days > _MAX_SPAN_DAYS:
            raise InvalidInput("the span is beyond the supported range")
        count, day = 0, start
        while day < end:
            day += dt.timedelta(days=1)
            if self.is_workday(day):
                count += 1
        return count

    def add_calendar_days(self, start: dt.date, days: int) -> dt.date:
        """Natural-day limits (自然日); the deadline still moves off a non-working last day."""
        if days < 0:
            raise InvalidInput("the number of days must not be negative")
        day = start + dt.timedelta(days=days)
        guard = 0
        while not self.is_workday(day):
            day += dt.timedelta(days=1)
            guard += 1
            if guard > 31:
                raise InvalidInput("no working day found after the deadline")
        return day
