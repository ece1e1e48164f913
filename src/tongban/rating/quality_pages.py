"""HTML pages of quality monitoring (质效监测): the indicator dashboard with its drill-down to the cases,
the pain points, the rules and targets (with alerts and publication), and the published results.

Staff pages need ``rating:monitor`` to look and ``rating:supervise`` to change anything; the published
results (``/results``) are public. Every figure comes from :mod:`tongban.rating.service`. The pages work
without JavaScript: filters are GET forms, changes are plain POSTs that redirect, or show the page again
with the reason when the service refuses. Every chart stands beside a table of the same numbers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from babel.numbers import format_decimal, format_percent
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, QueryParams

from tongban.core import auth, charts
from tongban.core.clock import Clock
from tongban.core.errors import DomainError, InvalidInput
from tongban.core.http import (
    ClockDep,
    DbSession,
    LanguageDep,
    csrf_form,
    posted_form,
    public_with_principal,
    render_page,
    require,
)
from tongban.core.i18n import Language
from tongban.core.messages import N_
from tongban.rating import service
from tongban.rating.schemas import (
    AlertOut,
    Filters,
    IndicatorValues,
    PainPointOut,
    SettingsWrite,
    TargetOut,
    TargetWrite,
)
from tongban.rating.vocab import (
    CASE_CHANNELS,
    CASE_KIND_TEXT,
    DIMENSIONS_OF_GROUPING,
    INDICATOR_BY_CODE,
    INDICATORS,
    LEVELS,
    SETTING_RANGE,
    TARGET_SCOPES,
    CaseKind,
    Indicator,
    Setting,
)

router = APIRouter(include_in_schema=False)
Monitor = Annotated[auth.Principal, Depends(require(service.MONITOR))]
Supervisor = Annotated[auth.Principal, Depends(require(service.SUPERVISE))]
Anyone = Annotated[auth.Principal, Depends(public_with_principal)]

DASH = "—"
PER_PAGE = 50
#: Months the dashboard shows when no dates are given, the current one included.
DEFAULT_MONTHS = 12
#: Most months a time chart draws (the latest ones).
MAX_MONTHS = 60
FILTER_FIELDS = ("date_from", "date_to", "department", "item_code", "region_code", "kind", "channel")

#: The definitions of ``vocab.INDICATORS``, marked here for translation; a test keeps the two equal.
DEFINITIONS = (
    N_("closed applications within their promised time limit / closed applications with a limit"),
    N_("mean working days from acceptance (受理) to the decision, suspensions excluded"),
    N_("nearest-rank 90th percentile of the same working days"),
    N_("cases that came in online (portal or app) / all cases"),
    N_("in-person visits recorded for applications / applications"),
    N_("materials exempted (e-licence, shared data) / materials the items ask for"),
    N_("applications with no pre-check finding and no supplementary-material request / applications"),
    N_("rated cases / closed cases"),
    N_("ratings 基本满意 or better / counted ratings (follow-up replaces first; upheld appeals struck out)"),
    N_("first ratings 不满意 or 非常不满意 / first ratings, upheld appeals struck out"),
    N_("bad reviews rectified / bad reviews, upheld appeals struck out"),
    N_("bad reviews rectified by their deadline / bad reviews, upheld appeals struck out"),
)

CHANNEL_TEXT = {
    "online": N_("Online portal"),
    "app": N_("Mobile app"),
    "window": N_("Service window"),
    "terminal": N_("Self-service terminal"),
    "phone": N_("Telephone"),
    "mail": N_("Post"),
}
GROUP_TEXT = {
    "department": N_("Responsible department"),
    "item": N_("Service item"),
    "region": N_("Region"),
    "month": N_("Month"),
    "kind": N_("Kind of case"),
    "channel": N_("Channel"),
}
SCOPE_TEXT = {
    "all": N_("All cases (overall)"),
    "department": N_("One department"),
    "item": N_("One service item"),
    "region": N_("One region"),
}
#: What a drill-down (``only=``) lists.
ONLY_TEXT = {
    "rated": N_("Rated cases"),
    "bad": N_("Bad reviews"),
    "satisfied": N_("Satisfied ratings (基本满意 or better)"),
    "late": N_("Cases past their time limit"),
    "supplemented": N_("Cases with supplementary material requested"),
    "not_first_pass": N_("Applications that did not pass the first time"),
    "visited": N_("Cases with in-person visits"),
    "rectification_open": N_("Bad reviews whose rectification is open"),
    "rectified": N_("Bad reviews rectified"),
    "unrated": N_("Cases not rated"),
    "counted": N_("Ratings counted (struck-out ones left out)"),
    "first_counted": N_("First ratings counted"),
    "with_limit": N_("Cases with a time limit"),
    "rateable": N_("Cases that can be rated (consultations become cases when rated)"),
    "rateable_rated": N_("Rated cases, consultations left out"),
}
#: The counts shown beside the indicators, each a link to its cases.
COUNT_TEXT = {
    "cases": N_("closed cases"),
    "applications": N_("applications"),
    "late": N_("late"),
    "visited": N_("with in-person visits"),
    "not_first_pass": N_("not passed the first time"),
    "supplemented": N_("with supplementary material"),
    "rated": N_("rated"),
    "satisfied": N_("satisfied"),
    "bad": N_("bad reviews"),
    "rectified": N_("rectified"),
    "rectification_open": N_("rectification open"),
    "counted": N_("counted ratings"),
    "first_counted": N_("first ratings"),
    "with_limit": N_("with a time limit"),
    "rateable": N_("cases that can be rated"),
    "rateable_rated": N_("of them rated"),
}
#: Which counts stand behind each indicator.
COUNTS_OF = {
    "on_time_rate": ("late", "with_limit"),
    "avg_work_days": ("cases",),
    "p90_work_days": ("cases",),
    "online_share": ("applications",),
    "visits_per_case": ("visited", "applications"),
    "exempted_share": ("applications",),
    "first_pass_rate": ("not_first_pass", "supplemented", "applications"),
    "rating_rate": ("rateable_rated", "rateable"),
    "satisfaction_rate": ("satisfied", "counted"),
    "bad_rate": ("bad", "first_counted"),
    "rectification_rate": ("rectified", "rectification_open", "bad"),
    "rectified_on_time_rate": ("rectified", "bad"),
}
OUTCOME_TEXT = {
    "approved": N_("Approved"),
    "refused": N_("Refused"),
    "not_accepted": N_("Not accepted"),
    "answered": N_("Answered"),
    "solved": N_("Solved"),
    "served": N_("Served"),
}
RECTIFICATION_TEXT = {
    "open": N_("Rectification open"),
    "contacted": N_("Return call made"),
    "rectified": N_("Rectified"),
    "closed": N_("Closed on"),
    "void": N_("Struck out (appeal upheld)"),
}
FACTOR_TEXT = {
    "item": N_("Service item"),
    "department": N_("Responsible department"),
    "channel": N_("Channel"),
    "kind": N_("Kind of case"),
    "overrun": N_("Time limit"),
    "supplement": N_("Supplements requested"),
    "precheck_findings": N_("Pre-check findings"),
    "visits": N_("In-person visits"),
    "longest_step": N_("Longest step"),
    "work_days": N_("Working days used"),
}
FACTOR_VALUE_TEXT = {
    ("overrun", "late"): N_("Past the limit"),
    ("overrun", "on_time"): N_("Within the limit"),
    ("overrun", "no_limit"): N_("No limit"),
    ("supplement", "yes"): N_("Yes"),
    ("supplement", "no"): N_("No"),
    ("precheck_findings", "yes"): N_("Yes"),
    ("precheck_findings", "no"): N_("No"),
    ("work_days", "unknown"): N_("Unknown"),
}
SETTING_TEXT: dict[Setting, tuple[str, str]] = {
    Setting.WINDOW_DAYS: (
        N_("Rating period (days)"),
        N_("Calendar days after a case closes during which it may be rated."),
    ),
    Setting.REMIND_AFTER_DAYS: (
        N_("Reminder after (days)"),
        N_("Days after the invitation (or the last reminder) before a reminder is sent."),
    ),
    Setting.MAX_REMINDERS: (N_("Reminders at most"), N_("How many reminders one case gets at most.")),
    Setting.CONTACT_WORKING_DAYS: (
        N_("Return call within (working days)"),
        N_("The unit calls the rater back within this many working days of a bad review."),
    ),
    Setting.RECTIFY_WORKING_DAYS: (
        N_("Rectification within (working days)"),
        N_("The unit rectifies a bad review within this many working days."),
    ),
    Setting.FOLLOW_UP_DAYS: (
        N_("Follow-up rating period (days)"),
        N_("Days after the rectification during which the rater may rate once more."),
    ),
    Setting.VISIT_WINDOW_MINUTES: (
        N_("Rating period after an in-person visit (minutes)"),
        N_("Minutes after a visit during which the hall's terminal may still take its rating."),
    ),
    Setting.APPEAL_WORKING_DAYS: (
        N_("Appeal decision (working days)"),
        N_(
            "A supervisor decides an appeal within this many working days, or it is escalated; the unit's "
            "deadlines wait while the appeal is pending."
        ),
    ),
}


# --- numbers -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Numbers:
    """Numbers as the page's language writes them; ``—`` where there is no value."""

    lang: Language

    def count(self, n: int | None) -> str:
        return DASH if n is None else format_decimal(n, locale=self.lang.babel)

    @staticmethod
    def day(at: dt.datetime | None) -> dt.date | None:
        """The day (city time) of a moment, for ``format_date``."""
        return None if at is None else at.astimezone(service.CHINA).date()

    def pct(self, v: float | None) -> str:
        if v is None or not math.isfinite(v):
            return DASH
        return format_percent(v, "#,##0.0%", locale=self.lang.babel)

    def decimal(self, v: float | None, pattern: str = "#,##0.0") -> str:
        if v is None or not math.isfinite(v):
            return DASH
        return format_decimal(v, pattern, locale=self.lang.babel)

    def days(self, v: float | None) -> str:
        if v is None:
            return DASH
        return self.lang.gettext("%(n)s working days") % {"n": self.decimal(v)}

    def value(self, code: str, v: float | None) -> str:
        """An indicator's value in its unit: rates in percent, days and numbers with decimals."""
        unit = INDICATOR_BY_CODE[code].unit
        if unit == "rate":
            return self.pct(v)
        if unit == "days":
            return self.days(v)
        return self.decimal(v, "#,##0.00")

    def plain(self, code: str, v: float | None) -> str:
        """As :meth:`value` without the unit's words (table cells under a heading with the unit)."""
        unit = INDICATOR_BY_CODE[code].unit
        if unit == "rate":
            return self.pct(v)
        return self.decimal(v, "#,##0.0" if unit == "days" else "#,##0.00")

    def band(self, code: str, band: tuple[float | None, float | None] | None) -> str:
        if band is None:
            return ""
        low, high = band
        if low is not None and high is not None:
            return self.lang.gettext("%(low)s to %(high)s") % {
                "low": self.value(code, low),
                "high": self.value(code, high),
            }
        if low is not None:
            return self.lang.gettext("at least %(low)s") % {"low": self.value(code, low)}
        return self.lang.gettext("at most %(high)s") % {"high": self.value(code, high)}


