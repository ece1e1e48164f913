"""JSON API of the hotline under ``/api/v1``: tickets and their handling (``/tickets/...``), and the
hotline's administration, duplicates, deadlines and rates (``/hotline/...``). Open311 GeoReport v2 lives
in :mod:`tongban.hotline.open311`."""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartException

from tongban.core import auth
from tongban.core.errors import InvalidInput
from tongban.core.http import (
    WRITES_ROUTE,
    ClockDep,
    DbSession,
    FilesDep,
    RawBody,
    SealerDep,
    authenticated,
    idempotent,
    own_records,
    parse_if_match,
    public_with_principal,
    public_writing,
    require,
)
from tongban.hotline import service
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
    MergeWrite,
    NoteWrite,
    RateReport,
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
from tongban.hotline.vocab import ADMIN, INTAKE, SUPERVISE, Status
from tongban.knowledge import service as knowledge

router = APIRouter(prefix="/api/v1", tags=["hotline"])
Anyone = Annotated[auth.Principal, Depends(public_with_principal)]
AnyoneWriting = Annotated[auth.Principal, Depends(public_writing)]
Staff = Annotated[auth.Principal, Depends(authenticated)]
Holder = Annotated[auth.Principal, Depends(own_records)]
Operator = Annotated[auth.Principal, Depends(require(INTAKE))]
Supervisor = Annotated[auth.Principal, Depends(require(SUPERVISE))]
Admin = Annotated[auth.Principal, Depends(require(ADMIN))]
IfMatch = Annotated[str | None, Header(alias="If-Match")]
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
Ref = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z]+$")]
PageNo = Annotated[int, Query(ge=1, le=100_000)]
PerPage = Annotated[int, Query(ge=1, le=200)]

_embedder_lock = threading.Lock()


def embedder_for(app: Any) -> Any:
    """The embedding model the classifier uses, made once per process (None when embedding is off)."""
    state = app.state
    found = getattr(state, "hotline_embedder", False)
    if found is False:
        with _embedder_lock:
            found = getattr(state, "hotline_embedder", False)
            if found is False:
                settings = state.runtime.settings
                found = knowledge.get_embedder(settings.embedding, settings.embedding_threads)
                state.hotline_embedder = found
    return found


def _embedder(request: Request) -> Any:
    return embedder_for(request.app)


EmbedderDep = Annotated[Any, Depends(_embedder)]


# --- tickets ----------------------------------------------------------------------------------------------


@router.post("/tickets", status_code=201, responses={201: {"model": TicketOut}})
def create_ticket(
    request: Request,
    body: TicketWrite,
    raw: RawBody,
    session: DbSession,
    principal: AnyoneWriting,
    clock: ClockDep,
    sealer: SealerDep,
) -> Any:
    """File a ticket: a web or app form (anyone; a signed-in requester owns it), an operator's entry of a
    call (``channel`` ``phone``), a consultation's hand-off (``consult``). Send ``Idempotency-Key`` to retry
    safely."""

    def produce() -> tuple[int, Any]:
        return 201, service.create_ticket(session, principal, body, sealer=sealer, clock=clock)

    return idempotent(request, session, principal, raw, produce)


@router.get("/tickets")
def list_tickets(
    session: DbSession,
    principal: Staff,
    clock: ClockDep,
    status: Annotated[list[Status] | None, Query()] = None,
    unit: str | None = None,
    queue: Annotated[str | None, Query(pattern="^(enterprise|citizen)$")] = None,
    overdue: bool = False,
    escalated: bool | None = None,
    region_code: Annotated[str | None, Query(pattern=r"^\d{2,12}$")] = None,
    category: Annotated[str | None, Query(max_length=300)] = None,
    channel: Annotated[str | None, Query(max_length=20)] = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    order: Annotated[str, Query(pattern="^(due|new|old)$")] = "due",
    page: PageNo = 1,
    per_page: PerPage = 50,
) -> TicketPage:
    """Tickets: all of them for operators and supervisors, a unit's own for the unit (its inbox); filter by
    status, unit, the enterprise queue, overdue or escalated ones, region, category, channel or text."""
    f = service.TicketFilter(
        statuses=tuple(s.value for s in status or ()),
        unit=unit or None,
        queue=queue,
        overdue=overdue,
        escalated=escalated,
        region_code=region_code,
        category=category or None,
        channel=channel or None,
        text=(q or "").strip() or None,
    )
    return service.list_tickets(session, principal, f, page=page, per_page=per_page, clock=clock, order=order)


