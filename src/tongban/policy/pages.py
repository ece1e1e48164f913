"""HTML pages of the policy library (政策库) and the policy calculator (政策计算器), in zh-Hans and en.

The calculator is a plain form (no JavaScript needed): a person or an enterprise gives the facts it knows,
leaves the others empty, and sees every published item decided — eligible, not eligible, or undetermined
with the data that would decide it and who holds those data. Nothing it enters is stored; the form is
posted (not put in the address) so that personal facts stay out of logs and history.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from tongban.core import auth
from tongban.core.crypto import Sealer
from tongban.core.errors import DomainError
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
from tongban.core.llm import get_chat_model
from tongban.policy import service
from tongban.policy.schemas import (
    AppealDecision,
    AppealWrite,
    ApplicationDecision,
    DraftWrite,
    FastApplicationWrite,
    FieldOut,
    Level,
    MatchRequest,
    OverlapRequest,
    RunDecision,
    RunWrite,
    SimulationWrite,
    SubscriptionWrite,
)

router = APIRouter(include_in_schema=False)
Anyone = Annotated[auth.Principal, Depends(public_with_principal)]
Asking = Annotated[auth.Principal, Depends(public_writing)]
ENTITIES = ("person", "household", "enterprise")
#: The most members a household's form takes.
MAX_MEMBERS = 10
CALCULATOR = "/policies/calculator"


Posted = Annotated[FormData, Depends(posted_form)]


def _lang_code(lang: Language) -> str:
    return "en" if lang.code == "en" else "zh"


def _words(lang: Language) -> dict[str, Any]:
    _ = lang.gettext
    return {
        "levels": {
            "national": _("National"),
            "city": _("City"),
            "district": _("District"),
            "street": _("Street"),
        },
        "statuses": {
            "drafting": _("Being drafted"),
            "review": _("In review"),
            "published": _("In force"),
            "amended": _("Amended"),
            "repealed": _("Repealed"),
        },
        "supports": {
            "减免": _("Reduction"),
            "奖补": _("Award or subsidy"),
            "权益": _("Entitlement"),
            "资质": _("Qualification"),
        },
        "entities": {"person": _("Person"), "household": _("Household"), "enterprise": _("Enterprise")},
        "grant_statuses": {
            "proposed": _("Waiting for approval"),
            "granted": _("Granted without application"),
            "noticed": _("Apply through the fast application"),
            "applied": _("Fast application under review"),
            "stacked": _("Not combined with a higher benefit of the same kind"),
            "over_budget": _("The budget of this benefit is used up"),
            "withdrawn": _("Withdrawn"),
        },
        "appeal_statuses": {
            "open": _("Appeal under review"),
            "upheld": _("Appeal upheld"),
            "dismissed": _("Appeal dismissed"),
        },
        "application_statuses": {
            "submitted": _("under review"),
            "approved": _("approved"),
            "refused": _("refused"),
        },
        "run_statuses": {
            "computed": _("Waiting for approval"),
            "approved": _("Approved"),
            "rejected": _("Rejected"),
        },
        "interpretations": {
            "official": _("Official interpretation"),
            "expert": _("Expert interpretation"),
            "media": _("Media interpretation"),
            "qa": _("Questions and answers"),
        },
    }


def yuan(fen: int | None) -> str:
    """Fen as yuan with two decimals, exactly (no float)."""
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}"


# --- the library ---------------------------------------------------------------------------------------


@router.get("/policies")
def library(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Anyone,
    q: Annotated[str, Query(max_length=100)] = "",
    level: Level | None = None,
    department: Annotated[str, Query(max_length=200)] = "",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    """The policy library: documents in force and earlier ones, searchable by words, level, department."""
    found = service.list_documents(
        session, principal, q=q, level=level or "", department=department, page=page, per_page=20
    )
    return render_page(
        request,
        lang,
        "policy/library.html",
        {
            "found": found,
            "q": q,
            "level": level or "",
            "department": department,
            "departments": service.departments(session, principal),
            "items": service.list_items(session, principal),
            "pages": max(1, -(-found.total // found.per_page)),
            **_words(lang),
        },
    )


@router.get("/policies/documents/{code}")
def document(
    request: Request,
    code: Annotated[str, Path(min_length=1, max_length=100)],
    session: DbSession,
    lang: LanguageDep,
    principal: Anyone,
) -> Response:
    doc = service.get_document(session, principal, code)
    return render_page(request, lang, "policy/document.html", {"doc": doc, **_words(lang)})


# --- the calculator ------------------------------------------------------------------------------------


def _parse(field: FieldOut, raw: str, lang: Language) -> tuple[Any, str | None]:
    """A form value as the fact's type (None: left empty, unknown), or the problem in words."""
    _ = lang.gettext
    raw = raw.strip()
    if raw == "":
        return None, None
    kind = field.kind
    if kind == "bool":
        if raw in ("true", "false"):
            return raw == "true", None
        return None, _("Choose yes, no or not known.")
    if kind == "int":
        try:
            return int(raw), None
        except ValueError:
            return None, _("Enter a whole number.")
    if kind == "money":
        try:
            value = Decimal(raw.replace(",", "").replace("，", ""))
        except InvalidOperation:
            return None, _("Enter an amount in yuan, such as 1200 or 1200.50.")
        if not value.is_finite() or value != value.quantize(Decimal("0.01")) or abs(value) > 10**13:
            return None, _("Enter an amount in yuan with at most two decimals.")
        return int(value * 100), None
    if kind == "date":
        try:
            return dt.date.fromisoformat(raw).isoformat(), None
        except ValueError:
            return None, _("Enter a date as YYYY-MM-DD.")
    if len(raw) > 100:
        return None, _("Enter at most 100 characters.")
    return raw, None


