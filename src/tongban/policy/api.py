"""JSON API of the policy domain under ``/api/v1/policy``: the library (documents, interpretations, items
and their rule versions, the variables), the policy calculator (``/policy/match``) and the overlap check
(``/policy/overlap``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from tongban.core import auth
from tongban.core.http import (
    WRITES_ROUTE,
    ClockDep,
    DbSession,
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
from tongban.core.llm import get_chat_model
from tongban.policy import service
from tongban.policy.schemas import (
    AppealDecision,
    AppealOut,
    AppealWrite,
    ApplicationDecision,
    ApplicationOut,
    DocumentOut,
    DocumentPage,
    DocumentWrite,
    DraftOut,
    DraftWrite,
    FastApplicationWrite,
    FieldOut,
    GrantOut,
    GrantPage,
    InterpretationOut,
    InterpretationWrite,
    ItemOut,
    ItemSummary,
    ItemVersionWrite,
    Level,
    MatchRequest,
    MatchResponse,
    OverlapReport,
    OverlapRequest,
    PushOut,
    ReviewWrite,
    RunDecision,
    RunOut,
    RunWrite,
    SimulationOut,
    SimulationWrite,
    SnapshotOut,
    SubscriptionOut,
    SubscriptionWrite,
    SyntheticWrite,
    VariablesWrite,
)

router = APIRouter(prefix="/api/v1/policy", tags=["policy"])
Anyone = Annotated[auth.Principal, Depends(public_with_principal)]
AnyoneAsking = Annotated[auth.Principal, Depends(public_writing)]
Editor = Annotated[auth.Principal, Depends(require(service.EDIT))]
Reviewer = Annotated[auth.Principal, Depends(require(service.REVIEW))]
DocCode = Annotated[str, Path(min_length=1, max_length=100)]
ItemKey = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_-]*$")]
Version = Annotated[int, Path(ge=1, le=100_000)]
IfMatch = Annotated[str | None, Header(alias="If-Match")]


def _lang(request: Request) -> str:
    accept = request.headers.get("accept-language", "")
    return "en" if accept.lower().startswith("en") else "zh"


def _etag(response: Response, doc: DocumentOut) -> DocumentOut:
    response.headers["ETag"] = f'W/"policy-document-{doc.revision}"'
    return doc


# --- documents -----------------------------------------------------------------------------------------


@router.get("/documents")
def list_documents(
    session: DbSession,
    principal: Anyone,
    q: Annotated[str, Query(max_length=100)] = "",
    level: Level | None = None,
    department: Annotated[str, Query(max_length=200)] = "",
    status: Annotated[str, Query(max_length=20)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 20,
) -> DocumentPage:
    """The policy library: published (and amended, repealed) documents for everyone; drafts for editors."""
    return service.list_documents(
        session,
        principal,
        q=q,
        level=level or "",
        department=department,
        status=status,
        page=page,
        per_page=per_page,
    )


@router.post("/documents", status_code=201, responses={201: {"model": DocumentOut}})
def create_document(
    request: Request,
    body: DocumentWrite,
    raw: RawBody,
    session: DbSession,
    principal: Editor,
    clock: ClockDep,
) -> Any:
    """Draft a document (``Idempotency-Key`` makes a retry safe)."""

    def produce() -> tuple[int, Any]:
        return 201, service.create_document(session, principal, body, clock=clock)

    return idempotent(request, session, principal, raw, produce)


@router.get("/documents/{code}")
def get_document(code: DocCode, response: Response, session: DbSession, principal: Anyone) -> DocumentOut:
    return _etag(response, service.get_document(session, principal, code))


@router.put("/documents/{code}")
def update_document(
    code: DocCode,
    body: DocumentWrite,
    response: Response,
    session: DbSession,
    principal: Editor,
    clock: ClockDep,
    if_match: IfMatch = None,
) -> DocumentOut:
    """Change a document being drafted or reviewed; send the ETag as ``If-Match``."""
    out = service.update_document(
        session, principal, code, body, clock=clock, if_match=parse_if_match(if_match)
    )
    return _etag(response, out)


@router.post("/documents/{code}/submit")
def submit_document(code: DocCode, session: DbSession, principal: Editor, clock: ClockDep) -> DocumentOut:
    return service.submit_document(session, principal, code, clock=clock)


@router.post("/documents/{code}/publish")
def publish_document(code: DocCode, session: DbSession, principal: Reviewer, clock: ClockDep) -> DocumentOut:
    """Publish (not by its author); it amends the document it names, and becomes searchable knowledge."""
    return service.publish_document(session, principal, code, clock=clock)


@router.post("/documents/{code}/repeal")
def repeal_document(
    code: DocCode, body: ReviewWrite, session: DbSession, principal: Reviewer, clock: ClockDep
) -> DocumentOut:
    return service.repeal_document(session, principal, code, clock=clock, note=body.note)


@router.post("/documents/{code}/interpretations", status_code=201)
def add_interpretation(
    code: DocCode, body: InterpretationWrite, session: DbSession, principal: Editor, clock: ClockDep
) -> InterpretationOut:
    return service.add_interpretation(session, principal, code, body, clock=clock)


# --- items and variables --------------------------------------------------------------------------------


@router.get("/items")
def list_items(
    session: DbSession,
    principal: Anyone,
    entity: Annotated[str, Query(pattern="^(|person|household|enterprise)$")] = "",
) -> list[ItemSummary]:
    return service.list_items(session, principal, entity=entity)


@router.post("/items", status_code=201)
def propose_item(body: ItemVersionWrite, session: DbSession, principal: Editor, clock: ClockDep) -> ItemOut:
    """Propose a new version of an item's rules (YAML or JSON of one item): checked, its test cases run."""
    return service.propose_item_version(session, principal, body, clock=clock)


