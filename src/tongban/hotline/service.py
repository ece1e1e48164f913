"""The hotline's public functions (12345, 接诉即办): receive, classify, dispatch, handle, return, reply,
revisit and evaluate tickets; the taxonomy, units and dispatch catalogue; duplicates; deadlines; the three
rates; the classifier's models.

Every function takes a session and never commits: one request or job is one transaction, committed at the
edge. Each change bumps the ticket's ``version`` (``If-Match``) and appends an event to its history.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import secrets
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tongban.consult import service as consult
from tongban.core import audit
from tongban.core.auth import Principal, system_principal
from tongban.core.clock import Clock
from tongban.core.crypto import Sealer
from tongban.core.db import UTCDateTime
from tongban.core.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
)
from tongban.core.files import new_file_key
from tongban.hotline import repository as repo
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
    Ticket,
    Unit,
)
from tongban.hotline.models import Ticket as T
from tongban.hotline.schemas import (
    AnswerWrite,
    AttachmentOut,
    CategoryOut,
    CategoryWrite,
    Classification,
    ContactOut,
    DispatchPlan,
    DispatchWrite,
    DuplicateOut,
    EventOut,
    MergeWrite,
    RateReport,
    RateRow,
    ReplyWrite,
    ReturnDecision,
    ReturnWrite,
    RuleOut,
    RuleWrite,
    ServiceOut,
    ServiceWrite,
    SettingsWrite,
    SuggestionOut,
    TicketDetail,
    TicketOut,
    TicketPage,
    TicketWrite,
    UnitOut,
    UnitWrite,
    VisitWrite,
)
from tongban.hotline.vocab import (
    ADMIN,
    ANALYSE,
    CHINA,
    DEFAULTS,
    HANDLE,
    HANDLE_ANY,
    INTAKE,
    SUPERVISE,
    WITH_UNIT,
    Channel,
    DeadlineClass,
    Status,
    Urgency,
)
from tongban.intake import service as intake
from tongban.rating import service as rating
from tongban.rating.schemas import CaseWrite as RatingCaseWrite
from tongban.rating.vocab import CaseKind

__all__ = [
    "ADMIN",
    "ANALYSE",
    "HANDLE",
    "HANDLE_ANY",
    "INTAKE",
    "SUPERVISE",
]


# --- errors ----------------------------------------------------------------------------------------------


class WrongStatus(DomainError):
    status = 409
    slug = "ticket-wrong-status"
    title = "The ticket is not in a state that allows this"


class NotYourTicket(DomainError):
    status = 403
    slug = "not-your-ticket"
    title = "The ticket is not held by your unit"


class NoUnit(DomainError):
    status = 409
    slug = "no-responsible-unit"
    title = "No responsible unit found"


class Unclassified(DomainError):
    status = 409
    slug = "ticket-unclassified"
    title = "The ticket has no confirmed category"


class NoModel(DomainError):
    status = 409
    slug = "no-classifier-model"
    title = "No classifier has been trained"


# --- settings --------------------------------------------------------------------------------------------


def current_settings(session: Session) -> dict[str, Any]:
    """Every rule with its default where the centre has not set it (read once per transaction: a request
    asks several times)."""
    transaction = session.get_transaction()
    kept = session.info.get(_SETTINGS_KEY)
    if kept is not None and transaction is not None and kept[0] is transaction:
        return dict(kept[1])
    values = dict(DEFAULTS)
    values.update(repo.settings(session))
    session.info[_SETTINGS_KEY] = (transaction, values)
    return dict(values)


#: Where :func:`current_settings` keeps the rules for the rest of the transaction.
_SETTINGS_KEY = "tongban.hotline.settings"


def update_settings(
    session: Session, principal: Principal, write: SettingsWrite, *, clock: Clock
) -> dict[str, Any]:
    principal.require(ADMIN)
    changes = write.model_dump(exclude_none=True)
    if not changes:
        raise InvalidInput("nothing to change")
    now = clock.now()
    for key, value in changes.items():
        if isinstance(value, dict):
            merged = dict(DEFAULTS[key])
            merged.update(current_settings(session).get(key, {}))
            merged.update(value)
            value = merged
        row = repo.setting_row(session, key)
        if row is None:
            session.add(Setting(key=key, value=value, updated_at=now, updated_by=principal.username))
        else:
            row.value = value
            row.updated_at = now
            row.updated_by = principal.username
    session.info.pop(_SETTINGS_KEY, None)
    if "rate_weights" in changes and sum(current_settings(session)["rate_weights"].values()) <= 0:
        raise InvalidInput("rate_weights: at least one weight must be above 0")
    audit.record(
        session,
        actor=principal,
        action="hotline.settings",
        target_type="hotline",
        target_id="settings",
        clock=clock,
        detail={"changed": sorted(changes)},
    )
    session.flush()
    return current_settings(session)


# --- taxonomy, units, dispatch catalogue, services --------------------------------------------------------


def split_path(path: str) -> list[str]:
    parts = [p.strip() for p in path.split("/")]
    if not 1 <= len(parts) <= 3 or any(not p for p in parts):
        raise InvalidInput(f"category {path!r}: one to three levels separated by '/'")
    return parts


def _category_out(c: Category) -> CategoryOut:
    return CategoryOut(
        path=c.path,
        level1=c.level1,
        level2=c.level2,
        level3=c.level3,
        label_en=c.label_en,
        deadline_class=c.deadline_class,
        active=c.active,
    )


def categories(session: Session, *, active_only: bool = True) -> list[CategoryOut]:
    return [_category_out(c) for c in repo.categories(session, active_only=active_only)]


def put_category(
    session: Session, principal: Principal, write: CategoryWrite, *, clock: Clock
) -> CategoryOut:
    principal.require(ADMIN)
    row = _upsert_category(session, write)
    audit.record(
        session,
        actor=principal,
        action="hotline.category",
        target_type="hotline_category",
        target_id=row.path,
        clock=clock,
        detail={"deadline_class": row.deadline_class, "active": row.active},
    )
    return _category_out(row)


def _upsert_category(session: Session, write: CategoryWrite) -> Category:
    path = "/".join(p for p in (write.level1, write.level2, write.level3) if p)
    row = repo.category(session, path)
    if row is None:
        row = Category(path=path, level1=write.level1, level2=write.level2, level3=write.level3)
        session.add(row)
    row.label_en = write.label_en
    row.deadline_class = write.deadline_class
    row.active = write.active
    session.flush()
    return row


#: Taxonomy words that mark water, power, gas and heating (their tickets get the utility deadline).
_UTILITY = re.compile(r"供水|停水|自来水|供电|停电|用电|电力|燃气|煤气|天然气|供暖|供热|暖气|排水")


def import_taxonomy(session: Session, rows: Iterable[Mapping[str, Any]], *, clock: Clock) -> int:
    """Load taxonomy paths (``level1``, ``level2``, ``level3`` as in ``taxonomy.jsonl``); idempotent.
    Paths about water, power, gas or heating get the utility deadline class unless one is given."""
    count = 0
    for n, raw in enumerate(rows, start=1):
        try:
            levels = [str(raw.get(k) or "").strip() for k in ("level1", "level2", "level3")]
            deadline_class = raw.get("deadline_class") or (
                "utility" if any(_UTILITY.search(level) for level in levels) else "ordinary"
            )
            write = CategoryWrite(
                level1=levels[0],
                level2=levels[1],
                level3=levels[2],
                label_en=str(raw.get("label_en") or ""),
                deadline_class=deadline_class,
            )
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"taxonomy line {n}: {exc}") from exc
        # Each level's own node exists too, so a prefix can be chosen.
        for depth in range(1, 4):
            parts = levels[:depth]
            if not all(parts) or (depth > 1 and not parts[-1]):
                continue
            node = CategoryWrite(
                level1=parts[0],
                level2=parts[1] if depth > 1 else "",
                level3=parts[2] if depth > 2 else "",
                deadline_class=write.deadline_class if depth == 3 else "ordinary",
                label_en=write.label_en if depth == 3 else "",
            )
            if depth < 3 and repo.category(session, "/".join(parts)) is not None:
                continue
            _upsert_category(session, node)
        count += 1
    return count


def _unit_out(u: Unit) -> UnitOut:
    return UnitOut(
        code=u.code, name=u.name, name_en=u.name_en, kind=u.kind, region_code=u.region_code, active=u.active
    )


def units(session: Session, *, active_only: bool = False) -> list[UnitOut]:
    return [_unit_out(u) for u in repo.units(session, active_only=active_only)]


def unit_names(session: Session) -> dict[str, str]:
    return {u.code: u.name for u in repo.units(session)}


def put_unit(session: Session, principal: Principal, code: str, write: UnitWrite, *, clock: Clock) -> UnitOut:
    principal.require(ADMIN)
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", code):
        raise InvalidInput("a unit code is 1–64 letters, digits, '_', '.', ':' or '-'")
    row = repo.unit(session, code)
    if row is None:
        row = Unit(code=code)
        session.add(row)
    for name in ("name", "name_en", "kind", "region_code", "active"):
        setattr(row, name, getattr(write, name))
    session.flush()
    audit.record(
        session,
        actor=principal,
        action="hotline.unit",
        target_type="hotline_unit",
        target_id=code,
        clock=clock,
        detail=write.model_dump(),
    )
    return _unit_out(row)


def _rule_out(r: DispatchRule) -> RuleOut:
    return RuleOut(
        id=r.id,
        category_path=r.category_path,
        region_code=r.region_code,
        lead_unit=r.lead_unit,
        helper_units=list(r.helper_units or []),
        note=r.note,
        active=r.active,
    )


def rules(session: Session) -> list[RuleOut]:
    return [_rule_out(r) for r in repo.rules(session)]


def _known_units(session: Session, codes: Sequence[str]) -> None:
    for code in codes:
        u = repo.unit(session, code)
        if u is None or not u.active:
            raise InvalidInput(f"no active unit {code!r}")


def put_rule(session: Session, principal: Principal, write: RuleWrite, *, clock: Clock) -> RuleOut:
    """Add or replace the catalogue line of a (category, region) scope."""
    principal.require(ADMIN)
    split_path(write.category_path)
    if not repo.category_prefix_exists(session, write.category_path):
        raise InvalidInput(f"category_path: no category {write.category_path!r} in the taxonomy")
    _known_units(session, [write.lead_unit, *write.helper_units])
    if write.lead_unit in write.helper_units:
        raise InvalidInput("the lead unit cannot also be a helper")
    row = repo.rule_for_scope(session, write.category_path, write.region_code)
    if row is None:
        row = DispatchRule(category_path=write.category_path, region_code=write.region_code)
        session.add(row)
    row.lead_unit = write.lead_unit
    row.helper_units = list(dict.fromkeys(write.helper_units))
    row.note = write.note
    row.active = write.active
    session.flush()
    audit.record(
        session,
        actor=principal,
        action="hotline.rule",
        target_type="hotline_dispatch_rule",
        target_id=str(row.id),
        clock=clock,
        detail=write.model_dump(),
    )
    return _rule_out(row)


def delete_rule(session: Session, principal: Principal, rule_id: int, *, clock: Clock) -> None:
    principal.require(ADMIN)
    row = repo.rule(session, rule_id)
    if row is None:
        raise NotFound(f"no dispatch rule {rule_id}")
    session.delete(row)
    audit.record(
        session,
        actor=principal,
        action="hotline.rule_deleted",
        target_type="hotline_dispatch_rule",
        target_id=str(rule_id),
        clock=clock,
    )


def plan_dispatch(session: Session, category_path: str, region_code: str | None) -> DispatchPlan:
    """Who a ticket of this category and region goes to: the catalogue line with the most specific category,
    then the most specific region; else the district's own unit (unclear ownership, 属地兜底)."""
    region = region_code or ""
    best: tuple[int, int, DispatchRule] | None = None
    for r in repo.rules(session, active_only=True):
        if not (category_path == r.category_path or category_path.startswith(r.category_path + "/")):
            continue
        if r.region_code and not region.startswith(r.region_code):
            continue
        key = (r.category_path.count("/") + 1, len(r.region_code), r)
        if best is None or key[:2] > best[:2]:
            best = key
    if best is not None:
        r = best[2]
        return DispatchPlan(
            lead_unit=r.lead_unit,
            helper_units=list(r.helper_units or []),
            rule_id=r.id,
            reason=f"catalogue: {r.category_path}" + (f" in {r.region_code}" if r.region_code else ""),
        )
    fallback = _district_unit(session, region)
    if fallback is not None:
        return DispatchPlan(
            lead_unit=fallback.code,
            helper_units=[],
            rule_id=None,
            reason=f"no catalogue line: the district {fallback.region_code} as fallback",
        )
    return DispatchPlan(
        lead_unit=None, helper_units=[], rule_id=None, reason="no catalogue line and no district"
    )


