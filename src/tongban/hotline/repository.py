"""All SQL of the hotline domain. Rates and lists are plain aggregates over ``hotline_ticket``: the same
statements run on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from tongban.hotline.models import (
    Attachment,
    Category,
    DispatchRule,
    Duplicate,
    Event,
    Example,
    Model,
    Service,
    Setting,
    Snapshot,
    Ticket,
    Unit,
)

# --- tickets ---------------------------------------------------------------------------------------------


def ticket_by_ref(session: Session, ref: str, *, for_update: bool = False) -> Ticket | None:
    stmt = select(Ticket).where(Ticket.ref == ref)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def ticket_by_token(session: Session, token: str) -> Ticket | None:
    return session.scalars(select(Ticket).where(Ticket.token == token)).first()


def tickets_by_ids(session: Session, ids: Iterable[int]) -> dict[int, Ticket]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return {t.id: t for t in session.scalars(select(Ticket).where(Ticket.id.in_(wanted)))}


def refs_of(session: Session, ids: Iterable[int]) -> dict[int, str]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.execute(select(Ticket.id, Ticket.ref).where(Ticket.id.in_(wanted)))
    return {i: r or "" for i, r in rows}


def children_of(session: Session, ticket_id: int, *, for_update: bool = False) -> list[Ticket]:
    stmt = select(Ticket).where(Ticket.merged_into_id == ticket_id).order_by(Ticket.id)
    if for_update:
        stmt = stmt.with_for_update()
    return list(session.scalars(stmt))


@dataclass(frozen=True)
class TicketQuery:
    statuses: Sequence[str] = ()
    units: Sequence[str] | None = None
    enterprise: bool | None = None
    overdue_at: dt.datetime | None = None
    escalated: bool | None = None
    region_code: str | None = None
    category_prefix: str | None = None
    channel: str | None = None
    service_codes: Sequence[str] = ()
    refs: Sequence[str] = ()
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None
    requester_account_id: int | None = None
    text: str | None = None


def _where(q: TicketQuery) -> list[ColumnElement[bool]]:
    cond: list[ColumnElement[bool]] = []
    if q.statuses:
        cond.append(Ticket.status.in_(list(q.statuses)))
    if q.units is not None:
        unit_cond: list[ColumnElement[bool]] = [Ticket.lead_unit.in_(list(q.units))]
        cond.append(or_(*unit_cond))
    if q.enterprise is not None:
        cond.append(Ticket.enterprise.is_(q.enterprise))
    if q.overdue_at is not None:
        cond.append(and_(Ticket.due_at.is_not(None), Ticket.due_at < q.overdue_at))
    if q.escalated is not None:
        cond.append(Ticket.escalated_at.is_not(None) if q.escalated else Ticket.escalated_at.is_(None))
    if q.region_code:
        cond.append(Ticket.region_code.startswith(q.region_code, autoescape=True))
    if q.category_prefix:
        cond.append(
            or_(
                Ticket.category_path == q.category_prefix,
                Ticket.category_path.startswith(q.category_prefix + "/", autoescape=True),
            )
        )
    if q.channel:
        cond.append(Ticket.channel == q.channel)
    if q.service_codes:
        cond.append(Ticket.service_code.in_(list(q.service_codes)))
    if q.refs:
        cond.append(Ticket.ref.in_(list(q.refs)))
    if q.created_from is not None:
        cond.append(Ticket.created_at >= q.created_from)
    if q.created_to is not None:
        cond.append(Ticket.created_at < q.created_to)
    if q.requester_account_id is not None:
        cond.append(Ticket.requester_account_id == q.requester_account_id)
    if q.text:
        pattern = f"%{q.text}%"
        cond.append(
            or_(
                Ticket.subject.like(pattern),
                Ticket.body.like(pattern),
                Ticket.address.like(pattern),
                Ticket.ref == q.text,
            )
        )
    return cond


def find_tickets(
    session: Session, q: TicketQuery, *, offset: int, limit: int, order: str = "due"
) -> tuple[list[Ticket], int]:
    cond = _where(q)
    total = int(session.scalar(select(func.count()).select_from(Ticket).where(*cond)) or 0)
    stmt = select(Ticket).where(*cond)
    if order == "due":
        stmt = stmt.order_by(Ticket.due_at.is_(None), Ticket.due_at, Ticket.id)
    elif order == "new":
        stmt = stmt.order_by(Ticket.id.desc())
    else:
        stmt = stmt.order_by(Ticket.id)
    return list(session.scalars(stmt.offset(offset).limit(limit))), total


def tickets_due_for_check(session: Session, statuses: Sequence[str], before: dt.datetime) -> list[Ticket]:
    """Tickets a unit holds whose warning or escalation may be due (the deadline job)."""
    stmt = (
        select(Ticket)
        .where(
            Ticket.status.in_(list(statuses)),
            Ticket.due_at.is_not(None),
            or_(Ticket.warned_at.is_(None), Ticket.escalated_at.is_(None)),
            Ticket.dispatched_at.is_not(None),
            Ticket.dispatched_at < before,
        )
        .order_by(Ticket.due_at)
    )
    return list(session.scalars(stmt))


@dataclass(frozen=True)
class DuplicateCandidate:
    """An open ticket a new one may duplicate, as the duplicate check compares it."""

    id: int
    subject: str
    body: str
    address: str
    service_code: str | None
    lat: float | None
    lon: float | None
    created_at: dt.datetime


def duplicate_candidates(
    session: Session,
    *,
    since: dt.datetime,
    exclude_id: int,
    place_keys: Sequence[str],
    region_code: str | None,
    statuses: Sequence[str],
    limit: int = 50,
) -> list[DuplicateCandidate]:
    """Open tickets since ``since`` at the same places (grid cells around the coordinates, or the road of
    the address), newest first; in the same district when neither is known. Uses the place index."""
    if place_keys:
        near: ColumnElement[bool] = Ticket.place_key.in_(list(place_keys))
    elif region_code is not None:
        near = and_(Ticket.region_code == region_code, Ticket.place_key == "")
    else:
        return []
    stmt = (
        select(
            Ticket.id,
            Ticket.subject,
            Ticket.body,
            Ticket.address,
            Ticket.service_code,
            Ticket.lat,
            Ticket.lon,
            Ticket.created_at,
        )
        .where(
            near,
            Ticket.created_at >= since,
            Ticket.id != exclude_id,
            Ticket.status.in_(list(statuses)),
            Ticket.merged_into_id.is_(None),
        )
        .order_by(Ticket.id.desc())
        .limit(limit)
    )
    return [
        DuplicateCandidate(
            id=int(r.id),
            subject=r.subject or "",
            body=r.body or "",
            address=r.address or "",
            service_code=r.service_code,
            lat=r.lat,
            lon=r.lon,
            created_at=r.created_at,
        )
        for r in session.execute(stmt)
    ]


def area_names(session: Session) -> list[tuple[str, str]]:
    """``(name, region_code)`` of the active units of an area (districts, street offices): those that own
    a region."""
    stmt = select(Unit.name, Unit.region_code).where(
        Unit.active.is_(True), Unit.kind.in_(("district", "street")), Unit.region_code.is_not(None)
    )
    return [(name or "", code or "") for name, code in session.execute(stmt)]


def events_of(session: Session, ticket_id: int) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.ticket_id == ticket_id).order_by(Event.id)))


def public_events_of(session: Session, ticket_ids: Sequence[int]) -> dict[int, list[Event]]:
    out: dict[int, list[Event]] = {i: [] for i in ticket_ids}
    if ticket_ids:
        stmt = (
            select(Event)
            .where(Event.ticket_id.in_(list(ticket_ids)), Event.public.is_(True))
            .order_by(Event.ticket_id, Event.id)
        )
        for e in session.scalars(stmt):
            out[e.ticket_id].append(e)
    return out


def attachments_of(session: Session, ticket_id: int) -> list[Attachment]:
    stmt = select(Attachment).where(Attachment.ticket_id == ticket_id).order_by(Attachment.id)
    return list(session.scalars(stmt))


def duplicates_of(session: Session, ticket_id: int) -> list[Duplicate]:
    stmt = (
        select(Duplicate)
        .where(or_(Duplicate.ticket_id == ticket_id, Duplicate.original_id == ticket_id))
        .order_by(Duplicate.score.desc(), Duplicate.id)
    )
    return list(session.scalars(stmt))


def proposed_duplicates(session: Session, *, offset: int, limit: int) -> tuple[list[Duplicate], int]:
    cond = Duplicate.status == "proposed"
    total = int(session.scalar(select(func.count()).select_from(Duplicate).where(cond)) or 0)
    stmt = select(Duplicate).where(cond).order_by(Duplicate.id.desc()).offset(offset).limit(limit)
    return list(session.scalars(stmt)), total


def duplicate(session: Session, duplicate_id: int, *, for_update: bool = False) -> Duplicate | None:
    stmt = select(Duplicate).where(Duplicate.id == duplicate_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def duplicate_pair(session: Session, ticket_id: int, original_id: int) -> Duplicate | None:
    stmt = select(Duplicate).where(Duplicate.ticket_id == ticket_id, Duplicate.original_id == original_id)
    return session.scalars(stmt).first()


# --- taxonomy, units, catalogue, services --------------------------------------------------------------


def categories(session: Session, *, active_only: bool = False) -> list[Category]:
    stmt = select(Category).order_by(Category.path)
    if active_only:
        stmt = stmt.where(Category.active.is_(True))
    return list(session.scalars(stmt))


def category(session: Session, path: str) -> Category | None:
    return session.scalars(select(Category).where(Category.path == path)).first()


def category_prefix_exists(session: Session, prefix: str) -> bool:
    stmt = (
        select(func.count())
        .select_from(Category)
        .where(
            Category.active.is_(True),
            or_(Category.path == prefix, Category.path.startswith(prefix + "/", autoescape=True)),
        )
    )
    return bool(session.scalar(stmt))


def units(session: Session, *, active_only: bool = False) -> list[Unit]:
    stmt = select(Unit).order_by(Unit.code)
    if active_only:
        stmt = stmt.where(Unit.active.is_(True))
    return list(session.scalars(stmt))


def unit(session: Session, code: str) -> Unit | None:
    return session.get(Unit, code)


def rules(session: Session, *, active_only: bool = False) -> list[DispatchRule]:
    stmt = select(DispatchRule).order_by(DispatchRule.category_path, DispatchRule.region_code)
    if active_only:
        stmt = stmt.where(DispatchRule.active.is_(True))
    return list(session.scalars(stmt))


def rule(session: Session, rule_id: int) -> DispatchRule | None:
    return session.get(DispatchRule, rule_id)


def rule_for_scope(session: Session, category_path: str, region_code: str) -> DispatchRule | None:
    stmt = select(DispatchRule).where(
        DispatchRule.category_path == category_path, DispatchRule.region_code == region_code
    )
    return session.scalars(stmt).first()


def services(session: Session, *, active_only: bool = True) -> list[Service]:
    stmt = select(Service).order_by(Service.code)
    if active_only:
        stmt = stmt.where(Service.active.is_(True))
    return list(session.scalars(stmt))


def service(session: Session, code: str) -> Service | None:
    return session.get(Service, code)


# --- settings, models, examples, snapshots -------------------------------------------------------------


def settings(session: Session) -> dict[str, Any]:
    return {key: value for key, value in session.execute(select(Setting.key, Setting.value))}


def setting_row(session: Session, key: str) -> Setting | None:
    return session.get(Setting, key)


def active_model(session: Session) -> Model | None:
    stmt = select(Model).where(Model.active.is_(True)).order_by(Model.id.desc()).limit(1)
    return session.scalars(stmt).first()


def active_model_id(session: Session) -> int | None:
    stmt = select(Model.id).where(Model.active.is_(True)).order_by(Model.id.desc()).limit(1)
    value = session.scalar(stmt)
    return int(value) if value is not None else None


def active_model_key(session: Session) -> tuple[int, str, int] | None:
    """``(id, created_at, examples + tickets)`` of the active model: what identifies its content."""
    stmt = (
        select(Model.id, Model.created_at, Model.examples + Model.tickets)
        .where(Model.active.is_(True))
        .order_by(Model.id.desc())
        .limit(1)
    )
    row = session.execute(stmt).first()
    return (int(row[0]), str(row[1]), int(row[2])) if row is not None else None


def model_by_id(session: Session, model_id: int) -> Model | None:
    return session.get(Model, model_id)


def models(session: Session, limit: int = 20) -> list[Model]:
    stmt = select(Model).order_by(Model.id.desc()).limit(limit)
    return list(session.scalars(stmt))


def deactivate_models(session: Session) -> None:
    for m in session.scalars(select(Model).where(Model.active.is_(True))):
        m.active = False


def examples(session: Session) -> list[Example]:
    return list(session.scalars(select(Example).order_by(Example.id)))


def example_sources(session: Session, sources: Sequence[str]) -> set[str]:
    if not sources:
        return set()
    stmt = select(Example.source).where(Example.source.in_(list(sources)))
    return set(session.scalars(stmt))


def confirmed_tickets(session: Session) -> list[tuple[int, str, str, str]]:
    """``(id, subject, body, category_path)`` of every ticket whose category an operator confirmed."""
    stmt = (
        select(Ticket.id, Ticket.subject, Ticket.body, Ticket.category_path)
        .where(Ticket.category_confirmed.is_(True), Ticket.category_path != "")
        .order_by(Ticket.id)
    )
    return [(int(i), s or "", b or "", c) for i, s, b, c in session.execute(stmt)]


def confirmed_since(session: Session, ticket_id: int) -> int:
    stmt = (
        select(func.count())
        .select_from(Ticket)
        .where(Ticket.category_confirmed.is_(True), Ticket.id > ticket_id)
    )
    return int(session.scalar(stmt) or 0)


def snapshot(session: Session, kind: str, period: str) -> Snapshot | None:
    stmt = select(Snapshot).where(Snapshot.kind == kind, Snapshot.period == period)
    return session.scalars(stmt).first()


def snapshots(session: Session, kind: str, limit: int = 50) -> list[Snapshot]:
    stmt = select(Snapshot).where(Snapshot.kind == kind).order_by(Snapshot.period.desc()).limit(limit)
    return list(session.scalars(stmt))


# --- the three rates -------------------------------------------------------------------------------------


def rate_counts(
    session: Session,
    *,
    group: Any,
    created_from: dt.datetime | None,
    created_to: dt.datetime | None,
    satisfied_levels: Sequence[int],
    units: Sequence[str] | None = None,
) -> list[tuple[Any, int, int, int, int, int, int]]:
    """Per group: ``(key, dispatched, responded in time, revisited, resolved, rated, satisfied)``.

    A ticket counts for the unit that replied to it (else the unit holding it): dispatched tickets for the
    response rate; return-visited ones for resolution; rated ones for satisfaction.
    """
    cond: list[ColumnElement[bool]] = [Ticket.dispatch_count > 0]
    if created_from is not None:
        cond.append(Ticket.created_at >= created_from)
    if created_to is not None:
        cond.append(Ticket.created_at < created_to)
    unit_col = func.coalesce(Ticket.replied_by_unit, Ticket.lead_unit)
    if units is not None:
        cond.append(unit_col.in_(list(units)))
    one = 1
    cols: list[Any] = [
        func.count(),
        func.sum(case((Ticket.responded_on_time.is_(True), one), else_=0)),
        func.sum(case((Ticket.resolved.is_not(None), one), else_=0)),
        func.sum(case((Ticket.resolved.is_(True), one), else_=0)),
        func.sum(case((Ticket.satisfaction.is_not(None), one), else_=0)),
        func.sum(case((Ticket.satisfaction.in_(list(satisfied_levels)), one), else_=0)),
    ]
    if group is None:
        row = session.execute(select(*cols).where(*cond)).one()
        c = [int(v or 0) for v in row]
        return [("", c[0], c[1], c[2], c[3], c[4], c[5])]
    stmt = select(group.label("key"), *cols).where(*cond).group_by(group).order_by(group)
    out: list[tuple[Any, int, int, int, int, int, int]] = []
    for r in session.execute(stmt):
        c = [int(v or 0) for v in r[1:]]
        out.append((r[0], c[0], c[1], c[2], c[3], c[4], c[5]))
    return out


def unit_column() -> ColumnElement[Any]:
    return func.coalesce(Ticket.replied_by_unit, Ticket.lead_unit)


# --- assistant -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnsweredTicket:
    """A ticket with a reply, as the operator's assistant compares it (no personal data)."""

    id: int
    ref: str
    subject: str
    body: str
    category_path: str
    status: str
    reply: str
    replied_at: dt.datetime | None
    replied_by_unit: str | None
    resolved: bool | None
    satisfaction: int | None


