"""HTML pages of the hotline (12345, 接诉即办).

* requesters: the web intake form (``/hotline/new``, also the consultation's hand-off with ``?content=``),
  its confirmation with the ticket number, their tickets and each ticket's progress, reply and return
  visit (``/hotline/tickets``);
* operators (``hotline:intake``): the desk with the queue of received tickets and the phone entry form,
  and each ticket with the operator's assistant beside the forms to classify, dispatch, answer directly,
  merge, cancel and make the return visit (``/hotline/desk``);
* units (``hotline:handle``, scoped by their ``hotline_unit:<code>`` roles): their inbox and each ticket's
  forms to sign, record the contact with the requester, note, reply or return it (``/hotline/inbox``);
* supervisors (``hotline:supervise``): returns to decide, overdue and escalated tickets, duplicates
  (``/hotline/supervise``), and the three rates (``/hotline/rates``).

Every action goes through :mod:`tongban.hotline.service`. Forms work without JavaScript: a plain POST with
the CSRF token and the version of the ticket the page showed (a stale form is refused with a clear
message), then a 303 redirect; or the page again with the problems listed at the top and linked to their
fields, with what was typed kept. Forms that create a ticket carry a key (``_idem``) so that a double
submission creates it once (``core.idempotency``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from tongban.core import auth, charts, idempotency
from tongban.core.clock import Clock
from tongban.core.crypto import Sealer
from tongban.core.errors import DomainError, InvalidInput, NotFound, PreconditionFailed
from tongban.core.http import (
    WRITES_ROUTE,
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
    runtime,
)
from tongban.core.i18n import Language
from tongban.core.messages import N_
from tongban.hotline import service, vocab
from tongban.hotline.assistant import FINISHED, EmbedderDep, HolderDep, assistant
from tongban.hotline.schemas import (
    AnswerWrite,
    Classification,
    ContactOut,
    DispatchWrite,
    EventOut,
    MergeWrite,
    NoteWrite,
    RateReport,
    ReplyWrite,
    ReturnDecision,
    ReturnWrite,
    TicketDetail,
    TicketOut,
    TicketWrite,
    UnitOut,
    VisitWrite,
)
from tongban.knowledge import service as knowledge

router = APIRouter(include_in_schema=False)
Anyone = Annotated[auth.Principal, Depends(public_with_principal)]
Writer = Annotated[auth.Principal, Depends(public_writing)]
Requester = Annotated[auth.Principal, Depends(own_records)]
Operator = Annotated[auth.Principal, Depends(require(vocab.INTAKE))]
UnitStaff = Annotated[auth.Principal, Depends(require(vocab.HANDLE))]
Supervisor = Annotated[auth.Principal, Depends(require(vocab.SUPERVISE))]
Ref = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z]+$")]
DuplicateId = Annotated[int, Path(ge=1, le=2**31 - 1)]
PageNo = Annotated[int, Query(ge=1, le=10_000)]

PER_PAGE = 50
#: The longest texts of the forms (as the schemas).
BODY_MAX = 8000
NOTE_MAX = 4000
#: Messages shown after a successful action (``?done=``): only these, never text from the address.
DONE = frozenset(
    {
        "created",
        "classify",
        "dispatch",
        "answer",
        "merge",
        "cancel",
        "revisit",
        "note",
        "dismiss",
        "sign",
        "contact",
        "reply",
        "return",
        "decision",
        "deadlines",
    }
)
#: What the requester may choose as the type of a web request (praise and reports too).
WEB_TYPES = tuple(t.value for t in vocab.RequestType)
#: Groupings of the rates page.
RATE_GROUPS = ("unit", "category", "month")
RATE_GROUP_TEXT = {
    "unit": N_("Unit"),
    "category": N_("Category (level 1)"),
    "month": N_("Month received"),
}
#: The history's actions in words.
EVENT_TEXT = {
    "received": N_("Received"),
    "classified": N_("Category confirmed"),
    "dispatched": N_("Dispatched to a unit"),
    "signed": N_("Signed for by the unit"),
    "contacted": N_("The unit contacted the requester"),
    "note": N_("Progress note"),
    "return_requested": N_("Returned by the unit"),
    "return_rejected": N_("Return rejected: the unit keeps the ticket"),
    "redispatched": N_("Re-dispatched to another unit"),
    "replied": N_("Replied"),
    "answered": N_("Answered directly"),
    "revisited": N_("Return visit made"),
    "reopened": N_("Reopened after the return visit"),
    "merged": N_("Merged into another ticket"),
    "merged_in": N_("Another ticket was merged into this one"),
    "cancelled": N_("Cancelled"),
    "warned": N_("Deadline warning"),
    "escalated": N_("Escalated: the deadline has passed"),
    "attached": N_("File attached"),
    "original_replied": N_("The ticket this one was merged into has a reply"),
    "original_closed": N_("The ticket this one was merged into was closed"),
}
#: Titles of the hotline's refusals, marked for translation (the service raises them in English).
ERROR_TITLES = (
    N_("The ticket is not in a state that allows this"),
    N_("The ticket is not held by your unit"),
    N_("No responsible unit found"),
    N_("The ticket has no confirmed category"),
    N_("No classifier has been trained"),
)
#: Why the knowledge hub gave no answer, in words.
KNOWLEDGE_REASON_TEXT = {
    "no_index": N_("The knowledge hub is not available on this server."),
    "not_covered": N_("The knowledge hub says nothing about: %(names)s. It cannot answer this."),
    "no_support": N_("Nothing in the knowledge hub answers this question."),
    "not_asked": N_("The ticket is with a unit: ask the knowledge hub a question below if it helps."),
}


Posted = Annotated[FormData, Depends(posted_form)]


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _texts(form: FormData, name: str) -> list[str]:
    return [v for v in form.getlist(name) if isinstance(v, str) and v]


def _version(form: FormData) -> int | None:
    value = _text(form, "version").strip()
    return int(value) if value.isdigit() and len(value) < 10 else None


def _posted(form: FormData, action: str) -> dict[str, Any]:
    """What was typed (shown again with the problems), and which form it was."""
    out: dict[str, Any] = {k: _text(form, k) for k in form if k not in ("csrf_token", "version")}
    out["helper_units"] = _texts(form, "helper_units")
    out["action"] = action
    return out


@dataclass
class Problem:
    """A problem shown at the top of a form, linked to the control it concerns (``target``: its id)."""

    target: str | None
    message: str


# --- words of the domain in the page's language -------------------------------------------------------


def _words(lang: Language, unit_rows: Sequence[UnitOut]) -> dict[str, Any]:
    en = lang.code == "en"
    units = {u.code: u for u in unit_rows}

    def lookup(table: Mapping[Any, str], value: str) -> str:
        for key, text in table.items():
            if str(key) == value:
                return lang.gettext(text)
        return value

    def unit_name(code: str | None) -> str:
        if not code:
            return "—"
        u = units.get(code)
        if u is None:
            return code
        return (u.name_en or u.name) if en else u.name

    def satisfaction_name(n: int | None) -> str:
        if n is None or n not in vocab.SATISFACTION:
            return "—"
        return vocab.SATISFACTION[n][1 if en else 0]

    return {
        "status_name": lambda s: lookup(vocab.STATUS_TEXT, s),
        "channel_name": lambda c: lookup(vocab.CHANNEL_TEXT, c),
        "type_name": lambda t: lookup(vocab.REQUEST_TYPE_TEXT, t),
        "urgency_name": lambda u: lookup(vocab.URGENCY_TEXT, u),
        "deadline_name": lambda d: lookup(vocab.DEADLINE_CLASS_TEXT, d),
        "event_name": lambda a: lookup(EVENT_TEXT, a),
        "unit_name": unit_name,
        "satisfaction_name": satisfaction_name,
        "satisfaction_levels": sorted(vocab.SATISFACTION, reverse=True),
    }


def _page(
    request: Request,
    lang: Language,
    session: Session,
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
) -> Response:
    words = _words(lang, service.units(session))
    return render_page(request, lang, template, {**words, **context}, status=status)


def _refusal(exc: DomainError, lang: Language) -> str:
    """The service's refusal in the page's language."""
    known = {
        "ticket-wrong-status": lang.gettext(
            "The ticket is no longer in a state that allows this. The page now shows its current state."
        ),
        "not-your-ticket": lang.gettext("The ticket is held by another unit."),
        "no-responsible-unit": lang.gettext(
            "The dispatch catalogue names no unit for this category and region: choose the lead unit."
        ),
        "ticket-unclassified": lang.gettext("Confirm the category before dispatching the ticket."),
        "precondition-failed": lang.gettext(
            "Someone else changed this ticket after you opened it. The page now shows its current state: "
            "check it, then try again."
        ),
    }
    return known.get(exc.slug) or f"{lang.gettext(exc.title)}: {exc.detail}"


def _validation(exc: ValidationError, lang: Language, targets: Mapping[str, str]) -> list[Problem]:
    problems = []
    for error in exc.errors():
        where = str(error["loc"][0]) if error["loc"] else ""
        target = targets.get(where)
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(Problem(target, f"{lang.gettext('Invalid input')}: {message}"))
    return problems


def _attempt(
    session: Session, lang: Language, run: Callable[[], None], targets: Mapping[str, str]
) -> tuple[list[Problem], int]:
    """Run one action in a savepoint: no problems when it succeeded, else the problems and the status."""
    try:
        with session.begin_nested():
            run()
    except ValidationError as exc:
        return _validation(exc, lang, targets), 422
    except PreconditionFailed as exc:
        return [Problem(None, _refusal(exc, lang))], exc.status
    except DomainError as exc:
        where = exc.detail.split(":", 1)[0] if isinstance(exc, InvalidInput) else ""
        return [Problem(targets.get(where), _refusal(exc, lang))], exc.status
    return [], 0


def _done(value: str) -> str:
    return value if value in DONE else ""


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


def _submit_once(
    session: Session, principal: auth.Principal, *, key: str, path: str, clock: Clock, run: Callable[[], str]
) -> str:
    """Run ``run`` once per form key (see :func:`core.idempotency.once`); a refusal undoes the claim."""
    if not _key_ok(key):
        with session.begin_nested():
            return run()
    return idempotency.once(
        session, actor=principal.username, key=key, path=path, body=path.encode(), clock=clock, run=run
    )


def _idem(key: str | None) -> str:
    return key if key and _key_ok(key) else secrets.token_urlsafe(24)


# --- a new ticket (web form, phone entry) -----------------------------------------------------------------

_PHONE = re.compile(r"^\+?[0-9][0-9 -]{2,38}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: Form fields of a new ticket and the ids the error summary links to.
TICKET_FIELDS = {
    "request_type": "t-type-" + WEB_TYPES[0],
    "subject": "t-subject",
    "body": "t-body",
    "address": "t-address",
    "lat": "t-lat",
    "lon": "t-lon",
    "enterprise": "t-enterprise",
    "enterprise_name": "t-enterprise_name",
    "contact": "t-phone",
    "name": "t-name",
    "phone": "t-phone",
    "email": "t-email",
    "urgency": "t-urgency",
}


@dataclass
class TicketEntry:
    """The new ticket's form as filled in (shown again as it was when it has problems)."""

    request_type: str = "request"
    subject: str = ""
    body: str = ""
    address: str = ""
    lat: str = ""
    lon: str = ""
    enterprise: bool = False
    enterprise_name: str = ""
    name: str = ""
    phone: str = ""
    email: str = ""
    anonymous: bool = False
    channel: str = "web"
    urgency: str = "ordinary"

    @classmethod
    def of(cls, form: FormData, *, channels: Sequence[str]) -> TicketEntry:
        channel = _text(form, "channel")
        return cls(
            request_type=_text(form, "request_type").strip(),
            subject=_text(form, "subject").strip(),
            body=_text(form, "body").strip(),
            address=_text(form, "address").strip(),
            lat=_text(form, "lat").strip(),
            lon=_text(form, "lon").strip(),
            enterprise=_text(form, "enterprise") == "true",
            enterprise_name=_text(form, "enterprise_name").strip(),
            name=_text(form, "name").strip(),
            phone=_text(form, "phone").strip(),
            email=_text(form, "email").strip(),
            anonymous=_text(form, "anonymous") == "true",
            channel=channel if channel in channels else channels[0],
            urgency=_text(form, "urgency").strip() or "ordinary",
        )

    def check(self, lang: Language, *, need_contact: bool) -> tuple[TicketWrite | None, list[Problem]]:
        """The ticket to file, or the problems to fix."""
        problems: list[Problem] = []

        def add(field: str, message: str) -> None:
            problems.append(Problem(TICKET_FIELDS[field], message))

        if self.request_type not in WEB_TYPES:
            add("request_type", lang.gettext("Choose the type of your request."))
        if not 2 <= len(self.body) <= BODY_MAX:
            add(
                "body",
                lang.gettext("Describe the request in at least 2 characters (at most %(n)s).")
                % {"n": BODY_MAX},
            )
        if len(self.subject) > 300:
            add("subject", lang.gettext("Write a subject of at most 300 characters."))
        if len(self.address) > 500:
            add("address", lang.gettext("Write an address of at most 500 characters."))
        lat, lon = _number(self.lat), _number(self.lon)
        if (self.lat or self.lon) and (
            lat is None or lon is None or not -90 <= lat <= 90 or not -180 <= lon <= 180
        ):
            add(
                "lat",
                lang.gettext(
                    "Give both coordinates as decimal degrees (latitude −90 to 90, longitude −180 to 180), "
                    "or neither."
                ),
            )
        if self.enterprise and not self.enterprise_name:
            add("enterprise_name", lang.gettext("Give the name of the enterprise."))
        if len(self.enterprise_name) > 200:
            add("enterprise_name", lang.gettext("Write a name of at most 200 characters."))
        if len(self.name) > 100:
            add("name", lang.gettext("Write a name of at most 100 characters."))
        if self.phone and not _PHONE.match(self.phone):
            add("phone", lang.gettext("Enter a phone number of digits, such as 13812345678."))
        if self.email and (len(self.email) > 200 or not _EMAIL.match(self.email)):
            add("email", lang.gettext("Enter an e-mail address, such as name@example.com."))
        if need_contact and not self.anonymous and not self.phone and not self.email:
            add(
                "contact",
                lang.gettext(
                    "Give a phone number or an e-mail address so that you can be told the outcome, or choose "
                    "to stay anonymous."
                ),
            )
        if self.urgency not in {u.value for u in vocab.Urgency}:
            add("urgency", lang.gettext("Choose the urgency."))
        if problems:
            return None, problems
        contact: dict[str, Any] = {}
        if not self.anonymous:
            contact = {"name": self.name, "phone": self.phone or None, "email": self.email or None}
        try:
            write = TicketWrite.model_validate(
                {
                    "channel": self.channel,
                    "request_type": self.request_type,
                    "subject": self.subject,
                    "body": self.body,
                    "contact": contact,
                    "anonymous": self.anonymous,
                    "enterprise": self.enterprise,
                    "enterprise_name": self.enterprise_name if self.enterprise else "",
                    "address": self.address,
                    "lat": lat,
                    "lon": lon,
                    "urgency": self.urgency,
                }
            )
        except ValidationError as exc:
            return None, _validation(exc, lang, TICKET_FIELDS)
        return write, []


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _received_sig(request: Request, ref: str) -> str:
    """Proof that this server issued the confirmation of ``ref`` (the page echoes nothing else)."""
    secret = runtime(request).secret.encode()
    return hmac.new(secret, f"hotline-received:{ref}".encode(), hashlib.sha256).hexdigest()[:32]


