"""All SQL of the rating domain. Indicator queries are plain aggregates and window functions over the
``rating_case`` fact table: the same statements run on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select, text
from sqlalchemy.orm import Session

from tongban.rating.models import (
    Alert,
    Case,
    Publication,
    Rating,
    Rectification,
    RectificationEvent,
    Setting,
    Target,
)
from tongban.rating.schemas import Filters
from tongban.rating.vocab import ONLINE_CHANNELS


def case_by_ref(session: Session, kind: str, ref: str, *, for_update: bool = False) -> Case | None:
    stmt = select(Case).where(Case.kind == kind, Case.ref == ref)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def visits_for(session: Session, receipt_no: str) -> int:
    stmt = select(func.count()).select_from(Case).where(Case.kind == "visit", Case.parent_ref == receipt_no)
    return int(session.scalar(stmt) or 0)


def ratings_of(session: Session, case_ids: Sequence[int]) -> dict[int, list[Rating]]:
    out: dict[int, list[Rating]] = {i: [] for i in case_ids}
    if case_ids:
        for r in session.scalars(select(Rating).where(Rating.case_id.in_(case_ids)).order_by(Rating.id)):
            out[r.case_id].append(r)
    return out


def rectification_of_case(session: Session, case_id: int) -> Rectification | None:
    return session.scalars(select(Rectification).where(Rectification.case_id == case_id)).first()


def rectifications_of(session: Session, case_ids: Sequence[int]) -> dict[int, Rectification]:
    if not case_ids:
        return {}
    rows = session.scalars(select(Rectification).where(Rectification.case_id.in_(case_ids)))
    return {r.case_id: r for r in rows}


def rectification(session: Session, rect_id: int, *, for_update: bool = False) -> Rectification | None:
    stmt = select(Rectification).where(Rectification.id == rect_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def rectifications(
    session: Session,
    *,
    states: Sequence[str] | None,
    units: set[str] | None,
    limit: int,
    offset: int = 0,
    overdue_on: dt.date | None = None,
    appeal: str | None = None,
) -> list[Rectification]:
    """Rectifications, those still to act on first (by their deadline), then the finished ones newest first;
    ``overdue_on``: only those whose return call or rectification is overdue on that day."""
    stmt = select(Rectification)
    if states:
        stmt = stmt.where(Rectification.state.in_(states))
    if units is not None:
        stmt = stmt.where(Rectification.unit.in_(sorted(units)))
    if appeal is not None:
        stmt = stmt.where(Rectification.appeal == appeal)
    if overdue_on is not None:
        stmt = stmt.where(
            Rectification.appeal != "pending",
            or_(
                and_(Rectification.state == "open", Rectification.contact_due < overdue_on),
                and_(Rectification.state.in_(("open", "contacted")), Rectification.rectify_due < overdue_on),
            ),
        )
    finished = case((Rectification.state.in_(("closed", "void", "rectified")), 1), else_=0)
    stmt = stmt.order_by(finished, Rectification.rectify_due, Rectification.id.desc())
    return list(session.scalars(stmt.offset(offset).limit(limit)))


def has_event(session: Session, rect_id: int, action: str) -> bool:
    stmt = select(RectificationEvent.id).where(
        RectificationEvent.rectification_id == rect_id, RectificationEvent.action == action
    )
    return session.scalars(stmt.limit(1)).first() is not None


def rectification_events(session: Session, rect_id: int) -> list[RectificationEvent]:
    stmt = (
        select(RectificationEvent)
        .where(RectificationEvent.rectification_id == rect_id)
        .order_by(RectificationEvent.id)
    )
    return list(session.scalars(stmt))


def cases_of_owner(session: Session, account_id: int, *, limit: int) -> list[Case]:
    stmt = (
        select(Case)
        .where(Case.owner_account_id == account_id, Case.closed_at.is_not(None))
        .order_by(Case.closed_at.desc(), Case.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def due_reminders(session: Session, now: dt.datetime, *, max_reminders: int, limit: int) -> list[Case]:
    stmt = (
        select(Case)
        .where(
            Case.kind == "application",
            Case.invited_at.is_not(None),
            Case.rated_at.is_(None),
            Case.rectification.is_(None),
            Case.rate_until > now,
            Case.reminders < max_reminders,
        )
        .order_by(Case.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def settings(session: Session) -> dict[str, int]:
    return {s.key: s.value for s in session.scalars(select(Setting))}


def setting_row(session: Session, key: str) -> Setting | None:
    return session.get(Setting, key)


def targets(session: Session) -> list[Target]:
    return list(session.scalars(select(Target).order_by(Target.indicator, Target.scope, Target.scope_value)))


def target(session: Session, indicator: str, scope: str, scope_value: str) -> Target | None:
    stmt = select(Target).where(
        Target.indicator == indicator, Target.scope == scope, Target.scope_value == scope_value
    )
    return session.scalars(stmt).first()


def alert(session: Session, indicator: str, scope: str, scope_value: str, period: str) -> Alert | None:
    stmt = select(Alert).where(
        Alert.indicator == indicator,
        Alert.scope == scope,
        Alert.scope_value == scope_value,
        Alert.period == period,
    )
    return session.scalars(stmt).first()


def alerts(session: Session, *, open_only: bool, limit: int) -> list[Alert]:
    stmt = select(Alert)
    if open_only:
        stmt = stmt.where(Alert.acknowledged_at.is_(None))
    return list(session.scalars(stmt.order_by(Alert.raised_at.desc(), Alert.id.desc()).limit(limit)))


def publications(session: Session) -> list[Publication]:
    return list(session.scalars(select(Publication).order_by(Publication.period.desc())))


def publication(session: Session, period: str) -> Publication | None:
    return session.scalars(select(Publication).where(Publication.period == period)).first()


# --- indicators -----------------------------------------------------------------------------------------


def conditions(filters: Filters) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [Case.closed_on.is_not(None)]
    if filters.date_from is not None:
        conds.append(Case.closed_on >= filters.date_from)
    if filters.date_to is not None:
        conds.append(Case.closed_on <= filters.date_to)
    if filters.department:
        conds.append(Case.department == filters.department)
    if filters.item_code:
        conds.append(Case.item_code == filters.item_code)
    if filters.region_code:
        conds.append(Case.region_code == filters.region_code)
    if filters.kind is not None:
        conds.append(Case.kind == filters.kind.value)
    if filters.channel:
        conds.append(Case.channel == filters.channel)
    return conds


#: What indicators group by: the key column and the label column.
GROUPS: dict[str, tuple[Any, Any]] = {
    "department": (Case.department, Case.department),
    "item": (Case.item_code, Case.item_name),
    "region": (Case.region_code, Case.region),
    "month": (Case.closed_month, Case.closed_month),
    "kind": (Case.kind, Case.kind),
    "channel": (Case.channel, Case.channel),
}


def _n(cond: ColumnElement[bool]) -> Any:
    return func.sum(case((cond, 1), else_=0))


#: Drill-down conditions: which cases behind an indicator.
ONLY: dict[str, ColumnElement[bool]] = {
    "rated": Case.rated_at.is_not(None),
    "bad": Case.first_level <= 2,
    "satisfied": Case.level >= 3,
    "late": Case.on_time.is_(False),
    "supplemented": Case.supplements > 0,
    "not_first_pass": Case.first_pass.is_(False),
    "visited": Case.visits > 0,
    "rectification_open": Case.rectification == "open",
    "rectified": Case.rectification == "rectified",
    "unrated": and_(Case.rated_at.is_(None), Case.kind != "visit"),
    "counted": Case.level.is_not(None),
    "first_counted": Case.first_level.is_not(None),
    "with_limit": Case.on_time.is_not(None),
    #: Cases that exist whether or not anyone rates them (a consultation becomes a case when rated).
    "rateable": Case.kind != "consultation",
    "rateable_rated": and_(Case.kind != "consultation", Case.rated_at.is_not(None)),
}


def aggregates(session: Session, filters: Filters, dims: Sequence[str]) -> list[dict[str, Any]]:
    """One row per combination of the groupings ``dims`` (keys ``g_<dim>``, labels ``l_<dim>``) and number
    of working days (``w``), with the counts and sums every indicator is made of: one scan of the fact
    table gives every indicator of every group of each grouping, and the histogram of working days per
    group gives their percentiles exactly."""
    if session.get_bind().dialect.name == "postgresql":
        # The grouping's hash table of a district-year stays in memory rather than spilling to disk.
        session.execute(text("SET LOCAL work_mem = '64MB'"))
    keys = [GROUPS[d][0] for d in dims]
    is_app = Case.kind == "application"
    cols = [
        *[GROUPS[d][0].label(f"g_{d}") for d in dims],
        *[func.max(GROUPS[d][1]).label(f"l_{d}") for d in dims],
        Case.work_days.label("w"),
        func.count().label("cases"),
        _n(is_app).label("applications"),
        _n(Case.on_time.is_(True)).label("on_time"),
        func.count(Case.on_time).label("on_time_known"),
        _n(and_(is_app, Case.channel.in_(ONLINE_CHANNELS))).label("online"),
        func.sum(case((is_app, Case.visits), else_=0)).label("visits"),
        func.sum(Case.materials_total).label("materials_total"),
        func.sum(Case.materials_exempted).label("materials_exempted"),
        _n(Case.first_pass.is_(True)).label("first_pass"),
        func.count(Case.first_pass).label("first_pass_known"),
        func.count(Case.rated_at).label("rated"),
        func.count(Case.level).label("counted"),
        _n(Case.level >= 3).label("satisfied"),
        func.count(Case.first_level).label("first_counted"),
        _n(Case.first_level <= 2).label("bad"),
        _n(Case.rectification == "rectified").label("rectified"),
        _n(Case.rectified_on_time.is_(True)).label("rectified_on_time"),
        *[_n(Case.level == k).label(f"level_{k}") for k in range(1, 6)],
        *[_n(cond).label(f"only_{name}") for name, cond in ONLY.items()],
    ]
    stmt: Select[Any] = select(*cols).where(*conditions(filters)).group_by(*keys, Case.work_days)
    return [dict(r._mapping) for r in session.execute(stmt)]


#: Factors the pain-point analysis splits rated cases by: name → SQL expression of the value.
def factors() -> dict[str, Any]:
    return {
        "item": Case.item_name,
        "department": Case.department,
        "channel": Case.channel,
        "kind": Case.kind,
        "overrun": case(
            (Case.on_time.is_(False), "late"), (Case.on_time.is_(True), "on_time"), else_="no_limit"
        ),
        "supplement": case((Case.supplements > 0, "yes"), else_="no"),
        "precheck_findings": case((Case.precheck_findings > 0, "yes"), else_="no"),
        "visits": case((Case.visits >= 2, "2+"), (Case.visits == 1, "1"), else_="0"),
        "longest_step": Case.longest_step,
        "work_days": case(
            (Case.work_days.is_(None), "unknown"),
            (Case.work_days <= 5, "0-5"),
            (Case.work_days <= 10, "6-10"),
            (Case.work_days <= 20, "11-20"),
            else_="21+",
        ),
    }


def factor_groups(session: Session, filters: Filters, expr: Any) -> list[tuple[str, int, int]]:
    """``(value, rated, bad)`` of first ratings per value of a factor."""
    stmt = (
        select(expr.label("v"), func.count(Case.first_level), _n(Case.first_level <= 2))
        .where(*conditions(filters), Case.first_level.is_not(None))
        .group_by(expr)
    )
    return [(str(v if v is not None else ""), int(n or 0), int(b or 0)) for v, n, b in session.execute(stmt)]


def bad_reasons(session: Session, filters: Filters, *, limit: int = 200_000) -> list[list[str]]:
    stmt = (
        select(Rating.reasons)
        .join(Case, Case.id == Rating.case_id)
        .where(
            *conditions(filters),
            Rating.round == "initial",
            Rating.level <= 2,
            Rating.excluded.is_(False),
        )
        .limit(limit)
    )
    return [list(r or []) for r in session.scalars(stmt)]


def case_page(
    session: Session,
    filters: Filters,
    *,
    only: str | None,
    level: int | None,
    page: int,
    per_page: int,
    group: tuple[str, str] | None = None,
) -> tuple[int, list[Case]]:
    conds = conditions(filters)
    if only is not None:
        conds.append(ONLY[only])
    if level is not None:
        conds.append(Case.level == level)
    if group is not None:
        conds.append(GROUPS[group[0]][0] == group[1])
    total = int(session.scalar(select(func.count()).select_from(Case).where(*conds)) or 0)
    stmt = (
        select(Case)
        .where(*conds)
        .order_by(Case.closed_on.desc(), Case.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return total, list(session.scalars(stmt))


def case_stream(session: Session, filters: Filters, *, only: str | None, batch: int = 5000) -> Any:
    """Every case of the filter in id order as plain rows, fetched in batches (CSV export of a
    district-year without holding it in memory or in the session)."""
    conds = conditions(filters)
    if only is not None:
        conds.append(ONLY[only])
    table = Case.__table__
    last = 0
    while True:
        stmt = select(*table.c).where(*conds, Case.id > last).order_by(Case.id).limit(batch)
        rows = [r._mapping for r in session.execute(stmt)]
        if not rows:
            return
        yield from rows
        last = rows[-1]["id"]


def distinct_values(session: Session, column: Any, label: Any, *, limit: int = 500) -> list[tuple[str, str]]:
    stmt = (
        select(column, func.max(label))
        .where(column.is_not(None), Case.closed_on.is_not(None))
        .group_by(column)
        .order_by(column)
        .limit(limit)
    )
    return [(str(k), str(v or k)) for k, v in session.execute(stmt)]
