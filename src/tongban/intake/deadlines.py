"""Time limits in working days on the official holiday calendar, with suspensions.

The promised limit runs from 受理 (the day of acceptance is not counted). Periods of 补正 and of special
procedures (听证, 专家评审, 现场勘验 ...) do not count: their working days are added back. The warning is
yellow once two thirds of the limit are used, red when the limit is exceeded; while a suspension is open
the clock is paused. Natural-day limits (自然日) count calendar days, and a deadline falling on a day off
moves to the next working day.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from tongban.core.workdays import WorkingCalendar

#: Special procedures an item may allow when it configures none (程序性中止事项 common in guides).
DEFAULT_SPECIAL_PROCEDURES = ("听证", "专家评审", "现场勘验", "检验检测", "公示", "招标拍卖", "鉴定")
#: The suspension opened automatically while the applicant is asked for supplementary material.
SUPPLEMENT = "补正"


@dataclass(frozen=True)
class Period:
    start: dt.date
    #: None while still open.
    end: dt.date | None


@dataclass(frozen=True)
class Standing:
    """Where an application stands against its time limit on ``today``."""

    limit: int
    unit: str
    #: Working (or natural) days used, suspensions excluded.
    used: int
    #: Days the limit was extended by closed and open suspensions so far.
    suspended: int
    #: The deadline as it stands (None while paused: it moves with the suspension).
    due: dt.date | None
    paused: bool
    #: ``green``, ``yellow`` (≥ two thirds used), ``red`` (overdue) or ``paused``.
    level: str


def _counted(calendar: WorkingCalendar, unit: str, start: dt.date, end: dt.date) -> int:
    """Days after ``start`` up to and including ``end`` that count in ``unit``."""
    if end <= start:
        return 0
    if unit == "calendar_day":
        return (end - start).days
    return calendar.working_days_between(start, end)


def standing(
    calendar: WorkingCalendar,
    *,
    limit: int,
    unit: str,
    started: dt.date,
    today: dt.date,
    suspensions: Sequence[Period],
) -> Standing:
    paused = any(p.end is None and p.start <= today for p in suspensions)
    # Overlapping suspensions (a hearing during 补正) pause the clock once: merge them first.
    spans: list[tuple[dt.date, dt.date]] = []
    for p in sorted(suspensions, key=lambda p: p.start):
        lo, hi = max(p.start, started), min(p.end or today, today)
        if hi <= lo:
            continue
        if spans and lo <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], hi))
        else:
            spans.append((lo, hi))
    # the day a suspension starts still counts; the days after it up to its end do not
    suspended = sum(_counted(calendar, unit, lo, hi) for lo, hi in spans)
    used = _counted(calendar, unit, started, today) - suspended
    extra = limit + suspended
    if paused:
        due = None
    elif unit == "calendar_day":
        due = calendar.add_calendar_days(started, extra)
    else:
        due = calendar.add_working_days(started, extra)
    if paused:
        level = "paused"
    elif used > limit:
        level = "red"
    elif limit > 0 and used >= math.ceil(limit * 2 / 3):
        level = "yellow"
    else:
        level = "green"
    return Standing(
        limit=limit, unit=unit, used=used, suspended=suspended, due=due, paused=paused, level=level
    )
