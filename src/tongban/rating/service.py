"""Ratings (好差评) and service-quality monitoring (质效监测): the domain's public functions. Each takes a
session and never commits.

A **case** is anything a person can rate: an application of this platform (registered when its process
ends, through intake's ``intake.application.closed`` event), a hotline ticket or another system's case
(registered by that system through the API), a consultation (registered when its asker rates it), or an
in-person visit (recorded by the window officer). One rating per case; a bad review (不满意, 非常不满意)
opens a rectification for the responsible unit with a return call and a rectification deadline, after
which the rater may rate once more (the follow-up rating replaces the first in the satisfaction figures).
The unit may appeal a mistaken or malicious rating; a supervisor other than the appellant decides, and
an upheld appeal strikes the rating out of every figure. Every officer action is audited.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tongban.consult import service as consult
from tongban.core import audit, calendar, events
from tongban.core.auth import Principal
from tongban.core.clock import Clock
from tongban.core.crypto import Sealer
from tongban.core.errors import (
    CalendarUnknown,
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthenticated,
)
from tongban.core.llm import ChatModel
from tongban.core.models import Account
from tongban.intake import service as intake
from tongban.rating import reasons as reason_rules
from tongban.rating import repository as repo
from tongban.rating import stats
from tongban.rating.models import Alert, Case, Publication, Rating, Rectification, RectificationEvent, Target
from tongban.rating.models import Setting as SettingRow
from tongban.rating.schemas import (
    AlertOut,
    CaseOut,
    CasePage,
    CaseWrite,
    EventOut,
    Filters,
    IndicatorReport,
    IndicatorValues,
    PainPointOut,
    PainPointReport,
    PublicationOut,
    RateableOut,
    RatingOut,
    RatingWrite,
    RectificationOut,
    SettingsWrite,
    TargetOut,
    TargetWrite,
    VisitWrite,
)
from tongban.rating.vocab import (
    INDICATOR_BY_CODE,
    INDICATORS,
    SETTING_DEFAULTS,
    CaseKind,
    Setting,
    is_bad,
)

#: Record in-person visits at a window.
VISIT = "rating:visit"
#: A rating terminal at a window: takes the rating of a visit it served.
TERMINAL = "rating:terminal"
#: Another system registers its cases (tickets, its own applications).
CASES = "rating:cases"
#: Handle the rectification of bad reviews (of one's own unit, or of every unit).
RECTIFY = "rating:rectify"
#: Decide appeals, set targets and rules, publish results.
SUPERVISE = "rating:supervise"
#: See indicators, pain points and cases behind them.
MONITOR = "rating:monitor"

#: A role ``quality_unit:<unit>`` handles the rectifications of that unit only.
UNIT_ROLE = "quality_unit:"
ALL_UNITS_ROLES = frozenset({"admin", "quality_officer", "quality_supervisor"})

CHINA = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")


class NotClosed(DomainError):
    status = 409
    slug = "case-not-closed"
    title = "The case is not closed yet"


class AlreadyRated(DomainError):
    status = 409
    slug = "already-rated"
    title = "The case has been rated already"


class WindowClosed(DomainError):
    status = 409
    slug = "rating-window-closed"
    title = "The rating period has ended"


class NotYourCase(DomainError):
    status = 403
    slug = "not-your-case"
    title = "Only the person served may rate this case"


def _today(clock: Clock) -> dt.date:
    return clock.now().astimezone(CHINA).date()


def _audit(
    session: Session,
    actor: Principal | str,
    action: str,
    target_id: str,
    clock: Clock,
    detail: dict[str, Any] | None = None,
    target_type: str = "rating_case",
) -> None:
    audit.record(
        session,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        clock=clock,
        detail=detail or {},
    )


# --- settings -------------------------------------------------------------------------------------------


def settings(session: Session) -> dict[str, int]:
    stored = repo.settings(session)
    return {k.value: stored.get(k.value, v) for k, v in SETTING_DEFAULTS.items()}


def _setting(session: Session, key: Setting) -> int:
    row = repo.setting_row(session, key.value)
    return row.value if row is not None else SETTING_DEFAULTS[key]


def update_settings(
    session: Session, principal: Principal, write: SettingsWrite, *, clock: Clock
) -> dict[str, int]:
    principal.require(SUPERVISE)
    changed = {k: v for k, v in write.model_dump().items() if v is not None}
    before = settings(session)
    for key, value in changed.items():
        row = repo.setting_row(session, key)
        if row is None:
            session.add(
                SettingRow(key=key, value=value, updated_by=principal.username, updated_at=clock.now())
            )
        else:
            row.value, row.updated_by, row.updated_at = value, principal.username, clock.now()
    session.flush()
    _audit(
        session,
        principal,
        "rating.settings.update",
        "settings",
        clock,
        {k: [before[k], v] for k, v in changed.items()},
        target_type="rating_setting",
    )
    return settings(session)


# --- working days --------------------------------------------------------------------------------------


def _add_working_days(session: Session, start: dt.date, days: int) -> dt.date:
    """``days`` working days after ``start`` by the official calendar; Monday to Friday where the year's
    schedule is not loaded (a rating is never refused for want of a holiday table)."""
    try:
        return calendar.working_calendar(session).add_working_days(start, days)
    except CalendarUnknown:
        day, counted = start, 0
        while counted < days:
            day += dt.timedelta(days=1)
            if day.weekday() < 5:
                counted += 1
        return day


def _working_days_between(session: Session, start: dt.date, end: dt.date) -> int:
    try:
        return calendar.working_calendar(session).working_days_between(start, end)
    except CalendarUnknown:
        return sum(
            1 for n in range(1, (end - start).days + 1) if (start + dt.timedelta(days=n)).weekday() < 5
        )


# --- cases ---------------------------------------------------------------------------------------------


def _close(session: Session, case: Case, closed_at: dt.datetime, *, window: dt.timedelta) -> None:
    case.closed_at = closed_at
    day = closed_at.astimezone(CHINA).date()
    case.closed_on = day
    case.closed_month = day.strftime("%Y-%m")
    case.rate_until = closed_at + window


def _new_case(**values: Any) -> Case:
    """A case with every defaulted column set (column defaults apply only at insert; pages read unsaved
    cases too)."""
    blank: dict[str, Any] = {
        "item_name": "",
        "department": "",
        "region": "",
        "outcome": "",
        "visits": 0,
        "materials_total": 0,
        "materials_exempted": 0,
        "precheck_findings": 0,
        "supplements": 0,
        "longest_step": "",
        "steps": [],
        "reminders": 0,
    }
    return Case(**{**blank, **values})


def case_out(case: Case) -> CaseOut:
    return CaseOut.model_validate(case, from_attributes=True)


def _window(session: Session) -> dt.timedelta:
    return dt.timedelta(days=_setting(session, Setting.WINDOW_DAYS))


def _from_facts(session: Session, facts: intake.CaseFacts, *, clock: Clock, persist: bool = True) -> Case:
    """The fact row of a closed application (new, or refreshed when it exists). ``persist=False`` builds a
    new one without storing it (for reading pages, which do not write)."""
    case = repo.case_by_ref(session, CaseKind.APPLICATION.value, facts.receipt_no)
    now, window = clock.now(), _window(session)
    if case is None and not persist:
        case = _new_case(
            kind=CaseKind.APPLICATION.value,
            ref=facts.receipt_no,
            created_at=now,
            updated_at=now,
            reminders=0,
            visits=repo.visits_for(session, facts.receipt_no),
        )
        _fill(case, facts)
        _close(session, case, facts.closed_at, window=window)
        return case
    if case is None:
        case = _new_case(
            kind=CaseKind.APPLICATION.value,
            ref=facts.receipt_no,
            created_at=now,
            updated_at=now,
            reminders=0,
            visits=repo.visits_for(session, facts.receipt_no),
        )
        session.add(case)
    _fill(case, facts)
    if case.closed_at is None:
        _close(session, case, facts.closed_at, window=window)
    case.updated_at = now
    session.flush()
    _changed(session)
    return case


def _fill(case: Case, facts: intake.CaseFacts) -> None:
    longest = max(facts.steps, key=lambda s: s["hours"], default=None)
    case.owner_account_id = facts.applicant_account_id
    case.item_code, case.item_name = facts.item_code, facts.item_name
    case.department, case.region, case.region_code = facts.department, facts.region, facts.region_code
    case.channel = facts.channel
    case.opened_at = facts.submitted_at
    case.outcome = facts.outcome
    case.limit_days, case.work_days, case.on_time = facts.limit_days, facts.work_days, facts.on_time
    case.materials_total, case.materials_exempted = facts.materials_total, facts.materials_exempted
    case.precheck_findings, case.supplements = facts.precheck_findings, facts.supplements
    case.first_pass = facts.precheck_findings == 0 and facts.supplements == 0
    case.steps = facts.steps
    case.longest_step = str(longest["step"]) if longest else ""
    case.longest_step_hours = int(longest["hours"]) if longest else None


def _on_application_closed(session: Session, *, clock: Clock, receipt_no: str, sealer: Sealer) -> None:
    """An application ended: record its facts and invite the applicant to rate (portal, email, SMS)."""
    facts = intake.case_facts(session, receipt_no, clock=clock)
    if facts is None:
        return
    case = _from_facts(session, facts, clock=clock)
    if case.invited_at is None:
        case.invited_at = clock.now()
        intake.rating_notice(session, receipt_no, "invite", sealer=sealer, clock=clock)


events.subscribe(intake.CLOSED_EVENT, _on_application_closed)


def sync_applications(session: Session, *, clock: Clock, batch: int = 1000) -> int:
    """Record every closed application that has no fact row yet (after an upgrade, or a restore);
    idempotent, and it sends no invitations (their moment has passed)."""
    added, after = 0, 0
    while True:
        rows = intake.closed_receipts(session, after_id=after, limit=batch)
        if not rows:
            return added
        for app_id, receipt_no in rows:
            after = app_id
            if repo.case_by_ref(session, CaseKind.APPLICATION.value, receipt_no) is not None:
                continue
            facts = intake.case_facts(session, receipt_no, clock=clock)
            if facts is not None:
                _from_facts(session, facts, clock=clock)
                added += 1


def record_case(
    session: Session, principal: Principal, kind: CaseKind, ref: str, write: CaseWrite, *, clock: Clock
) -> CaseOut:
    """Register or update another system's case (a hotline ticket, a hall's queue ticket, a department
    system's application): idempotent on ``(kind, ref)``. Closing it opens its rating window."""
    principal.require(CASES)
    if kind == CaseKind.APPLICATION and intake.application_standing(session, ref) is not None:
        raise Conflict(f"{ref} is an application of this platform: it registers itself when it closes")
    case = repo.case_by_ref(session, kind.value, ref, for_update=True)
    now = clock.now()
    created = case is None
    if case is None:
        case = _new_case(kind=kind.value, ref=ref, created_at=now, updated_at=now)
        session.add(case)
    elif case.closed_at is not None and write.closed_at is None:
        raise Conflict(f"the case {ref} is closed; a closed case cannot be reopened here")
    for name in (
        "owner_account_id",
        "parent_ref",
        "item_code",
        "item_name",
        "department",
        "region",
        "region_code",
        "channel",
        "opened_at",
        "outcome",
        "limit_days",
        "work_days",
        "visits",
        "materials_total",
        "materials_exempted",
        "precheck_findings",
        "supplements",
    ):
        setattr(case, name, getattr(write, name))
    if write.owner_account_id is not None and session.get(Account, write.owner_account_id) is None:
        raise InvalidInput(f"owner_account_id: no account {write.owner_account_id}")
    case.on_time = (
        write.work_days <= write.limit_days
        if write.work_days is not None and write.limit_days is not None
        else None
    )
    case.first_pass = (
        (write.precheck_findings == 0 and write.supplements == 0) if kind == CaseKind.APPLICATION else None
    )
    if created and kind == CaseKind.VISIT and write.parent_ref:
        parent = repo.case_by_ref(session, CaseKind.APPLICATION.value, write.parent_ref, for_update=True)
        if parent is not None:
            parent.visits += 1
            parent.updated_at = now
    if not created:
        rect = repo.rectification_of_case(session, case.id)
        if rect is not None and rect.state in ("open", "contacted") and rect.unit != write.department:
            rect.unit = write.department  # the case moved to another unit: so does its rectification
            _rect_event(session, rect, principal.username, "reassign", write.department, clock)
    if write.closed_at is not None and case.closed_at is None:
        minutes = _setting(session, Setting.VISIT_WINDOW_MINUTES)
        window = dt.timedelta(minutes=minutes) if kind == CaseKind.VISIT else _window(session)
        _close(session, case, write.closed_at, window=window)
    case.updated_at = now
    session.flush()
    _changed(session)
    _audit(
        session,
        principal,
        "rating.case.register" if created else "rating.case.update",
        f"{kind}:{ref}",
        clock,
    )
    return case_out(case)