def _district_unit(session: Session, region: str) -> Unit | None:
    """The unit of the smallest area containing ``region`` (a street office, else the district, else the
    city)."""
    best: Unit | None = None
    for u in repo.units(session, active_only=True):
        if u.kind not in ("district", "street") or not u.region_code or not region.startswith(u.region_code):
            continue
        if best is None or len(u.region_code) > len(best.region_code or ""):
            best = u
    return best


def _service_out(s: Service) -> ServiceOut:
    return ServiceOut(
        code=s.code,
        name=s.name,
        description=s.description,
        group=s.group,
        keywords=s.keywords,
        category_path=s.category_path,
        attributes=list(s.attributes or []),
        active=s.active,
    )


def services(session: Session, *, active_only: bool = True) -> list[ServiceOut]:
    return [_service_out(s) for s in repo.services(session, active_only=active_only)]


def service_by_code(session: Session, code: str) -> ServiceOut | None:
    s = repo.service(session, code)
    return _service_out(s) if s is not None else None


_ATTR_TYPES = frozenset({"string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"})


def put_service(
    session: Session, principal: Principal, code: str, write: ServiceWrite, *, clock: Clock
) -> ServiceOut:
    """Add or change an Open311 service; its attributes follow GeoReport v2's service definitions."""
    principal.require(ADMIN)
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", code):
        raise InvalidInput("a service code is 1–64 letters, digits, '_', '.' or '-'")
    if write.category_path:
        split_path(write.category_path)
        if not repo.category_prefix_exists(session, write.category_path):
            raise InvalidInput(f"category_path: no category {write.category_path!r} in the taxonomy")
    seen: set[str] = set()
    for n, attr in enumerate(write.attributes):
        a_code = str(attr.get("code") or "")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", a_code) or a_code in seen:
            raise InvalidInput(f"attributes[{n}].code: a unique code of letters, digits, '_', '.' or '-'")
        seen.add(a_code)
        if attr.get("datatype", "string") not in _ATTR_TYPES:
            raise InvalidInput(f"attributes[{n}].datatype: one of {', '.join(sorted(_ATTR_TYPES))}")
        if attr.get("datatype") in ("singlevaluelist", "multivaluelist") and not attr.get("values"):
            raise InvalidInput(f"attributes[{n}].values: a list type needs values")
    row = repo.service(session, code)
    if row is None:
        row = Service(code=code)
        session.add(row)
    for name in ("name", "description", "group", "keywords", "category_path", "attributes", "active"):
        setattr(row, name, getattr(write, name))
    session.flush()
    audit.record(
        session,
        actor=principal,
        action="hotline.service",
        target_type="hotline_service",
        target_id=code,
        clock=clock,
        detail={"name": write.name, "active": write.active},
    )
    return _service_out(row)


# --- tickets: reading -----------------------------------------------------------------------------------


def _ticket_out(t: Ticket, merged_ref: str | None = None) -> TicketOut:
    return TicketOut(
        id=t.id,
        ref=t.ref or "",
        channel=t.channel,
        request_type=t.request_type,
        status=t.status,
        subject=t.subject,
        body=t.body,
        anonymous=t.anonymous,
        contact_hint=t.contact_hint,
        enterprise=t.enterprise,
        enterprise_name=t.enterprise_name,
        address=t.address,
        lat=t.lat,
        lon=t.lon,
        region_code=t.region_code,
        service_code=t.service_code,
        attributes=dict(t.attributes or {}),
        media_url=t.media_url,
        category_path=t.category_path,
        category_confirmed=t.category_confirmed,
        suggested_path=t.suggested_path,
        suggested_confidence=t.suggested_confidence,
        urgency=t.urgency,
        deadline_class=t.deadline_class,
        lead_unit=t.lead_unit,
        helper_units=list(t.helper_units or []),
        dispatch_count=t.dispatch_count,
        reopen_count=t.reopen_count,
        dispatched_at=t.dispatched_at,
        respond_by=t.respond_by,
        due_at=t.due_at,
        signed_at=t.signed_at,
        responded_at=t.responded_at,
        replied_at=t.replied_at,
        reply=t.reply,
        revisited_at=t.revisited_at,
        resolved=t.resolved,
        satisfaction=t.satisfaction,
        closed_at=t.closed_at,
        merged_into=merged_ref,
        warned_at=t.warned_at,
        escalated_at=t.escalated_at,
        created_at=t.created_at,
        updated_at=t.updated_at,
        version=t.version,
    )


def _event_out(e: Event) -> EventOut:
    return EventOut(
        id=e.id,
        at=e.at,
        actor=e.actor,
        action=e.action,
        status_from=e.status_from,
        status_to=e.status_to,
        unit=e.unit,
        note=e.note,
        data=dict(e.data or {}),
        public=e.public,
    )


def _attachment_out(a: Attachment) -> AttachmentOut:
    return AttachmentOut(
        id=a.id,
        name=a.name,
        media_type=a.media_type,
        size=a.size,
        added_by=a.added_by,
        created_at=a.created_at,
    )


def _duplicate_out(d: Duplicate, refs: Mapping[int, str]) -> DuplicateOut:
    return DuplicateOut(
        id=d.id,
        ticket=refs.get(d.ticket_id, ""),
        original=refs.get(d.original_id, ""),
        score=d.score,
        reasons=dict(d.reasons or {}),
        status=d.status,
        decided_by=d.decided_by,
        decided_at=d.decided_at,
        created_at=d.created_at,
    )