def answered_texts(
    session: Session,
    *,
    exclude_id: int,
    statuses: Sequence[str],
    level1: str | None,
    limit: int = 2000,
) -> list[tuple[int, str]]:
    """``(id, subject + " " + body)`` of the newest ``limit`` tickets in ``statuses`` that have a reply,
    of the level-1 category ``level1`` when given (the candidates of the assistant's similar tickets)."""
    cond: list[ColumnElement[bool]] = [
        Ticket.status.in_(list(statuses)),
        Ticket.reply != "",
        Ticket.id != exclude_id,
    ]
    if level1:
        cond.append(
            or_(
                Ticket.category_path == level1,
                Ticket.category_path.startswith(level1 + "/", autoescape=True),
            )
        )
    stmt = (
        select(Ticket.id, Ticket.subject, Ticket.body)
        .where(*cond)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(limit)
    )
    return [(int(i), f"{subject or ''} {body or ''}") for i, subject, body in session.execute(stmt)]


def answered_tickets(session: Session, ids: Sequence[int]) -> list[AnsweredTicket]:
    """The tickets ``ids`` with their replies, in the order given (unknown ids left out)."""
    if not ids:
        return []
    stmt = select(
        Ticket.id,
        Ticket.ref,
        Ticket.subject,
        Ticket.body,
        Ticket.category_path,
        Ticket.status,
        Ticket.reply,
        Ticket.replied_at,
        Ticket.replied_by_unit,
        Ticket.resolved,
        Ticket.satisfaction,
    ).where(Ticket.id.in_(list(ids)))
    found = {
        int(r.id): AnsweredTicket(
            id=int(r.id),
            ref=r.ref or "",
            subject=r.subject or "",
            body=r.body or "",
            category_path=r.category_path or "",
            status=r.status,
            reply=r.reply or "",
            replied_at=r.replied_at,
            replied_by_unit=r.replied_by_unit,
            resolved=r.resolved,
            satisfaction=r.satisfaction,
        )
        for r in session.execute(stmt)
    }
    return [found[i] for i in ids if i in found]