NEW_PATH = "/hotline/new"


def _new_page(
    request: Request,
    lang: Language,
    session: Session,
    *,
    entry: TicketEntry,
    problems: Sequence[Problem] = (),
    idem: str | None = None,
    status: int = 200,
) -> Response:
    context = {
        "entry": entry,
        "problems": list(problems),
        "idem": _idem(idem),
        "types": WEB_TYPES,
        "body_max": BODY_MAX,
    }
    return _page(request, lang, session, "hotline/new.html", context, status=status)


@router.get(NEW_PATH)
def new_ticket_form(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Anyone,
    content: Annotated[str, Query()] = "",
) -> Response:
    """The web intake form (网上诉求). ``?content=`` fills in the request: the consultation service hands
    a question it could not answer over this way (the ticket's channel is then ``consult``)."""
    entry = TicketEntry(body=content.replace("\x00", "")[:BODY_MAX], channel="consult" if content else "web")
    return _new_page(request, lang, session, entry=entry)


@router.post(NEW_PATH, dependencies=[Depends(csrf_form)])
def new_ticket(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Writer,
    clock: ClockDep,
    sealer: SealerDep,
    form: Posted,
) -> Response:
    """File the request (``service.create_ticket``) once per form, then 303 to its confirmation."""
    key = _text(form, "_idem")
    earlier = _earlier(session, principal, key, NEW_PATH)
    if earlier is not None:
        return RedirectResponse(earlier, status_code=303)
    entry = TicketEntry.of(form, channels=("web", "consult"))
    entry.urgency = "ordinary"
    write, problems = entry.check(lang, need_contact=not principal.is_authenticated)
    status = 422
    if write is not None:

        def run() -> str:
            out = service.create_ticket(session, principal, write, sealer=sealer, clock=clock)
            query = urlencode({"ref": out.ref, "sig": _received_sig(request, out.ref)})
            return f"{NEW_PATH}/received?{query}"

        try:
            target = _submit_once(session, principal, key=key, path=NEW_PATH, clock=clock, run=run)
        except DomainError as exc:
            problems, status = [Problem(None, _refusal(exc, lang))], exc.status
        else:
            return RedirectResponse(target, status_code=303)
    return _new_page(request, lang, session, entry=entry, problems=problems, idem=key, status=status)