def principal_units(principal: Principal) -> set[str] | None:
    """The units whose tickets ``principal`` handles; None: every unit (supervisors)."""
    if principal.can(HANDLE_ANY):
        return None
    return {r.split(":", 1)[1] for r in principal.roles if r.startswith("hotline_unit:")}


def _may_read(principal: Principal, t: Ticket) -> bool:
    if principal.can(INTAKE) or principal.can(SUPERVISE) or principal.can(HANDLE_ANY):
        return True
    if principal.can(HANDLE):
        mine = principal_units(principal) or set()
        if t.lead_unit in mine or mine & set(t.helper_units or []):
            return True
        # A unit keeps seeing what it handled after a re-dispatch.
        return t.replied_by_unit in mine
    return principal.account_id is not None and t.requester_account_id == principal.account_id


def _load(session: Session, ref: str, *, for_update: bool = False) -> Ticket:
    t = repo.ticket_by_ref(session, ref, for_update=for_update)
    if t is None:
        raise NotFound(f"no ticket {ref}")
    return t


def _readable(session: Session, principal: Principal, ref: str, *, for_update: bool = False) -> Ticket:
    t = _load(session, ref, for_update=for_update)
    if not _may_read(principal, t):
        # Not found rather than forbidden: a ticket number is not a way to learn that a ticket exists.
        raise NotFound(f"no ticket {ref}")
    return t


def get_ticket(session: Session, principal: Principal, ref: str) -> TicketDetail:
    t = _readable(session, principal, ref)
    staff = principal.can(INTAKE) or principal.can(HANDLE) or principal.can(SUPERVISE)
    events = [e for e in repo.events_of(session, t.id) if staff or e.public]
    dups = repo.duplicates_of(session, t.id) if staff else []
    refs = repo.refs_of(
        session,
        [i for d in dups for i in (d.ticket_id, d.original_id)]
        + ([t.merged_into_id] if t.merged_into_id else []),
    )
    base = _ticket_out(t, refs.get(t.merged_into_id) if t.merged_into_id else None)
    return TicketDetail(
        **base.model_dump(),
        events=[_event_out(e) for e in events],
        attachments=[_attachment_out(a) for a in repo.attachments_of(session, t.id)],
        duplicates=[_duplicate_out(d, refs) for d in dups],
    )


@dataclass(frozen=True)
class TicketFilter:
    statuses: tuple[str, ...] = ()
    unit: str | None = None
    queue: str | None = None  # "enterprise" or "citizen"
    overdue: bool = False
    escalated: bool | None = None
    region_code: str | None = None
    category: str | None = None
    channel: str | None = None
    text: str | None = None
    mine: bool = False


def list_tickets(
    session: Session,
    principal: Principal,
    f: TicketFilter,
    *,
    page: int,
    per_page: int,
    clock: Clock,
    order: str = "due",
) -> TicketPage:
    """Tickets a principal may see: operators and supervisors all, a unit its own (its inbox), a requester
    their own (``mine``)."""
    if f.mine:
        if principal.account_id is None:
            raise Forbidden("sign in to see your tickets")
        units_scope: Sequence[str] | None = None
        requester: int | None = principal.account_id
    elif principal.can(INTAKE) or principal.can(SUPERVISE) or principal.can(HANDLE_ANY):
        units_scope = [f.unit] if f.unit else None
        requester = None
    elif principal.can(HANDLE):
        mine = principal_units(principal) or set()
        if f.unit and f.unit not in mine:
            raise Forbidden(f"you do not handle the tickets of {f.unit}")
        units_scope = [f.unit] if f.unit else sorted(mine)
        requester = None
    else:
        principal.require(INTAKE)
        raise AssertionError  # pragma: no cover
    q = repo.TicketQuery(
        statuses=f.statuses,
        units=units_scope,
        enterprise=None if f.queue is None else f.queue == "enterprise",
        overdue_at=clock.now() if f.overdue else None,
        escalated=f.escalated,
        region_code=f.region_code,
        category_prefix=f.category,
        channel=f.channel,
        requester_account_id=requester,
        text=f.text,
    )
    rows, total = repo.find_tickets(session, q, offset=(page - 1) * per_page, limit=per_page, order=order)
    refs = repo.refs_of(session, [t.merged_into_id for t in rows if t.merged_into_id])
    return TicketPage(
        items=[_ticket_out(t, refs.get(t.merged_into_id) if t.merged_into_id else None) for t in rows],
        total=total,
        page=page,
        per_page=per_page,
    )


def contact_of(
    session: Session, principal: Principal, ref: str, *, sealer: Sealer, clock: Clock
) -> ContactOut:
    """The requester's contact details, unmasked, for the operator or unit that must call back; audited."""
    t = _readable(session, principal, ref)
    if not (principal.can(INTAKE) or principal.can(HANDLE) or principal.can(SUPERVISE)):
        raise Forbidden("only the hotline and the units handling the ticket see contact details")
    if t.anonymous or not t.contact_sealed:
        raise NotFound(f"{ref} has no contact details (anonymous)")
    data = json.loads(sealer.open(t.contact_sealed, f"hotline_ticket:{t.id}:contact"))
    audit.record(
        session,
        actor=principal,
        action="hotline.contact_viewed",
        target_type="hotline_ticket",
        target_id=ref,
        clock=clock,
    )
    return ContactOut(
        name=str(data.get("name") or ""),
        phone=data.get("phone"),
        email=data.get("email"),
        device_id=str(data.get("device_id") or ""),
    )


# --- tickets: receiving -----------------------------------------------------------------------------------


def _mask_phone(phone: str | None) -> str:
    if not phone:
        return ""
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


_ROAD = re.compile(r"^(.*?(?:大道|大街|胡同|路|街|道|巷|弄|里|村|小区|社区|广场|公园|镇|乡))")
_HOUSE = re.compile(r"^\s*\d+[A-Za-z]?\s+")


def place_key(address: str, lat: float | None, lon: float | None) -> str:
    """Where a ticket is, for duplicates and hotspots: a grid cell of about 500 m from coordinates, else
    the address up to its road (the house number dropped)."""
    if lat is not None and lon is not None:
        return f"g:{math.floor(lat / 0.005)}:{math.floor(lon / 0.005)}"
    text = re.sub(r"\s+", " ", address).strip()
    if not text:
        return ""
    road = _ROAD.match(text.replace(" ", ""))
    if road and re.search(r"[\u4e00-\u9fff]", text):
        return "a:" + road.group(1)[:110]
    text = text.split(",")[0]
    return "a:" + _HOUSE.sub("", text).upper()[:110]


def _region_from_address(session: Session, address: str) -> str | None:
    """The region of the most local area unit (district, street office) the address names."""
    if not address:
        return None
    best = ""
    for name, code in repo.area_names(session):
        if code and name and name in address and len(code) > len(best):
            best = code
    return best or None


def _deadline_class(session: Session, urgency: str, category_path: str) -> str:
    if urgency == Urgency.EMERGENCY:
        return DeadlineClass.EMERGENCY
    if urgency == Urgency.COMPLEX:
        return DeadlineClass.COMPLEX
    if category_path:
        c = repo.category(session, category_path)
        if c is not None and c.deadline_class in ("utility", "complex"):
            return c.deadline_class
    return DeadlineClass.ORDINARY


def _check_category(session: Session, path: str) -> str:
    split_path(path)
    if not repo.category_prefix_exists(session, path):
        raise InvalidInput(f"category_path: no category {path!r} in the taxonomy")
    return path


def _event(
    session: Session,
    t: Ticket,
    actor: Principal | str,
    action: str,
    *,
    clock: Clock,
    status_from: str = "",
    note: str = "",
    data: Mapping[str, Any] | None = None,
    public: bool = False,
    unit: str | None = None,
) -> Event:
    e = Event(
        ticket_id=t.id,
        at=clock.now(),
        actor=actor if isinstance(actor, str) else actor.username,
        action=action,
        status_from=status_from,
        status_to=t.status,
        unit=unit,
        note=consult.mask_text(note),
        data=dict(data or {}),
        public=public,
    )
    session.add(e)
    return e


def _touch(t: Ticket, clock: Clock) -> None:
    t.updated_at = clock.now()
    t.version += 1