# --- analysis --------------------------------------------------------------------------------------------
# Hotspots and the sentiment index (tongban.hotline.analysis): every query is one grouped aggregate over the
# tickets received in a window of periods; the period of a ticket is a CASE on ``created_at`` against the
# periods' bounds (UTC instants computed in Python from city days), so the same statement runs on SQLite
# and PostgreSQL and uses the ``created_at`` index.


def _period_of(bounds: Sequence[dt.datetime], lo: int = 0, hi: int | None = None) -> ColumnElement[Any]:
    """The index ``i`` of the period ``bounds[i] <= created_at < bounds[i + 1]``: a balanced tree of CASEs
    (log2 comparisons a row). Rows outside ``bounds[0], bounds[-1]`` must be filtered out by the caller."""
    from sqlalchemy import Integer, literal_column

    hi = len(bounds) - 1 if hi is None else hi
    if hi - lo <= 1:
        return literal_column(str(int(lo)), Integer)
    mid = (lo + hi) // 2
    earlier, later = _period_of(bounds, lo, mid), _period_of(bounds, mid, hi)
    return case((Ticket.created_at < bounds[mid], earlier), else_=later)


def _counted(bounds: Sequence[dt.datetime], excluded_statuses: Sequence[str]) -> list[ColumnElement[bool]]:
    cond: list[ColumnElement[bool]] = [Ticket.created_at >= bounds[0], Ticket.created_at < bounds[-1]]
    if excluded_statuses:
        cond.append(Ticket.status.not_in(list(excluded_statuses)))
    return cond