@router.get(NEW_PATH + "/received")
def new_ticket_received(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Anyone,
    ref: Annotated[str, Query(max_length=32, pattern=r"^[0-9A-Za-z]+$")],
    sig: Annotated[str, Query(max_length=64)],
) -> Response:
    """The confirmation: the ticket number, and what happens next."""
    if not hmac.compare_digest(sig, _received_sig(request, ref)):
        raise NotFound(f"no ticket {ref}")
    return _page(request, lang, session, "hotline/received.html", {"ref": ref})


# --- the requester's tickets ------------------------------------------------------------------------------


def _is_staff(principal: auth.Principal) -> bool:
    return any(principal.can(p) for p in (vocab.INTAKE, vocab.HANDLE, vocab.SUPERVISE))


@router.get("/hotline/tickets")
def my_tickets(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Requester,
    clock: ClockDep,
    page: PageNo = 1,
) -> Response:
    """我的诉求: the signed-in requester's tickets, newest first."""
    found = service.list_tickets(
        session,
        principal,
        service.TicketFilter(mine=True),
        page=page,
        per_page=PER_PAGE,
        clock=clock,
        order="new",
    )
    context = {"found": found, "pages": max(1, math.ceil(found.total / PER_PAGE))}
    return _page(request, lang, session, "hotline/my_tickets.html", context)


def _requester_page(
    request: Request,
    lang: Language,
    session: Session,
    principal: auth.Principal,
    ref: str,
    *,
    problems: Sequence[Problem] = (),
    posted: Mapping[str, Any] | None = None,
    done: str = "",
    status: int = 200,
) -> Response:
    t = service.get_ticket(session, principal, ref)
    context = {
        "t": t,
        "events": [e for e in t.events if e.public],
        # A requester reads the ticket only when it is theirs; staff see this view without its form.
        "may_revisit": not _is_staff(principal) and t.status in vocab.AWAITING_VISIT,
        "problems": list(problems),
        "posted": posted or {},
        "done": _done(done),
    }
    return _page(request, lang, session, "hotline/ticket.html", context, status=status)