def create_ticket(
    session: Session,
    principal: Principal,
    write: TicketWrite,
    *,
    sealer: Sealer,
    clock: Clock,
    api_key_id: int | None = None,
    actor: str | None = None,
) -> TicketOut:
    """Receive a ticket from any channel. Operators (phone) need the intake permission; web and app forms
    are public (a signed-in requester owns the ticket); Open311 requests come with an API key."""
    if write.channel == Channel.PHONE and not principal.can(INTAKE):
        raise Forbidden("only operators enter phone tickets")
    if write.channel == Channel.OPEN311 and api_key_id is None:
        raise Forbidden("Open311 requests come through the Open311 API with a key")
    now = clock.now()
    if write.category_path:
        _check_category(session, write.category_path)
    service_row = None
    if write.service_code:
        service_row = repo.service(session, write.service_code)
        if service_row is None or not service_row.active:
            raise InvalidInput(f"service_code: no service {write.service_code!r}")
    category_path = write.category_path or (service_row.category_path if service_row else "") or ""
    region = write.region_code or _region_from_address(session, write.address)
    contact = write.contact.model_dump(exclude_none=True)
    has_contact = any(contact.get(k) for k in ("name", "phone", "email", "device_id"))
    requester_id = principal.account_id if principal.account_id and not principal.can(INTAKE) else None
    if principal.account_id == 0:
        requester_id = None
    t = Ticket(
        channel=write.channel.value,
        request_type=write.request_type.value,
        requester_account_id=requester_id,
        anonymous=write.anonymous,
        enterprise=write.enterprise,
        enterprise_name=write.enterprise_name,
        subject=consult.mask_text(write.subject),
        body=consult.mask_text(write.body),
        address=write.address,
        lat=write.lat,
        lon=write.lon,
        region_code=region,
        place_key=place_key(write.address, write.lat, write.lon),
        service_code=write.service_code,
        attributes=dict(write.attributes),
        media_url=write.media_url,
        category_path=category_path,
        category_confirmed=bool(write.category_path) and principal.can(INTAKE),
        urgency=write.urgency.value,
        deadline_class=_deadline_class(session, write.urgency.value, category_path),
        status=Status.RECEIVED.value,
        helper_units=[],
        dispatch_count=0,
        reopen_count=0,
        api_key_id=api_key_id,
        source_ref=hashlib.sha256(write.source_ref.encode()).hexdigest()[:32] if write.source_ref else "",
        contact_hint=_mask_phone(contact.get("phone")) if not write.anonymous else "",
        phone_digest=(
            sealer.digest(re.sub(r"\D", "", contact["phone"]), "hotline-phone")
            if contact.get("phone")
            else None
        ),
        token=secrets.token_urlsafe(16) if write.channel == Channel.OPEN311 else None,
        created_at=now,
        updated_at=now,
        version=1,
    )
    session.add(t)
    session.flush()
    t.ref = f"{now.astimezone(CHINA):%Y%m%d}{t.id:07d}"
    if has_contact and not write.anonymous:
        t.contact_sealed = sealer.seal(
            json.dumps(contact, ensure_ascii=False), f"hotline_ticket:{t.id}:contact"
        )
    _event(
        session,
        t,
        actor or principal,
        "received",
        clock=clock,
        public=True,
        data={"channel": t.channel, **({"category": category_path} if category_path else {})},
    )
    _propose_duplicates(session, t, clock=clock)
    if contact.get("phone") and not write.anonymous:
        _sms(session, contact["phone"], "hotline.received", _received_text(t), sealer=sealer, clock=clock)
    session.flush()
    return _ticket_out(t)


def _received_text(t: Ticket) -> str:
    return f"【12345】您的诉求已受理，工单号 {t.ref}。Your request was received, ticket {t.ref}."


def _sms(session: Session, phone: str, event: str, text: str, *, sealer: Sealer, clock: Clock) -> None:
    intake.queue_message(session, channel="sms", to=phone, event=event, text=text, sealer=sealer, clock=clock)


def _contact_phone(t: Ticket, sealer: Sealer) -> str | None:
    if t.anonymous or not t.contact_sealed:
        return None
    data = json.loads(sealer.open(t.contact_sealed, f"hotline_ticket:{t.id}:contact"))
    phone = data.get("phone")
    return str(phone) if phone else None


# --- duplicates -----------------------------------------------------------------------------------------

_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)


def _grams(text: str) -> set[str]:
    norm = _PUNCT.sub("", text.lower())
    if len(norm) < 2:
        return {norm} if norm else set()
    return {norm[i : i + 2] for i in range(len(norm) - 1)}


def text_similarity(a: str, b: str) -> float:
    """Dice coefficient of character bigrams (works for Chinese and for English alike)."""
    ga, gb = _grams(a), _grams(b)
    if not ga or not gb:
        return 0.0
    return 2 * len(ga & gb) / (len(ga) + len(gb))


#: Code points are below this: a bigram's code is ``_CP * (_CP + first) + second``, a lone character's its
#: code point (a text of one character has that one "gram", as in :func:`text_similarity`).
_CP = 0x110000


def gram_codes(text: str) -> npt.NDArray[np.int64]:
    """The character bigrams of ``text`` as :func:`text_similarity` sees them, as sorted unique integers
    (for comparing one text with many at once: :func:`similarities`)."""
    norm = _PUNCT.sub("", text.lower())
    points = np.frombuffer(norm.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    if points.size < 2:
        return points
    return np.unique(_CP * (_CP + points[:-1]) + points[1:])


def similarities(
    query: npt.NDArray[np.int64], candidates: Sequence[npt.NDArray[np.int64]]
) -> npt.NDArray[np.float64]:
    """:func:`text_similarity` of one text with each of many, from their :func:`gram_codes`."""
    out = np.zeros(len(candidates), dtype=np.float64)
    sizes = np.fromiter((c.size for c in candidates), dtype=np.int64, count=len(candidates))
    present = np.flatnonzero(sizes)
    if query.size == 0 or present.size == 0:
        return out
    flat = np.concatenate([candidates[int(i)] for i in present])
    at = np.minimum(np.searchsorted(query, flat), query.size - 1)
    shared = (query[at] == flat).astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(sizes[present])[:-1]))
    out[present] = 2 * np.add.reduceat(shared, starts) / (query.size + sizes[present])
    return out


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(h))


def _nearby_keys(t: Ticket, metres: float) -> list[str]:
    """The place keys a duplicate of ``t`` may have: the grid cells within ``metres`` of its coordinates
    (cells are about 555 m high), else its road."""
    if t.lat is None or t.lon is None:
        return [t.place_key] if t.place_key else []
    reach = max(1, math.ceil(metres / 555))
    row, col = math.floor(t.lat / 0.005), math.floor(t.lon / 0.005)
    return [f"g:{row + dr}:{col + dc}" for dr in range(-reach, reach + 1) for dc in range(-reach, reach + 1)]


def _propose_duplicates(session: Session, t: Ticket, *, clock: Clock) -> None:
    """Propose merging ``t`` into open tickets of the same problem: similar text, the same place, within the
    window. Proposals only: an operator decides."""
    rules_ = current_settings(session)
    hours = float(rules_["duplicate_hours"])
    metres = float(rules_["duplicate_metres"])
    threshold = float(rules_["duplicate_similarity"])
    open_statuses = [s.value for s in Status if s not in (Status.CLOSED, Status.MERGED, Status.CANCELLED)]
    candidates = repo.duplicate_candidates(
        session,
        since=t.created_at - dt.timedelta(hours=hours),
        exclude_id=t.id,
        place_keys=_nearby_keys(t, metres),
        region_code=t.region_code,
        statuses=open_statuses,
    )
    if not candidates:
        return
    grams = _grams(f"{t.subject} {t.body}")
    t_short = len(_grams(t.body)) < 6
    found: list[tuple[float, repo.DuplicateCandidate, dict[str, Any]]] = []
    for c in candidates:
        distance = None
        if t.lat is not None and t.lon is not None and c.lat is not None and c.lon is not None:
            distance = _metres(t.lat, t.lon, c.lat, c.lon)
            if distance > metres:
                continue
        other = _grams(f"{c.subject} {c.body}")
        sim = 2 * len(grams & other) / (len(grams) + len(other)) if grams and other else 0.0
        same_service = bool(t.service_code) and t.service_code == c.service_code
        same_address = bool(t.address) and t.address.strip().lower() == c.address.strip().lower()
        # Short texts (a bare Open311 request) say little: the same service at the same address does.
        short = t_short or len(_grams(c.body)) < 6
        if sim >= threshold or (
            short and same_service and (same_address or (distance is not None and distance <= 30))
        ):
            score = round(min(1.0, sim + (0.2 if same_service else 0.0) + (0.1 if same_address else 0.0)), 3)
            reasons: dict[str, Any] = {
                "text": round(sim, 3),
                "hours": round((t.created_at - c.created_at).total_seconds() / 3600, 1),
                "same_service": same_service,
                "same_address": same_address,
            }
            if distance is not None:
                reasons["distance_m"] = round(distance)
            found.append((score, c, reasons))
    found.sort(key=lambda x: (-x[0], -x[1].id))
    # ``t`` is new: it has no proposals yet, and the candidates are distinct tickets merged into none.
    for score, c, reasons in found[:3]:
        session.add(
            Duplicate(
                ticket_id=t.id,
                original_id=c.id,
                score=score,
                reasons=reasons,
                status="proposed",
                created_at=clock.now(),
            )
        )


def duplicates(
    session: Session, principal: Principal, *, page: int, per_page: int
) -> tuple[list[DuplicateOut], int]:
    if not (principal.can(INTAKE) or principal.can(SUPERVISE)):
        principal.require(INTAKE)
    rows, total = repo.proposed_duplicates(session, offset=(page - 1) * per_page, limit=per_page)
    refs = repo.refs_of(session, [i for d in rows for i in (d.ticket_id, d.original_id)])
    return [_duplicate_out(d, refs) for d in rows], total