@router.get("/items/{key}")
def get_item(key: ItemKey, session: DbSession, principal: Anyone) -> ItemOut:
    return service.get_item(session, principal, key)


@router.post("/items/{key}/versions/{version}/publish")
def publish_item(
    key: ItemKey,
    version: Version,
    body: ReviewWrite,
    session: DbSession,
    principal: Reviewer,
    clock: ClockDep,
) -> ItemOut:
    return service.publish_item_version(session, principal, key, version, clock=clock, note=body.note)


@router.post("/items/{key}/versions/{version}/reject")
def reject_item(
    key: ItemKey,
    version: Version,
    body: ReviewWrite,
    session: DbSession,
    principal: Reviewer,
    clock: ClockDep,
) -> ItemOut:
    return service.reject_item_version(session, principal, key, version, clock=clock, note=body.note)


@router.post("/items/{key}/retire")
def retire_item(
    key: ItemKey, body: ReviewWrite, session: DbSession, principal: Reviewer, clock: ClockDep
) -> ItemOut:
    return service.retire_item(session, principal, key, clock=clock, note=body.note)


@router.get("/variables")
def get_variables(session: DbSession, principal: Anyone) -> dict[str, Any]:
    """The variables rules may read (the data dictionary), as its current YAML."""
    version, source = service.variables_source(session)
    return {"version": version, "source": source}


@router.put("/variables")
def set_variables(
    body: VariablesWrite, session: DbSession, principal: Reviewer, clock: ClockDep
) -> dict[str, int]:
    return {"version": service.set_variables(session, principal, body.source, clock=clock, note=body.note)}


# --- the calculator and the overlap check -------------------------------------------------------------


@router.post("/match")
def match(
    request: Request, body: MatchRequest, session: DbSession, principal: AnyoneAsking, clock: ClockDep
) -> MatchResponse:
    """The policy calculator: every published item decided for the facts given, each condition explained
    (met, failed, or unknown with the data that would prove it). Nothing is stored."""
    return service.match(session, body, clock=clock, lang=_lang(request))


@router.get("/calculator/{entity}")
def calculator_fields(
    request: Request,
    entity: Annotated[str, Path(pattern="^(person|household|enterprise)$")],
    session: DbSession,
    principal: Anyone,
    clock: ClockDep,
) -> list[FieldOut]:
    """The facts the published items for ``entity`` read: the calculator's form."""
    return service.calculator_fields(session, entity, clock=clock, lang=_lang(request))