@dataclass(frozen=True)
class WindowCount:
    """Tickets of one district × category path × period of the window, with their return visits."""

    region: str
    path: str
    period: int
    tickets: int
    rated: int
    dissatisfied: int
    revisited: int
    unresolved: int


def analysis_window_counts(
    session: Session,
    bounds: Sequence[dt.datetime],
    *,
    excluded_statuses: Sequence[str],
    dissatisfied_levels: Sequence[int],
) -> list[WindowCount]:
    """Per district (``""``: unknown), category path and period ``i`` (``bounds[i]`` to ``bounds[i + 1]``):
    tickets received, rated on the return visit, rated in ``dissatisfied_levels``, revisited, unresolved."""
    inner = (
        select(
            func.coalesce(Ticket.region_code, "").label("region"),
            func.coalesce(Ticket.category_path, "").label("path"),
            _period_of(bounds).label("period"),
            Ticket.satisfaction.label("satisfaction"),
            Ticket.resolved.label("resolved"),
        )
        .where(*_counted(bounds, excluded_statuses))
        .subquery()
    )
    levels = list(dissatisfied_levels) or [-1]
    stmt = select(
        inner.c.region,
        inner.c.path,
        inner.c.period,
        func.count(),
        func.sum(case((inner.c.satisfaction.is_not(None), 1), else_=0)),
        func.sum(case((inner.c.satisfaction.in_(levels), 1), else_=0)),
        func.sum(case((inner.c.resolved.is_not(None), 1), else_=0)),
        func.sum(case((inner.c.resolved.is_(False), 1), else_=0)),
    ).group_by(inner.c.region, inner.c.path, inner.c.period)
    return [
        WindowCount(str(r[0]), str(r[1]), int(r[2]), *(int(v or 0) for v in r[3:]))
        for r in session.execute(stmt)
    ]