def record_visit(session: Session, principal: Principal, write: VisitWrite, *, clock: Clock) -> CaseOut:
    """A window officer records an in-person visit (现场办事): a case of its own, closed at once, that the
    hall's rating terminal (or the visitor, signed in) may rate within the visit window."""
    principal.require(VISIT)
    if write.receipt_no is not None and intake.application_standing(session, write.receipt_no) is None:
        raise InvalidInput(f"receipt_no: no application {write.receipt_no}")
    if write.visitor_account_id is not None and session.get(Account, write.visitor_account_id) is None:
        raise InvalidInput(f"visitor_account_id: no account {write.visitor_account_id}")
    now = clock.now()
    ref = f"V{now.astimezone(CHINA):%Y%m%d}{secrets.token_hex(5).upper()}"
    case = _new_case(
        kind=CaseKind.VISIT.value,
        ref=ref,
        parent_ref=write.receipt_no,
        owner_account_id=write.visitor_account_id,
        item_code=write.item_code,
        item_name=write.item_name,
        department=write.department,
        region=write.region,
        region_code=write.region_code,
        channel="window",
        opened_at=now,
        outcome=write.outcome,
        visits=1,
        reminders=0,
        created_at=now,
        updated_at=now,
    )
    _close(session, case, now, window=dt.timedelta(minutes=_setting(session, Setting.VISIT_WINDOW_MINUTES)))
    session.add(case)
    if write.receipt_no is not None:
        parent = repo.case_by_ref(session, CaseKind.APPLICATION.value, write.receipt_no, for_update=True)
        if parent is not None:
            parent.visits += 1
            parent.updated_at = now
    session.flush()
    _changed(session)
    _audit(session, principal, "rating.visit.record", f"visit:{ref}", clock, {"receipt_no": write.receipt_no})
    return case_out(case)


def get_case(session: Session, principal: Principal, kind: CaseKind, ref: str) -> CaseOut:
    principal.require(MONITOR)
    case = repo.case_by_ref(session, kind.value, ref)
    if case is None:
        raise NotFound(f"no {kind} case {ref}")
    return case_out(case)


# --- rating --------------------------------------------------------------------------------------------


def _owned(principal: Principal, case: Case) -> None:
    if case.kind == CaseKind.VISIT and principal.can(TERMINAL):
        return
    if case.owner_account_id is None:
        if case.kind == CaseKind.CONSULTATION:
            return  # an anonymous consultation: whoever holds its id asked the questions
        raise NotYourCase("this case can be rated only at the terminal where it was served")
    if not principal.is_authenticated:
        raise Unauthenticated("sign in to rate this case")
    if principal.account_id != case.owner_account_id:
        raise NotYourCase("only the person served may rate this case")


def consultation_ref(conversation_id: str) -> str:
    """The case number of a consultation: a digest of its conversation id. The id itself works like a
    password to the transcript while the conversation lives, so it is never stored or shown to staff."""
    return "C" + hashlib.sha256(conversation_id.encode()).hexdigest()[:40]