@router.get("/me/tickets")
def my_tickets(
    session: DbSession, principal: Holder, clock: ClockDep, page: PageNo = 1, per_page: PerPage = 50
) -> TicketPage:
    """The signed-in requester's own tickets."""
    return service.list_tickets(
        session,
        principal,
        service.TicketFilter(mine=True),
        page=page,
        per_page=per_page,
        clock=clock,
        order="new",
    )


@router.get("/tickets/{ref}")
def get_ticket(ref: Ref, session: DbSession, principal: Anyone) -> TicketDetail:
    """One ticket with its history: every action for staff, the public steps for its requester."""
    return service.get_ticket(session, principal, ref)


@router.get("/tickets/{ref}/contact", openapi_extra=WRITES_ROUTE)
def ticket_contact(
    ref: Ref, session: DbSession, principal: Staff, clock: ClockDep, sealer: SealerDep
) -> ContactOut:
    """The requester's contact details, unmasked, for calling back; every look is audited."""
    return service.contact_of(session, principal, ref, sealer=sealer, clock=clock)


@router.get("/tickets/{ref}/suggestion", openapi_extra=WRITES_ROUTE)
def ticket_suggestion(
    ref: Ref, session: DbSession, principal: Operator, clock: ClockDep, embedder: EmbedderDep
) -> SuggestionOut:
    """The classifier's suggested category, with what it matched."""
    return service.suggest(session, principal, ref, embedder=embedder, clock=clock)


@router.post("/tickets/{ref}/classify")
def classify(
    ref: Ref,
    body: Classification,
    session: DbSession,
    principal: Operator,
    clock: ClockDep,
    if_match: IfMatch = None,
) -> TicketOut:
    """Confirm or correct the category (and urgency, enterprise); corrections teach the classifier."""
    return service.classify(session, principal, ref, body, clock=clock, if_match=parse_if_match(if_match))


@router.post("/tickets/{ref}/dispatch")
def dispatch(
    ref: Ref,
    body: DispatchWrite,
    session: DbSession,
    principal: Operator,
    clock: ClockDep,
    if_match: IfMatch = None,
) -> TicketOut:
    """Dispatch (派单) to the unit given, else to the dispatch catalogue's; deadlines start."""
    return service.dispatch(session, principal, ref, body, clock=clock, if_match=parse_if_match(if_match))


@router.post("/tickets/{ref}/sign")
def sign(
    ref: Ref, session: DbSession, principal: Staff, clock: ClockDep, if_match: IfMatch = None
) -> TicketOut:
    """The lead unit signs for the ticket (签收)."""
    return service.sign(session, principal, ref, clock=clock, if_match=parse_if_match(if_match))


@router.post("/tickets/{ref}/contact-made")
def contact_made(
    ref: Ref, body: NoteWrite, session: DbSession, principal: Staff, clock: ClockDep, if_match: IfMatch = None
) -> TicketOut:
    """The unit contacted the requester (counts for the response rate)."""
    return service.record_contact(
        session, principal, ref, body, clock=clock, if_match=parse_if_match(if_match)
    )


@router.post("/tickets/{ref}/notes")
def add_note(
    ref: Ref, body: NoteWrite, session: DbSession, principal: Staff, clock: ClockDep, if_match: IfMatch = None
) -> TicketOut:
    """A progress note (a helper unit's contribution, an interim step)."""
    return service.add_note(session, principal, ref, body, clock=clock, if_match=parse_if_match(if_match))