def merge(
    session: Session,
    principal: Principal,
    ref: str,
    write: MergeWrite,
    *,
    clock: Clock,
    if_match: int | None = None,
) -> TicketOut:
    """Merge ``ref`` into the ticket ``write.into`` (并单): it follows that ticket from now on, and its
    requester is told when that one is solved."""
    if not (principal.can(INTAKE) or principal.can(SUPERVISE)):
        principal.require(SUPERVISE)
    t = _load(session, ref, for_update=True)
    _check_version(t, if_match)
    target = _load(session, write.into, for_update=True)
    if target.id == t.id:
        raise InvalidInput("a ticket cannot be merged into itself")
    if target.merged_into_id is not None:
        target = _load(
            session, repo.refs_of(session, [target.merged_into_id])[target.merged_into_id], for_update=True
        )
    if t.status in (Status.CLOSED, Status.MERGED, Status.CANCELLED):
        raise WrongStatus(f"{ref} is {t.status}")
    if target.status in (Status.MERGED, Status.CANCELLED):
        raise WrongStatus(f"{target.ref} is {target.status}")
    if repo.children_of(session, t.id):
        for child in repo.children_of(session, t.id, for_update=True):
            child.merged_into_id = target.id
            _touch(child, clock)
    before = t.status
    t.status = Status.MERGED.value
    t.merged_into_id = target.id
    _touch(t, clock)
    _event(
        session,
        t,
        principal,
        "merged",
        clock=clock,
        status_from=before,
        note=write.note,
        data={"into": target.ref},
        public=True,
    )
    _event(
        session,
        target,
        principal,
        "merged_in",
        clock=clock,
        status_from=target.status,
        data={"ticket": t.ref},
        note=write.note,
    )
    _touch(target, clock)
    pair = repo.duplicate_pair(session, t.id, target.id)
    if pair is not None:
        pair.status = "merged"
        pair.decided_by = principal.username
        pair.decided_at = clock.now()
    audit.record(
        session,
        actor=principal,
        action="hotline.merge",
        target_type="hotline_ticket",
        target_id=ref,
        clock=clock,
        detail={"into": target.ref},
    )
    session.flush()
    return _ticket_out(t, target.ref)


def dismiss_duplicate(
    session: Session, principal: Principal, duplicate_id: int, *, clock: Clock
) -> DuplicateOut:
    if not (principal.can(INTAKE) or principal.can(SUPERVISE)):
        principal.require(SUPERVISE)
    d = repo.duplicate(session, duplicate_id, for_update=True)
    if d is None:
        raise NotFound(f"no duplicate proposal {duplicate_id}")
    if d.status != "proposed":
        raise Conflict(f"the proposal was already {d.status}")
    d.status = "dismissed"
    d.decided_by = principal.username
    d.decided_at = clock.now()
    audit.record(
        session,
        actor=principal,
        action="hotline.duplicate_dismissed",
        target_type="hotline_duplicate",
        target_id=str(d.id),
        clock=clock,
    )
    session.flush()
    return _duplicate_out(d, repo.refs_of(session, [d.ticket_id, d.original_id]))


# --- tickets: classification and dispatch -------------------------------------------------------------


def _check_version(t: Ticket, if_match: int | None) -> None:
    if if_match is not None and if_match != t.version:
        raise PreconditionFailed(f"the ticket changed (version {t.version}); reload and try again")


def _require_status(t: Ticket, *allowed: Status) -> None:
    if t.status not in {s.value for s in allowed}:
        raise WrongStatus(f"{t.ref} is {t.status}; this needs {' or '.join(s.value for s in allowed)}")


def classify(
    session: Session,
    principal: Principal,
    ref: str,
    write: Classification,
    *,
    clock: Clock,
    if_match: int | None = None,
) -> TicketOut:
    """The operator confirms or corrects the category (and urgency); a confirmed ticket teaches the
    classifier at its next training."""
    principal.require(INTAKE)
    t = _load(session, ref, for_update=True)
    _check_version(t, if_match)
    _require_status(t, Status.RECEIVED, Status.DISPATCHED, Status.SIGNED, Status.RETURN_REQUESTED)
    path = _check_category(session, write.category_path)
    before = t.category_path
    t.category_path = path
    t.category_confirmed = True
    if write.urgency is not None:
        t.urgency = write.urgency.value
    if write.enterprise is not None:
        t.enterprise = write.enterprise
    t.deadline_class = _deadline_class(session, t.urgency, path)
    _touch(t, clock)
    corrected = bool(t.suggested_path) and not (
        path == t.suggested_path
        or t.suggested_path.startswith(path + "/")
        or path.startswith(t.suggested_path + "/")
    )
    _event(
        session,
        t,
        principal,
        "classified",
        clock=clock,
        status_from=t.status,
        data={
            "category": path,
            "before": before,
            "suggested": t.suggested_path,
            "corrected": corrected,
            "urgency": t.urgency,
        },
    )
    session.flush()
    return _ticket_out(t)


def _hours(rules_: Mapping[str, Any], key: str, t: Ticket) -> float:
    table = rules_[("enterprise_" if t.enterprise else "") + key]
    return float(table.get(t.deadline_class, table.get("ordinary", 168)))


def _set_deadlines(session: Session, t: Ticket, now: dt.datetime) -> None:
    rules_ = current_settings(session)
    t.dispatched_at = now
    t.respond_by = now + dt.timedelta(hours=_hours(rules_, "respond_hours", t))
    t.due_at = now + dt.timedelta(hours=_hours(rules_, "reply_hours", t))
    t.signed_at = None
    t.responded_at = None
    t.responded_on_time = None
    t.warned_at = None
    t.escalated_at = None


def _assign(session: Session, t: Ticket, lead: str | None, helpers: Sequence[str]) -> DispatchPlan:
    if lead is None:
        plan = plan_dispatch(session, t.category_path, t.region_code)
        if plan.lead_unit is None:
            raise NoUnit(f"no catalogue line for {t.category_path!r} and no district unit; choose a unit")
    else:
        plan = DispatchPlan(
            lead_unit=lead, helper_units=list(helpers), rule_id=None, reason="chosen by the operator"
        )
    assert plan.lead_unit is not None  # noqa: S101
    _known_units(session, [plan.lead_unit, *plan.helper_units])
    helpers_ = [h for h in dict.fromkeys(plan.helper_units) if h != plan.lead_unit]
    t.lead_unit = plan.lead_unit
    t.helper_units = helpers_
    return DispatchPlan(
        lead_unit=plan.lead_unit, helper_units=helpers_, rule_id=plan.rule_id, reason=plan.reason
    )


def dispatch(
    session: Session,
    principal: Principal,
    ref: str,
    write: DispatchWrite,
    *,
    clock: Clock,
    if_match: int | None = None,
) -> TicketOut:
    """Send a classified ticket to its unit (派单): the one given, else the dispatch catalogue's."""
    principal.require(INTAKE)
    t = _load(session, ref, for_update=True)
    _check_version(t, if_match)
    _require_status(t, Status.RECEIVED)
    if not t.category_path or not t.category_confirmed:
        raise Unclassified(f"confirm the category of {ref} before dispatching it")
    before = t.status
    plan = _assign(session, t, write.lead_unit, write.helper_units)
    _set_deadlines(session, t, clock.now())
    t.status = Status.DISPATCHED.value
    t.dispatch_count += 1
    _touch(t, clock)
    _event(
        session,
        t,
        principal,
        "dispatched",
        clock=clock,
        status_from=before,
        note=write.note,
        unit=t.lead_unit,
        public=True,
        data={
            "lead": t.lead_unit,
            "helpers": t.helper_units,
            "reason": plan.reason,
            "due_at": t.due_at.isoformat() if t.due_at else None,
        },
    )
    session.flush()
    return _ticket_out(t)


# --- tickets: handling by units --------------------------------------------------------------------------


def _as_unit(principal: Principal, t: Ticket, *, lead_only: bool = True) -> str:
    """The unit ``principal`` acts for on ``t``; refused unless it holds the ticket."""
    principal.require(HANDLE)
    mine = principal_units(principal)
    if mine is None:
        return t.lead_unit or ""
    if t.lead_unit in mine:
        return t.lead_unit or ""
    if not lead_only and mine & set(t.helper_units or []):
        return sorted(mine & set(t.helper_units or []))[0]
    raise NotYourTicket(f"{t.ref} is held by another unit")


def sign(
    session: Session, principal: Principal, ref: str, *, clock: Clock, if_match: int | None = None
) -> TicketOut:
    """The lead unit signs for the ticket (签收)."""
    t = _readable(session, principal, ref, for_update=True)
    _check_version(t, if_match)
    unit = _as_unit(principal, t)
    _require_status(t, Status.DISPATCHED)
    t.status = Status.SIGNED.value
    t.signed_at = clock.now()
    _touch(t, clock)
    _event(
        session,
        t,
        principal,
        "signed",
        clock=clock,
        status_from=Status.DISPATCHED.value,
        unit=unit,
        public=True,
    )
    session.flush()
    return _ticket_out(t)


def _respond(t: Ticket, now: dt.datetime) -> None:
    if t.responded_at is None:
        t.responded_at = now
        t.responded_on_time = t.respond_by is None or now <= t.respond_by