def _calculator(
    request: Request,
    session: DbSession,
    lang: Language,
    clock: Any,
    entity: str,
    posted: dict[str, str] | None = None,
    members: int = 2,
) -> Response:
    fields = service.calculator_fields(session, entity, clock=clock, lang=_lang_code(lang))
    member_fields = service.member_fields(session, entity, clock=clock, lang=_lang_code(lang))
    problems: list[dict[str, str]] = []
    result = None
    status = 200

    def read(prefix: str, items: list[FieldOut]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in items:
            value, problem = _parse(f, (posted or {}).get(prefix + f.column, ""), lang)
            if problem:
                problems.append({"target": f"f-{prefix}{f.column}", "message": f"{f.label}: {problem}"})
            elif value is not None:
                out[f.column] = value
        return out

    if posted is not None:
        facts_columns = read("", fields)
        member_columns = (
            [read(f"m{i}-", member_fields) for i in range(1, members + 1)] if member_fields else []
        )
        if not problems:
            try:
                facts = service.facts_from_columns(session, entity, facts_columns, clock=clock)
                if member_fields:
                    facts["members"] = [
                        service.facts_from_columns(session, "person", m, clock=clock) for m in member_columns
                    ]
                result = service.match(
                    session,
                    MatchRequest(entity=entity, facts=facts),
                    clock=clock,
                    lang=_lang_code(lang),
                )
            except DomainError as exc:
                problems.append({"target": "", "message": exc.detail})
        if problems:
            status = 422
    return render_page(
        request,
        lang,
        "policy/calculator.html",
        {
            "entity": entity,
            "entities": ENTITIES,
            "fields": fields,
            "member_fields": member_fields,
            "members": members,
            "posted": posted or {},
            "problems": problems,
            "result": result,
            "yuan": yuan,
            **_words(lang),
        },
        status=status,
    )


@router.get(CALCULATOR)
def calculator(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Anyone,
    clock: ClockDep,
    entity: Annotated[str, Query(pattern="^(person|household|enterprise)$")] = "person",
    members: Annotated[int, Query(ge=0, le=MAX_MEMBERS)] = 2,
) -> Response:
    """The policy calculator's form for a person, a household (with its members) or an enterprise."""
    return _calculator(request, session, lang, clock, entity, members=members)


@router.post(CALCULATOR, dependencies=[Depends(csrf_form)])
def calculate(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Asking,
    clock: ClockDep,
    form: Posted,
) -> Response:
    """Decide every published item on the facts posted, each condition explained; nothing is stored."""
    entity = form.get("entity")
    if entity not in ENTITIES:
        entity = "person"
    posted = {k: v for k, v in form.items() if isinstance(v, str)}
    raw = posted.get("members", "")
    members = int(raw) if raw.isdigit() and int(raw) <= MAX_MEMBERS else 0
    return _calculator(request, session, lang, clock, str(entity), posted, members=members)


# --- my benefits, inbox and subscriptions ----------------------------------------------------------------

ME = "/policies/me"
Holder = Annotated[auth.Principal, Depends(own_records)]


def _me_page(
    request: Request,
    session: DbSession,
    lang: Language,
    principal: auth.Principal,
    sealer: Sealer,
    *,
    problems: list[str] | None = None,
    status: int = 200,
) -> Response:
    return render_page(
        request,
        lang,
        "policy/me.html",
        {
            "grants": service.my_grants(
                session, principal, lang=_lang_code(lang), data_dir=_data_dir(request)
            ),
            "inbox": service.my_pushes(session, principal),
            "subscriptions": service.my_subscriptions(session, principal, sealer=sealer),
            "problems": problems or [],
            "yuan": yuan,
            **_words(lang),
        },
        status=status,
    )


@router.get(ME)
def my_policies(
    request: Request, session: DbSession, lang: LanguageDep, principal: Holder, sealer: SealerDep
) -> Response:
    """我的政策: benefits granted or noticed to me (each explained, with an appeal), my policy inbox and
    my subscriptions."""
    return _me_page(request, session, lang, principal, sealer)


@router.post(ME + "/grants/{grant_id}/appeal", dependencies=[Depends(csrf_form)])
def appeal_page(
    request: Request,
    grant_id: Annotated[int, Path(ge=1, le=2**62)],
    session: DbSession,
    lang: LanguageDep,
    principal: Holder,
    clock: ClockDep,
    sealer: SealerDep,
    form: Posted,
) -> Response:
    reason = form.get("reason")
    try:
        service.file_appeal(
            session,
            principal,
            grant_id,
            AppealWrite(reason=reason if isinstance(reason, str) else ""),
            clock=clock,
            data_dir=_data_dir(request),
        )
    except ValidationError:
        msg = lang.gettext("Say in a few words why you disagree (at least 5 characters).")
        return _me_page(request, session, lang, principal, sealer, problems=[msg], status=422)
    except DomainError as exc:
        return _me_page(request, session, lang, principal, sealer, problems=[exc.detail], status=exc.status)
    return RedirectResponse(f"{ME}?appealed={grant_id}#grant-{grant_id}", status_code=303)


@router.post(ME + "/grants/{grant_id}/apply", dependencies=[Depends(csrf_form)])
def apply_page(
    request: Request,
    grant_id: Annotated[int, Path(ge=1, le=2**62)],
    session: DbSession,
    lang: LanguageDep,
    principal: Holder,
    clock: ClockDep,
    sealer: SealerDep,
    form: Posted,
) -> Response:
    """直达快享: the facts the shared data lacked, and nothing else; the rules decide again."""
    mine = {
        g.id: g
        for g in service.my_grants(session, principal, lang=_lang_code(lang), data_dir=_data_dir(request))
    }
    grant = mine.get(grant_id)
    if grant is None:
        return _me_page(
            request, session, lang, principal, sealer, problems=[lang.gettext("Not found")], status=404
        )
    facts: dict[str, Any] = {}
    problems = []
    for ask in grant.asks:
        raw = form.get(ask.column)
        field = FieldOut(
            column=ask.column,
            variable=ask.variable,
            label=ask.label,
            kind=ask.kind,
            period=ask.period,
            proof=ask.proof,
            proof_kind=ask.proof_kind,
        )
        value, problem = _parse(field, raw if isinstance(raw, str) else "", lang)
        if problem:
            problems.append(f"{ask.label}: {problem}")
        elif value is not None:
            facts[ask.column] = value
    if not problems:
        try:
            service.apply_fast(
                session,
                principal,
                grant_id,
                FastApplicationWrite(facts=facts),
                sealer=sealer,
                data_dir=_data_dir(request),
                clock=clock,
            )
        except DomainError as exc:
            problems.append(exc.detail)
    if problems:
        return _me_page(request, session, lang, principal, sealer, problems=problems, status=422)
    return RedirectResponse(f"{ME}?applied={grant_id}#grant-{grant_id}", status_code=303)


@router.post(ME + "/subscriptions", dependencies=[Depends(csrf_form)])
def subscribe_page(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Holder,
    clock: ClockDep,
    sealer: SealerDep,
    form: Posted,
) -> Response:
    def words(name: str) -> list[str]:
        value = form.get(name)
        return [
            w for w in (value if isinstance(value, str) else "").replace("，", ",").split(",") if w.strip()
        ]

    tags = {k: words(k) for k in ("topic", "region", "support") if words(k)}
    channel = form.get("channel") if form.get("channel") in ("inbox", "email", "sms") else "inbox"
    contact = form.get("contact")
    try:
        data = SubscriptionWrite(
            entity="enterprise" if form.get("entity") == "enterprise" else "person",
            tags=tags,
            channel=channel,
            contact=contact if isinstance(contact, str) and channel != "inbox" else "",
        )
        service.subscribe(session, principal, data, sealer=sealer, clock=clock)
    except ValidationError as exc:
        messages = [str(e["msg"]).removeprefix("Value error, ") for e in exc.errors()]
        return _me_page(request, session, lang, principal, sealer, problems=messages, status=422)
    except DomainError as exc:
        return _me_page(request, session, lang, principal, sealer, problems=[exc.detail], status=exc.status)
    return RedirectResponse(f"{ME}#subscriptions", status_code=303)


@router.post(ME + "/subscriptions/{subscription_id}/cancel", dependencies=[Depends(csrf_form)])
def cancel_page(
    subscription_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    session: DbSession,
    principal: Holder,
    clock: ClockDep,
    sealer: SealerDep,
) -> Response:
    service.cancel_subscription(session, principal, subscription_id, sealer=sealer, clock=clock)
    return RedirectResponse(f"{ME}#subscriptions", status_code=303)


# --- officers: runs and appeals -------------------------------------------------------------------------

STAFF = "/staff/policies"
Officer = Annotated[auth.Principal, Depends(require(service.RUN))]
Approver = Annotated[auth.Principal, Depends(require(service.APPROVE))]


def _runs_page(
    request: Request,
    session: DbSession,
    lang: Language,
    principal: auth.Principal,
    *,
    problems: list[str] | None = None,
    status: int = 200,
) -> Response:
    return render_page(
        request,
        lang,
        "policy/runs.html",
        {
            "runs": service.list_runs(session, principal),
            "snapshots": service.list_snapshots(session, principal),
            "problems": problems or [],
            "yuan": yuan,
            **_words(lang),
        },
        status=status,
    )


@router.get(STAFF)
def runs_page(request: Request, session: DbSession, lang: LanguageDep, principal: Officer) -> Response:
    """免申即享 runs: compute one over a snapshot; their totals and status."""
    return _runs_page(request, session, lang, principal)


@router.post(STAFF + "/runs", dependencies=[Depends(csrf_form)])
def compute_page(
    request: Request, session: DbSession, lang: LanguageDep, principal: Officer, clock: ClockDep, form: Posted
) -> Response:
    try:
        date = form.get("date")
        data = RunWrite(
            entity=form.get("entity"),
            snapshot=form.get("snapshot"),
            date=date if isinstance(date, str) and date else None,
        )
        run = service.compute_run(session, principal, data, data_dir=_data_dir(request), clock=clock)
    except ValidationError:
        msg = lang.gettext("Choose the entity type, a snapshot and a valid date.")
        return _runs_page(request, session, lang, principal, problems=[msg], status=422)
    except DomainError as exc:
        return _runs_page(request, session, lang, principal, problems=[exc.detail], status=exc.status)
    return RedirectResponse(f"{STAFF}/runs/{run.id}", status_code=303)


def _data_dir(request: Request) -> Any:
    return request.app.state.runtime.settings.data_dir


def _run_page(
    request: Request,
    session: DbSession,
    lang: Language,
    principal: auth.Principal,
    run_id: int,
    *,
    problems: list[str] | None = None,
    status: int = 200,
) -> Response:
    run = service.get_run(session, principal, run_id)
    titles = {
        i.key: (i.title_en if lang.code == "en" and i.title_en else i.title)
        for i in service.list_items(session, principal)
    }
    return render_page(
        request,
        lang,
        "policy/run.html",
        {
            "run": run,
            "titles": titles,
            "can_decide": principal.can(service.APPROVE) and run.created_by != principal.username,
            "problems": problems or [],
            "yuan": yuan,
            **_words(lang),
        },
        status=status,
    )


@router.get(STAFF + "/runs/{run_id}")
def run_page(
    request: Request,
    run_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    session: DbSession,
    lang: LanguageDep,
    principal: Officer,
) -> Response:
    return _run_page(request, session, lang, principal, run_id)


@router.post(STAFF + "/runs/{run_id}/decision", dependencies=[Depends(csrf_form)])
def decide_page(
    request: Request,
    run_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    session: DbSession,
    lang: LanguageDep,
    principal: Approver,
    clock: ClockDep,
    form: Posted,
) -> Response:
    note = form.get("note")
    try:
        service.decide_run(
            session,
            principal,
            run_id,
            RunDecision(approve=form.get("approve") == "yes", note=note if isinstance(note, str) else ""),
            clock=clock,
        )
    except DomainError as exc:
        return _run_page(request, session, lang, principal, run_id, problems=[exc.detail], status=exc.status)
    return RedirectResponse(f"{STAFF}/runs/{run_id}", status_code=303)


def _appeals_page(
    request: Request,
    session: DbSession,
    lang: Language,
    principal: auth.Principal,
    clock: Any,
    *,
    problems: list[str] | None = None,
    status: int = 200,
) -> Response:
    return render_page(
        request,
        lang,
        "policy/appeals.html",
        {
            "appeals": service.list_appeals(session, principal),
            "applications": service.list_applications(
                session, principal, status="submitted", sealer=request.app.state.runtime.sealer, clock=clock
            ),
            "yuan": yuan,
            "problems": problems or [],
            **_words(lang),
        },
        status=status,
    )


@router.get(STAFF + "/appeals")
def appeals_page(
    request: Request, session: DbSession, lang: LanguageDep, principal: Approver, clock: ClockDep
) -> Response:
    """Appeals of automated decisions and fast applications, to decide."""
    return _appeals_page(request, session, lang, principal, clock)


@router.post(STAFF + "/appeals/{appeal_id}/decision", dependencies=[Depends(csrf_form)])
def decide_appeal_page(
    request: Request,
    appeal_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    session: DbSession,
    lang: LanguageDep,
    principal: Approver,
    clock: ClockDep,
    form: Posted,
) -> Response:
    amount_raw = form.get("amount")
    amount = None
    if isinstance(amount_raw, str) and amount_raw.strip():
        value, problem = _parse(
            FieldOut(
                column="amount",
                variable="amount",
                label="",
                kind="money",
                period=None,
                proof="",
                proof_kind="",
            ),
            amount_raw,
            lang,
        )
        if problem:
            return _appeals_page(request, session, lang, principal, clock, problems=[problem], status=422)
        amount = value
    decision = form.get("decision")
    try:
        service.decide_appeal(
            session,
            principal,
            appeal_id,
            AppealDecision(
                uphold=form.get("uphold") == "yes",
                decision=decision if isinstance(decision, str) else "",
                amount_fen=amount,
            ),
            clock=clock,
        )
    except ValidationError:
        msg = lang.gettext("Give the reasons of the decision.")
        return _appeals_page(request, session, lang, principal, clock, problems=[msg], status=422)
    except DomainError as exc:
        return _appeals_page(
            request, session, lang, principal, clock, problems=[exc.detail], status=exc.status
        )
    return RedirectResponse(f"{STAFF}/appeals", status_code=303)


@router.post(STAFF + "/applications/{application_id}/decision", dependencies=[Depends(csrf_form)])
def decide_application_page(
    request: Request,
    application_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    session: DbSession,
    lang: LanguageDep,
    principal: Approver,
    clock: ClockDep,
    form: Posted,
) -> Response:
    decision = form.get("decision")
    try:
        service.decide_application(
            session,
            principal,
            application_id,
            ApplicationDecision(
                approve=form.get("approve") == "yes", decision=decision if isinstance(decision, str) else ""
            ),
            clock=clock,
        )
    except DomainError as exc:
        return _appeals_page(
            request, session, lang, principal, clock, problems=[exc.detail], status=exc.status
        )
    return RedirectResponse(f"{STAFF}/appeals", status_code=303)


# --- simulation (推演) -------------------------------------------------------------------------------------


def _simulate_page(
    request: Request,
    session: DbSession,
    lang: Language,
    principal: auth.Principal,
    *,
    source: str,
    snapshot: str = "",
    date: str = "",
    result: Any = None,
    problems: list[str] | None = None,
    status: int = 200,
) -> Response:
    return render_page(
        request,
        lang,
        "policy/simulate.html",
        {
            "source": source,
            "snapshot": snapshot,
            "date": date,
            "snapshots": service.list_snapshots(session, principal),
            "items": [i for i in service.list_items(session, principal) if i.status == "published"],
            "result": result,
            "problems": problems or [],
            "yuan": yuan,
            **_words(lang),
        },
        status=status,
    )


@router.get(STAFF + "/simulate")
def simulate_form(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Officer,
    item: Annotated[str, Query(max_length=64, pattern=r"^[a-z0-9_-]*$")] = "",
) -> Response:
    """推演: change a published item's rules (or write a new one) and see who would qualify, at what cost."""
    source = ""
    if item:
        versions = service.get_item(session, principal, item).versions
        source = next((v.source for v in versions if v.state == "published"), "")
    return _simulate_page(request, session, lang, principal, source=source)


@router.post(STAFF + "/simulate", dependencies=[Depends(csrf_form)])
def simulate_page(
    request: Request, session: DbSession, lang: LanguageDep, principal: Officer, clock: ClockDep, form: Posted
) -> Response:
    source, snapshot, date = (form.get(k) for k in ("source", "snapshot", "date"))
    texts = [v if isinstance(v, str) else "" for v in (source, snapshot, date)]
    try:
        result = service.simulate(
            session,
            principal,
            SimulationWrite(source=texts[0], snapshot=texts[1], date=texts[2] or None),
            data_dir=_data_dir(request),
            clock=clock,
        )
    except ValidationError:
        msg = lang.gettext("Give the item's rules, a snapshot and a valid date.")
        return _simulate_page(
            request,
            session,
            lang,
            principal,
            source=texts[0],
            snapshot=texts[1],
            date=texts[2],
            problems=[msg],
            status=422,
        )
    except DomainError as exc:
        return _simulate_page(
            request,
            session,
            lang,
            principal,
            source=texts[0],
            snapshot=texts[1],
            date=texts[2],
            problems=[exc.detail],
            status=exc.status,
        )
    return _simulate_page(
        request, session, lang, principal, source=texts[0], snapshot=texts[1], date=texts[2], result=result
    )


# --- the drafter's desk: drafting aid and overlap report --------------------------------------------------

Editor = Annotated[auth.Principal, Depends(require(service.EDIT))]


def _draft_page(
    request: Request,
    session: DbSession,
    lang: Language,
    principal: auth.Principal,
    *,
    text: str = "",
    item: str = "",
    aid: Any = None,
    report: Any = None,
    problems: list[str] | None = None,
    status: int = 200,
) -> Response:
    return render_page(
        request,
        lang,
        "policy/draft.html",
        {
            "text": text,
            "item": item,
            "aid": aid,
            "report": report,
            "problems": problems or [],
            "yuan": yuan,
            **_words(lang),
        },
        status=status,
    )


@router.get(STAFF + "/draft")
def draft_form(request: Request, session: DbSession, lang: LanguageDep, principal: Editor) -> Response:
    """The drafter's desk: a policy text's candidate thresholds and amounts, the library's documents it
    repeats, and the published items a proposed item's rules overlap — before publishing."""
    return _draft_page(request, session, lang, principal)


@router.post(STAFF + "/draft", dependencies=[Depends(csrf_form)])
def draft_check(
    request: Request, session: DbSession, lang: LanguageDep, principal: Editor, form: Posted
) -> Response:
    text, item = (v if isinstance(v, str) else "" for v in (form.get("text"), form.get("item")))
    if not text.strip() and not item.strip():
        msg = lang.gettext("Give the draft's text, an item's rules, or both.")
        return _draft_page(request, session, lang, principal, problems=[msg], status=422)
    try:
        aid = (
            service.draft_aid(
                session,
                principal,
                DraftWrite(text=text),
                model=get_chat_model(request.app.state.runtime.settings),
            )
            if text.strip()
            else None
        )
        report = service.overlap_report(session, principal, OverlapRequest(text=text, item=item))
    except ValidationError:
        msg = lang.gettext("The text is too long.")
        return _draft_page(
            request, session, lang, principal, text=text, item=item, problems=[msg], status=422
        )
    except DomainError as exc:
        return _draft_page(
            request, session, lang, principal, text=text, item=item, problems=[exc.detail], status=exc.status
        )
    return _draft_page(request, session, lang, principal, text=text, item=item, aid=aid, report=report)