def _case_ref(kind: CaseKind, ref: str) -> str:
    return consultation_ref(ref) if kind == CaseKind.CONSULTATION else ref


def _consultation_case(
    session: Session, principal: Principal, ref: str, *, clock: Clock, persist: bool = True
) -> Case:
    facts = consult.conversation_facts(session, principal, ref, clock=clock)
    if facts is None:
        raise NotFound("no such consultation (it may have expired)")
    if facts.answered == 0:
        raise NotClosed("the consultation has no answer to rate yet")
    now, window = clock.now(), _window(session)
    case = _new_case(
        kind=CaseKind.CONSULTATION.value,
        ref=consultation_ref(ref),
        owner_account_id=principal.account_id if facts.account is not None else None,
        item_name=facts.agent_code or "",
        department="",
        channel="online",
        opened_at=facts.created_at,
        outcome="answered",
        reminders=0,
        created_at=now,
        updated_at=now,
    )
    _close(session, case, facts.last_at, window=window)
    if persist:
        try:
            with session.begin_nested():
                session.add(case)
                session.flush()
        except IntegrityError as exc:  # another request registered it first: it was rated
            raise AlreadyRated("this consultation has been rated already") from exc
    return case


def _case_for_rating(
    session: Session, principal: Principal, kind: CaseKind, ref: str, *, clock: Clock
) -> Case:
    case = repo.case_by_ref(session, kind.value, _case_ref(kind, ref), for_update=True)
    if case is None and kind == CaseKind.APPLICATION:
        standing = intake.application_standing(session, ref)
        if standing is None:
            raise NotFound(f"no application {ref}")
        if not principal.is_authenticated:
            raise Unauthenticated("sign in to rate your application")
        if standing[0] != principal.account_id:
            raise NotYourCase("only the applicant may rate this application")
        facts = intake.case_facts(session, ref, clock=clock)
        if facts is None:
            raise NotClosed(f"the application {ref} is still being processed; rate it once it is closed")
        return _from_facts(session, facts, clock=clock)
    if case is None and kind == CaseKind.CONSULTATION:
        return _consultation_case(session, principal, ref, clock=clock)
    if case is None:
        raise NotFound(f"no {kind} case {ref}")
    _owned(principal, case)
    if case.closed_at is None:
        raise NotClosed(f"the case {ref} is not closed yet; rate it once it is closed")
    return case


def _rating_out(rating: Rating, case: Case, rect: Rectification | None = None) -> RatingOut:
    return RatingOut(
        id=rating.id,
        kind=CaseKind(case.kind),
        ref=case.ref,
        round=rating.round,
        level=rating.level,
        dimensions=dict(rating.dimensions),
        text=rating.text,
        reasons=list(rating.reasons),
        anonymous=rating.anonymous,
        channel=rating.channel,
        excluded=rating.excluded,
        created_at=rating.created_at,
        rectification_id=rect.id if rect is not None and rect.rating_id == rating.id else None,
    )


def classify_reasons(text: str, dimensions: Mapping[str, int], model: ChatModel | None = None) -> list[str]:
    """The reasons of a bad review: the configured language model's reading when it gives one, else the
    rules; low dimension scores always count."""
    found = reason_rules.classify(text, dimensions)
    if model is not None and text.strip():
        read = reason_rules.classify_with_model(model, text)
        if read:
            extra = [r for r in reason_rules.classify("", dimensions) if r != "other" and r not in read]
            return read + extra
    return found