def record_contact(
    session: Session, principal: Principal, ref: str, write: Any, *, clock: Clock, if_match: int | None = None
) -> TicketOut:
    """The unit has contacted the requester (the 响应 of the response rate), with what was said."""
    t = _readable(session, principal, ref, for_update=True)
    _check_version(t, if_match)
    unit = _as_unit(principal, t, lead_only=False)
    _require_status(t, Status.SIGNED)
    _respond(t, clock.now())
    _touch(t, clock)
    _event(session, t, principal, "contacted", clock=clock, status_from=t.status, unit=unit, note=write.note)
    session.flush()
    return _ticket_out(t)


def add_note(
    session: Session, principal: Principal, ref: str, write: Any, *, clock: Clock, if_match: int | None = None
) -> TicketOut:
    """A progress note by a unit (a helper's contribution, an interim step)."""
    t = _readable(session, principal, ref, for_update=True)
    _check_version(t, if_match)
    if principal.can(INTAKE) or principal.can(SUPERVISE):
        unit = None
    else:
        unit = _as_unit(principal, t, lead_only=False)
        _require_status(t, Status.DISPATCHED, Status.SIGNED)
    if not write.note:
        raise InvalidInput("note: write something")
    _touch(t, clock)
    _event(session, t, principal, "note", clock=clock, status_from=t.status, unit=unit, note=write.note)
    session.flush()
    return _ticket_out(t)


def request_return(
    session: Session,
    principal: Principal,
    ref: str,
    write: ReturnWrite,
    *,
    clock: Clock,
    if_match: int | None = None,
) -> TicketOut:
    """The lead unit returns a ticket it does not own (退单) with its reason; a reviewer decides."""
    t = _readable(session, principal, ref, for_update=True)
    _check_version(t, if_match)
    unit = _as_unit(principal, t)
    _require_status(t, Status.DISPATCHED, Status.SIGNED)
    if write.suggested_unit:
        _known_units(session, [write.suggested_unit])
    before = t.status
    t.status = Status.RETURN_REQUESTED.value
    _touch(t, clock)
    _event(
        session,
        t,
        principal,
        "return_requested",
        clock=clock,
        status_from=before,
        unit=unit,
        note=write.reason,
        data={"suggested_unit": write.suggested_unit, "from_status": before},
    )
    session.flush()
    return _ticket_out(t)


def decide_return(
    session: Session,
    principal: Principal,
    ref: str,
    write: ReturnDecision,
    *,
    clock: Clock,
    if_match: int | None = None,
) -> TicketOut:
    """Accept a return and re-dispatch (改派) to another unit, or reject it: the unit keeps the ticket."""
    principal.require(SUPERVISE)
    t = _load(session, ref, for_update=True)
    _check_version(t, if_match)
    _require_status(t, Status.RETURN_REQUESTED)
    events = repo.events_of(session, t.id)
    request = next((e for e in reversed(events) if e.action == "return_requested"), None)
    previous = (
        str((request.data or {}).get("from_status") or Status.DISPATCHED.value) if request else "dispatched"
    )
    old_unit = t.lead_unit
    if write.decision == "reject":
        if not write.note.strip():
            raise InvalidInput("note: say why the return is rejected")
        t.status = previous
        _touch(t, clock)
        _event(
            session,
            t,
            principal,
            "return_rejected",
            clock=clock,
            status_from=Status.RETURN_REQUESTED.value,
            unit=old_unit,
            note=write.note,
        )
    else:
        suggested = (request.data or {}).get("suggested_unit") if request else None
        lead = write.lead_unit or suggested
        if lead is None:
            raise InvalidInput("lead_unit: name the unit the ticket goes to (the return suggested none)")
        if lead == old_unit:
            raise InvalidInput("lead_unit: the ticket was returned by that unit; choose another")
        _assign(session, t, lead, write.helper_units)
        _set_deadlines(session, t, clock.now())
        t.status = Status.DISPATCHED.value
        t.dispatch_count += 1
        _touch(t, clock)
        _event(
            session,
            t,
            principal,
            "redispatched",
            clock=clock,
            status_from=Status.RETURN_REQUESTED.value,
            unit=t.lead_unit,
            note=write.note,
            public=True,
            data={"from": old_unit, "lead": t.lead_unit, "helpers": t.helper_units},
        )
    audit.record(
        session,
        actor=principal,
        action=f"hotline.return_{write.decision}",
        target_type="hotline_ticket",
        target_id=ref,
        clock=clock,
        detail={"from": old_unit, "to": t.lead_unit},
    )
    session.flush()
    return _ticket_out(t)


def reply(
    session: Session,
    principal: Principal,
    ref: str,
    write: ReplyWrite,
    *,
    sealer: Sealer,
    clock: Clock,
    if_match: int | None = None,
) -> TicketOut:
    """The lead unit replies (办结回复); the requester (and those of merged tickets) are told, and the
    return visit follows."""
    t = _readable(session, principal, ref, for_update=True)
    _check_version(t, if_match)
    unit = _as_unit(principal, t)
    _require_status(t, Status.SIGNED)
    now = clock.now()
    _respond(t, now)
    t.status = Status.REPLIED.value
    t.reply = consult.mask_text(write.reply)
    t.replied_at = now
    t.replied_on_time = t.due_at is None or now <= t.due_at
    t.replied_by_unit = unit
    _touch(t, clock)
    _event(
        session,
        t,
        principal,
        "replied",
        clock=clock,
        status_from=Status.SIGNED.value,
        unit=unit,
        note=t.reply,
        public=True,
        data={"on_time": t.replied_on_time},
    )
    _tell_requesters(session, t, sealer=sealer, clock=clock)
    session.flush()
    return _ticket_out(t)


def _tell_requesters(session: Session, t: Ticket, *, sealer: Sealer, clock: Clock) -> None:
    text = f"【12345】工单 {t.ref} 已办结回复：{t.reply[:120]} / Ticket {t.ref} has a reply."
    phone = _contact_phone(t, sealer)
    if phone:
        _sms(session, phone, "hotline.replied", text, sealer=sealer, clock=clock)
    for child in repo.children_of(session, t.id, for_update=True):
        child.reply = t.reply
        child.replied_at = t.replied_at
        _touch(child, clock)
        _event(
            session,
            child,
            "system",
            "original_replied",
            clock=clock,
            status_from=child.status,
            note=t.reply,
            public=True,
            data={"original": t.ref},
        )
        phone = _contact_phone(child, sealer)
        if phone:
            _sms(
                session,
                phone,
                "hotline.replied",
                f"【12345】您反映的问题（工单 {child.ref}）已与工单 {t.ref} 合并办理并回复：{t.reply[:100]}",
                sealer=sealer,
                clock=clock,
            )


def answer_directly(
    session: Session,
    principal: Principal,
    ref: str,
    write: AnswerWrite,
    *,
    sealer: Sealer,
    clock: Clock,
    if_match: int | None = None,
) -> TicketOut:
    """The operator answers a question that needs no dispatch (直接答复); the return visit follows."""
    principal.require(INTAKE)
    t = _load(session, ref, for_update=True)
    _check_version(t, if_match)
    _require_status(t, Status.RECEIVED)
    if write.category_path:
        t.category_path = _check_category(session, write.category_path)
        t.category_confirmed = True
    now = clock.now()
    t.status = Status.ANSWERED.value
    t.reply = consult.mask_text(write.answer)
    t.replied_at = now
    _touch(t, clock)
    _event(
        session,
        t,
        principal,
        "answered",
        clock=clock,
        status_from=Status.RECEIVED.value,
        note=t.reply,
        public=True,
    )
    _tell_requesters(session, t, sealer=sealer, clock=clock)
    session.flush()
    return _ticket_out(t)


def cancel(
    session: Session, principal: Principal, ref: str, write: Any, *, clock: Clock, if_match: int | None = None
) -> TicketOut:
    """Cancel a ticket that is not a request (a test call, abuse, withdrawn by the requester)."""
    principal.require(INTAKE)
    t = _load(session, ref, for_update=True)
    _check_version(t, if_match)
    _require_status(t, Status.RECEIVED)
    if len(write.note.strip()) < 2:
        raise InvalidInput("note: say why the ticket is cancelled")
    t.status = Status.CANCELLED.value
    t.closed_at = clock.now()
    _touch(t, clock)
    _event(
        session,
        t,
        principal,
        "cancelled",
        clock=clock,
        status_from=Status.RECEIVED.value,
        note=write.note,
        public=True,
    )
    audit.record(
        session,
        actor=principal,
        action="hotline.cancel",
        target_type="hotline_ticket",
        target_id=ref,
        clock=clock,
    )
    session.flush()
    return _ticket_out(t)


# --- return visit and rating ----------------------------------------------------------------------------

#: The hotline registering its closed tickets with quality monitoring (好差评).
_RATING_SYSTEM = system_principal("hotline", frozenset({"rating:cases"}))
_RATING_CHANNEL = {"phone": "phone", "app": "app", "email": "mail"}