@router.get("/hotline/tickets/{ref}")
def my_ticket(
    request: Request,
    ref: Ref,
    session: DbSession,
    lang: LanguageDep,
    principal: Requester,
    done: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    """One of the requester's tickets: status, the public history, the reply and the return visit."""
    return _requester_page(request, lang, session, principal, ref, done=done)


VISIT_TARGETS = {
    "resolved": "v-resolved-yes",
    "satisfaction": "v-satisfaction-5",
    "comment": "v-comment",
    "reopen": "v-reopen",
}


def _visit(form: FormData, lang: Language) -> tuple[VisitWrite | None, list[Problem]]:
    resolved = _text(form, "resolved")
    satisfaction = _text(form, "satisfaction")
    problems = []
    if resolved not in ("yes", "no"):
        problems.append(Problem("v-resolved-yes", lang.gettext("Say whether the problem was solved.")))
    if satisfaction not in {str(n) for n in vocab.SATISFACTION}:
        problems.append(Problem("v-satisfaction-5", lang.gettext("Choose how satisfied you are.")))
    if len(_text(form, "comment")) > NOTE_MAX:
        problems.append(
            Problem("v-comment", lang.gettext("Write at most %(n)s characters.") % {"n": NOTE_MAX})
        )
    if problems:
        return None, problems
    try:
        write = VisitWrite(
            resolved=resolved == "yes",
            satisfaction=int(satisfaction),
            comment=_text(form, "comment"),
            reopen=_text(form, "reopen") == "true",
        )
    except ValidationError as exc:
        return None, _validation(exc, lang, VISIT_TARGETS)
    return write, []


def _visit_refusal(exc: DomainError, lang: Language) -> Problem | None:
    if isinstance(exc, InvalidInput) and exc.detail.startswith("reopen:"):
        return Problem(
            "v-reopen",
            lang.gettext(
                "Only a problem that was not solved, or a reply you are not satisfied with, is reopened."
            ),
        )
    return None


@router.post("/hotline/tickets/{ref}/revisit", dependencies=[Depends(csrf_form)])
def my_ticket_revisit(
    request: Request,
    ref: Ref,
    session: DbSession,
    lang: LanguageDep,
    principal: Requester,
    clock: ClockDep,
    sealer: SealerDep,
    form: Posted,
) -> Response:
    """The requester answers the return visit (回访) on their own ticket: solved, satisfaction, reopen."""
    write, problems = _visit(form, lang)
    status = 422
    if write is not None:
        visit = write

        def run() -> None:
            service.revisit(
                session, principal, ref, visit, sealer=sealer, clock=clock, if_match=_version(form)
            )

        problems, status = _attempt_visit(session, lang, run)
        if not problems:
            return RedirectResponse(f"/hotline/tickets/{ref}?done=revisit", status_code=303)
    return _requester_page(
        request,
        lang,
        session,
        principal,
        ref,
        problems=problems,
        posted=_posted(form, "revisit"),
        status=status,
    )


def _attempt_visit(session: Session, lang: Language, run: Callable[[], None]) -> tuple[list[Problem], int]:
    try:
        with session.begin_nested():
            run()
    except DomainError as exc:
        special = _visit_refusal(exc, lang)
        return [special or Problem(None, _refusal(exc, lang))], exc.status
    return [], 0


# --- operators: the desk ----------------------------------------------------------------------------------

DESK_PATH = "/hotline/desk"


def _desk_page(
    request: Request,
    lang: Language,
    session: Session,
    principal: auth.Principal,
    *,
    clock: Clock,
    filters: Mapping[str, str],
    page: int = 1,
    entry: TicketEntry | None = None,
    problems: Sequence[Problem] = (),
    idem: str | None = None,
    status: int = 200,
) -> Response:
    queue = service.list_tickets(
        session,
        principal,
        service.TicketFilter(
            statuses=(vocab.Status.RECEIVED.value,),
            queue=filters.get("queue") or None,
            channel=filters.get("channel") or None,
            text=(filters.get("q") or "").replace("\x00", "") or None,
        ),
        page=page,
        per_page=PER_PAGE,
        clock=clock,
        order="old",
    )
    visits = service.list_tickets(
        session,
        principal,
        service.TicketFilter(statuses=tuple(s.value for s in vocab.AWAITING_VISIT)),
        page=1,
        per_page=PER_PAGE,
        clock=clock,
        order="old",
    )
    context = {
        "queue": queue,
        "visits": visits,
        "pages": max(1, math.ceil(queue.total / PER_PAGE)),
        "page_no": page,
        "filters": filters,
        "channels": [c.value for c in vocab.Channel],
        "entry": entry or TicketEntry(channel="phone"),
        "problems": list(problems),
        "idem": _idem(idem),
        "types": WEB_TYPES,
        "urgencies": [u.value for u in vocab.Urgency],
        "body_max": BODY_MAX,
        "query": urlencode({k: v for k, v in filters.items() if v}),
    }
    return _page(request, lang, session, "hotline/desk.html", context, status=status)


def _desk_filters(q: str, channel: str, queue: str) -> dict[str, str]:
    return {
        "q": q.strip()[:100],
        "channel": channel if channel in {c.value for c in vocab.Channel} else "",
        "queue": queue if queue in ("enterprise", "citizen") else "",
    }


@router.get(DESK_PATH)
def desk(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Operator,
    clock: ClockDep,
    q: Annotated[str, Query(max_length=100)] = "",
    channel: Annotated[str, Query(max_length=20)] = "",
    queue: Annotated[str, Query(max_length=20)] = "",
    page: PageNo = 1,
) -> Response:
    """The operator's desk: received tickets waiting to be classified and dispatched (oldest first), the
    tickets awaiting their return visit, and the form to enter a call."""
    filters = _desk_filters(q, channel, queue)
    return _desk_page(request, lang, session, principal, clock=clock, filters=filters, page=page)


@router.post(DESK_PATH, dependencies=[Depends(csrf_form)])
def desk_entry(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Operator,
    clock: ClockDep,
    sealer: SealerDep,
    form: Posted,
) -> Response:
    """Enter a call (channel ``phone``) once per form, then 303 to the new ticket."""
    key = _text(form, "_idem")
    earlier = _earlier(session, principal, key, DESK_PATH)
    if earlier is not None:
        return RedirectResponse(earlier, status_code=303)
    entry = TicketEntry.of(form, channels=("phone",))
    write, problems = entry.check(lang, need_contact=False)
    status = 422
    if write is not None:

        def run() -> str:
            out = service.create_ticket(session, principal, write, sealer=sealer, clock=clock)
            return f"{DESK_PATH}/{out.ref}?done=created"

        try:
            target = _submit_once(session, principal, key=key, path=DESK_PATH, clock=clock, run=run)
        except DomainError as exc:
            problems, status = [Problem(None, _refusal(exc, lang))], exc.status
        else:
            return RedirectResponse(target, status_code=303)
    return _desk_page(
        request,
        lang,
        session,
        principal,
        clock=clock,
        filters={},
        entry=entry,
        problems=problems,
        idem=key,
        status=status,
    )


@dataclass(frozen=True)
class DeskExtras:
    """What the ticket page of the desk needs besides the ticket."""

    embedder: Any
    holder: knowledge.IndexHolder | None
    question: str = ""


def _desk_ticket_page(
    request: Request,
    lang: Language,
    session: Session,
    principal: auth.Principal,
    ref: str,
    *,
    clock: Clock,
    extras: DeskExtras,
    problems: Sequence[Problem] = (),
    posted: Mapping[str, Any] | None = None,
    done: str = "",
    contact: ContactOut | None = None,
    status: int = 200,
) -> Response:
    t = service.get_ticket(session, principal, ref)
    helper = None
    if t.status not in FINISHED:
        helper = assistant(
            session,
            principal,
            ref,
            embedder=extras.embedder,
            holder=extras.holder,
            clock=clock,
            question=extras.question or None,
        )
    s = vocab.Status
    context = {
        "t": t,
        "a": helper,
        "question": extras.question,
        "categories": service.categories(session),
        "active_units": service.units(session, active_only=True),
        "urgencies": [u.value for u in vocab.Urgency],
        "forms": {
            "classify": t.status in (s.RECEIVED, s.DISPATCHED, s.SIGNED, s.RETURN_REQUESTED),
            "dispatch": t.status == s.RECEIVED and t.category_confirmed,
            "answer": t.status == s.RECEIVED,
            "cancel": t.status == s.RECEIVED,
            "merge": t.status not in FINISHED,
            "note": t.status not in FINISHED,
            "revisit": t.status in vocab.AWAITING_VISIT,
        },
        "proposals": [d for d in t.duplicates if d.status == "proposed"],
        "problems": list(problems),
        "posted": posted or {},
        "done": _done(done),
        "contact": contact,
        "now": clock.now(),
        "knowledge_reason": _knowledge_reason(helper, lang),
    }
    return _page(request, lang, session, "hotline/desk_ticket.html", context, status=status)


def _knowledge_reason(helper: Any, lang: Language) -> str:
    if helper is None or helper.knowledge.grounded:
        return ""
    reason = helper.knowledge.reason
    text = lang.gettext(KNOWLEDGE_REASON_TEXT.get(reason, KNOWLEDGE_REASON_TEXT["no_support"]))
    if reason == "not_covered":
        return text % {"names": ("、" if lang.code != "en" else ", ").join(helper.knowledge.missing)}
    return text


@router.get(DESK_PATH + "/{ref}", openapi_extra=WRITES_ROUTE)
def desk_ticket(
    request: Request,
    ref: Ref,
    session: DbSession,
    lang: LanguageDep,
    principal: Operator,
    clock: ClockDep,
    embedder: EmbedderDep,
    holder: HolderDep,
    kq: Annotated[str, Query(max_length=300)] = "",
    done: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    """One ticket at the desk: its facts and full history, the assistant (suggested category and dispatch
    plan, similar answered tickets, the knowledge hub's answer; ``kq`` asks the hub another question),
    and the forms its status allows."""
    extras = DeskExtras(embedder=embedder, holder=holder, question=kq.strip())
    return _desk_ticket_page(request, lang, session, principal, ref, clock=clock, extras=extras, done=done)


#: Inputs of each desk form, and the ids the error summary links to.
DESK_TARGETS: dict[str, dict[str, str]] = {
    "classify": {"category_path": "c-category", "urgency": "c-urgency"},
    "dispatch": {"lead_unit": "d-lead", "helper_units": "d-helpers", "note": "d-note"},
    "answer": {"answer": "a-answer", "category_path": "a-answer"},
    "merge": {"into": "m-into", "note": "m-into"},
    "cancel": {"note": "x-note"},
    "note": {"note": "n-note"},
}


def _desk_write(form: FormData, action: str) -> Any:
    """The service's input of a desk form (``ValidationError`` when it does not fit)."""
    if action == "classify":
        return Classification(
            category_path=_text(form, "category_path"),
            urgency=_text(form, "urgency") or None,
            enterprise=_text(form, "enterprise") == "true",
        )
    if action == "dispatch":
        return DispatchWrite(
            lead_unit=_text(form, "lead_unit") or None,
            helper_units=_texts(form, "helper_units"),
            note=_text(form, "note"),
        )
    if action == "answer":
        return AnswerWrite(answer=_text(form, "answer"))
    if action == "merge":
        return MergeWrite(into=_text(form, "into").strip(), note=_text(form, "note"))
    return NoteWrite(note=_text(form, "note"))


DESK_ACTIONS = ("classify", "dispatch", "answer", "merge", "cancel", "note")


@router.post(DESK_PATH + "/{ref}/{action}", dependencies=[Depends(csrf_form)])
def desk_action(
    request: Request,
    ref: Ref,
    action: Annotated[str, Path(max_length=20)],
    session: DbSession,
    lang: LanguageDep,
    principal: Operator,
    clock: ClockDep,
    sealer: SealerDep,
    embedder: EmbedderDep,
    holder: HolderDep,
    form: Posted,
) -> Response:
    """Classify, dispatch, answer directly, merge, cancel, note or make the return visit; then 303 back
    to the ticket, or the page again with the problems."""
    extras = DeskExtras(embedder=embedder, holder=holder)
    version = _version(form)
    if action == "show-contact":
        return _reveal_contact(
            request, lang, session, principal, ref, clock=clock, sealer=sealer, extras=extras
        )
    if action == "revisit":
        return _desk_revisit(
            request, lang, session, principal, ref, form, clock=clock, sealer=sealer, extras=extras
        )
    if action == "dismiss":
        return _desk_dismiss(request, lang, session, principal, ref, form, clock=clock, extras=extras)
    if action not in DESK_ACTIONS:
        raise NotFound(f"no action {action!r}")

    def run() -> None:
        write = _desk_write(form, action)
        if action == "classify":
            service.classify(session, principal, ref, write, clock=clock, if_match=version)
        elif action == "dispatch":
            service.dispatch(session, principal, ref, write, clock=clock, if_match=version)
        elif action == "answer":
            service.answer_directly(
                session, principal, ref, write, sealer=sealer, clock=clock, if_match=version
            )
        elif action == "merge":
            service.merge(session, principal, ref, write, clock=clock, if_match=version)
        elif action == "cancel":
            service.cancel(session, principal, ref, write, clock=clock, if_match=version)
        else:
            service.add_note(session, principal, ref, write, clock=clock, if_match=version)

    problems, status = _attempt(session, lang, run, DESK_TARGETS[action])
    if not problems:
        return RedirectResponse(f"{DESK_PATH}/{ref}?done={action}", status_code=303)
    return _desk_ticket_page(
        request,
        lang,
        session,
        principal,
        ref,
        clock=clock,
        extras=extras,
        problems=problems,
        posted=_posted(form, action),
        status=status,
    )


def _desk_revisit(
    request: Request,
    lang: Language,
    session: Session,
    principal: auth.Principal,
    ref: str,
    form: FormData,
    *,
    clock: Clock,
    sealer: Sealer,
    extras: DeskExtras,
) -> Response:
    """The operator records the return visit made by phone."""
    write, problems = _visit(form, lang)
    problems = [Problem(f"o{p.target}" if p.target else None, p.message) for p in problems]
    status = 422
    if write is not None:
        visit = write

        def run() -> None:
            service.revisit(
                session, principal, ref, visit, sealer=sealer, clock=clock, if_match=_version(form)
            )

        problems, status = _attempt_visit(session, lang, run)
        problems = [Problem(f"o{p.target}" if p.target else None, p.message) for p in problems]
        if not problems:
            return RedirectResponse(f"{DESK_PATH}/{ref}?done=revisit", status_code=303)
    return _desk_ticket_page(
        request,
        lang,
        session,
        principal,
        ref,
        clock=clock,
        extras=extras,
        problems=problems,
        posted=_posted(form, "revisit"),
        status=status,
    )


def _desk_dismiss(
    request: Request,
    lang: Language,
    session: Session,
    principal: auth.Principal,
    ref: str,
    form: FormData,
    *,
    clock: Clock,
    extras: DeskExtras,
) -> Response:
    """Dismiss a proposed duplicate of the ticket (not the same problem)."""
    raw = _text(form, "duplicate")
    t = service.get_ticket(session, principal, ref)
    ids = {d.id for d in t.duplicates}

    def run() -> None:
        if not raw.isdigit() or int(raw) not in ids:
            raise InvalidInput("duplicate: no such proposal on this ticket")
        service.dismiss_duplicate(session, principal, int(raw), clock=clock)

    problems, status = _attempt(session, lang, run, {})
    if not problems:
        return RedirectResponse(f"{DESK_PATH}/{ref}?done=dismiss", status_code=303)
    return _desk_ticket_page(
        request, lang, session, principal, ref, clock=clock, extras=extras, problems=problems, status=status
    )


def _reveal_contact(
    request: Request,
    lang: Language,
    session: Session,
    principal: auth.Principal,
    ref: str,
    *,
    clock: Clock,
    sealer: Sealer,
    extras: DeskExtras | None,
) -> Response:
    """Show the requester's contact details (an audited look) on the ticket's page."""
    contact: ContactOut | None = None
    problems: list[Problem] = []
    status = 200
    try:
        with session.begin_nested():
            contact = service.contact_of(session, principal, ref, sealer=sealer, clock=clock)
    except DomainError as exc:
        problems, status = [Problem(None, lang.gettext("The requester left no contact details."))], exc.status
        if not isinstance(exc, NotFound):
            problems = [Problem(None, _refusal(exc, lang))]
    if extras is not None:
        return _desk_ticket_page(
            request,
            lang,
            session,
            principal,
            ref,
            clock=clock,
            extras=extras,
            problems=problems,
            contact=contact,
            status=status,
        )
    return _inbox_ticket_page(
        request, lang, session, principal, ref, clock=clock, problems=problems, contact=contact, status=status
    )


# --- units: the inbox ---------------------------------------------------------------------------------------

INBOX_PATH = "/hotline/inbox"


@dataclass(frozen=True)
class Due:
    """Where a ticket stands against its deadlines."""

    overdue: bool
    soon: bool
    respond_late: bool


def _due(t: TicketOut, now: dt.datetime, warn_fraction: float) -> Due:
    holding = t.status in vocab.WITH_UNIT
    overdue = holding and t.due_at is not None and now > t.due_at
    soon = False
    if holding and not overdue and t.due_at is not None and t.dispatched_at is not None:
        span = (t.due_at - t.dispatched_at).total_seconds()
        soon = t.warned_at is not None or (now - t.dispatched_at).total_seconds() >= warn_fraction * span
    respond_late = holding and t.responded_at is None and t.respond_by is not None and now > t.respond_by
    return Due(overdue=overdue, soon=soon, respond_late=respond_late)


def _due_of(session: Session, clock: Clock) -> Callable[[TicketOut], Due]:
    now = clock.now()
    fraction = float(service.current_settings(session)["warn_fraction"])
    return lambda t: _due(t, now, fraction)


@router.get(INBOX_PATH)
def inbox(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: UnitStaff,
    clock: ClockDep,
    queue: Annotated[str, Query(max_length=20)] = "",
    status: Annotated[str, Query(max_length=20)] = "",
    overdue: Annotated[str, Query(max_length=10)] = "",
    page: PageNo = 1,
) -> Response:
    """The unit's inbox: the tickets its units hold, the nearest deadline first; the enterprise queue
    (企业诉求) and overdue tickets as filters."""
    holding = tuple(
        s.value for s in (vocab.Status.DISPATCHED, vocab.Status.SIGNED, vocab.Status.RETURN_REQUESTED)
    )
    filters = {
        "queue": queue if queue in ("enterprise", "citizen") else "",
        "status": status if status in holding else "",
        "overdue": "1" if overdue in ("1", "true", "on") else "",
    }
    found = service.list_tickets(
        session,
        principal,
        service.TicketFilter(
            statuses=(filters["status"],) if filters["status"] else holding,
            queue=filters["queue"] or None,
            overdue=bool(filters["overdue"]),
        ),
        page=page,
        per_page=PER_PAGE,
        clock=clock,
        order="due",
    )
    mine = service.principal_units(principal)
    context = {
        "found": found,
        "filters": filters,
        "holding": holding,
        "due": _due_of(session, clock),
        "my_units": sorted(mine) if mine is not None else None,
        "pages": max(1, math.ceil(found.total / PER_PAGE)),
        "page_no": page,
        "query": urlencode({k: v for k, v in filters.items() if v}),
    }
    return _page(request, lang, session, "hotline/inbox.html", context)


def _inbox_forms(principal: auth.Principal, t: TicketDetail) -> dict[str, bool]:
    """Which forms the ticket's status and the caller's units allow (the service checks again)."""
    mine = service.principal_units(principal)
    lead = mine is None or t.lead_unit in mine
    helper = mine is not None and bool(mine & set(t.helper_units))
    s = vocab.Status
    return {
        "sign": lead and t.status == s.DISPATCHED,
        "contact": (lead or helper) and t.status == s.SIGNED,
        "note": (lead or helper) and t.status in (s.DISPATCHED, s.SIGNED),
        "reply": lead and t.status == s.SIGNED,
        "return": lead and t.status in (s.DISPATCHED, s.SIGNED),
        "lead": lead,
    }


def _inbox_ticket_page(
    request: Request,
    lang: Language,
    session: Session,
    principal: auth.Principal,
    ref: str,
    *,
    clock: Clock,
    problems: Sequence[Problem] = (),
    posted: Mapping[str, Any] | None = None,
    done: str = "",
    contact: ContactOut | None = None,
    status: int = 200,
) -> Response:
    t = service.get_ticket(session, principal, ref)
    context = {
        "t": t,
        "forms": _inbox_forms(principal, t),
        "due": _due_of(session, clock)(t),
        "active_units": service.units(session, active_only=True),
        "problems": list(problems),
        "posted": posted or {},
        "done": _done(done),
        "contact": contact,
    }
    return _page(request, lang, session, "hotline/inbox_ticket.html", context, status=status)


@router.get(INBOX_PATH + "/{ref}")
def inbox_ticket(
    request: Request,
    ref: Ref,
    session: DbSession,
    lang: LanguageDep,
    principal: UnitStaff,
    clock: ClockDep,
    done: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    """One of the unit's tickets: facts, deadlines, history, and the forms its status allows."""
    return _inbox_ticket_page(request, lang, session, principal, ref, clock=clock, done=done)


INBOX_TARGETS: dict[str, dict[str, str]] = {
    "sign": {},
    "contact": {"note": "k-note"},
    "note": {"note": "n-note"},
    "reply": {"reply": "r-reply"},
    "return": {"reason": "b-reason", "suggested_unit": "b-unit"},
}


@router.post(INBOX_PATH + "/{ref}/{action}", dependencies=[Depends(csrf_form)])
def inbox_action(
    request: Request,
    ref: Ref,
    action: Annotated[str, Path(max_length=20)],
    session: DbSession,
    lang: LanguageDep,
    principal: UnitStaff,
    clock: ClockDep,
    sealer: SealerDep,
    form: Posted,
) -> Response:
    """Sign, record the contact with the requester, note, reply or return the ticket; then 303 back."""
    if action == "show-contact":
        return _reveal_contact(
            request, lang, session, principal, ref, clock=clock, sealer=sealer, extras=None
        )
    if action not in INBOX_TARGETS:
        raise NotFound(f"no action {action!r}")
    version = _version(form)

    def run() -> None:
        if action == "sign":
            service.sign(session, principal, ref, clock=clock, if_match=version)
        elif action == "contact":
            service.record_contact(
                session, principal, ref, NoteWrite(note=_text(form, "note")), clock=clock, if_match=version
            )
        elif action == "note":
            service.add_note(
                session, principal, ref, NoteWrite(note=_text(form, "note")), clock=clock, if_match=version
            )
        elif action == "reply":
            write = ReplyWrite(reply=_text(form, "reply"))
            service.reply(session, principal, ref, write, sealer=sealer, clock=clock, if_match=version)
        else:
            back = ReturnWrite(
                reason=_text(form, "reason"), suggested_unit=_text(form, "suggested_unit") or None
            )
            service.request_return(session, principal, ref, back, clock=clock, if_match=version)

    problems, status = _attempt(session, lang, run, INBOX_TARGETS[action])
    if not problems:
        return RedirectResponse(f"{INBOX_PATH}/{ref}?done={action}", status_code=303)
    return _inbox_ticket_page(
        request,
        lang,
        session,
        principal,
        ref,
        clock=clock,
        problems=problems,
        posted=_posted(form, action),
        status=status,
    )


# --- supervisors --------------------------------------------------------------------------------------------

SUPERVISE_PATH = "/hotline/supervise"


@dataclass(frozen=True)
class ReturnRequest:
    """A ticket its unit returned, with the unit's reason and suggestion."""

    ticket: TicketOut
    by_unit: str | None
    by: str
    at: dt.datetime | None
    reason: str
    suggested_unit: str | None


def _return_request(detail: TicketDetail) -> ReturnRequest:
    event: EventOut | None = next(
        (e for e in reversed(detail.events) if e.action == "return_requested"), None
    )
    return ReturnRequest(
        ticket=detail,
        by_unit=event.unit if event else detail.lead_unit,
        by=event.actor if event else "",
        at=event.at if event else None,
        reason=event.note if event else "",
        suggested_unit=(event.data or {}).get("suggested_unit") if event else None,
    )


def _supervise_page(
    request: Request,
    lang: Language,
    session: Session,
    principal: auth.Principal,
    *,
    clock: Clock,
    problems: Sequence[Problem] = (),
    posted: Mapping[str, Any] | None = None,
    done: str = "",
    done_ref: str = "",
    checked: tuple[int, int] | None = None,
    status: int = 200,
) -> Response:
    holding = tuple(s.value for s in vocab.WITH_UNIT)

    def listed(f: service.TicketFilter) -> list[TicketOut]:
        return service.list_tickets(
            session, principal, f, page=1, per_page=100, clock=clock, order="due"
        ).items

    returned = listed(service.TicketFilter(statuses=(vocab.Status.RETURN_REQUESTED.value,)))
    duplicates, duplicate_total = service.duplicates(session, principal, page=1, per_page=100)
    context = {
        "returns": [_return_request(service.get_ticket(session, principal, t.ref)) for t in returned],
        "overdue": listed(service.TicketFilter(statuses=holding, overdue=True)),
        "escalated": listed(service.TicketFilter(statuses=holding, escalated=True)),
        "duplicates": duplicates,
        "duplicate_total": duplicate_total,
        "active_units": service.units(session, active_only=True),
        "due": _due_of(session, clock),
        "problems": list(problems),
        "posted": posted or {},
        "done": _done(done),
        "done_ref": done_ref,
        "checked": checked,
    }
    return _page(request, lang, session, "hotline/supervise.html", context, status=status)


@router.get(SUPERVISE_PATH)
def supervise(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Supervisor,
    clock: ClockDep,
    done: Annotated[str, Query(max_length=20)] = "",
    ref: Annotated[str, Query(max_length=32, pattern=r"^[0-9A-Za-z]*$")] = "",
    warned: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
    escalated: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
) -> Response:
    """The supervisor's page: returns awaiting a decision, overdue and escalated tickets, duplicates."""
    checked = (warned, escalated) if warned is not None and escalated is not None else None
    return _supervise_page(
        request, lang, session, principal, clock=clock, done=done, done_ref=ref, checked=checked
    )


@router.post(SUPERVISE_PATH + "/returns/{ref}", dependencies=[Depends(csrf_form)])
def supervise_return(
    request: Request,
    ref: Ref,
    session: DbSession,
    lang: LanguageDep,
    principal: Supervisor,
    clock: ClockDep,
    form: Posted,
) -> Response:
    """Accept a return and re-dispatch (改派) to the unit chosen, or reject it with the reason."""
    decision = _text(form, "decision")
    targets = {
        "decision": f"accept-lead-{ref}",
        "lead_unit": f"accept-lead-{ref}",
        "helper_units": f"accept-helpers-{ref}",
        "note": f"{decision if decision in ('accept', 'reject') else 'reject'}-note-{ref}",
    }

    def run() -> None:
        write = ReturnDecision(
            decision=decision,
            lead_unit=_text(form, "lead_unit") or None,
            helper_units=_texts(form, "helper_units"),
            note=_text(form, "note"),
        )
        service.decide_return(session, principal, ref, write, clock=clock, if_match=_version(form))

    problems, status = _attempt(session, lang, run, targets)
    if not problems:
        return RedirectResponse(
            f"{SUPERVISE_PATH}?{urlencode({'done': 'decision', 'ref': ref})}", status_code=303
        )
    posted = {**_posted(form, decision), "ref": ref}
    return _supervise_page(
        request, lang, session, principal, clock=clock, problems=problems, posted=posted, status=status
    )


@router.post(SUPERVISE_PATH + "/duplicates/{duplicate_id}/{action}", dependencies=[Depends(csrf_form)])
def supervise_duplicate(
    request: Request,
    duplicate_id: DuplicateId,
    action: Annotated[str, Path(max_length=20)],
    session: DbSession,
    lang: LanguageDep,
    principal: Supervisor,
    clock: ClockDep,
    form: Posted,
) -> Response:
    """Merge a proposed duplicate into its original (并单), or dismiss the proposal."""
    if action not in ("merge", "dismiss"):
        raise NotFound(f"no action {action!r}")

    def run() -> None:
        items, _ = service.duplicates(session, principal, page=1, per_page=200)
        proposal = next((d for d in items if d.id == duplicate_id), None)
        if proposal is None:
            raise service.WrongStatus("the proposal was decided already")
        if action == "dismiss":
            service.dismiss_duplicate(session, principal, duplicate_id, clock=clock)
        else:
            service.merge(
                session, principal, proposal.ticket, MergeWrite(into=proposal.original), clock=clock
            )

    problems, status = _attempt(session, lang, run, {})
    if not problems:
        return RedirectResponse(
            f"{SUPERVISE_PATH}?done={'merge' if action == 'merge' else 'dismiss'}", status_code=303
        )
    return _supervise_page(request, lang, session, principal, clock=clock, problems=problems, status=status)


@router.post(SUPERVISE_PATH + "/deadlines", dependencies=[Depends(csrf_form)])
def supervise_deadlines(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Supervisor,
    clock: ClockDep,
) -> Response:
    """Run the deadline check now (it also runs on a schedule): warnings and escalations, each once."""
    report = service.check_deadlines(session, clock=clock)
    query = urlencode({"done": "deadlines", "warned": len(report.warned), "escalated": len(report.escalated)})
    return RedirectResponse(f"{SUPERVISE_PATH}?{query}", status_code=303)


# --- the three rates ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateFilters:
    by: str
    date_from: str
    date_to: str


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        raise InvalidInput(text) from None


def _pct(lang: Language) -> Callable[[float | None], str]:
    def fmt(value: float | None) -> str:
        if value is None:
            return "—"
        return f"{value * 100:.1f}%"

    return fmt


def _rates_chart(report: RateReport, lang: Language, label: Callable[[str, str], str]) -> Markup:
    return charts.bar_chart(
        [(label(r.key, r.label), r.score) for r in report.rows],
        title=lang.gettext("Weighted score by group"),
        description=lang.gettext(
            "The weighted score (0–100) of the response, resolution and satisfaction rates of each group; "
            "a group without any rate shows a dash. The table below gives the same numbers."
        ),
        value_format=lambda v: f"{v:.1f}",
        max_value=100.0,
        gettext=lang.gettext,
    )


@router.get("/hotline/rates")
def rates(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Supervisor,
    by: Annotated[str, Query(max_length=20)] = "unit",
    date_from: Annotated[str, Query(max_length=20)] = "",
    date_to: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    """The three rates (响应率, 解决率, 满意率) with their counts and the weighted score, by unit, level-1
    category or month received, for tickets received between the dates; a chart of the scores and the
    CSV of the same table."""
    filters = RateFilters(
        by=by if by in RATE_GROUPS else "unit", date_from=date_from.strip(), date_to=date_to.strip()
    )
    problems: list[Problem] = []
    start = end = None
    try:
        start = _date(filters.date_from)
    except InvalidInput:
        problems.append(Problem("r-from", lang.gettext("Enter the first day as a date (YYYY-MM-DD).")))
    try:
        end = _date(filters.date_to)
    except InvalidInput:
        problems.append(Problem("r-to", lang.gettext("Enter the last day as a date (YYYY-MM-DD).")))
    if start and end and end < start:
        problems.append(Problem("r-to", lang.gettext("The last day is before the first day.")))
    words = _words(lang, service.units(session))

    def label(key: str, text: str) -> str:
        if filters.by == "unit":
            return str(words["unit_name"](key)) if key else "—"
        return text or "—"

    context: dict[str, Any] = {
        "filters": filters,
        "groups": RATE_GROUPS,
        "group_text": {k: lang.gettext(v) for k, v in RATE_GROUP_TEXT.items()},
        "problems": problems,
        "pct": _pct(lang),
        "label": label,
    }
    if problems:
        context.update({"report": None, "chart": None, "csv": ""})
        return render_page(request, lang, "hotline/rates.html", {**words, **context}, status=422)
    report = service.rates(session, principal, by=filters.by, date_from=start, date_to=end)
    query = {"by": filters.by, "date_from": filters.date_from, "date_to": filters.date_to}
    context.update(
        {
            "report": report,
            "chart": _rates_chart(report, lang, label) if report.rows else None,
            "csv": "/api/v1/hotline/rates.csv?" + urlencode({k: v for k, v in query.items() if v}),
        }
    )
    return render_page(request, lang, "hotline/rates.html", {**words, **context})