def _outside(value: float | None, band: tuple[float | None, float | None] | None) -> bool | None:
    """Whether the value left its band; None when there is no band or no value."""
    if band is None or value is None:
        return None
    low, high = band
    return (low is not None and value < low) or (high is not None and value > high)


@dataclass(frozen=True)
class Words:
    """The vocabulary of the pages in the page's language."""

    lang: Language

    def indicator(self, code: str) -> str:
        i = INDICATOR_BY_CODE.get(code)
        if i is None:
            return code
        return i.name_en if self.lang.code == "en" else i.name

    def definition(self, code: str) -> str:
        i = INDICATOR_BY_CODE.get(code)
        return "" if i is None else self.lang.gettext(i.definition)

    def level(self, level: int | None) -> str:
        if level is None or level not in LEVELS:
            return DASH
        zh, en = LEVELS[level]
        return f"{level} {en if self.lang.code == 'en' else zh}"

    def kind(self, kind: str) -> str:
        try:
            return self.lang.gettext(CASE_KIND_TEXT[CaseKind(kind)])
        except ValueError:
            return kind

    def channel(self, channel: str) -> str:
        text = CHANNEL_TEXT.get(channel)
        return self.lang.gettext(text) if text else channel

    def group(self, group_by: str) -> str:
        return self.lang.gettext(GROUP_TEXT.get(group_by, group_by))

    def group_value(self, group_by: str | None, key: str | None, label: str) -> str:
        if group_by == "kind" and key:
            return self.kind(key)
        if group_by == "channel" and key:
            return self.channel(key)
        return label or key or self.lang.gettext("(not given)")

    def scope(self, scope: str) -> str:
        return self.lang.gettext(SCOPE_TEXT.get(scope, scope))

    def only(self, only: str) -> str:
        text = ONLY_TEXT.get(only)
        return self.lang.gettext(text) if text else only

    def count(self, name: str) -> str:
        return self.lang.gettext(COUNT_TEXT[name])

    def outcome(self, outcome: str) -> str:
        text = OUTCOME_TEXT.get(outcome)
        return self.lang.gettext(text) if text else outcome

    def rectification(self, state: str | None) -> str:
        if not state:
            return DASH
        text = RECTIFICATION_TEXT.get(state)
        return self.lang.gettext(text) if text else state

    def factor(self, factor: str) -> str:
        text = FACTOR_TEXT.get(factor)
        return self.lang.gettext(text) if text else factor

    def factor_value(self, factor: str, value: str) -> str:
        if factor == "kind":
            return self.kind(value)
        if factor == "channel":
            return self.channel(value)
        text = FACTOR_VALUE_TEXT.get((factor, value))
        if text:
            return self.lang.gettext(text)
        return value or self.lang.gettext("(not given)")

    def reason(self, code: str) -> str:
        try:
            from tongban.rating.reasons import REASON_TEXT
        except ImportError:  # pragma: no cover - the classifier's module is optional to these pages
            return code
        names = REASON_TEXT.get(code)
        if names is None:
            return code
        return names[1] if self.lang.code == "en" else names[0]

    def period(self, period: str) -> str:
        """``2026-02``, ``2026-Q1`` or ``2026`` in words."""
        if len(period) == 4:
            return self.lang.gettext("Year %(year)s") % {"year": period}
        if len(period) == 7 and period[4:6] == "-Q":
            return self.lang.gettext("Quarter %(q)s of %(year)s") % {"q": period[6], "year": period[:4]}
        if len(period) == 7:
            return self.lang.gettext("%(month)s/%(year)s") % {
                "month": str(int(period[5:7])),
                "year": period[:4],
            }
        return period


