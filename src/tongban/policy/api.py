"""JSON API of the policy domain under ``/api/v1/policy``: the library (documents, interpretations, items
and their rule versions, the variables), the policy calculator (``/policy/match``) and the overlap check
(``/policy/overlap``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from tongban.core import auth
from tongban.core.http import (
    ClockDep,
    DbSession,
    RawBody,
    idempotent,
    parse_if_match,
    public_with_principal,
    public_writing,
    require,
)
from tongban.policy import service
from tongban.policy.schemas import (
    DocumentOut,
    DocumentPage,
    DocumentWrite,
    FieldOut,
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
    ReviewWrite,
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