def analysis_place_counts(
    session: Session,
    bounds: Sequence[dt.datetime],
    *,
    excluded_statuses: Sequence[str],
    min_count: int,
) -> list[tuple[str, str, int, int]]:
    """``(place_key, district, period, tickets)`` over the window, for the places with at least ``min_count``
    tickets in the last period (the others cannot be hotspots)."""
    last = [bounds[-2], bounds[-1]]
    busy = (
        select(Ticket.place_key)
        .where(*_counted(last, excluded_statuses), Ticket.place_key != "")
        .group_by(Ticket.place_key)
        .having(func.count() >= min_count)
    )
    inner = (
        select(
            Ticket.place_key.label("place"),
            func.coalesce(Ticket.region_code, "").label("region"),
            _period_of(bounds).label("period"),
        )
        .where(*_counted(bounds, excluded_statuses), Ticket.place_key.in_(busy))
        .subquery()
    )
    stmt = select(inner.c.place, inner.c.region, inner.c.period, func.count()).group_by(
        inner.c.place, inner.c.region, inner.c.period
    )
    return [(str(p), str(r), int(i), int(n)) for p, r, i, n in session.execute(stmt)]


def analysis_recurring_counts(
    session: Session,
    bounds: Sequence[dt.datetime],
    *,
    excluded_statuses: Sequence[str],
    min_weeks: int,
) -> list[tuple[str, str, str, int, int]]:
    """``(place_key, category path, district, week, tickets)`` over the weeks of ``bounds``, for the places
    with tickets in at least ``min_weeks`` of them (a necessary condition of a recurring problem there)."""
    weekly = (
        select(
            Ticket.place_key.label("place"),
            func.coalesce(Ticket.category_path, "").label("path"),
            func.coalesce(Ticket.region_code, "").label("region"),
            _period_of(bounds).label("week"),
        )
        .where(*_counted(bounds, excluded_statuses), Ticket.place_key != "")
        .cte("analysis_weekly")
    )
    steady = (
        select(weekly.c.place)
        .group_by(weekly.c.place)
        .having(func.count(weekly.c.week.distinct()) >= min_weeks)
    )
    stmt = (
        select(weekly.c.place, weekly.c.path, weekly.c.region, weekly.c.week, func.count())
        .where(weekly.c.place.in_(steady))
        .group_by(weekly.c.place, weekly.c.path, weekly.c.region, weekly.c.week)
    )
    return [(str(p), str(c), str(r), int(w), int(n)) for p, c, r, w, n in session.execute(stmt)]