# --- the filter --------------------------------------------------------------------------------------


def _today(clock: Clock) -> dt.date:
    return clock.now().astimezone(service.CHINA).date()


def default_range(clock: Clock) -> tuple[dt.date, dt.date]:
    """The last 12 months up to today (city time): from the first day of the month 11 months back."""
    today = _today(clock)
    months = today.year * 12 + today.month - 1 - (DEFAULT_MONTHS - 1)
    return dt.date(months // 12, months % 12 + 1, 1), today


@dataclass(frozen=True)
class Scope:
    """The filter of a page as it came in the query string: the validated filter, the values as typed
    (shown again in the form) and the grouping. A date left out of the query takes the default range; a
    date given empty means no bound."""

    filters: Filters
    typed: dict[str, str]
    group_by: str | None = None
    problem: str | None = None

    def params(self, **extra: object) -> dict[str, str]:
        f = self.filters
        out = {
            "date_from": f.date_from.isoformat() if f.date_from else "",
            "date_to": f.date_to.isoformat() if f.date_to else "",
        }
        for name in ("department", "item_code", "region_code", "channel"):
            value = getattr(f, name)
            if value:
                out[name] = value
        if f.kind is not None:
            out["kind"] = f.kind.value
        for key, value in extra.items():
            if value is None or value == "":
                out.pop(key, None)
            else:
                out[key] = str(value)
        return out

    def link(self, path: str, **extra: object) -> str:
        """A page of ours with the same filter (and ``extra`` parameters)."""
        return f"{path}?{urlencode(self.params(**extra))}"

    def api_link(self, path: str, **extra: object) -> str:
        """The JSON API's or a CSV's address: left-out dates there mean no bound."""
        params = {k: v for k, v in self.params(**extra).items() if v != ""}
        return f"{path}?{urlencode(params)}"


def read_scope(query: QueryParams, clock: Clock, lang: Language, *, grouping: bool = False) -> Scope:
    default_from, default_to = default_range(clock)
    typed: dict[str, str] = {}
    for name in FILTER_FIELDS:
        value = query.get(name)
        if value is None and name == "date_from":
            value = default_from.isoformat()
        elif value is None and name == "date_to":
            value = default_to.isoformat()
        typed[name] = (value or "").strip()
    group_by = query.get("group_by") or None
    problem = None
    if grouping and group_by is not None and group_by not in DIMENSIONS_OF_GROUPING:
        problem = lang.gettext("Choose one of the groupings.")
        group_by = None
    try:
        filters = Filters.model_validate({k: v or None for k, v in typed.items()})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "filter"
        problem = lang.gettext("The filter is not valid: %(detail)s") % {"detail": f"{where}: {first['msg']}"}
        filters = Filters(date_from=default_from, date_to=default_to)
    return Scope(filters=filters, typed=typed, group_by=group_by if grouping else None, problem=problem)


def _filter_options(session: Session, principal: auth.Principal, words: Words) -> dict[str, Any]:
    choices = service.choices(session, principal)
    return {
        "departments": choices.get("department", []),
        "item_choices": choices.get("item", []),
        "regions": choices.get("region", []),
        "kinds": [(k.value, words.kind(k.value)) for k in CaseKind],
        "channels": [(c, words.channel(c)) for c in CASE_CHANNELS],
        "groupings": [(g, words.group(g)) for g in DIMENSIONS_OF_GROUPING],
    }


# --- the dashboard -----------------------------------------------------------------------------------


@dataclass
class Count:
    label: str
    n: int
    href: str | None


@dataclass
class IndicatorRow:
    code: str
    name: str
    definition: str
    unit: str
    value: float | None
    text: str
    counts: list[Count]
    band: str
    outside: bool | None


@dataclass
class GroupCell:
    code: str
    text: str
    outside: bool | None
    band: str


@dataclass
class GroupRow:
    key: str | None
    label: str
    cases: Count
    rated: Count
    bad: Count
    cells: list[GroupCell] = field(default_factory=list)


Band = tuple[float | None, float | None]


def _band(
    bands: Mapping[tuple[str, str, str], Band], code: str, scope: str = "all", value: str = ""
) -> Band | None:
    if scope != "all":
        own = bands.get((code, scope, value))
        if own is not None:
            return own
    return bands.get((code, "all", ""))


def indicator_rows(
    total: IndicatorValues,
    counts: Mapping[str, int],
    bands: Mapping[tuple[str, str, str], Band],
    scope: Scope,
    num: Numbers,
    words: Words,
) -> list[IndicatorRow]:
    rows = []
    known = {
        "cases": total.cases,
        "applications": total.applications,
        "rated": total.rated,
        "bad": total.bad,
        **counts,
    }
    for i in INDICATORS:
        value = getattr(total, i.code)
        band = _band(bands, i.code)
        shown = []
        for name in COUNTS_OF.get(i.code, ()):
            n = known[name]
            if name == "cases":
                href = scope.link("/quality/cases")
            elif name == "applications":
                href = scope.link("/quality/cases", kind=CaseKind.APPLICATION.value)
            else:
                href = scope.link("/quality/cases", only=name)
            shown.append(Count(words.count(name), n, href if n else None))
        rows.append(
            IndicatorRow(
                code=i.code,
                name=words.indicator(i.code),
                definition=words.definition(i.code),
                unit=i.unit,
                value=value,
                text=num.value(i.code, value),
                counts=shown,
                band=num.band(i.code, band),
                outside=_outside(value, band),
            )
        )
    return rows


def group_rows(
    groups: Sequence[IndicatorValues],
    group_by: str,
    bands: Mapping[tuple[str, str, str], Band],
    scope: Scope,
    num: Numbers,
    words: Words,
) -> list[GroupRow]:
    rows = []
    target_scope = group_by if group_by in TARGET_SCOPES else "all"
    for g in groups:
        selector = None if g.group is None else f"{group_by}:{g.group}"

        def link(only: str | None, n: int, selector: str | None = selector) -> str | None:
            if selector is None or not n:
                return None
            return scope.link("/quality/cases", group=selector, only=only)

        row = GroupRow(
            key=g.group,
            label=words.group_value(group_by, g.group, g.label),
            cases=Count(words.count("cases"), g.cases, link(None, g.cases)),
            rated=Count(words.count("rated"), g.rated, link("rated", g.rated)),
            bad=Count(words.count("bad"), g.bad, link("bad", g.bad)),
        )
        for i in INDICATORS:
            value = getattr(g, i.code)
            band = _band(bands, i.code, target_scope, g.group or "")
            row.cells.append(
                GroupCell(i.code, num.plain(i.code, value), _outside(value, band), num.band(i.code, band))
            )
        rows.append(row)
    return rows


def _months(start: dt.date | None, end: dt.date | None, seen: Sequence[str]) -> list[str]:
    """Every month from ``start`` to ``end`` (or the months seen, where a bound is open), at most
    :data:`MAX_MONTHS`, the latest kept."""
    first = start.strftime("%Y-%m") if start else min(seen, default=None)
    last = end.strftime("%Y-%m") if end else max(seen, default=None)
    if first is None or last is None:
        return []
    y0, m0 = int(first[:4]), int(first[5:7])
    y1, m1 = int(last[:4]), int(last[5:7])
    # Counted back from the last month, at most MAX_MONTHS of them (a range to 9999 stays cheap).
    span = min((y1 - y0) * 12 + (m1 - m0) + 1, MAX_MONTHS)
    out: list[str] = []
    y, m = y1, m1
    for _ in range(max(span, 0)):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return out[::-1]


def dashboard_charts(
    by_month: Sequence[IndicatorValues],
    by_department: Sequence[IndicatorValues],
    total: IndicatorValues,
    bands: Mapping[tuple[str, str, str], Band],
    scope: Scope,
    num: Numbers,
    words: Words,
) -> dict[str, Markup]:
    lang = words.lang
    gettext = lang.gettext
    monthly = {g.group: g for g in by_month if g.group}
    months = _months(scope.filters.date_from, scope.filters.date_to, list(monthly))

    def series(code: str) -> list[tuple[str, float | None]]:
        return [(m, getattr(monthly[m], code) if m in monthly else None) for m in months]

    def line(code: str) -> Markup:
        name = words.indicator(code)
        return charts.line_chart(
            series(code),
            title=lang.gettext("%(indicator)s by month") % {"indicator": name},
            description=lang.gettext(
                "%(indicator)s of the cases closed in each month; a month without cases shows a dash. "
                "The shaded band, if any, is the target."
            )
            % {"indicator": name},
            value_format=num.pct,
            band=_band(bands, code),
            y_min=0.0,
            y_max=1.0,
            gettext=gettext,
        )

    def departments(code: str, only: str) -> Markup:
        name = words.indicator(code)
        label_to_key = {words.group_value("department", g.group, g.label): g.group for g in by_department}

        def href(label: str) -> str:
            key = label_to_key.get(label)
            if not key:
                return scope.link("/quality/cases", only=only)
            return scope.link("/quality/cases", group=f"department:{key}", only=only)

        return charts.bar_chart(
            [(words.group_value("department", g.group, g.label), getattr(g, code)) for g in by_department],
            title=lang.gettext("%(indicator)s by department") % {"indicator": name},
            description=lang.gettext(
                "%(indicator)s of each department's cases; each bar links to the cases behind it. "
                "The shaded band, if any, is the target."
            )
            % {"indicator": name},
            value_format=num.pct,
            max_value=1.0,
            band=_band(bands, code),
            href=href,
            gettext=gettext,
        )

    levels = [(words.level(k), total.levels.get(str(k), 0)) for k in range(5, 0, -1)]
    return {
        "satisfaction_by_month": line("satisfaction_rate"),
        "on_time_by_month": line("on_time_rate"),
        "distribution": charts.distribution_bar(
            levels,
            title=lang.gettext("Ratings by level"),
            description=lang.gettext(
                "How many counted ratings gave each level, from 5 (very satisfied) to 1 (very dissatisfied)."
            ),
            gettext=gettext,
        ),
        "satisfaction_by_department": departments("satisfaction_rate", "rated"),
        "bad_by_department": departments("bad_rate", "bad"),
    }


def _alert_rows(alerts: Sequence[AlertOut], num: Numbers, words: Words) -> list[dict[str, Any]]:
    rows = []
    for a in alerts:
        rows.append(
            {
                "id": a.id,
                "indicator": words.indicator(a.indicator),
                "scope": words.scope(a.scope),
                "scope_value": a.scope_value,
                "period": a.period,
                "value": num.value(a.indicator, a.value)
                if a.indicator in INDICATOR_BY_CODE
                else str(a.value),
                "band": num.band(a.indicator, (a.low, a.high)) if a.indicator in INDICATOR_BY_CODE else "",
                "raised_at": a.raised_at,
                "acknowledged_by": a.acknowledged_by,
                "acknowledged_at": a.acknowledged_at,
            }
        )
    return rows


@router.get("/quality")
def dashboard(
    request: Request, session: DbSession, lang: LanguageDep, principal: Monitor, clock: ClockDep
) -> Response:
    """The indicators of the filter, with the counts behind them, their targets, the open alerts and
    charts by month and by department; optionally the indicator table per group."""
    num, words = Numbers(lang), Words(lang)
    scope = read_scope(request.query_params, clock, lang, grouping=True)
    options = _filter_options(session, principal, words)
    context: dict[str, Any] = {"scope": scope, "options": options, "words": words, "num": num}
    if scope.problem is not None:
        return render_page(request, lang, "rating/quality_dashboard.html", context, status=422)
    f = scope.filters
    report, by_month, by_department = service.dashboard(
        session, principal, f, group_by=scope.group_by, clock=clock
    )
    bands = service.bands(session)
    total = report.total
    context.update(
        {
            "report": report,
            "rows": indicator_rows(total, total.counts, bands, scope, num, words),
            "groups": group_rows(report.groups, scope.group_by, bands, scope, num, words)
            if scope.group_by
            else [],
            "indicators": [(i.code, words.indicator(i.code), i.unit) for i in INDICATORS],
            "alerts": _alert_rows(
                service.list_alerts(session, principal, open_only=True, limit=50), num, words
            ),
            "charts": dashboard_charts(by_month, by_department, total, bands, scope, num, words),
            "levels": [(words.level(k), total.levels.get(str(k), 0), k) for k in range(5, 0, -1)],
            "may_supervise": principal.can(service.SUPERVISE),
        }
    )
    return render_page(request, lang, "rating/quality_dashboard.html", context)


INDICATOR_CSV_HEAD = ["group_by", "group", "label", "cases", "applications", "rated", "bad", "rectified"]


@router.get("/quality/indicators.csv")
def indicators_csv(
    request: Request, session: DbSession, lang: LanguageDep, principal: Monitor, clock: ClockDep
) -> Response:
    """The indicator table of the filter as CSV (UTF-8 with BOM): one row per group of ``group_by``, or
    one row for everything; rates as fractions 0–1, days in working days, no personal data."""
    scope = read_scope(request.query_params, clock, lang, grouping=True)
    if scope.problem is not None:
        raise InvalidInput(scope.problem)
    report = service.indicators(session, principal, scope.filters, group_by=scope.group_by, clock=clock)
    rows = report.groups if scope.group_by else [report.total]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    levels = [f"level_{k}" for k in range(5, 0, -1)]
    writer.writerow([*INDICATOR_CSV_HEAD, *(i.code for i in INDICATORS), *levels])
    for g in rows:
        values = [getattr(g, i.code) for i in INDICATORS]
        writer.writerow(
            [
                scope.group_by or "",
                g.group or "",
                g.label,
                g.cases,
                g.applications,
                g.rated,
                g.bad,
                g.rectified,
                *("" if v is None else repr(float(v)) for v in values),
                *(g.levels.get(str(k), 0) for k in range(5, 0, -1)),
            ]
        )
    name = f"quality-indicators{'-' + scope.group_by if scope.group_by else ''}.csv"
    return Response(
        "\ufeff" + buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# --- drill-down --------------------------------------------------------------------------------------


def _selector(group: str) -> tuple[str, str] | None:
    if not group:
        return None
    name, sep, value = group.partition(":")
    if not sep or name not in DIMENSIONS_OF_GROUPING:
        raise InvalidInput("group: <dimension>:<value>, e.g. department:市公安局")
    return name, value


@router.get("/quality/cases")
def drill_down(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Monitor,
    clock: ClockDep,
    only: Annotated[str, Query(max_length=30)] = "",
    level: Annotated[int | None, Query(ge=1, le=5)] = None,
    group: Annotated[str, Query(max_length=220)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    """The cases behind an indicator, newest first, 50 a page; no personal data."""
    num, words = Numbers(lang), Words(lang)
    scope = read_scope(request.query_params, clock, lang)
    if scope.problem is not None:
        raise InvalidInput(scope.problem)
    selector = _selector(group)
    result = service.cases(
        session,
        principal,
        scope.filters,
        only=only or None,
        level=level,
        group=selector,
        page=page,
        per_page=PER_PAGE,
    )
    pages = max(1, math.ceil(result.total / PER_PAGE))
    extra = {"only": only, "level": level, "group": group}
    what = []
    if only:
        what.append(words.only(only))
    if selector is not None:
        what.append(
            lang.gettext("%(name)s: %(value)s")
            % {
                "name": words.group(selector[0]),
                "value": words.group_value(selector[0], selector[1], selector[1]),
            }
        )
    if level is not None:
        what.append(lang.gettext("Rating level: %(level)s") % {"level": words.level(level)})
    context = {
        "scope": scope,
        "result": result,
        "pages": pages,
        "what": what,
        "words": words,
        "num": num,
        "previous": scope.link("/quality/cases", **extra, page=page - 1) if page > 1 else None,
        "next": scope.link("/quality/cases", **extra, page=page + 1) if page < pages else None,
        "back": scope.link("/quality"),
        "csv": scope.api_link("/api/v1/quality/cases.csv", only=only)
        if not group and level is None
        else None,
    }
    return render_page(request, lang, "rating/quality_cases.html", context)


# --- pain points -------------------------------------------------------------------------------------


@dataclass
class PainRow:
    factor: str
    value: str
    rated: str
    bad: str
    bad_rate: str
    interval: str
    rest_rate: str
    risk_ratio: str
    share_of_bad: str
    significant: bool | None
    href: str | None


def _pain_rows(points: Sequence[PainPointOut], scope: Scope, num: Numbers, words: Words) -> list[PainRow]:
    rows = []
    for p in points:
        href = None
        if p.factor in ("department", "channel", "kind") and p.bad:
            href = scope.link("/quality/cases", group=f"{p.factor}:{p.value}", only="bad")
        rows.append(
            PainRow(
                factor=words.factor(p.factor),
                value=words.factor_value(p.factor, p.value),
                rated=num.count(p.rated),
                bad=num.count(p.bad),
                bad_rate=num.pct(p.bad_rate),
                interval=words.lang.gettext("%(low)s to %(high)s")
                % {"low": num.pct(p.low), "high": num.pct(p.high)},
                rest_rate=num.pct(p.rest_rate),
                risk_ratio=num.decimal(p.risk_ratio, "#,##0.00"),
                share_of_bad=num.pct(p.share_of_bad),
                significant=p.significant,
                href=href,
            )
        )
    return rows


@dataclass
class ReasonRow:
    code: str
    label: str
    count: int
    share: float


@router.get("/quality/pain-points")
def pain_points(
    request: Request, session: DbSession, lang: LanguageDep, principal: Monitor, clock: ClockDep
) -> Response:
    """Where bad reviews concentrate, what predicts them, and their reasons."""
    num, words = Numbers(lang), Words(lang)
    scope = read_scope(request.query_params, clock, lang)
    options = _filter_options(session, principal, words)
    context: dict[str, Any] = {"scope": scope, "options": options, "words": words, "num": num}
    if scope.problem is not None:
        return render_page(request, lang, "rating/quality_pain_points.html", context, status=422)
    report = service.pain_points(session, principal, scope.filters)
    significant = [p for p in report.predictors if p.significant]
    rest = [p for p in report.predictors if not p.significant]
    reasons = []
    for r in report.reasons:
        code, count, share = str(r.get("reason", "")), r.get("count"), r.get("share")
        reasons.append(
            ReasonRow(
                code=code,
                label=words.reason(code),
                count=count if isinstance(count, int) else 0,
                share=float(share) if isinstance(share, int | float) else 0.0,
            )
        )
    chart = charts.bar_chart(
        [(r.label, float(r.count)) for r in reasons],
        title=lang.gettext("Reasons of bad reviews"),
        description=lang.gettext(
            "How many bad reviews named each reason; one review may name several reasons."
        ),
        value_format=lambda v: num.count(round(v)),
        gettext=lang.gettext,
    )
    context.update(
        {
            "report": report,
            "concentrations": _pain_rows(report.concentrations, scope, num, words),
            "predictors": _pain_rows([*significant, *rest], scope, num, words),
            "reasons": reasons,
            "reasons_chart": chart,
            "bad_rate": num.pct(report.bad / report.rated if report.rated else None),
        }
    )
    return render_page(request, lang, "rating/quality_pain_points.html", context)


# --- rules, targets, alerts, publication ------------------------------------------------------------


Posted = Annotated[FormData, Depends(posted_form)]


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _number(text: str, name: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text.replace(",", ".").rstrip("%").strip())
    except ValueError:
        raise InvalidInput(f"{name}: a number, not {text!r}") from None
    if not math.isfinite(value):
        raise InvalidInput(f"{name}: a number, not {text!r}")
    return value


DONE_TEXT = {
    "settings": N_("The rating rules were saved."),
    "target": N_("The target was saved."),
    "deleted": N_("The target was deleted."),
    "acknowledged": N_("The alert was acknowledged."),
    "checked": N_("The targets were checked."),
    "published": N_("The results were published."),
}


def _last_month(clock: Clock) -> str:
    first = _today(clock).replace(day=1)
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


def _settings_page(
    request: Request,
    lang: Language,
    session: Session,
    principal: auth.Principal,
    clock: Clock,
    *,
    problem: str | None = None,
    problem_form: str | None = None,
    posted: Mapping[str, str] | None = None,
    done: str | None = None,
    raised: int | None = None,
    status: int = 200,
) -> Response:
    num, words = Numbers(lang), Words(lang)
    current = service.settings(session)
    targets: list[TargetOut] = service.list_targets(session, principal)
    target_rows = [
        {
            "id": t.id,
            "indicator": words.indicator(t.indicator),
            "code": t.indicator,
            "scope": words.scope(t.scope),
            "scope_value": t.scope_value,
            "band": num.band(t.indicator, (t.low, t.high)) if t.indicator in INDICATOR_BY_CODE else "",
            "updated_by": t.updated_by,
            "updated_at": t.updated_at,
        }
        for t in targets
    ]
    rules = [
        {
            "key": key.value,
            "label": lang.gettext(SETTING_TEXT[key][0]),
            "hint": lang.gettext(SETTING_TEXT[key][1]),
            "value": (posted or {}).get(key.value, str(current.get(key.value, ""))),
            "min": SETTING_RANGE[key][0],
            "max": SETTING_RANGE[key][1],
        }
        for key in Setting
    ]
    context = {
        "rules": rules,
        "targets": target_rows,
        "alerts": _alert_rows(
            service.list_alerts(session, principal, open_only=False, limit=100), num, words
        ),
        "publications": service.publications(session),
        "indicators": [(i.code, words.indicator(i.code), i.unit) for i in INDICATORS],
        "scopes": [(s, words.scope(s)) for s in TARGET_SCOPES],
        "words": words,
        "num": num,
        "may_change": principal.can(service.SUPERVISE),
        "problem": problem,
        "problem_form": problem_form,
        "posted": posted or {},
        "done": lang.gettext(DONE_TEXT[done]) if done in DONE_TEXT else None,
        "raised": raised,
        "this_month": service.previous_month(clock),
        "min_cases": service.ALERT_MIN_CASES,
        "last_month": _last_month(clock),
    }
    return render_page(request, lang, "rating/quality_settings.html", context, status=status)


@router.get("/quality/settings")
def settings_page(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Monitor,
    clock: ClockDep,
    done: Annotated[str, Query(max_length=20)] = "",
    raised: Annotated[int | None, Query(ge=0, le=100_000)] = None,
) -> Response:
    """The rating rules, the targets, the alerts and the published periods (changes: supervisors)."""
    return _settings_page(request, lang, session, principal, clock, done=done or None, raised=raised)


def _problem_text(exc: Exception, lang: Language) -> tuple[str, int]:
    if isinstance(exc, ValidationError):
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(p) for p in e["loc"])
            message = str(e["msg"]).removeprefix("Value error, ")
            parts.append(f"{where}: {message}" if where else message)
        detail = "; ".join(parts)
        return f"{lang.gettext('Invalid input')}: {detail}", 422
    if isinstance(exc, DomainError):
        return f"{lang.gettext(exc.title)}: {exc.detail}", exc.status
    return f"{lang.gettext('Invalid input')}: {exc}", 422


def _change(
    request: Request,
    lang: Language,
    session: Session,
    principal: auth.Principal,
    clock: Clock,
    run: Callable[[], str],
    *,
    form: str,
    posted: Mapping[str, str],
) -> Response:
    """Run a change in a savepoint: then back to the settings page (303), or the page again with the
    service's reason when it refuses."""
    try:
        with session.begin_nested():
            target = run()
    except (DomainError, ValidationError) as exc:
        text, status = _problem_text(exc, lang)
        return _settings_page(
            request,
            lang,
            session,
            principal,
            clock,
            problem=text,
            problem_form=form,
            posted=posted,
            status=status,
        )
    return RedirectResponse(target, status_code=303)


@router.post("/quality/settings", dependencies=[Depends(csrf_form)])
def save_settings(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Supervisor,
    clock: ClockDep,
    form: Posted,
) -> Response:
    """Change the rating rules (blank fields stay as they are)."""
    posted = {key.value: _text(form, key.value) for key in Setting}

    def run() -> str:
        values: dict[str, int] = {}
        for key, text in posted.items():
            if not text:
                continue
            try:
                values[key] = int(text)
            except ValueError:
                raise InvalidInput(f"{key}: a whole number, not {text!r}") from None
        service.update_settings(session, principal, SettingsWrite.model_validate(values), clock=clock)
        return "/quality/settings?done=settings#rules"

    return _change(request, lang, session, principal, clock, run, form="rules", posted=posted)


@router.post("/quality/settings/targets", dependencies=[Depends(csrf_form)])
def save_target(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Supervisor,
    clock: ClockDep,
    form: Posted,
) -> Response:
    """Set an indicator's band; rates are entered in percent."""
    posted = {k: _text(form, k) for k in ("indicator", "scope", "scope_value", "low", "high")}

    def run() -> str:
        indicator: Indicator | None = INDICATOR_BY_CODE.get(posted["indicator"])
        if indicator is None:
            raise InvalidInput("indicator: choose one of the indicators")
        low, high = _number(posted["low"], "low"), _number(posted["high"], "high")
        if indicator.unit == "rate":
            low = None if low is None else round(low / 100, 6)
            high = None if high is None else round(high / 100, 6)
        scope = posted["scope"] or "all"
        write = TargetWrite.model_validate(
            {
                "indicator": indicator.code,
                "scope": scope,
                "scope_value": "" if scope == "all" else posted["scope_value"],
                "low": low,
                "high": high,
            }
        )
        service.set_target(session, principal, write, clock=clock)
        return "/quality/settings?done=target#targets"

    return _change(request, lang, session, principal, clock, run, form="target", posted=posted)


@router.post("/quality/settings/targets/{target_id}/delete", dependencies=[Depends(csrf_form)])
def remove_target(
    request: Request,
    target_id: Annotated[int, Path(ge=1)],
    session: DbSession,
    lang: LanguageDep,
    principal: Supervisor,
    clock: ClockDep,
) -> Response:
    def run() -> str:
        service.delete_target(session, principal, target_id, clock=clock)
        return "/quality/settings?done=deleted#targets"

    return _change(request, lang, session, principal, clock, run, form="targets", posted={})


@router.post("/quality/settings/alerts/{alert_id}/acknowledge", dependencies=[Depends(csrf_form)])
def acknowledge(
    request: Request,
    alert_id: Annotated[int, Path(ge=1)],
    session: DbSession,
    lang: LanguageDep,
    principal: Supervisor,
    clock: ClockDep,
) -> Response:
    def run() -> str:
        service.acknowledge_alert(session, principal, alert_id, clock=clock)
        return "/quality/settings?done=acknowledged#alerts"

    return _change(request, lang, session, principal, clock, run, form="alerts", posted={})


@router.post("/quality/settings/alerts/check", dependencies=[Depends(csrf_form)])
def check_alerts(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Supervisor,
    clock: ClockDep,
    form: Posted,
) -> Response:
    """Compare a month's indicators with the targets now."""
    posted = {"period": _text(form, "period"), "min_cases": _text(form, "min_cases")}

    def run() -> str:
        raw = posted["min_cases"].strip() or str(service.ALERT_MIN_CASES)
        if not raw.isdigit() or not 1 <= int(raw) <= 1_000_000:
            raise InvalidInput("min_cases: a whole number from 1")
        raised = service.check_alerts(session, posted["period"], clock=clock, min_cases=int(raw))
        return f"/quality/settings?done=checked&raised={len(raised)}#alerts"

    return _change(request, lang, session, principal, clock, run, form="check", posted=posted)


@router.post("/quality/settings/publish", dependencies=[Depends(csrf_form)])
def publish(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Supervisor,
    clock: ClockDep,
    form: Posted,
) -> Response:
    """Publish a finished period's results (``YYYY-MM``, ``YYYY-Qn`` or ``YYYY``) on the public page."""
    posted = {"period": _text(form, "period")}

    def run() -> str:
        service.publish(session, principal, posted["period"], clock=clock)
        return "/quality/settings?done=published#publish"

    return _change(request, lang, session, principal, clock, run, form="publish", posted=posted)


# --- published results (public) ----------------------------------------------------------------------


def _iso_day(value: object) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _published_value(data: Mapping[str, Any], code: str) -> float | None:
    value = data.get(code)
    return float(value) if isinstance(value, int | float) else None


@router.get("/results")
def results(request: Request, session: DbSession, lang: LanguageDep, principal: Anyone) -> Response:
    """Published service-quality results, newest period first."""
    num, words = Numbers(lang), Words(lang)
    rows = []
    for p in service.publications(session):
        total = p.data.get("total")
        total = total if isinstance(total, dict) else {}
        rows.append(
            {
                "period": p.period,
                "name": words.period(p.period),
                "period_from": _iso_day(p.data.get("from")),
                "period_to": _iso_day(p.data.get("to")),
                "cases": num.count(int(total.get("cases", 0) or 0)),
                "satisfaction": num.pct(_published_value(total, "satisfaction_rate")),
                "on_time": num.pct(_published_value(total, "on_time_rate")),
                "published_on": Numbers.day(p.published_at),
            }
        )
    return render_page(request, lang, "rating/results_list.html", {"rows": rows, "words": words})


@router.get("/results/{period}")
def result(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Anyone,
    period: Annotated[str, Path(max_length=7, pattern=r"^\d{4}(-\d{2}|-Q[1-4])?$")],
) -> Response:
    """One published period: the indicators overall and per department, what each means, and charts."""
    num, words = Numbers(lang), Words(lang)
    pub = service.publication(session, period)
    data = pub.data
    total = data.get("total") if isinstance(data.get("total"), dict) else {}
    assert isinstance(total, dict)  # noqa: S101 - narrowed above
    raw_codes = data.get("indicators")
    codes = [
        c
        for c in (raw_codes if isinstance(raw_codes, list) else [i.code for i in INDICATORS])
        if isinstance(c, str) and c in INDICATOR_BY_CODE and c in total
    ]
    overall = [
        {
            "code": c,
            "name": words.indicator(c),
            "value": num.value(c, _published_value(total, c)),
            "definition": words.definition(c),
        }
        for c in codes
    ]
    raw_departments = data.get("departments")
    departments = [
        d for d in (raw_departments if isinstance(raw_departments, list) else []) if isinstance(d, dict)
    ]
    department_rows = [
        {
            "name": str(d.get("department") or words.lang.gettext("(not given)")),
            "cases": num.count(int(d.get("cases", 0) or 0)),
            "rated": num.count(int(d.get("rated", 0) or 0)),
            "values": [num.plain(c, _published_value(d, c)) for c in codes],
        }
        for d in departments
    ]
    levels_raw = total.get("levels")
    levels_of: dict[str, Any] = levels_raw if isinstance(levels_raw, dict) else {}
    gettext = lang.gettext
    satisfaction = charts.bar_chart(
        [
            (
                str(d.get("department") or lang.gettext("(not given)")),
                _published_value(d, "satisfaction_rate"),
            )
            for d in departments
        ],
        title=lang.gettext("Satisfaction rate by department"),
        description=lang.gettext(
            "The share of each department's counted ratings that were fairly satisfied or better."
        ),
        value_format=num.pct,
        max_value=1.0,
        gettext=gettext,
    )
    distribution = charts.distribution_bar(
        [(words.level(k), int(levels_of.get(str(k), 0) or 0)) for k in range(5, 0, -1)],
        title=lang.gettext("Ratings by level"),
        description=lang.gettext(
            "How many counted ratings gave each level, from 5 (very satisfied) to 1 (very dissatisfied)."
        ),
        gettext=gettext,
    )
    context = {
        "pub": pub,
        "name": words.period(pub.period),
        "period_from": _iso_day(data.get("from")),
        "period_to": _iso_day(data.get("to")),
        "published_on": Numbers.day(pub.published_at),
        "overall": overall,
        "counts": {
            k: num.count(int(total.get(k, 0) or 0))
            for k in ("cases", "applications", "rated", "bad", "rectified")
        },
        "codes": [(c, words.indicator(c), INDICATOR_BY_CODE[c].unit) for c in codes],
        "departments": department_rows,
        "satisfaction_chart": satisfaction,
        "distribution_chart": distribution,
        "words": words,
    }
    return render_page(request, lang, "rating/results_period.html", context)