@router.post("/overlap")
def overlap_report(body: OverlapRequest, session: DbSession, principal: Editor) -> OverlapReport:
    """The drafter's overlap check before publishing: the library's documents the text duplicates, is
    contained in or contains, and the published items the proposed item's rules overlap with."""
    return service.overlap_report(session, principal, body)


# --- snapshots, runs, grants, appeals, simulation -------------------------------------------------------

Officer = Annotated[auth.Principal, Depends(require(service.RUN))]
Approver = Annotated[auth.Principal, Depends(require(service.APPROVE))]
Holder = Annotated[auth.Principal, Depends(own_records)]
Staff = Annotated[auth.Principal, Depends(authenticated)]
RunId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _data_dir(request: Request) -> Any:
    return request.app.state.runtime.settings.data_dir


@router.get("/snapshots")
def list_snapshots(session: DbSession, principal: Officer) -> list[SnapshotOut]:
    return service.list_snapshots(session, principal)


@router.post("/snapshots/synthetic", status_code=201)
def synthetic_snapshot(
    request: Request, body: SyntheticWrite, session: DbSession, principal: Officer, clock: ClockDep
) -> SnapshotOut:
    """A synthetic city's snapshot (demos, drills, benchmarks)."""
    return service.synthetic_snapshot(session, principal, body, data_dir=_data_dir(request), clock=clock)


@router.post("/runs", status_code=201)
def compute_run(
    request: Request, body: RunWrite, session: DbSession, principal: Officer, clock: ClockDep
) -> RunOut:
    """Compute a 免申即享 / 直达快享 run: the published items of one entity type over a snapshot, with
    stacking and budgets; the grants wait for another officer's approval."""
    return service.compute_run(session, principal, body, data_dir=_data_dir(request), clock=clock)


@router.get("/runs")
def list_runs(session: DbSession, principal: Staff) -> list[RunOut]:
    return service.list_runs(session, principal)


@router.get("/runs/{run_id}")
def get_run(run_id: RunId, session: DbSession, principal: Staff) -> RunOut:
    return service.get_run(session, principal, run_id)


@router.get("/runs/{run_id}/grants")
def run_grants(
    request: Request,
    run_id: RunId,
    session: DbSession,
    principal: Staff,
    status: Annotated[str, Query(pattern="^(|proposed|granted|noticed|stacked|over_budget)$")] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
) -> GrantPage:
    """The run's rows with their explanations (the condition marks read against the run's rules)."""
    return service.run_grants(
        session, principal, run_id, status=status, page=page, per_page=per_page, lang=_lang(request)
    )


@router.post("/runs/{run_id}/decision")
def decide_run(
    run_id: RunId, body: RunDecision, session: DbSession, principal: Approver, clock: ClockDep
) -> RunOut:
    """Approve (grants made; notices of fast applications due) or reject, with a reason."""
    return service.decide_run(session, principal, run_id, body, clock=clock)


@router.post("/runs/{run_id}/verify")
def verify_run(request: Request, run_id: RunId, session: DbSession, principal: Holder) -> dict[str, Any]:
    """Reproduce the run from its recorded rule versions and snapshot; the checksums must agree."""
    return service.verify_run(session, principal, run_id, data_dir=_data_dir(request))


@router.get("/me/grants")
def my_grants(request: Request, session: DbSession, principal: Holder) -> list[GrantOut]:
    """The benefits granted or noticed to the signed-in person (or enterprises they act for)."""
    return service.my_grants(session, principal, lang=_lang(request), data_dir=_data_dir(request))


@router.post("/me/grants/{grant_id}/appeal", status_code=201)
def file_appeal(
    request: Request,
    grant_id: Annotated[int, Path(ge=1)],
    body: AppealWrite,
    session: DbSession,
    principal: Holder,
    clock: ClockDep,
) -> AppealOut:
    """Object to an automated decision (PIPL art. 24); an officer reviews it."""
    return service.file_appeal(session, principal, grant_id, body, clock=clock, data_dir=_data_dir(request))


@router.get("/appeals")
def list_appeals(
    session: DbSession,
    principal: Approver,
    status: Annotated[str, Query(pattern="^(|open|upheld|dismissed)$")] = "",
) -> list[AppealOut]:
    return service.list_appeals(session, principal, status=status)