def analysis_place_topics(
    session: Session,
    start: dt.datetime,
    end: dt.datetime,
    place_keys: Sequence[str],
    *,
    excluded_statuses: Sequence[str],
) -> list[tuple[str, str, int]]:
    """``(place_key, category path, tickets)`` received from ``start`` to ``end`` at the given places."""
    if not place_keys:
        return []
    stmt = (
        select(Ticket.place_key, Ticket.category_path, func.count())
        .where(*_counted([start, end], excluded_statuses), Ticket.place_key.in_(list(place_keys)))
        .group_by(Ticket.place_key, Ticket.category_path)
    )
    return [(str(p), str(c), int(n)) for p, c, n in session.execute(stmt)]


def save_snapshot(
    session: Session,
    *,
    kind: str,
    period: str,
    params: dict[str, Any],
    result: dict[str, Any],
    computed_at: dt.datetime,
    seconds: float,
) -> Snapshot:
    """Store the result of ``kind`` for ``period``, replacing an earlier one (one row per kind and period,
    also when two runs race: the loser updates the winner's row)."""
    from sqlalchemy.exc import IntegrityError

    row = snapshot(session, kind, period)
    if row is None:
        try:
            with session.begin_nested():
                row = Snapshot(
                    kind=kind,
                    period=period,
                    params=params,
                    result=result,
                    computed_at=computed_at,
                    seconds=seconds,
                )
                session.add(row)
            return row
        except IntegrityError:
            row = snapshot(session, kind, period)
            if row is None:  # pragma: no cover - the conflicting row is there
                raise
    row.params = params
    row.result = result
    row.computed_at = computed_at
    row.seconds = seconds
    session.flush()
    return row