@router.post("/tickets/{ref}/return")
def request_return(
    ref: Ref,
    body: ReturnWrite,
    session: DbSession,
    principal: Staff,
    clock: ClockDep,
    if_match: IfMatch = None,
) -> TicketOut:
    """The lead unit returns the ticket (退单) with its reason; a supervisor decides."""
    return service.request_return(
        session, principal, ref, body, clock=clock, if_match=parse_if_match(if_match)
    )


@router.post("/tickets/{ref}/return-decision")
def decide_return(
    ref: Ref,
    body: ReturnDecision,
    session: DbSession,
    principal: Supervisor,
    clock: ClockDep,
    if_match: IfMatch = None,
) -> TicketOut:
    """Accept the return and re-dispatch (改派), or reject it."""
    return service.decide_return(
        session, principal, ref, body, clock=clock, if_match=parse_if_match(if_match)
    )


@router.post("/tickets/{ref}/reply")
def reply(
    ref: Ref,
    body: ReplyWrite,
    session: DbSession,
    principal: Staff,
    clock: ClockDep,
    sealer: SealerDep,
    if_match: IfMatch = None,
) -> TicketOut:
    """The lead unit's reply (办结回复); the requester is told and the return visit follows."""
    return service.reply(
        session, principal, ref, body, sealer=sealer, clock=clock, if_match=parse_if_match(if_match)
    )


@router.post("/tickets/{ref}/answer")
def answer(
    ref: Ref,
    body: AnswerWrite,
    session: DbSession,
    principal: Operator,
    clock: ClockDep,
    sealer: SealerDep,
    if_match: IfMatch = None,
) -> TicketOut:
    """Answer directly (直接答复) a question that needs no dispatch."""
    return service.answer_directly(
        session, principal, ref, body, sealer=sealer, clock=clock, if_match=parse_if_match(if_match)
    )


@router.post("/tickets/{ref}/revisit")
def revisit(
    ref: Ref,
    body: VisitWrite,
    session: DbSession,
    principal: AnyoneWriting,
    clock: ClockDep,
    sealer: SealerDep,
    if_match: IfMatch = None,
) -> TicketOut:
    """The return visit (回访): solved or not, satisfaction 1–5, optionally reopening. Operators after a call;
    a signed-in requester for their own ticket."""
    return service.revisit(
        session, principal, ref, body, sealer=sealer, clock=clock, if_match=parse_if_match(if_match)
    )


@router.post("/tickets/{ref}/merge")
def merge(
    ref: Ref,
    body: MergeWrite,
    session: DbSession,
    principal: Staff,
    clock: ClockDep,
    if_match: IfMatch = None,
) -> TicketOut:
    """Merge this ticket into another reporting the same problem (并单)."""
    return service.merge(session, principal, ref, body, clock=clock, if_match=parse_if_match(if_match))


@router.post("/tickets/{ref}/cancel")
def cancel(
    ref: Ref,
    body: NoteWrite,
    session: DbSession,
    principal: Operator,
    clock: ClockDep,
    if_match: IfMatch = None,
) -> TicketOut:
    """Cancel a ticket that is no request (a test call, abuse, withdrawn), with the reason."""
    return service.cancel(session, principal, ref, body, clock=clock, if_match=parse_if_match(if_match))


@router.post("/tickets/{ref}/attachments", status_code=201)
async def attach(
    ref: Ref,
    request: Request,
    session: DbSession,
    principal: AnyoneWriting,
    clock: ClockDep,
    files: FilesDep,
) -> AttachmentOut:
    """Attach a photo or a document (multipart field ``file``: JPEG, PNG, WebP or PDF, at most 10 MB)."""
    try:
        async with request.form(max_files=1, max_fields=3, max_part_size=service.MAX_ATTACHMENT + 1) as form:
            item = form.get("file")
            if item is None or isinstance(item, str):
                raise InvalidInput("send the file as multipart/form-data in a field named 'file'")
            name, media_type, data = item.filename or "", item.content_type or "", await item.read()
    except MultiPartException as exc:
        raise InvalidInput("send the file as multipart/form-data in a field named 'file'") from exc
    return await run_in_threadpool(
        service.add_attachment,
        session,
        principal,
        ref,
        name=name,
        media_type=media_type,
        data=data,
        files=files,
        clock=clock,
    )