def revisit(
    session: Session,
    principal: Principal,
    ref: str,
    write: VisitWrite,
    *,
    sealer: Sealer,
    clock: Clock,
    if_match: int | None = None,
) -> TicketOut:
    """The return visit (回访): solved or not, satisfaction 1–5. An operator records it after calling; a
    signed-in requester may answer for their own ticket. Unresolved or dissatisfied tickets may be reopened
    (to the unit that replied); otherwise the ticket closes and is registered for quality monitoring."""
    t = _load(session, ref, for_update=True)
    own = principal.account_id is not None and principal.account_id == t.requester_account_id
    if not (principal.can(INTAKE) or own):
        raise NotFound(f"no ticket {ref}")
    _check_version(t, if_match)
    _require_status(t, Status.REPLIED, Status.ANSWERED)
    now = clock.now()
    before = t.status
    t.revisited_at = now
    t.resolved = write.resolved
    t.satisfaction = write.satisfaction
    satisfied = write.satisfaction in set(current_settings(session)["satisfied_levels"])
    data = {
        "resolved": write.resolved,
        "satisfaction": write.satisfaction,
        "by": "requester" if own else "operator",
    }
    if write.reopen:
        if write.resolved and satisfied:
            raise InvalidInput("reopen: only an unresolved or dissatisfied ticket is reopened")
        if before == Status.ANSWERED or t.replied_by_unit is None:
            # A direct answer that did not help goes to a unit like a new ticket.
            t.status = Status.RECEIVED.value
        else:
            t.lead_unit = t.replied_by_unit
            _set_deadlines(session, t, now)
            t.status = Status.DISPATCHED.value
            t.dispatch_count += 1
        t.reopen_count += 1
        _touch(t, clock)
        _event(
            session,
            t,
            principal,
            "reopened",
            clock=clock,
            status_from=before,
            note=write.comment,
            public=True,
            data=data,
            unit=t.lead_unit,
        )
    else:
        t.status = Status.CLOSED.value
        t.closed_at = now
        _touch(t, clock)
        _event(
            session,
            t,
            principal,
            "revisited",
            clock=clock,
            status_from=before,
            note=write.comment,
            public=True,
            data=data,
        )
        _close_children(session, t, clock=clock)
        _register_for_rating(session, t, clock=clock)
    session.flush()
    return _ticket_out(t)


def _close_children(session: Session, t: Ticket, *, clock: Clock) -> None:
    for child in repo.children_of(session, t.id, for_update=True):
        before = child.status
        child.closed_at = clock.now()
        _touch(child, clock)
        _event(
            session,
            child,
            "system",
            "original_closed",
            clock=clock,
            status_from=before,
            public=True,
            data={"original": t.ref},
        )


def _register_for_rating(session: Session, t: Ticket, *, clock: Clock) -> None:
    names = unit_names(session)
    unit = t.replied_by_unit or t.lead_unit
    start = t.dispatched_at or t.created_at
    end = t.replied_at or t.closed_at or clock.now()
    limit_hours = None
    if t.due_at is not None and t.dispatched_at is not None:
        limit_hours = (t.due_at - t.dispatched_at).total_seconds() / 3600
    region = t.region_code if t.region_code and re.fullmatch(r"\d{6,12}", t.region_code) else None
    write = RatingCaseWrite(
        owner_account_id=t.requester_account_id,
        item_code=None,
        item_name=t.category_path[:200],
        department=(names.get(unit or "", unit or "") or "12345")[:200],
        region_code=region,
        channel=_RATING_CHANNEL.get(t.channel, "online"),
        opened_at=t.created_at,
        closed_at=t.closed_at,
        outcome="solved" if t.resolved else "unsolved",
        limit_days=math.ceil(limit_hours / 24) if limit_hours else None,
        work_days=math.ceil(max(0.0, (end - start).total_seconds()) / 86400) if t.dispatched_at else None,
    )
    if write.limit_days is not None and write.work_days is not None and t.replied_on_time is not None:
        # The working-day rounding must not contradict the hour-exact deadline.
        write = write.model_copy(
            update={"work_days": write.limit_days if t.replied_on_time else write.limit_days + 1}
        )
    rating.record_case(session, _RATING_SYSTEM, CaseKind.TICKET, t.ref or "", write, clock=clock)


# --- deadlines ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadlineReport:
    warned: list[str]
    escalated: list[str]


def check_deadlines(session: Session, *, clock: Clock) -> DeadlineReport:
    """Warn units of tickets past the warning share of their time, escalate overdue ones to supervisors;
    each once per dispatch (idempotent, run on a schedule: ``tongban hotline deadlines``)."""
    now = clock.now()
    fraction = float(current_settings(session)["warn_fraction"])
    warned: list[str] = []
    escalated: list[str] = []
    for t in repo.tickets_due_for_check(session, [s.value for s in WITH_UNIT], now):
        if t.due_at is None or t.dispatched_at is None:
            continue
        span = (t.due_at - t.dispatched_at).total_seconds()
        if t.escalated_at is None and now > t.due_at:
            t.escalated_at = now
            if t.warned_at is None:
                t.warned_at = now
            _touch(t, clock)
            _event(
                session,
                t,
                "system",
                "escalated",
                clock=clock,
                status_from=t.status,
                unit=t.lead_unit,
                data={
                    "due_at": t.due_at.isoformat(),
                    "overdue_hours": round((now - t.due_at).total_seconds() / 3600, 1),
                },
            )
            escalated.append(t.ref or "")
        elif t.warned_at is None and (now - t.dispatched_at).total_seconds() >= fraction * span:
            t.warned_at = now
            _touch(t, clock)
            _event(
                session,
                t,
                "system",
                "warned",
                clock=clock,
                status_from=t.status,
                unit=t.lead_unit,
                data={"due_at": t.due_at.isoformat()},
            )
            warned.append(t.ref or "")
    session.flush()
    return DeadlineReport(warned=warned, escalated=escalated)


# --- the three rates -----------------------------------------------------------------------------------


def _city_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=CHINA)


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def rates(
    session: Session,
    principal: Principal,
    *,
    by: str,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> RateReport:
    """响应率, 解决率, 满意率 per unit, category (level 1), month or region, for tickets received in the
    period, with the counts behind each and a weighted score (weights configurable). A unit sees its own."""
    if not (principal.can(SUPERVISE) or principal.can(ANALYSE)):
        principal.require(HANDLE)
    mine = (
        None
        if (principal.can(SUPERVISE) or principal.can(ANALYSE))
        else sorted(principal_units(principal) or set())
    )
    rules_ = current_settings(session)
    weights = {k: float(v) for k, v in rules_["rate_weights"].items()}
    total_w = sum(weights.values()) or 1.0
    weights = {k: v / total_w for k, v in weights.items()}
    groups: dict[str, Any] = {
        "unit": repo.unit_column(),
        "category": func.substr(T.category_path, 1, 100),
        "region": T.region_code,
        "channel": T.channel,
    }
    if by not in (*groups, "month", "total"):
        raise InvalidInput(f"by: one of unit, category, month, region, channel, total (not {by!r})")
    start = _city_start(date_from) if date_from else None
    end = _city_start(date_to + dt.timedelta(days=1)) if date_to else None
    levels = [int(x) for x in rules_["satisfied_levels"]]

    def row(key: str, label: str, counts: Sequence[int]) -> RateRow:
        dispatched, in_time, revisited, resolved, rated, satisfied = counts
        r = _rate(in_time, dispatched)
        s = _rate(resolved, revisited)
        m = _rate(satisfied, rated)
        parts = {"response": r, "resolution": s, "satisfaction": m}
        known = {k: v for k, v in parts.items() if v is not None}
        score = None
        if known:
            w = sum(weights[k] for k in known) or 1.0
            score = round(100 * sum(weights[k] * v for k, v in known.items()) / w, 2)
        return RateRow(
            key=key,
            label=label,
            dispatched=dispatched,
            responded_in_time=in_time,
            response_rate=r,
            revisited=revisited,
            resolved=resolved,
            resolution_rate=s,
            rated=rated,
            satisfied=satisfied,
            satisfaction_rate=m,
            score=score,
        )

    total_counts = repo.rate_counts(
        session, group=None, created_from=start, created_to=end, satisfied_levels=levels, units=mine
    )[0]
    rows: list[RateRow] = []
    if by == "month":
        buckets: dict[str, list[int]] = {}
        for key, counts in _monthly(session, start, end, levels, mine):
            buckets[key] = counts
        rows = [row(k, k, v) for k, v in sorted(buckets.items())]
    elif by == "category":
        merged: dict[str, list[int]] = {}
        for key, *counts in repo.rate_counts(
            session,
            group=T.category_path,
            created_from=start,
            created_to=end,
            satisfied_levels=levels,
            units=mine,
        ):
            top = (key or "").split("/")[0] or "—"
            acc = merged.setdefault(top, [0] * 6)
            for i, v in enumerate(counts):
                acc[i] += int(v)
        rows = [row(k, k, v) for k, v in sorted(merged.items())]
    elif by != "total":
        names = unit_names(session) if by == "unit" else {}
        for key, *counts in repo.rate_counts(
            session, group=groups[by], created_from=start, created_to=end, satisfied_levels=levels, units=mine
        ):
            k = str(key or "")
            rows.append(row(k, names.get(k, k) or "—", counts))
    return RateReport(
        by=by,
        date_from=date_from,
        date_to=date_to,
        weights=weights,
        total=row("", "", total_counts[1:]),
        rows=rows,
    )


def _monthly(
    session: Session,
    start: dt.datetime | None,
    end: dt.datetime | None,
    levels: Sequence[int],
    units: Sequence[str] | None,
) -> list[tuple[str, list[int]]]:
    """Counts per city month: one grouped query per month of the range (months are few)."""
    bounds = repo_ticket_span(session)
    if bounds is None:
        return []
    first = (start or bounds[0]).astimezone(CHINA).date().replace(day=1)
    last = ((end - dt.timedelta(seconds=1)) if end else bounds[1]).astimezone(CHINA).date()
    out: list[tuple[str, list[int]]] = []
    month = first
    while month <= last and len(out) < 120:
        nxt = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        lo = max(_city_start(month), start) if start else _city_start(month)
        hi = min(_city_start(nxt), end) if end else _city_start(nxt)
        counts = repo.rate_counts(
            session, group=None, created_from=lo, created_to=hi, satisfied_levels=levels, units=units
        )[0]
        if counts[1]:
            out.append((f"{month:%Y-%m}", [int(c) for c in counts[1:]]))
        month = nxt
    return out


def repo_ticket_span(session: Session) -> tuple[dt.datetime, dt.datetime] | None:
    lo, hi = session.execute(select(func.min(T.created_at), func.max(T.created_at))).one()
    if lo is None:
        return None
    conv = UTCDateTime()
    return conv.process_result_value(lo, None) or lo, conv.process_result_value(hi, None) or hi


# --- attachments ----------------------------------------------------------------------------------------

#: What may be attached: photos and documents, at most 10 MB each and 10 per ticket.
ATTACHMENT_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "application/pdf"})
MAX_ATTACHMENT = 10 * 1024 * 1024
MAX_ATTACHMENTS = 10