def snapshots_of_length(
    session: Session, kind: str, period_length: int, *, until: str | None = None, limit: int = 50
) -> list[Snapshot]:
    """The newest snapshots of ``kind`` whose period has ``period_length`` characters (10 days, 8 weeks,
    7 months), at or before ``until`` when given, newest first."""
    stmt = select(Snapshot).where(Snapshot.kind == kind, func.length(Snapshot.period) == period_length)
    if until is not None:
        stmt = stmt.where(Snapshot.period <= until)
    return list(session.scalars(stmt.order_by(Snapshot.period.desc()).limit(limit)))


# --- Open311 ---------------------------------------------------------------------------------------------
# (Imports of this section are here so that it is one appended block; they may move to the top.)

from sqlalchemy import delete, insert, update  # noqa: E402
from sqlalchemy.exc import IntegrityError  # noqa: E402

from tongban.hotline.models import ApiKey, ApiKeyWindow  # noqa: E402


def open311_requests(
    session: Session,
    *,
    service_codes: Sequence[str],
    statuses: Sequence[str],
    exclude_statuses: Sequence[str],
    created_from: dt.datetime,
    created_to: dt.datetime,
    offset: int,
    limit: int,
) -> list[Ticket]:
    """Tickets Open311 serves (those with a service code) requested in ``[created_from, created_to]``,
    newest first: the range and the codes use ``ix_hotline_ticket_service_created`` (one code) or
    ``ix_hotline_ticket_created``."""
    cond: list[ColumnElement[bool]] = [Ticket.created_at >= created_from, Ticket.created_at <= created_to]
    if service_codes:
        cond.append(Ticket.service_code.in_(list(service_codes)))
    else:
        cond.append(Ticket.service_code.is_not(None))
    if statuses:
        cond.append(Ticket.status.in_(list(statuses)))
    if exclude_statuses:
        cond.append(Ticket.status.not_in(list(exclude_statuses)))
    stmt = (
        select(Ticket)
        .where(*cond)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def open311_requests_by_refs(session: Session, refs: Sequence[str]) -> list[Ticket]:
    """The tickets Open311 serves among ``refs`` (its ``service_request_id`` list), newest first."""
    wanted = sorted(set(refs))
    if not wanted:
        return []
    stmt = (
        select(Ticket)
        .where(Ticket.ref.in_(wanted), Ticket.service_code.is_not(None))
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
    )
    return list(session.scalars(stmt))


def unit_names_of(session: Session, codes: Iterable[str]) -> dict[str, tuple[str, str]]:
    """``code -> (name, name_en)`` of the units among ``codes``."""
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    rows = session.execute(select(Unit.code, Unit.name, Unit.name_en).where(Unit.code.in_(wanted)))
    return {c: (n, e or "") for c, n, e in rows}


def api_key_by_digest(session: Session, digest: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.digest == digest)).first()