@router.get("/tickets/{ref}/attachments/{attachment_id}")
def attachment(
    ref: Ref, attachment_id: Id, session: DbSession, principal: Anyone, files: FilesDep
) -> Response:
    meta, data = service.attachment_data(session, principal, ref, attachment_id, files=files)
    return Response(
        data,
        media_type=meta.media_type,
        headers={"Content-Disposition": "attachment", "X-Content-Type-Options": "nosniff"},
    )


# --- duplicates, deadlines, rates -----------------------------------------------------------------------


@router.get("/hotline/duplicates")
def duplicates(
    session: DbSession, principal: Staff, page: PageNo = 1, per_page: PerPage = 50
) -> dict[str, Any]:
    """Proposed duplicates awaiting a decision (merge the ticket, or dismiss)."""
    items, total = service.duplicates(session, principal, page=page, per_page=per_page)
    return {
        "items": [i.model_dump(mode="json") for i in items],
        "total": total,
        "page": page,
        "per_page": per_page,
    }


@router.post("/hotline/duplicates/{duplicate_id}/dismiss")
def dismiss_duplicate(
    duplicate_id: Id, session: DbSession, principal: Staff, clock: ClockDep
) -> DuplicateOut:
    return service.dismiss_duplicate(session, principal, duplicate_id, clock=clock)


@router.post("/hotline/deadlines/check")
def check_deadlines(session: DbSession, principal: Supervisor, clock: ClockDep) -> dict[str, list[str]]:
    """Run the deadline check now (it also runs on a schedule): warnings and escalations, each once."""
    report = service.check_deadlines(session, clock=clock)
    return {"warned": report.warned, "escalated": report.escalated}


def _dates(date_from: str | None, date_to: str | None) -> tuple[dt.date | None, dt.date | None]:
    try:
        start = dt.date.fromisoformat(date_from) if date_from else None
        end = dt.date.fromisoformat(date_to) if date_to else None
    except ValueError as exc:
        raise InvalidInput("date_from, date_to: YYYY-MM-DD") from exc
    if start and end and end < start:
        raise InvalidInput("date_to is before date_from")
    return start, end


@router.get("/hotline/rates")
def rates(
    session: DbSession,
    principal: Staff,
    by: Annotated[str, Query(pattern="^(unit|category|month|region|channel|total)$")] = "unit",
    date_from: str | None = None,
    date_to: str | None = None,
) -> RateReport:
    """The three rates (响应率, 解决率, 满意率) and the weighted score, per unit, category, month, region or
    channel, for tickets received in the period."""
    start, end = _dates(date_from, date_to)
    return service.rates(session, principal, by=by, date_from=start, date_to=end)