@router.post("/appeals/{appeal_id}/decision")
def decide_appeal(
    appeal_id: Annotated[int, Path(ge=1)],
    body: AppealDecision,
    session: DbSession,
    principal: Approver,
    clock: ClockDep,
) -> AppealOut:
    return service.decide_appeal(session, principal, appeal_id, body, clock=clock)


@router.post("/simulations")
def simulate(
    request: Request, body: SimulationWrite, session: DbSession, principal: Holder, clock: ClockDep
) -> SimulationOut:
    """推演: a draft item over a snapshot — who qualifies, the cost, by district and industry, beside the
    published version and against the budget pool. Nothing is stored."""
    return service.simulate(session, principal, body, data_dir=_data_dir(request), clock=clock)


# --- subscriptions and the policy inbox --------------------------------------------------------------------


@router.post("/me/subscriptions", status_code=201)
def subscribe(
    body: SubscriptionWrite, session: DbSession, principal: Holder, clock: ClockDep, sealer: SealerDep
) -> SubscriptionOut:
    """Subscribe to new and amended policy items by tags (and, with consent, your facts)."""
    return service.subscribe(session, principal, body, sealer=sealer, clock=clock)


@router.get("/me/subscriptions")
def my_subscriptions(session: DbSession, principal: Holder, sealer: SealerDep) -> list[SubscriptionOut]:
    return service.my_subscriptions(session, principal, sealer=sealer)


@router.delete("/me/subscriptions/{subscription_id}")
def cancel_subscription(
    subscription_id: Annotated[int, Path(ge=1)],
    session: DbSession,
    principal: Holder,
    clock: ClockDep,
    sealer: SealerDep,
) -> SubscriptionOut:
    """End a subscription; the facts and contact it kept are erased."""
    return service.cancel_subscription(session, principal, subscription_id, sealer=sealer, clock=clock)


@router.get("/me/inbox")
def my_inbox(session: DbSession, principal: Holder) -> list[PushOut]:
    """Policies pushed to you, newest first, each with the reason."""
    return service.my_pushes(session, principal)


@router.post("/me/inbox/{push_id}/read", status_code=204)
def mark_read(
    push_id: Annotated[int, Path(ge=1)], session: DbSession, principal: Holder, clock: ClockDep
) -> Response:
    service.mark_push_read(session, principal, push_id, clock=clock)
    return Response(status_code=204)


@router.post("/drafts")
def draft_aid(request: Request, body: DraftWrite, session: DbSession, principal: Editor) -> DraftOut:
    """The drafting aid: candidate thresholds, amounts, dates and audiences from a policy text, and with
    a language model configured a checked proposal of the item's rules (every number and quote checked
    against the text) for a person to review."""
    return service.draft_aid(
        session, principal, body, model=get_chat_model(request.app.state.runtime.settings)
    )


# --- fast applications (直达快享) ------------------------------------------------------------------------


@router.post("/me/grants/{grant_id}/apply", status_code=201)
def apply_fast(
    request: Request,
    grant_id: Annotated[int, Path(ge=1)],
    body: FastApplicationWrite,
    session: DbSession,
    principal: Holder,
    clock: ClockDep,
    sealer: SealerDep,
) -> ApplicationOut:
    """直达快享: supply only what the shared data lacked for a noticed benefit; the rules decide again, and
    an eligible application waits for an officer to verify the supplied facts."""
    return service.apply_fast(
        session, principal, grant_id, body, sealer=sealer, data_dir=_data_dir(request), clock=clock
    )


@router.get("/applications", openapi_extra=WRITES_ROUTE)
def list_applications(
    session: DbSession,
    principal: Approver,
    clock: ClockDep,
    sealer: SealerDep,
    status: Annotated[str, Query(pattern="^(|submitted|approved|refused)$")] = "",
) -> list[ApplicationOut]:
    """Fast applications with the facts supplied (each reading is audited)."""
    return service.list_applications(session, principal, status=status, sealer=sealer, clock=clock)


@router.post("/applications/{application_id}/decision")
def decide_application(
    application_id: Annotated[int, Path(ge=1)],
    body: ApplicationDecision,
    session: DbSession,
    principal: Approver,
    clock: ClockDep,
) -> ApplicationOut:
    return service.decide_application(session, principal, application_id, body, clock=clock)