def add_attachment(
    session: Session,
    principal: Principal,
    ref: str,
    *,
    name: str,
    media_type: str,
    data: bytes,
    files: Any,
    clock: Clock,
) -> AttachmentOut:
    """Attach a photo or document (the requester's evidence, the unit's reply document); sealed at rest."""
    t = _readable(session, principal, ref, for_update=True)
    if media_type not in ATTACHMENT_TYPES:
        raise InvalidInput(f"media type {media_type!r} is not accepted; send JPEG, PNG, WebP or PDF")
    if not data:
        raise InvalidInput("the file is empty")
    if len(data) > MAX_ATTACHMENT:
        raise PayloadTooLarge("an attachment is at most 10 MB")
    if len(repo.attachments_of(session, t.id)) >= MAX_ATTACHMENTS:
        raise Conflict(f"{ref} has {MAX_ATTACHMENTS} attachments already")
    if t.status in (Status.CLOSED, Status.CANCELLED, Status.MERGED):
        raise WrongStatus(f"{ref} is {t.status}")
    key = new_file_key()
    files.put(key, data)
    safe_name = re.sub(r"[\x00-\x1f/\\]", "_", name).strip()[:200] or "attachment"
    by = "requester" if principal.account_id == t.requester_account_id else principal.username
    a = Attachment(
        ticket_id=t.id,
        file_key=key,
        name=safe_name,
        media_type=media_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        added_by=by,
        created_at=clock.now(),
    )
    session.add(a)
    _touch(t, clock)
    _event(session, t, principal, "attached", clock=clock, status_from=t.status, data={"name": safe_name})
    session.flush()
    return _attachment_out(a)


def attachment_data(
    session: Session, principal: Principal, ref: str, attachment_id: int, *, files: Any
) -> tuple[AttachmentOut, bytes]:
    t = _readable(session, principal, ref)
    for a in repo.attachments_of(session, t.id):
        if a.id == attachment_id:
            return _attachment_out(a), files.get(a.file_key)
    raise NotFound(f"no attachment {attachment_id} on {ref}")


# --- the classifier ---------------------------------------------------------------------------------------

_models: dict[tuple[Any, ...], Any] = {}
_models_lock = threading.Lock()


def _loaded_model(session: Session, embedder: Any) -> tuple[int, Any] | None:
    """The active model, loaded once per process (and again when another one becomes active). The key
    includes when it was made and the embedder, so a database restored or rebuilt with reused ids never
    serves a stale model."""
    from tongban.hotline import classifier

    key = repo.active_model_key(session)
    if key is None:
        return None
    cache_key = (*key, id(embedder))
    with _models_lock:
        if cache_key not in _models:
            row = repo.model_by_id(session, key[0])
            assert row is not None  # noqa: S101
            _models.clear()
            _models[cache_key] = classifier.TicketModel.from_bytes(row.data, embedder=embedder)
        return key[0], _models[cache_key]


def suggest(
    session: Session, principal: Principal, ref: str, *, embedder: Any, clock: Clock
) -> SuggestionOut:
    """The classifier's suggested category for a ticket, with its explanation; stored on the ticket the
    first time (so corrections can be measured)."""
    if not (principal.can(INTAKE) or principal.can(SUPERVISE)):
        principal.require(INTAKE)
    t = _load(session, ref)
    loaded = _loaded_model(session, embedder) if embedder is not None else None
    if loaded is None:
        return SuggestionOut(
            category=None,
            path=None,
            confidence=None,
            alternatives=[],
            explanation={"reason": "no classifier trained yet"},
            model_id=None,
        )
    model_id, model = loaded
    d = model.suggest(t.subject, t.body).as_dict()
    path = d["path"] or d["category"]
    if path and not t.suggested_path:
        # Only a path the taxonomy has (a model may know labels the taxonomy dropped since).
        t.suggested_path = str(path) if repo.category_prefix_exists(session, str(path)) else ""
        t.suggested_confidence = float(d["confidence"])
    return SuggestionOut(
        category=d["category"],
        path=d["path"],
        confidence=d["confidence"],
        alternatives=[(str(c), float(p)) for c, p in d["alternatives"]],
        explanation=d["explanation"],
        model_id=model_id,
    )


def import_examples(session: Session, rows: Iterable[Mapping[str, Any]], *, source: str, clock: Clock) -> int:
    """Import labelled texts (``id``, ``subject``, ``body``, ``category`` as in ``labelled.jsonl``) the
    classifier learns from; idempotent per ``source`` and id."""
    added = 0
    batch: list[Example] = []
    for n, raw in enumerate(rows, start=1):
        body = str(raw.get("body") or "").strip()
        category = str(raw.get("category") or "").strip()
        ident = str(raw.get("id") if raw.get("id") is not None else n)
        if not body or not category:
            raise InvalidInput(f"{source} line {n}: needs body and category")
        split_path(category)
        batch.append(
            Example(
                source=f"{source}:{ident}:{n}",
                subject=str(raw.get("subject") or "")[:300],
                body=consult.mask_text(body),
                category_path=category,
                created_at=clock.now(),
            )
        )
    known = repo.example_sources(session, [e.source for e in batch])
    for e in batch:
        if e.source not in known:
            session.add(e)
            added += 1
    session.flush()
    return added


def train_model(session: Session, principal: Principal, *, embedder: Any, clock: Clock) -> Model:
    """Train a classifier on the imported examples and every confirmed ticket, and make it the active one
    (the previous stays stored)."""
    principal.require(ADMIN)
    from tongban.hotline import classifier

    records = [
        classifier.LabelledText(id=f"x{e.id}", subject=e.subject, body=e.body, category=e.category_path)
        for e in repo.examples(session)
    ]
    tickets = repo.confirmed_tickets(session)
    records += [classifier.LabelledText(id=f"t{i}", subject=s, body=b, category=c) for i, s, b, c in tickets]
    if len({r.category.split("/")[0] for r in records}) < 2:
        raise NoModel("training needs labelled tickets of at least two categories")
    taxonomy = [
        classifier.TaxonomyPath(c.level1, c.level2, c.level3)
        for c in repo.categories(session, active_only=True)
        if c.level3
    ]
    if embedder is None:
        raise NoModel("the classifier needs the embedding model (TONGBAN_EMBEDDING=e5)")
    try:
        model = classifier.train(records, taxonomy, embedder=embedder)
    except classifier.ClassifierError as exc:
        raise InvalidInput(f"training data: {exc}") from exc
    repo.deactivate_models(session)
    row = Model(
        created_at=clock.now(),
        created_by=principal.username,
        examples=len(records) - len(tickets),
        tickets=len(tickets),
        last_ticket_id=max((i for i, *_ in tickets), default=0),
        labels=sorted({r.category.split("/")[0] for r in records}),
        metrics={},
        data=model.to_bytes(),
        active=True,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=principal,
        action="hotline.model_trained",
        target_type="hotline_model",
        target_id=str(row.id),
        clock=clock,
        detail={"examples": row.examples, "tickets": row.tickets},
    )
    return row


def retrain_due(session: Session) -> bool:
    """Whether enough tickets were confirmed since the active model to retrain (the feedback loop)."""
    after = int(current_settings(session)["retrain_after"])
    if after <= 0:
        return False
    active = repo.active_model(session)
    since = active.last_ticket_id if active is not None else 0
    return repo.confirmed_since(session, since) >= after


def has_model(session: Session) -> bool:
    return repo.active_model_id(session) is not None