@router.get("/hotline/rates.csv")
def rates_csv(
    session: DbSession,
    principal: Staff,
    by: Annotated[str, Query(pattern="^(unit|category|month|region|channel|total)$")] = "unit",
    date_from: str | None = None,
    date_to: str | None = None,
) -> StreamingResponse:
    start, end = _dates(date_from, date_to)
    report = service.rates(session, principal, by=by, date_from=start, date_to=end)
    out = io.StringIO()
    w = csv.writer(out)
    fields = [
        "key",
        "label",
        "dispatched",
        "responded_in_time",
        "response_rate",
        "revisited",
        "resolved",
        "resolution_rate",
        "rated",
        "satisfied",
        "satisfaction_rate",
        "score",
    ]
    w.writerow(fields)
    for row in [*report.rows, report.total.model_copy(update={"key": "total", "label": "total"})]:
        data = row.model_dump()
        w.writerow(["" if data[f] is None else data[f] for f in fields])
    return StreamingResponse(
        iter([out.getvalue()]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="hotline-rates-{by}.csv"'},
    )


# --- administration ---------------------------------------------------------------------------------------


@router.get("/hotline/categories")
def categories(session: DbSession, principal: Staff) -> list[CategoryOut]:
    return service.categories(session)


@router.put("/hotline/categories")
def put_category(body: CategoryWrite, session: DbSession, principal: Admin, clock: ClockDep) -> CategoryOut:
    """Add or change a taxonomy path (its deadline class, its English label, whether it is in use)."""
    return service.put_category(session, principal, body, clock=clock)


@router.get("/hotline/units")
def units(session: DbSession, principal: Staff) -> list[UnitOut]:
    return service.units(session)


@router.put("/hotline/units/{code}")
def put_unit(
    code: Annotated[str, Path(max_length=64)],
    body: UnitWrite,
    session: DbSession,
    principal: Admin,
    clock: ClockDep,
) -> UnitOut:
    return service.put_unit(session, principal, code, body, clock=clock)


@router.get("/hotline/dispatch-rules")
def dispatch_rules(session: DbSession, principal: Staff) -> list[RuleOut]:
    """The dispatch catalogue (派单目录)."""
    return service.rules(session)


@router.put("/hotline/dispatch-rules")
def put_rule(body: RuleWrite, session: DbSession, principal: Admin, clock: ClockDep) -> RuleOut:
    """Add or replace the catalogue line of a (category, region) scope."""
    return service.put_rule(session, principal, body, clock=clock)


@router.delete("/hotline/dispatch-rules/{rule_id}", status_code=204)
def delete_rule(rule_id: Id, session: DbSession, principal: Admin, clock: ClockDep) -> Response:
    service.delete_rule(session, principal, rule_id, clock=clock)
    return Response(status_code=204)


@router.get("/hotline/dispatch-plan")
def dispatch_plan(
    session: DbSession,
    principal: Staff,
    category: Annotated[str, Query(min_length=1, max_length=300)],
    region_code: Annotated[str | None, Query(pattern=r"^\d{2,12}$")] = None,
) -> DispatchPlan:
    """Who a ticket of this category and region would go to, and why."""
    return service.plan_dispatch(session, category, region_code)


@router.get("/hotline/services")
def list_services(session: DbSession, principal: Staff) -> list[ServiceOut]:
    return service.services(session, active_only=False)


@router.put("/hotline/services/{code}")
def put_service(
    code: Annotated[str, Path(max_length=64)],
    body: ServiceWrite,
    session: DbSession,
    principal: Admin,
    clock: ClockDep,
) -> ServiceOut:
    """Add or change an Open311 service (its definition's attributes and the category it maps to)."""
    return service.put_service(session, principal, code, body, clock=clock)


@router.get("/hotline/settings")
def get_settings(session: DbSession, principal: Staff) -> dict[str, Any]:
    return service.current_settings(session)


@router.put("/hotline/settings")
def put_settings(
    body: SettingsWrite, session: DbSession, principal: Admin, clock: ClockDep
) -> dict[str, Any]:
    """Change deadlines, warnings, the duplicate window, rate weights (audited)."""
    return service.update_settings(session, principal, body, clock=clock)


@router.post("/hotline/models", status_code=201)
def train(session: DbSession, principal: Admin, clock: ClockDep, embedder: EmbedderDep) -> dict[str, Any]:
    """Train the classifier on the imported examples and every confirmed ticket (minutes on a small
    machine; ``tongban hotline train`` does the same from the command line)."""
    row = service.train_model(session, principal, embedder=embedder, clock=clock)
    return {"id": row.id, "examples": row.examples, "tickets": row.tickets, "labels": row.labels}
