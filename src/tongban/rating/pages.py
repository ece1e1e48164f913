"""HTML pages of ratings (好差评): people rate their closed cases and see what became of a bad review;
units handle the rectification of bad reviews (return call, rectification, appeal) and supervisors decide
appeals; window officers record in-person visits for the hall's rating terminal.

Every action goes through :mod:`tongban.rating.service`. Forms work without JavaScript: a plain POST, then a
303 redirect, or the page again with the problems listed at the top and linked to their fields. Forms that
create something carry a key (``_idem``) so that a double submission does it once (``core.idempotency``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from tongban.core import auth, idempotency
from tongban.core.clock import Clock
from tongban.core.errors import Conflict, DomainError, Forbidden, NotFound, Unauthenticated
from tongban.core.http import (
    ClockDep,
    DbSession,
    LanguageDep,
    SealerDep,
    csrf_form,
    own_records,
    posted_form,
    public_with_principal,
    public_writing,
    render_page,
    require,
)
from tongban.core.i18n import Language
from tongban.core.llm import ChatModel, get_chat_model
from tongban.rating import service
from tongban.rating.reasons import REASON_TEXT
from tongban.rating.schemas import (
    AppealDecision,
    CaseOut,
    RateableOut,
    RatingWrite,
    RectificationOut,
    StepWrite,
    VisitWrite,
)
from tongban.rating.vocab import CASE_KIND_TEXT, DIMENSION_TEXT, LEVELS, CaseKind, Dimension, is_bad

router = APIRouter(include_in_schema=False)
Anyone = Annotated[auth.Principal, Depends(public_with_principal)]
Rater = Annotated[auth.Principal, Depends(public_writing)]
Holder = Annotated[auth.Principal, Depends(own_records)]
Unit = Annotated[auth.Principal, Depends(require(service.RECTIFY))]
Supervisor = Annotated[auth.Principal, Depends(require(service.SUPERVISE))]
Window = Annotated[auth.Principal, Depends(require(service.VISIT))]

#: States of a rectification, in the order of the list's filter.
STATES = ("open", "contacted", "rectified", "closed", "void")
#: What a window officer may record as the outcome of a visit.
VISIT_OUTCOMES = ("served", "accepted", "consulted", "not_done")
#: The longest free text of a rating (as ``schemas.Note``).
TEXT_MAX = 2000


Posted = Annotated[FormData, Depends(posted_form)]


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _chat_model(request: Request) -> ChatModel | None:
    """The configured chat model (reads the reasons of a bad review), or None offline."""
    return get_chat_model(request.app.state.runtime.settings)


ChatModelDep = Annotated[ChatModel | None, Depends(_chat_model)]


@dataclass
class Problem:
    """A problem shown at the top of a form, linked to the control it concerns (``target``: its id)."""

    target: str | None
    message: str


def _refusal(exc: DomainError, lang: Language) -> str:
    """The service's refusal in the page's language (the domain's own errors have words of their own)."""
    known = {
        "already-rated": lang.gettext(
            "This case has been rated already. Each case is rated once, and once more after a bad "
            "review has been put right."
        ),
        "rating-window-closed": lang.gettext("The period for rating this case has ended."),
        "case-not-closed": lang.gettext("The case is not closed yet; you can rate it once it is closed."),
        "not-your-case": lang.gettext("Only the person served may rate this case."),
    }
    return known.get(exc.slug) or f"{lang.gettext(exc.title)}: {exc.detail}"


# --- words of the domain in the page's language -------------------------------------------------------


def _words(lang: Language) -> dict[str, Any]:
    """Helpers the templates use to name levels, dimensions, reasons and kinds in the page's language."""
    en = lang.code == "en"

    def level_name(level: int | None) -> str:
        if level is None or level not in LEVELS:
            return "—"
        return LEVELS[level][1 if en else 0]

    def dimension_name(code: str) -> str:
        try:
            names = DIMENSION_TEXT[Dimension(code)]
        except ValueError:
            return code
        return names[1] if en else names[0]

    def reason_name(code: str) -> str:
        names = REASON_TEXT.get(code)
        if names is None:
            return code
        return lang.gettext(names[1]) if en else names[0]

    def kind_name(kind: str) -> str:
        try:
            return lang.gettext(CASE_KIND_TEXT[CaseKind(kind)])
        except ValueError:
            return kind

    return {
        "level_name": level_name,
        "dimension_name": dimension_name,
        "reason_name": reason_name,
        "kind_name": kind_name,
        "is_bad": is_bad,
    }


def _page(
    request: Request, lang: Language, template: str, context: Mapping[str, Any], *, status: int = 200
) -> Response:
    return render_page(request, lang, template, {**_words(lang), **context}, status=status)


# --- once per form -------------------------------------------------------------------------------------


def _key_ok(key: str) -> bool:
    return 8 <= len(key) <= 128 and key.isascii() and key.isprintable()


def _earlier(session: Session, principal: auth.Principal, key: str, path: str) -> str | None:
    """Where an earlier submission of the same form (same key) went, if there was one."""
    if not _key_ok(key):
        return None
    stored = idempotency.lookup(
        session, key=key, actor=principal.username, method="POST", path=path, body=path.encode()
    )
    return stored.body or None if stored is not None else None


def submit_once(
    session: Session,
    principal: auth.Principal,
    *,
    key: str,
    path: str,
    clock: Clock,
    run: Callable[[], str],
) -> str:
    """Run ``run`` (which does the work and returns the address to go to next) once per form key: the key
    is claimed before anything is stored, so a second request with it waits for the first and then gets
    the first one's address. Without a usable key the work is simply done. A refusal of ``run`` undoes
    the claim, so the form may be sent again."""
    if not _key_ok(key):
        with session.begin_nested():
            return run()
    return idempotency.once(
        session, actor=principal.username, key=key, path=path, body=path.encode(), clock=clock, run=run
    )


# --- rating --------------------------------------------------------------------------------------------


def _kind(kind: str) -> CaseKind:
    try:
        return CaseKind(kind)
    except ValueError:
        raise NotFound(f"no kind of case {kind!r}") from None


def _login(path: str) -> Response:
    return RedirectResponse(f"/staff/login?next={quote(path)}", status_code=303)


@dataclass
class RatingEntry:
    """The rating form as filled in (shown again as it was when it has problems)."""

    level: str = ""
    dimensions: dict[str, str] = field(default_factory=dict)
    text: str = ""
    anonymous: bool = False

    @classmethod
    def of(cls, form: FormData) -> RatingEntry:
        return cls(
            level=_text(form, "level").strip(),
            dimensions={d.value: _text(form, f"dim.{d.value}").strip() for d in Dimension},
            text=_text(form, "text"),
            anonymous=_text(form, "anonymous") == "true",
        )

    def check(self, lang: Language) -> list[Problem]:
        problems = []
        if self.level not in {str(n) for n in LEVELS}:
            problems.append(Problem("level-5", lang.gettext("Choose how satisfied you are overall.")))
        for code, value in self.dimensions.items():
            if value and value not in {"1", "2", "3", "4", "5"}:
                problems.append(
                    Problem(f"dim-{code}", lang.gettext("Choose a score from 1 to 5, or leave it empty."))
                )
        if len(self.text.strip()) > TEXT_MAX:
            problems.append(
                Problem("text", lang.gettext("Write at most %(n)s characters.") % {"n": TEXT_MAX})
            )
        return problems

    def write(self, channel: str) -> RatingWrite:
        return RatingWrite.model_validate(
            {
                "level": int(self.level),
                "dimensions": {k: int(v) for k, v in self.dimensions.items() if v},
                "text": self.text,
                "anonymous": self.anonymous,
                "channel": channel,
            }
        )


def _may_be_anonymous(principal: auth.Principal) -> bool:
    """Whether the form offers to rate anonymously: to a signed-in person (a terminal or a signed-out
    rater of a consultation cannot be called back anyway)."""
    return principal.is_authenticated and not principal.can(service.TERMINAL)


def _rate_page(
    request: Request,
    lang: Language,
    session: Session,
    principal: auth.Principal,
    kind: CaseKind,
    ref: str,
    *,
    clock: Clock,
    entry: RatingEntry | None = None,
    problems: Sequence[Problem] = (),
    idem: str | None = None,
    rated: bool = False,
    status: int = 200,
) -> Response:
    mine: RateableOut | None
    try:
        mine = service.my_case(session, principal, kind, ref, clock=clock)
    except NotFound:
        if kind != CaseKind.CONSULTATION:
            raise
        mine = None  # a consultation becomes a case when it is first rated
    may_rate = mine.may_rate if mine is not None else "initial"
    rules = service.settings(session)
    context = {
        "kind": kind.value,
        "ref": ref,
        "mine": mine,
        "may_rate": may_rate,
        "entry": entry or RatingEntry(),
        "problems": list(problems),
        "idem": idem if idem and _key_ok(idem) else secrets.token_urlsafe(24),
        "rated": rated,
        "latest": mine.ratings[-1] if mine is not None and mine.ratings else None,
        "contact_days": rules["contact_working_days"],
        "rectify_days": rules["rectify_working_days"],
        "levels": sorted(LEVELS, reverse=True),
        "dimensions": [d.value for d in Dimension],
        "may_be_anonymous": _may_be_anonymous(principal),
        "text_max": TEXT_MAX,
    }
    return _page(request, lang, "rating/rate.html", context, status=status)


@router.get("/ratings")
def my_ratings(
    request: Request, session: DbSession, lang: LanguageDep, principal: Holder, clock: ClockDep
) -> Response:
    """我的评价: the caller's closed cases, what they may rate now, and what became of their bad reviews."""
    rows = service.my_cases(session, principal, clock=clock)
    return _page(request, lang, "rating/my_ratings.html", {"rows": rows})


@router.get("/ratings/{kind}/{ref}")
def rate_form(
    request: Request,
    kind: str,
    ref: str,
    session: DbSession,
    lang: LanguageDep,
    principal: Anyone,
    clock: ClockDep,
    rated: Annotated[str, Query(max_length=1)] = "",
) -> Response:
    """One case: the rating form while it may be rated (the follow-up form after a rectification), its
    ratings, and the rectification of a bad review. Only consultations may be rated signed out."""
    case_kind = _kind(kind)
    if case_kind != CaseKind.CONSULTATION and not principal.is_authenticated:
        raise Unauthenticated("sign in to rate this case")
    return _rate_page(request, lang, session, principal, case_kind, ref, clock=clock, rated=rated == "1")


@router.post("/ratings/{kind}/{ref}", dependencies=[Depends(csrf_form)])
def rate(
    request: Request,
    kind: str,
    ref: str,
    session: DbSession,
    lang: LanguageDep,
    principal: Rater,
    clock: ClockDep,
    model: ChatModelDep,
    form: Posted,
) -> Response:
    """Rate the case (``service.rate``, channel ``web``, or ``terminal`` at a hall's terminal), then
    303 to the case's page with a thank-you; problems and refusals show the form again."""
    case_kind = _kind(kind)
    path = f"/ratings/{case_kind.value}/{ref}"
    if case_kind != CaseKind.CONSULTATION and not principal.is_authenticated:
        return _login(path)
    key = _text(form, "_idem")
    earlier = _earlier(session, principal, key, path)
    if earlier is not None:  # the same form again (a double click, a retry): where the first one went
        return RedirectResponse(earlier, status_code=303)
    entry = RatingEntry.of(form)
    if not _may_be_anonymous(principal):
        entry.anonymous = False
    problems = entry.check(lang)
    status = 422
    if not problems:
        channel = "terminal" if principal.can(service.TERMINAL) else "web"
        try:
            write = entry.write(channel)

            def run() -> str:
                service.rate(session, principal, case_kind, ref, write, clock=clock, model=model)
                return f"{path}?rated=1"

            target = submit_once(session, principal, key=key, path=path, clock=clock, run=run)
        except ValidationError as exc:
            problems = [Problem(None, f"{lang.gettext('Invalid input')}: {exc.errors()[0]['msg']}")]
        except DomainError as exc:
            problems, status = [Problem(None, _refusal(exc, lang))], exc.status
        else:
            return RedirectResponse(target, status_code=303)
    return _rate_page(
        request,
        lang,
        session,
        principal,
        case_kind,
        ref,
        clock=clock,
        entry=entry,
        problems=problems,
        idem=key,
        status=status,
    )


# --- rectification (units, supervisors) ----------------------------------------------------------------


@router.get("/quality/rectifications")
def rectifications(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Unit,
    clock: ClockDep,
    state: Annotated[str, Query(max_length=20)] = "",
    overdue: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    """The rectifications of bad reviews of the caller's units (every unit for supervisors), most urgent
    first, by state and overdue."""
    state = state if state in STATES else ""
    overdue_only = overdue in ("1", "true", "on")
    rows = service.list_rectifications(
        session, principal, state=state or None, overdue_only=overdue_only, clock=clock
    )
    context = {"rows": rows, "states": STATES, "filters": {"state": state, "overdue": overdue_only}}
    return _page(request, lang, "rating/rectifications.html", context)


def _forms(principal: auth.Principal, rect: RectificationOut) -> dict[str, bool]:
    """Which forms the rectification's state allows (the service checks again)."""
    pending = rect.appeal == "pending"
    may_act = principal.can(service.RECTIFY)
    return {
        "contact": may_act and not pending and rect.state == "open" and rect.contact_due is not None,
        "rectify": may_act
        and not pending
        and (rect.state == "contacted" or (rect.state == "open" and rect.contact_due is None)),
        "appeal": may_act and rect.appeal == "none" and rect.state in ("open", "contacted"),
        "decide": principal.can(service.SUPERVISE) and pending,
    }


def _rect_page(
    request: Request,
    lang: Language,
    session: Session,
    principal: auth.Principal,
    rect_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    *,
    clock: Clock,
    problems: Sequence[Problem] = (),
    posted: Mapping[str, str] | None = None,
    done: str = "",
    status: int = 200,
) -> Response:
    rect = service.get_rectification(session, principal, rect_id, clock=clock)
    case: CaseOut | None = rect.case  # the case's facts (outcome, processing days, supplements)
    context = {
        "rect": rect,
        "case": case,
        "forms": _forms(principal, rect),
        "problems": list(problems),
        "posted": posted or {},
        "done": done if done in ("contact", "rectify", "appeal", "decide") else "",
    }
    return _page(request, lang, "rating/rectification.html", context, status=status)


@router.get("/quality/rectifications/{rect_id}")
def rectification(
    request: Request,
    rect_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    session: DbSession,
    lang: LanguageDep,
    principal: Unit,
    clock: ClockDep,
    done: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    """One rectification: the rating, the case, the history, and the forms its state allows."""
    return _rect_page(request, lang, session, principal, rect_id, clock=clock, done=done)


def _version(form: FormData) -> int | None:
    value = _text(form, "version").strip()
    return int(value) if value.isdigit() and len(value) < 10 else None


def _note_problem(action: str, lang: Language) -> Problem:
    return Problem(
        f"note-{action}",
        lang.gettext("Write a note of at least 4 characters (at most 2000)."),
    )


def _step(
    request: Request,
    lang: Language,
    session: Session,
    principal: auth.Principal,
    rect_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    action: str,
    form: FormData,
    run: Callable[[int | None], None],
    *,
    clock: Clock,
    check: Callable[[], list[Problem]] | None = None,
) -> Response:
    """Run one step of a rectification in a savepoint with the version the form showed; on a problem or
    a refusal show the page again with it (a stale form: a clear conflict), else 303 back."""
    version = _version(form)
    posted = {"action": action, "note": _text(form, "note"), "upheld": _text(form, "upheld")}
    problems = check() if check is not None else []
    status = 422
    if not problems:
        try:
            with session.begin_nested():
                run(version)
        except ValidationError:
            problems = [_note_problem(action, lang)]
        except (Conflict, Forbidden) as exc:
            status = exc.status
            current = service.get_rectification(session, principal, rect_id, clock=clock)
            if isinstance(exc, Conflict) and version is not None and version != current.version:
                message = lang.gettext(
                    "Someone else changed this rectification after you opened it. The page now shows "
                    "its current state: check it, then try again."
                )
            elif isinstance(exc, Forbidden) and action == "decide":
                message = lang.gettext("An appeal is decided by someone other than the person who filed it.")
            else:
                message = f"{lang.gettext(exc.title)}: {exc.detail}"
            problems = [Problem(None, message)]
        except DomainError as exc:
            status = exc.status
            problems = [Problem(None, f"{lang.gettext(exc.title)}: {exc.detail}")]
        else:
            return RedirectResponse(f"/quality/rectifications/{rect_id}?done={action}", status_code=303)
    return _rect_page(
        request,
        lang,
        session,
        principal,
        rect_id,
        clock=clock,
        problems=problems,
        posted=posted,
        status=status,
    )


@router.post("/quality/rectifications/{rect_id}/contact", dependencies=[Depends(csrf_form)])
def contact(
    request: Request,
    rect_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    session: DbSession,
    lang: LanguageDep,
    principal: Unit,
    clock: ClockDep,
    form: Posted,
) -> Response:
    """Record the return call (回访) to the rater."""

    def run(version: int | None) -> None:
        note = StepWrite(note=_text(form, "note")).note
        service.contact(session, principal, rect_id, note, clock=clock, version=version)

    return _step(request, lang, session, principal, rect_id, "contact", form, run, clock=clock)


@router.post("/quality/rectifications/{rect_id}/rectify", dependencies=[Depends(csrf_form)])
def rectify(
    request: Request,
    rect_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    session: DbSession,
    lang: LanguageDep,
    principal: Unit,
    clock: ClockDep,
    sealer: SealerDep,
    form: Posted,
) -> Response:
    """Record the rectification (整改); the rater is invited to rate again."""

    def run(version: int | None) -> None:
        note = StepWrite(note=_text(form, "note")).note
        service.rectify(session, principal, rect_id, note, clock=clock, sealer=sealer, version=version)

    return _step(request, lang, session, principal, rect_id, "rectify", form, run, clock=clock)


@router.post("/quality/rectifications/{rect_id}/appeal", dependencies=[Depends(csrf_form)])
def appeal(
    request: Request,
    rect_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    session: DbSession,
    lang: LanguageDep,
    principal: Unit,
    clock: ClockDep,
    form: Posted,
) -> Response:
    """Appeal (申诉) a rating the unit holds mistaken or malicious; a supervisor decides."""

    def run(version: int | None) -> None:
        note = StepWrite(note=_text(form, "note")).note
        service.appeal(session, principal, rect_id, note, clock=clock, version=version)

    return _step(request, lang, session, principal, rect_id, "appeal", form, run, clock=clock)


@router.post("/quality/rectifications/{rect_id}/decide", dependencies=[Depends(csrf_form)])
def decide(
    request: Request,
    rect_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    session: DbSession,
    lang: LanguageDep,
    principal: Supervisor,
    clock: ClockDep,
    form: Posted,
) -> Response:
    """Decide an appeal (申诉复核): upheld strikes the rating out of every figure; rejected, the
    rectification goes on."""
    upheld = _text(form, "upheld")

    def check() -> list[Problem]:
        if upheld in ("true", "false"):
            return []
        return [Problem("decide-upheld", lang.gettext("Choose whether the appeal is upheld."))]

    def run(version: int | None) -> None:
        body = AppealDecision(upheld=upheld == "true", note=_text(form, "note"))
        service.decide_appeal(
            session, principal, rect_id, upheld=body.upheld, note=body.note, clock=clock, version=version
        )

    return _step(request, lang, session, principal, rect_id, "decide", form, run, clock=clock, check=check)


# --- in-person visits (window officers) -----------------------------------------------------------------

VISIT_PATH = "/quality/visits/new"
#: Form fields of a visit and the element ids the error summary links to.
VISIT_FIELDS = {
    "department": "visit-department",
    "item_code": "visit-item_code",
    "item_name": "visit-item_name",
    "receipt_no": "visit-receipt_no",
    "outcome": "visit-outcome",
}


def _visit_problem(where: str, lang: Language, detail: str) -> Problem:
    messages = {
        "department": lang.gettext("Enter the department that served the visitor."),
        "receipt_no": lang.gettext(
            "Enter the receipt number of an application of this platform (letters and digits), or "
            "leave it empty."
        ),
        "outcome": lang.gettext("Choose the outcome of the visit."),
    }
    message = messages.get(where) or f"{lang.gettext('Invalid input')}: {detail}"
    return Problem(VISIT_FIELDS.get(where), message)


def _visit_page(
    request: Request,
    lang: Language,
    *,
    posted: Mapping[str, str] | None = None,
    problems: Sequence[Problem] = (),
    idem: str | None = None,
    recorded: str = "",
    status: int = 200,
) -> Response:
    context = {
        "posted": posted or {"outcome": "served"},
        "problems": list(problems),
        "idem": idem if idem and _key_ok(idem) else secrets.token_urlsafe(24),
        "recorded": recorded,
        "outcomes": VISIT_OUTCOMES,
    }
    return _page(request, lang, "rating/visit_new.html", context, status=status)


@router.get(VISIT_PATH)
def visit_form(
    request: Request,
    lang: LanguageDep,
    principal: Window,
    recorded: Annotated[str, Query(max_length=64, pattern=r"^[A-Za-z0-9]*$")] = "",
) -> Response:
    """The form to record an in-person visit; after recording, its number and the terminal's link."""
    return _visit_page(request, lang, recorded=recorded)


@router.post(VISIT_PATH, dependencies=[Depends(csrf_form)])
def record_visit(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Window,
    clock: ClockDep,
    form: Posted,
) -> Response:
    """Record the visit (``service.record_visit``), once per form; then 303 to the form with its number."""
    key = _text(form, "_idem")
    earlier = _earlier(session, principal, key, VISIT_PATH)
    if earlier is not None:
        return RedirectResponse(earlier, status_code=303)
    posted = {name: _text(form, name).strip() for name in VISIT_FIELDS}
    problems: list[Problem] = []
    status = 422
    if posted["outcome"] not in VISIT_OUTCOMES:
        problems.append(_visit_problem("outcome", lang, ""))
    try:
        write = VisitWrite.model_validate(
            {
                "department": posted["department"],
                "item_code": posted["item_code"] or None,
                "item_name": posted["item_name"],
                "receipt_no": posted["receipt_no"] or None,
                "outcome": posted["outcome"] or "served",
            }
        )
    except ValidationError as exc:
        for error in exc.errors():
            where = str(error["loc"][0]) if error["loc"] else ""
            problems.append(_visit_problem(where, lang, str(error["msg"])))
    if not problems:

        def run() -> str:
            out = service.record_visit(session, principal, write, clock=clock)
            return f"{VISIT_PATH}?recorded={out.ref}"

        try:
            target = submit_once(session, principal, key=key, path=VISIT_PATH, clock=clock, run=run)
        except DomainError as exc:
            where = exc.detail.split(":", 1)[0]
            if where == "receipt_no":
                problems = [
                    Problem(
                        VISIT_FIELDS["receipt_no"],
                        lang.gettext("There is no application with this receipt number."),
                    )
                ]
            else:
                problems = [Problem(None, f"{lang.gettext(exc.title)}: {exc.detail}")]
            status = exc.status
        else:
            return RedirectResponse(target, status_code=303)
    return _visit_page(request, lang, posted=posted, problems=problems, idem=key, status=status)