def api_key(session: Session, key_id: int, *, for_update: bool = False) -> ApiKey | None:
    stmt = select(ApiKey).where(ApiKey.id == key_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def api_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def count_api_key_use(session: Session, key_id: int, minute: int) -> int:
    """Count one request of ``key_id`` in ``minute`` and return the minute's count so far.

    Safe under concurrency on SQLite and PostgreSQL: the first request of a minute inserts the row in a
    savepoint; when a concurrent request inserted it first, the unique key refuses the second insert, the
    savepoint is rolled back and the count is incremented instead.
    """
    where = (ApiKeyWindow.key_id == key_id, ApiKeyWindow.minute == minute)
    bump = (
        update(ApiKeyWindow)
        .where(*where)
        .values(count=ApiKeyWindow.count + 1)
        .returning(ApiKeyWindow.count)
        .execution_options(synchronize_session=False)
    )
    for _ in range(5):
        count = session.scalar(bump)
        if count is not None:
            return int(count)
        try:
            with session.begin_nested():
                session.execute(insert(ApiKeyWindow).values(key_id=key_id, minute=minute, count=1))
        except IntegrityError:
            continue  # inserted by a concurrent request meanwhile: count on it
        # A new minute: the windows of earlier minutes are not needed any more.
        session.execute(
            delete(ApiKeyWindow)
            .where(ApiKeyWindow.key_id == key_id, ApiKeyWindow.minute < minute - 1)
            .execution_options(synchronize_session=False)
        )
        return 1
    raise RuntimeError(f"could not count a request of API key {key_id}")  # pragma: no cover


def analysis_first_received(session: Session) -> dt.datetime | None:
    """When the first ticket was received (the start of the data: baseline periods before it are left out)."""
    value = session.scalar(select(func.min(Ticket.created_at)))
    if value is None:
        return None
    if isinstance(value, str):  # SQLite without the column's type in an aggregate
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