def rate(
    session: Session,
    principal: Principal,
    kind: CaseKind,
    ref: str,
    write: RatingWrite,
    *,
    clock: Clock,
    model: ChatModel | None = None,
) -> RatingOut:
    """Rate a closed case once (``initial``), and once more after its bad review was rectified
    (``follow_up``). Refused with a clear error: a case that is not closed, not the rater's, already
    rated, or whose rating period has ended."""
    text = consult.mask_text(write.text)
    dims = {d.value: s for d, s in write.dimensions.items()}
    # Classified before any row is locked: a language model may take seconds.
    reasons = classify_reasons(text, dims, model) if is_bad(write.level) else []
    case = _case_for_rating(session, principal, kind, ref, clock=clock)
    now = clock.now()
    given = repo.ratings_of(session, [case.id])[case.id]
    rounds = {r.round for r in given}
    rect = repo.rectification_of_case(session, case.id)
    if "initial" not in rounds:
        round_ = "initial"
        if case.rate_until is not None and now > case.rate_until:
            raise WindowClosed(
                f"the rating period of {ref} ended on {case.rate_until.astimezone(CHINA):%Y-%m-%d}"
            )
    elif rect is not None and rect.state == "rectified" and "follow_up" not in rounds:
        if case.owner_account_id is None or principal.account_id != case.owner_account_id:
            raise NotYourCase("only the person who gave the first rating may rate again")
        round_ = "follow_up"
        if rect.follow_up_until is not None and now > rect.follow_up_until:
            raise WindowClosed("the period for the follow-up rating has ended")
    else:
        raise AlreadyRated(f"{ref} has been rated already; each case is rated once")
    rating = Rating(
        case_id=case.id,
        round=round_,
        level=write.level,
        dimensions=dims,
        text=text,
        reasons=reasons,
        anonymous=write.anonymous,
        rater_account_id=principal.account_id,
        channel=write.channel,
        excluded=False,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(rating)
            session.flush()
    except IntegrityError as exc:  # a second request of the same rater won the race
        raise AlreadyRated(f"{ref} has been rated already; each case is rated once") from exc
    case.level = write.level
    case.updated_at = now
    _changed(session)
    if round_ == "initial":
        case.first_level, case.rated_at = write.level, now
        if is_bad(write.level):
            rect = _open_rectification(session, case, rating, clock=clock)
    elif rect is not None:
        rect.state, rect.closed_at = "closed", now
        rect.version += 1
        _rect_event(session, rect, "system", "follow_up", f"level {write.level}", clock)
    session.flush()
    _audit(
        session,
        principal.username if not write.anonymous else "anonymous",
        "rating.rate",
        f"{case.kind}:{case.ref}",
        clock,
        {"round": round_, "level": write.level, "channel": write.channel},
    )
    return _rating_out(rating, case, rect)


def _rect_event(
    session: Session, rect: Rectification, actor: str, action: str, note: str, clock: Clock
) -> None:
    session.add(
        RectificationEvent(rectification_id=rect.id, at=clock.now(), actor=actor, action=action, note=note)
    )


def _open_rectification(session: Session, case: Case, rating: Rating, *, clock: Clock) -> Rectification:
    today = _today(clock)
    callable_ = not rating.anonymous and case.owner_account_id is not None
    rect = Rectification(
        case_id=case.id,
        rating_id=rating.id,
        unit=case.department or "—",
        state="open",
        opened_at=clock.now(),
        contact_due=(
            _add_working_days(session, today, _setting(session, Setting.CONTACT_WORKING_DAYS))
            if callable_
            else None
        ),
        rectify_due=_add_working_days(session, today, _setting(session, Setting.RECTIFY_WORKING_DAYS)),
        appeal="none",
        version=1,
    )
    session.add(rect)
    session.flush()
    case.rectification = "open"
    _rect_event(session, rect, "system", "open", f"level {rating.level}", clock)
    _audit(
        session,
        "system",
        "rating.rectification.open",
        str(rect.id),
        clock,
        {"case": f"{case.kind}:{case.ref}", "unit": rect.unit, "rectify_due": rect.rectify_due.isoformat()},
        target_type="rating_rectification",
    )
    return rect


def _may_rate(
    case: Case, ratings: Sequence[Rating], rect: Rectification | None, now: dt.datetime
) -> str | None:
    rounds = {r.round for r in ratings}
    if case.closed_at is None:
        return None
    if "initial" not in rounds:
        return "initial" if case.rate_until is None or now <= case.rate_until else None
    if case.owner_account_id is None:
        return None  # nobody known to rate again
    if (
        rect is not None
        and rect.state == "rectified"
        and "follow_up" not in rounds
        and (rect.follow_up_until is None or now <= rect.follow_up_until)
    ):
        return "follow_up"
    return None


def my_cases(session: Session, principal: Principal, *, clock: Clock, limit: int = 100) -> list[RateableOut]:
    """The caller's closed cases with their ratings: what they may rate now and what became of their bad
    reviews (the rectification as the unit recorded it)."""
    if not principal.is_authenticated or principal.account_id is None:
        raise Unauthenticated("sign in to see your ratings")
    cases = repo.cases_of_owner(session, principal.account_id, limit=limit)
    ratings = repo.ratings_of(session, [c.id for c in cases])
    rects = repo.rectifications_of(session, [c.id for c in cases])
    now = clock.now()
    out = []
    for c in cases:
        rect = rects.get(c.id)
        out.append(
            RateableOut(
                case=case_out(c),
                ratings=[_rating_out(r, c, rect) for r in ratings[c.id]],
                may_rate=_may_rate(c, ratings[c.id], rect, now),
                rate_until=(
                    rect.follow_up_until if rect is not None and rect.state == "rectified" else c.rate_until
                ),
                rectification=(
                    _rect_out(session, rect, c, ratings[c.id], clock=clock, for_rater=True) if rect else None
                ),
            )
        )
    return out


def my_case(session: Session, principal: Principal, kind: CaseKind, ref: str, *, clock: Clock) -> RateableOut:
    """One case the caller may rate (or has rated), with its ratings and rectification."""
    case = repo.case_by_ref(session, kind.value, _case_ref(kind, ref))
    if case is None:
        if kind == CaseKind.APPLICATION:
            standing = intake.application_standing(session, ref)
            if standing is None:
                raise NotFound(f"no application {ref}")
            if not principal.is_authenticated or standing[0] != principal.account_id:
                raise NotYourCase("only the applicant may rate this application")
            if standing[1] in ("submitted", "in_progress", "supplement_requested"):
                raise NotClosed(f"the application {ref} is still being processed; rate it once it is closed")
            facts = intake.case_facts(session, ref, clock=clock)
            if facts is None:
                raise NotClosed(f"the application {ref} is not closed")
            case = _from_facts(session, facts, clock=clock, persist=False)
        elif kind == CaseKind.CONSULTATION:
            case = _consultation_case(session, principal, ref, clock=clock, persist=False)
        else:
            raise NotFound(f"no {kind} case {ref}")
    _owned(principal, case)
    ratings = repo.ratings_of(session, [case.id])[case.id]
    rect = repo.rectification_of_case(session, case.id)
    return RateableOut(
        case=case_out(case),
        ratings=[_rating_out(r, case, rect) for r in ratings],
        may_rate=_may_rate(case, ratings, rect, clock.now()),
        rate_until=rect.follow_up_until
        if rect is not None and rect.state == "rectified"
        else case.rate_until,
        rectification=_rect_out(session, rect, case, ratings, clock=clock, for_rater=True) if rect else None,
    )


# --- rectification -------------------------------------------------------------------------------------


def units_of(principal: Principal) -> set[str] | None:
    """The units whose rectifications the principal handles (None: every unit)."""
    if ALL_UNITS_ROLES & set(principal.roles):
        return None
    return {r[len(UNIT_ROLE) :] for r in principal.roles if r.startswith(UNIT_ROLE)}


def _overdue(rect: Rectification, today: dt.date) -> list[str]:
    if rect.appeal == "pending":
        return []  # the deadlines wait for the supervisor's decision
    out = []
    if rect.state == "open" and rect.contact_due is not None and today > rect.contact_due:
        out.append("contact")
    if rect.state in ("open", "contacted") and today > rect.rectify_due:
        out.append("rectify")
    return out


def _rect_out(
    session: Session,
    rect: Rectification,
    case: Case,
    ratings: Sequence[Rating],
    *,
    clock: Clock,
    for_rater: bool = False,
) -> RectificationOut:
    first = next((r for r in ratings if r.id == rect.rating_id), None)
    follow = next((r for r in ratings if r.round == "follow_up"), None)
    rater = None
    if first is not None and not first.anonymous and first.rater_account_id is not None and not for_rater:
        account = session.get(Account, first.rater_account_id)
        rater = account.display_name if account is not None else None
    return RectificationOut(
        id=rect.id,
        kind=CaseKind(case.kind),
        ref=case.ref,
        item_name=case.item_name,
        unit=rect.unit,
        state=rect.state,
        level=first.level if first is not None else 0,
        text=first.text if first is not None else "",
        reasons=list(first.reasons) if first is not None else [],
        dimensions=dict(first.dimensions) if first is not None else {},
        anonymous=first.anonymous if first is not None else False,
        rater=rater,
        opened_at=rect.opened_at,
        contact_due=rect.contact_due,
        rectify_due=rect.rectify_due,
        contacted_at=rect.contacted_at,
        contact_note=rect.contact_note,
        rectified_at=rect.rectified_at,
        rectify_note=rect.rectify_note,
        follow_up_until=rect.follow_up_until,
        follow_up_level=follow.level if follow is not None else None,
        closed_at=rect.closed_at,
        appeal=rect.appeal,
        appeal_reason="" if for_rater else rect.appeal_reason,
        appeal_by=None if for_rater else rect.appeal_by,
        appeal_decided_by=None if for_rater else rect.appeal_decided_by,
        appeal_note=rect.appeal_note,
        overdue=_overdue(rect, _today(clock)),
        version=rect.version,
        case=None if for_rater else case_out(case),
        events=(
            []
            if for_rater
            else [
                EventOut(at=e.at, actor=e.actor, action=e.action, note=e.note)
                for e in repo.rectification_events(session, rect.id)
            ]
        ),
    )


def _handled(
    session: Session, principal: Principal, rect_id: int, *, for_update: bool = False
) -> Rectification:
    if not (principal.can(RECTIFY) or principal.can(SUPERVISE)):
        principal.require(RECTIFY)
    rect = repo.rectification(session, rect_id, for_update=for_update)
    units = units_of(principal)
    if rect is None or (units is not None and rect.unit not in units):
        raise NotFound(f"no rectification {rect_id} of your unit")
    return rect


def _full(
    session: Session, rect: Rectification, *, clock: Clock, viewer: Principal | None = None
) -> RectificationOut:
    case = session.get(Case, rect.case_id)
    assert case is not None  # noqa: S101 - the foreign key holds
    ratings = repo.ratings_of(session, [case.id])[case.id]
    out = _rect_out(session, rect, case, ratings, clock=clock)
    if out.anonymous and (viewer is None or not viewer.can(SUPERVISE)):
        # An anonymous rater is not identified to the unit, not even through the case number (a receipt
        # number leads to the applicant); supervisors, who decide appeals, see it.
        out.ref = ""
        if out.case is not None:
            out.case = out.case.model_copy(update={"ref": "", "parent_ref": None})
    return out


def list_rectifications(
    session: Session,
    principal: Principal,
    *,
    state: str | None,
    overdue_only: bool = False,
    appeal: str | None = None,
    clock: Clock,
    page: int = 1,
    per_page: int = 100,
) -> list[RectificationOut]:
    """The rectifications of the caller's units (every unit for supervisors): those to act on first, by
    deadline; ``overdue_only`` and ``appeal`` (``pending`` ...) filter."""
    if not (principal.can(RECTIFY) or principal.can(SUPERVISE)):
        principal.require(RECTIFY)
    if page < 1 or not 1 <= per_page <= 500:
        raise InvalidInput("page from 1; per_page 1 to 500")
    rows = repo.rectifications(
        session,
        states=[state] if state else None,
        units=units_of(principal),
        limit=per_page,
        offset=(page - 1) * per_page,
        overdue_on=_today(clock) if overdue_only else None,
        appeal=appeal,
    )
    return [_full(session, r, clock=clock, viewer=principal) for r in rows]


def get_rectification(
    session: Session, principal: Principal, rect_id: int, *, clock: Clock
) -> RectificationOut:
    return _full(session, _handled(session, principal, rect_id), clock=clock, viewer=principal)


def _check_version(rect: Rectification, version: int | None) -> None:
    if version is not None and version != rect.version:
        raise Conflict("the rectification was changed by someone else; reload it")


def contact(
    session: Session,
    principal: Principal,
    rect_id: int,
    note: str,
    *,
    clock: Clock,
    version: int | None = None,
) -> RectificationOut:
    """The unit records its return call (回访) to the rater: what was said and agreed."""
    principal.require(RECTIFY)
    rect = _handled(session, principal, rect_id, for_update=True)
    _check_version(rect, version)
    if rect.state != "open":
        raise Conflict(f"the return call is recorded while the rectification is open (it is {rect.state})")
    if rect.contact_due is None:
        raise Conflict("the rating is anonymous: there is nobody to call; record the rectification")
    if rect.appeal == "pending":
        raise Conflict("an appeal is pending: wait for the supervisor's decision")
    rect.state, rect.contacted_at, rect.contact_note = "contacted", clock.now(), note
    rect.version += 1
    _rect_event(session, rect, principal.username, "contact", note, clock)
    _audit(
        session,
        principal,
        "rating.rectification.contact",
        str(rect.id),
        clock,
        target_type="rating_rectification",
    )
    return _full(session, rect, clock=clock, viewer=principal)


def rectify(
    session: Session,
    principal: Principal,
    rect_id: int,
    note: str,
    *,
    clock: Clock,
    sealer: Sealer,
    version: int | None = None,
) -> RectificationOut:
    """The unit records what it put right (整改); the rater is invited to rate again."""
    principal.require(RECTIFY)
    rect = _handled(session, principal, rect_id, for_update=True)
    _check_version(rect, version)
    if rect.appeal == "pending":
        raise Conflict("an appeal is pending: wait for the supervisor's decision")
    if rect.state == "open" and rect.contact_due is not None:
        raise Conflict("record the return call to the rater first")
    if rect.state not in ("open", "contacted"):
        raise Conflict(f"the rectification is {rect.state}")
    now = clock.now()
    case = session.get(Case, rect.case_id)
    assert case is not None  # noqa: S101
    rect.state, rect.rectified_at, rect.rectify_note = "rectified", now, note
    rect.follow_up_until = now + dt.timedelta(days=_setting(session, Setting.FOLLOW_UP_DAYS))
    if case.owner_account_id is None:  # nobody known to rate again: done
        rect.state, rect.follow_up_until, rect.closed_at = "closed", None, now
    rect.version += 1
    case.rectification = "rectified"
    case.rectified_on_time = _today(clock) <= rect.rectify_due
    case.updated_at = now
    _changed(session)
    _rect_event(session, rect, principal.username, "rectify", note, clock)
    _audit(
        session,
        principal,
        "rating.rectification.rectify",
        str(rect.id),
        clock,
        {"on_time": case.rectified_on_time},
        target_type="rating_rectification",
    )
    if case.kind == CaseKind.APPLICATION and case.owner_account_id is not None:
        intake.rating_notice(session, case.ref, "follow_up", sealer=sealer, clock=clock)
    return _full(session, rect, clock=clock, viewer=principal)


def appeal(
    session: Session,
    principal: Principal,
    rect_id: int,
    reason: str,
    *,
    clock: Clock,
    version: int | None = None,
) -> RectificationOut:
    """The unit appeals (申诉) a rating it holds mistaken or malicious; once per rectification."""
    principal.require(RECTIFY)
    rect = _handled(session, principal, rect_id, for_update=True)
    _check_version(rect, version)
    if rect.appeal != "none":
        raise Conflict(f"this rating has been appealed already (the appeal is {rect.appeal})")
    if rect.state not in ("open", "contacted"):
        raise Conflict(f"a rating is appealed before it is rectified (the rectification is {rect.state})")
    rect.appeal, rect.appeal_reason, rect.appeal_by, rect.appeal_at = (
        "pending",
        reason,
        principal.username,
        clock.now(),
    )
    rect.version += 1
    _rect_event(session, rect, principal.username, "appeal", reason, clock)
    _audit(session, principal, "rating.appeal.file", str(rect.id), clock, target_type="rating_rectification")
    return _full(session, rect, clock=clock, viewer=principal)


def decide_appeal(
    session: Session,
    principal: Principal,
    rect_id: int,
    *,
    upheld: bool,
    note: str,
    clock: Clock,
    version: int | None = None,
) -> RectificationOut:
    """A supervisor decides an appeal (申诉复核). Upheld: the rating is struck out of every figure and the
    rectification is void. Rejected: the rectification goes on, its deadlines unchanged."""
    principal.require(SUPERVISE)
    rect = repo.rectification(session, rect_id, for_update=True)
    if rect is None:
        raise NotFound(f"no rectification {rect_id}")
    _check_version(rect, version)
    if rect.appeal != "pending":
        raise Conflict("there is no pending appeal on this rectification")
    if rect.appeal_by == principal.username:
        raise Forbidden("an appeal is decided by someone other than the person who filed it")
    now = clock.now()
    rect.appeal = "upheld" if upheld else "rejected"
    rect.appeal_decided_by, rect.appeal_decided_at, rect.appeal_note = principal.username, now, note
    rect.version += 1
    case = session.get(Case, rect.case_id)
    assert case is not None  # noqa: S101
    if not upheld and rect.appeal_at is not None:
        # the unit could not act while the appeal waited: its deadlines move by the working days lost
        lost = _working_days_between(session, rect.appeal_at.astimezone(CHINA).date(), _today(clock))
        if lost > 0:
            if rect.contact_due is not None and rect.contacted_at is None:
                rect.contact_due = _add_working_days(session, rect.contact_due, lost)
            rect.rectify_due = _add_working_days(session, rect.rectify_due, lost)
    if upheld:
        for r in repo.ratings_of(session, [case.id])[case.id]:
            r.excluded = True
        rect.state, rect.closed_at = "void", now
        case.level = case.first_level = case.rated_at = None
        case.rectification, case.rectified_on_time = "void", None
        case.updated_at = now
        _changed(session)
    _rect_event(
        session, rect, principal.username, "appeal_upheld" if upheld else "appeal_rejected", note, clock
    )
    _audit(
        session,
        principal,
        "rating.appeal.decide",
        str(rect.id),
        clock,
        {"upheld": upheld},
        target_type="rating_rectification",
    )
    return _full(session, rect, clock=clock, viewer=principal)


def run_deadlines(session: Session, *, clock: Clock) -> dict[str, int]:
    """Escalate overdue return calls and rectifications (once each, audited) and close rectifications whose
    follow-up period ended without a rating. Idempotent; run it hourly (``tongban quality deadlines``)."""
    today, now = _today(clock), clock.now()
    appeal_days = _setting(session, Setting.APPEAL_WORKING_DAYS)
    counts = Counter[str]()
    for rect in repo.rectifications(
        session, states=["open", "contacted", "rectified"], units=None, limit=100_000
    ):
        late = _overdue(rect, today)
        for what, due in (("contact", rect.contact_due), ("rectify", rect.rectify_due)):
            if what not in late or getattr(rect, f"{what}_escalated_at") is not None:
                continue
            setattr(rect, f"{what}_escalated_at", now)
            _rect_event(session, rect, "system", f"escalate_{what}", f"due {due}", clock)
            _audit(
                session,
                "system",
                "rating.rectification.escalate",
                str(rect.id),
                clock,
                {"late": what},
                target_type="rating_rectification",
            )
            counts[f"{what}_escalated"] += 1
        if (
            rect.appeal == "pending"
            and rect.appeal_at is not None
            and _working_days_between(session, rect.appeal_at.astimezone(CHINA).date(), today) > appeal_days
            and not repo.has_event(session, rect.id, "escalate_appeal")
        ):
            _rect_event(session, rect, "system", "escalate_appeal", f"filed {rect.appeal_at:%Y-%m-%d}", clock)
            _audit(
                session,
                "system",
                "rating.appeal.escalate",
                str(rect.id),
                clock,
                {"filed": rect.appeal_at.isoformat()},
                target_type="rating_rectification",
            )
            counts["appeal_escalated"] += 1
        if rect.state == "rectified" and rect.follow_up_until is not None and now > rect.follow_up_until:
            rect.state, rect.closed_at = "closed", now
            rect.version += 1
            _rect_event(session, rect, "system", "close", "no follow-up rating in its period", clock)
            counts["closed"] += 1
    session.flush()
    return dict(counts)


def remind(session: Session, *, clock: Clock, sealer: Sealer) -> int:
    """Remind applicants who have not rated (once per ``remind_after_days``, at most ``max_reminders``
    times, never after the window). Idempotent: a reminder already sent is not sent again."""
    now = clock.now()
    every = dt.timedelta(days=_setting(session, Setting.REMIND_AFTER_DAYS))
    sent = 0
    max_reminders = _setting(session, Setting.MAX_REMINDERS)
    for case in repo.due_reminders(session, now, max_reminders=max_reminders, limit=10_000):
        last = case.reminded_at or case.invited_at
        if last is None or now < last + every:
            continue
        if intake.application_standing(session, case.ref) is None:
            case.reminders = max_reminders  # another system's case: nobody to remind here
            continue
        intake.rating_notice(session, case.ref, "reminder", sealer=sealer, clock=clock)
        case.reminders += 1
        case.reminded_at = now
        sent += 1
    session.flush()
    return sent


# --- indicators ----------------------------------------------------------------------------------------


def _ratio(n: Any, d: Any) -> float | None:
    n, d = float(n or 0), float(d or 0)
    return n / d if d else None


_SUMS = [
    "cases",
    "applications",
    "on_time",
    "on_time_known",
    "online",
    "visits",
    "materials_total",
    "materials_exempted",
    "first_pass",
    "first_pass_known",
    "rated",
    "counted",
    "satisfied",
    "first_counted",
    "bad",
    "rectified",
    "rectified_on_time",
    "level_1",
    "level_2",
    "level_3",
    "level_4",
    "level_5",
    *[f"only_{name}" for name in repo.ONLY],
]


class _Group:
    """The sums of one group, and its histogram of working days."""

    def __init__(self) -> None:
        self.sums = dict.fromkeys(_SUMS, 0)
        self.days: Counter[int] = Counter()
        self.label = ""

    def add(self, row: Mapping[str, Any]) -> None:
        for k in _SUMS:
            self.sums[k] += int(row[k] or 0)
        if row["w"] is not None:
            self.days[int(row["w"])] += int(row["cases"] or 0)

    def named(self, label: Any) -> None:
        if label is not None and (not self.label or str(label) > self.label):
            self.label = str(label)

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile of the working days."""
        n = sum(self.days.values())
        if n == 0:
            return None
        rank, seen = math.ceil(q * n), 0
        for days in sorted(self.days):
            seen += self.days[days]
            if seen >= rank:
                return float(days)
        return float(max(self.days))

    def values(self, group: str | None) -> IndicatorValues:
        s, days = self.sums, self.days
        total_days = sum(d * n for d, n in days.items())
        return IndicatorValues(
            group=group,
            label=self.label or (group or ""),
            cases=s["cases"],
            applications=s["applications"],
            on_time_rate=_ratio(s["on_time"], s["on_time_known"]),
            avg_work_days=_ratio(total_days, sum(days.values())),
            p90_work_days=self.percentile(0.9),
            online_share=_ratio(s["online"], s["applications"]),
            visits_per_case=_ratio(s["visits"], s["applications"]),
            exempted_share=_ratio(s["materials_exempted"], s["materials_total"]),
            first_pass_rate=_ratio(s["first_pass"], s["first_pass_known"]),
            rating_rate=_ratio(s["only_rateable_rated"], s["only_rateable"]),
            satisfaction_rate=_ratio(s["satisfied"], s["counted"]),
            bad_rate=_ratio(s["bad"], s["first_counted"]),
            rectification_rate=_ratio(s["rectified"], s["bad"]),
            rectified_on_time_rate=_ratio(s["rectified_on_time"], s["bad"]),
            rated=s["rated"],
            bad=s["bad"],
            rectified=s["rectified"],
            levels={str(k): s[f"level_{k}"] for k in range(5, 0, -1)},
            counts={name: s[f"only_{name}"] for name in repo.ONLY},
        )


def compute_many(
    session: Session, filters: Filters, dims: Sequence[str]
) -> tuple[IndicatorValues, dict[str, list[IndicatorValues]]]:
    """Every indicator for the filter, in total and per group of each grouping in ``dims``, from one scan
    of the fact table (no permission check and no cache: for jobs and publishing)."""
    unknown = [d for d in dims if d not in repo.GROUPS]
    if unknown:
        raise InvalidInput(f"group_by: one of {', '.join(repo.GROUPS)}")
    total = _Group()
    groups: dict[str, dict[str | None, _Group]] = {d: {} for d in dims}
    for row in repo.aggregates(session, filters, dims):
        total.add(row)
        for d in dims:
            key = None if row[f"g_{d}"] is None else str(row[f"g_{d}"])
            group = groups[d].setdefault(key, _Group())
            group.add(row)
            group.named(row[f"l_{d}"])
    out: dict[str, list[IndicatorValues]] = {}
    for d in dims:
        values = [g.values(key) for key, g in groups[d].items()]
        values.sort(key=lambda v: (v.group is None, v.group or ""))
        out[d] = values
    return total.values(None), out


def compute(
    session: Session, filters: Filters, group_by: str | None
) -> tuple[IndicatorValues, list[IndicatorValues]]:
    """Every indicator for the filter, in total and per group, from one scan of the fact table (no
    permission check and no cache: for jobs and publishing)."""
    total, groups = compute_many(session, filters, [group_by] if group_by is not None else [])
    return total, groups.get(group_by, []) if group_by is not None else []


# --- a short cache of computed indicators -------------------------------------------------------------
# A district-year is a million rows, and dashboards read the same figures many times a minute. Results
# are kept for CACHE_SECONDS in this process; a write of this domain in this process drops them (now, and
# again when its transaction commits), so a person sees their own change at once; other worker
# processes see it within CACHE_SECONDS.

CACHE_SECONDS = 30.0
_CACHE_MAX = 256
_cache: dict[tuple[Any, ...], tuple[float, int, Any]] = {}
_generation = [0]


def _changed(session: Session) -> None:
    _generation[0] += 1
    if not session.info.get("rating_cache_hook"):
        session.info["rating_cache_hook"] = True

        def bump(_: Session) -> None:
            _generation[0] += 1
            session.info.pop("rating_cache_hook", None)

        sa_event.listen(session, "after_commit", bump, once=True)


#: Requests for the same figures wait for the one computing them instead of computing them again.
_LOCKS = [threading.Lock() for _ in range(64)]


def _cached(
    key: tuple[Any, ...], produce: Callable[[], Any], *, seconds: float = CACHE_SECONDS, writes: bool = True
) -> Any:
    """``produce()`` once per ``seconds`` per key; ``writes=False`` keeps it across this domain's writes
    (lists of departments and items, which only grow)."""

    def fresh() -> Any:
        hit = _cache.get(key)
        if hit is None or time.monotonic() - hit[0] >= seconds:
            return None
        if writes and hit[1] != _generation[0]:
            return None
        return hit

    hit = fresh()
    if hit is not None:
        return hit[2]
    with _LOCKS[hash(key) % len(_LOCKS)]:
        hit = fresh()  # computed by another request while this one waited
        if hit is not None:
            return hit[2]
        generation = _generation[0]
        value = produce()
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key] = (time.monotonic(), generation, value)
        return value


def clear_cache() -> None:
    """Forget every cached figure (tests, and after bulk loads)."""
    _cache.clear()
    _generation[0] += 1


def dashboard(
    session: Session, principal: Principal, filters: Filters, *, group_by: str | None, clock: Clock
) -> tuple[IndicatorReport, list[IndicatorValues], list[IndicatorValues]]:
    """What the dashboard shows: the indicators (per group of ``group_by``), and per month and per
    department for its charts — one scan of the fact table for all three where the grouping is small."""
    principal.require(MONITOR)
    if group_by is not None and group_by not in repo.GROUPS:
        raise InvalidInput(f"group_by: one of {', '.join(repo.GROUPS)}")
    dims = ["month", "department"] + ([group_by] if group_by in ("kind", "channel") else [])

    def produce() -> tuple[
        IndicatorValues, list[IndicatorValues], list[IndicatorValues], list[IndicatorValues]
    ]:
        total, many = compute_many(session, filters, dims)
        if group_by is None:
            groups: list[IndicatorValues] = []
        elif group_by in many:
            groups = many[group_by]
        else:
            groups = compute(session, filters, group_by)[1]
        return total, groups, many["month"], many["department"]

    key = ("dashboard", str(session.get_bind().engine.url), filters.model_dump_json(), group_by)
    total, groups, by_month, by_department = _cached(key, produce)
    report = IndicatorReport(
        filters=filters, group_by=group_by, total=total, groups=groups, computed_at=clock.now()
    )
    return report, by_month, by_department


def indicators(
    session: Session, principal: Principal, filters: Filters, *, group_by: str | None, clock: Clock
) -> IndicatorReport:
    principal.require(MONITOR)
    key = ("indicators", str(session.get_bind().engine.url), filters.model_dump_json(), group_by)
    total, groups = _cached(key, lambda: compute(session, filters, group_by))
    return IndicatorReport(
        filters=filters, group_by=group_by, total=total, groups=groups, computed_at=clock.now()
    )


def cases(
    session: Session,
    principal: Principal,
    filters: Filters,
    *,
    only: str | None = None,
    level: int | None = None,
    group: tuple[str, str] | None = None,
    page: int = 1,
    per_page: int = 50,
) -> CasePage:
    """The cases behind an indicator (drill-down), newest first."""
    principal.require(MONITOR)
    if only is not None and only not in repo.ONLY:
        raise InvalidInput(f"only: one of {', '.join(repo.ONLY)}")
    if group is not None and group[0] not in repo.GROUPS:
        raise InvalidInput(f"group: one of {', '.join(repo.GROUPS)}")
    if level is not None and not 1 <= level <= 5:
        raise InvalidInput("level: 1 to 5")
    if page < 1 or not 1 <= per_page <= 500:
        raise InvalidInput("page from 1; per_page 1 to 500")
    total, rows = repo.case_page(
        session, filters, only=only, level=level, page=page, per_page=per_page, group=group
    )
    return CasePage(total=total, page=page, per_page=per_page, cases=[case_out(c) for c in rows])


CSV_COLUMNS = [
    "kind",
    "ref",
    "parent_ref",
    "item_code",
    "item_name",
    "department",
    "region",
    "region_code",
    "channel",
    "opened_at",
    "closed_at",
    "closed_on",
    "outcome",
    "limit_days",
    "work_days",
    "on_time",
    "visits",
    "materials_total",
    "materials_exempted",
    "precheck_findings",
    "supplements",
    "first_pass",
    "longest_step",
    "longest_step_hours",
    "level",
    "first_level",
    "rated_at",
    "rectification",
    "rectified_on_time",
]


def check_export(principal: Principal, only: str | None) -> None:
    principal.require(MONITOR)
    if only is not None and only not in repo.ONLY:
        raise InvalidInput(f"only: one of {', '.join(repo.ONLY)}")


def export_rows(
    session: Session, principal: Principal, filters: Filters, *, only: str | None = None
) -> Iterator[list[Any]]:
    """The header and every case of the filter, for CSV (no personal data: no rater, no text)."""
    check_export(principal, only)
    yield list(CSV_COLUMNS)
    for row in repo.case_stream(session, filters, only=only):
        yield [row[c] for c in CSV_COLUMNS]


def _pain(c: stats.Concentration | stats.Predictor, all_bad: int) -> PainPointOut:
    """One row of the pain-point report; predictors get the same interval and share as concentrations."""
    low, high = stats.wilson(c.bad, c.rated)
    return PainPointOut(
        factor=c.factor,
        value=c.value,
        rated=c.rated,
        bad=c.bad,
        bad_rate=c.bad_rate,
        rest_rate=c.rest_rate,
        risk_ratio=c.risk_ratio,
        low=low,
        high=high,
        share_of_bad=c.bad / all_bad if all_bad else 0.0,
        significant=c.significant if isinstance(c, stats.Predictor) else None,
    )


def pain_points(
    session: Session, principal: Principal, filters: Filters, *, min_rated: int = 5
) -> PainPointReport:
    """Where dissatisfaction concentrates (bad-review rate per item, department, channel, step ...) and
    which case facts predict it (risk ratio against the rest, tested), with the reasons of bad reviews."""
    principal.require(MONITOR)
    key = ("pain", str(session.get_bind().engine.url), filters.model_dump_json(), min_rated)
    report: PainPointReport = _cached(key, lambda: _pain_points(session, filters, min_rated))
    return report


def _pain_points(session: Session, filters: Filters, min_rated: int) -> PainPointReport:
    groups = {name: repo.factor_groups(session, filters, expr) for name, expr in repo.factors().items()}
    rated = sum(n for _, n, _ in groups["kind"])
    bad = sum(b for _, _, b in groups["kind"])
    conc: list[PainPointOut] = []
    for name in ("item", "department", "channel", "longest_step"):
        conc.extend(_pain(c, bad) for c in stats.concentrations(name, groups[name], min_rated=min_rated)[:10])
    conc.sort(key=lambda p: (-p.low, -p.share_of_bad))
    preds = [
        _pain(p, bad)
        for p in stats.predictors(
            {k: v for k, v in groups.items() if k not in ("item",)}, min_rated=max(min_rated, 20)
        )
    ]
    counted = Counter(r for reasons in repo.bad_reasons(session, filters) for r in reasons)
    total_reasons = sum(counted.values())
    reasons = [
        {"reason": r, "count": n, "share": n / total_reasons if total_reasons else 0.0}
        for r, n in counted.most_common()
    ]
    return PainPointReport(
        filters=filters,
        rated=rated,
        bad=bad,
        concentrations=conc[:30],
        predictors=preds[:30],
        reasons=reasons,
    )


# --- targets and alerts ---------------------------------------------------------------------------------


def _target_out(t: Target) -> TargetOut:
    return TargetOut.model_validate(t, from_attributes=True)


def list_targets(session: Session, principal: Principal) -> list[TargetOut]:
    principal.require(MONITOR)
    return [_target_out(t) for t in repo.targets(session)]


def set_target(session: Session, principal: Principal, write: TargetWrite, *, clock: Clock) -> TargetOut:
    """Set the band an indicator should stay in (for everyone, or one department, item or region)."""
    principal.require(SUPERVISE)
    indicator = INDICATOR_BY_CODE.get(write.indicator)
    if indicator is None:
        raise InvalidInput(f"indicator: one of {', '.join(INDICATOR_BY_CODE)}")
    if indicator.unit == "rate":
        for bound in (write.low, write.high):
            if bound is not None and not 0 <= bound <= 1:
                raise InvalidInput("a rate's band is between 0 and 1")
    elif any(b is not None and b < 0 for b in (write.low, write.high)):
        raise InvalidInput("the band is not negative")
    row = repo.target(session, write.indicator, write.scope, write.scope_value)
    if row is None:
        row = Target(indicator=write.indicator, scope=write.scope, scope_value=write.scope_value)
        session.add(row)
    row.low, row.high, row.updated_by, row.updated_at = write.low, write.high, principal.username, clock.now()
    session.flush()
    _audit(
        session,
        principal,
        "rating.target.set",
        f"{write.indicator}:{write.scope}:{write.scope_value}",
        clock,
        {"low": write.low, "high": write.high},
        target_type="rating_target",
    )
    return _target_out(row)


def delete_target(session: Session, principal: Principal, target_id: int, *, clock: Clock) -> None:
    principal.require(SUPERVISE)
    row = session.get(Target, target_id)
    if row is None:
        raise NotFound(f"no target {target_id}")
    session.delete(row)
    _audit(session, principal, "rating.target.delete", str(target_id), clock, target_type="rating_target")


def _outside(value: float | None, low: float | None, high: float | None) -> bool:
    return value is not None and ((low is not None and value < low) or (high is not None and value > high))


def _month_range(period: str) -> tuple[dt.date, dt.date]:
    """``YYYY-MM``, ``YYYY-Qn`` or ``YYYY`` → its first and last day."""
    try:
        if len(period) == 4:
            year = int(period)
            return dt.date(year, 1, 1), dt.date(year, 12, 31)
        if len(period) == 7 and period[4:6] == "-Q":
            year, q = int(period[:4]), int(period[6])
            if not 1 <= q <= 4:
                raise ValueError(period)
            start = dt.date(year, 3 * q - 2, 1)
        else:
            year, month = int(period[:4]), int(period[5:7])
            if len(period) != 7 or period[4] != "-":
                raise ValueError(period)
            start = dt.date(year, month, 1)
            q = 0
        months = 3 if q else 1
        end_month = start.month + months
        end = dt.date(start.year + (end_month - 1) // 12, (end_month - 1) % 12 + 1, 1) - dt.timedelta(days=1)
        return start, end
    except ValueError as exc:
        raise InvalidInput(f"period: YYYY-MM, YYYY-Qn or YYYY, not {period!r}") from exc


def current_month(clock: Clock) -> str:
    return _today(clock).strftime("%Y-%m")


def period_range(period: str) -> tuple[dt.date, dt.date]:
    return _month_range(period)


#: An indicator is compared with its band only over at least this many cases (a few cases on the first
#: day of a month say nothing).
ALERT_MIN_CASES = 20


def previous_month(clock: Clock) -> str:
    first = _today(clock).replace(day=1)
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


def check_alerts(
    session: Session, period: str, *, clock: Clock, min_cases: int = ALERT_MIN_CASES
) -> list[AlertOut]:
    """Compare the period's indicators with every target and raise an alert for each that left its band
    (once per indicator, scope and period). Idempotent; run daily (``tongban quality alerts``)."""
    if len(period) != 7 or "-Q" in period:
        raise InvalidInput("period: a month, YYYY-MM")
    start, end = _month_range(period)
    filters = Filters(date_from=start, date_to=end)
    targets = repo.targets(session)
    by_scope: dict[str, dict[str, IndicatorValues]] = {}
    for scope, group_by in (("department", "department"), ("item", "item"), ("region", "region")):
        if any(t.scope == scope for t in targets):
            _, groups = compute(session, filters, group_by)
            by_scope[scope] = {g.group or "": g for g in groups}
    total, _ = compute(session, filters, None)
    by_scope["all"] = {"": total}
    raised = []
    for t in targets:
        values = by_scope.get(t.scope, {}).get(t.scope_value)
        if values is None or values.cases < min_cases:
            continue
        value = getattr(values, t.indicator)
        if not _outside(value, t.low, t.high) or repo.alert(
            session, t.indicator, t.scope, t.scope_value, period
        ):
            continue
        row = Alert(
            indicator=t.indicator,
            scope=t.scope,
            scope_value=t.scope_value,
            period=period,
            value=float(value),
            low=t.low,
            high=t.high,
            raised_at=clock.now(),
        )
        session.add(row)
        session.flush()
        _audit(
            session,
            "system",
            "rating.alert.raise",
            str(row.id),
            clock,
            {"indicator": t.indicator, "value": value, "period": period},
            target_type="rating_alert",
        )
        raised.append(AlertOut.model_validate(row, from_attributes=True))
    return raised


def list_alerts(
    session: Session, principal: Principal, *, open_only: bool = True, limit: int = 200
) -> list[AlertOut]:
    principal.require(MONITOR)
    return [
        AlertOut.model_validate(a, from_attributes=True)
        for a in repo.alerts(session, open_only=open_only, limit=limit)
    ]


def acknowledge_alert(session: Session, principal: Principal, alert_id: int, *, clock: Clock) -> AlertOut:
    principal.require(SUPERVISE)
    row = session.get(Alert, alert_id)
    if row is None:
        raise NotFound(f"no alert {alert_id}")
    if row.acknowledged_at is None:
        row.acknowledged_by, row.acknowledged_at = principal.username, clock.now()
        _audit(
            session, principal, "rating.alert.acknowledge", str(alert_id), clock, target_type="rating_alert"
        )
    return AlertOut.model_validate(row, from_attributes=True)


def bands(session: Session) -> dict[tuple[str, str, str], tuple[float | None, float | None]]:
    """Every target's band by ``(indicator, scope, scope_value)``."""
    return {(t.indicator, t.scope, t.scope_value): (t.low, t.high) for t in repo.targets(session)}


# --- published results ----------------------------------------------------------------------------------


def _pub_out(p: Publication) -> PublicationOut:
    return PublicationOut(
        period=p.period, published_by=p.published_by, published_at=p.published_at, data=p.data
    )


def publish(session: Session, principal: Principal, period: str, *, clock: Clock) -> PublicationOut:
    """Publish a period's results (overall and per department) on the public page, as a snapshot."""
    principal.require(SUPERVISE)
    start, end = _month_range(period)
    if end >= _today(clock):
        raise Conflict(f"the period {period} has not ended yet")
    if repo.publication(session, period) is not None:
        raise Conflict(f"the results of {period} are published already")
    filters = Filters(date_from=start, date_to=end)
    total, departments = compute(session, filters, "department")
    public = [
        "cases",
        "applications",
        "on_time_rate",
        "avg_work_days",
        "p90_work_days",
        "online_share",
        "visits_per_case",
        "exempted_share",
        "first_pass_rate",
        "rating_rate",
        "satisfaction_rate",
        "bad_rate",
        "rectification_rate",
        "rated",
        "bad",
        "rectified",
        "levels",
    ]
    data: dict[str, Any] = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "total": total.model_dump(include=set(public)),
        "departments": [{"department": d.label, **d.model_dump(include=set(public))} for d in departments],
        "indicators": [i.code for i in INDICATORS],
    }
    row = Publication(period=period, data=data, published_by=principal.username, published_at=clock.now())
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError as exc:
        raise Conflict(f"the results of {period} are published already") from exc
    _audit(session, principal, "rating.results.publish", period, clock, target_type="rating_publication")
    return _pub_out(row)


def publications(session: Session) -> list[PublicationOut]:
    """Published results, newest period first (public)."""
    return [_pub_out(p) for p in repo.publications(session)]


def publication(session: Session, period: str) -> PublicationOut:
    row = repo.publication(session, period)
    if row is None:
        raise NotFound(f"no published results for {period}")
    return _pub_out(row)


def choices(session: Session, principal: Principal) -> dict[str, list[tuple[str, str]]]:
    """Departments, items and regions with closed cases (the dashboard's filters)."""
    principal.require(MONITOR)

    def produce() -> dict[str, list[tuple[str, str]]]:
        return {
            "department": repo.distinct_values(session, Case.department, Case.department),
            "item": repo.distinct_values(session, Case.item_code, Case.item_name),
            "region": repo.distinct_values(session, Case.region_code, Case.region),
        }

    found: dict[str, list[tuple[str, str]]] = _cached(
        ("choices", str(session.get_bind().engine.url)), produce, seconds=600.0, writes=False
    )
    return found
