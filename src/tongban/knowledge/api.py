"""JSON API: ``/api/v1/search`` for everyone, ``/api/v1/knowledge/...`` for the governance workflow."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Depends, Header, Query, Request, Response

from tongban.core import auth
from tongban.core.db import session_scope
from tongban.core.errors import InvalidInput
from tongban.core.http import (
    ClockDep,
    DbSession,
    RawBody,
    idempotent,
    parse_if_match,
    public_with_principal,
    require,
)
from tongban.knowledge import service
from tongban.knowledge.embedding import get_embedder
from tongban.knowledge.index import SearchFilters
from tongban.knowledge.repository import EntryFilter
from tongban.knowledge.schemas import (
    Decision,
    DiffOut,
    EntryOut,
    EntryPage,
    EntryStatus,
    EntryUpdate,
    EntryWrite,
    Kind,
    LexiconIn,
    LexiconOut,
    OpsReport,
    SearchResponse,
    VersionOut,
)

router = APIRouter(prefix="/api/v1", tags=["knowledge"])
Anyone = Annotated[auth.Principal, Depends(public_with_principal)]
Editor = Annotated[auth.Principal, Depends(require("knowledge:edit"))]
Reviewer = Annotated[auth.Principal, Depends(require("knowledge:review"))]
Publisher = Annotated[auth.Principal, Depends(require("knowledge:publish"))]

_holder_lock = threading.Lock()
log = structlog.get_logger("tongban.knowledge")


def _holder_for(app: Any) -> service.IndexHolder:
    state = app.state
    holder: service.IndexHolder | None = getattr(state, "knowledge_index", None)
    if holder is None:
        with _holder_lock:
            holder = getattr(state, "knowledge_index", None)
            if holder is None:
                settings = state.runtime.settings
                holder = service.IndexHolder(get_embedder(settings.embedding, settings.embedding_threads))
                state.knowledge_index = holder
    return holder


def index_holder(request: Request) -> service.IndexHolder:
    """The node's search index, made on first use with the configured embedding model."""
    return _holder_for(request.app)


def start_warmup(app: Any) -> threading.Thread:
    """Build the node's index in the background at start; ``/readyz`` says not ready until it is built."""
    holder = _holder_for(app)
    app.state.knowledge_index_warming = True

    def build() -> None:
        try:
            with session_scope(app.state.runtime.sessions) as session:
                service.sync_index(session, holder)
        except Exception:  # the first search builds it instead; the failure is logged
            log.exception("knowledge.index.warmup_failed")
        finally:
            app.state.knowledge_index_warming = False

    thread = threading.Thread(target=build, name="knowledge-index-warmup", daemon=True)
    thread.start()
    return thread


Holder = Annotated[service.IndexHolder, Depends(index_holder)]


def parse_kinds(type_: str | None) -> tuple[str, ...]:
    """``type`` is one kind or several separated by commas (``service_item,policy``)."""
    if not type_:
        return ()
    kinds = tuple(t.strip() for t in type_.split(",") if t.strip())
    known = {k.value for k in Kind}
    unknown = [k for k in kinds if k not in known]
    if unknown:
        raise InvalidInput(f"unknown type(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return kinds


@router.get("/search")
def search(
    session: DbSession,
    clock: ClockDep,
    holder: Holder,
    principal: Anyone,
    q: Annotated[str, Query(min_length=1, max_length=service.MAX_QUERY_CHARS)],
    k: Annotated[int, Query(ge=1, le=service.MAX_K)] = 10,
    type: Annotated[str | None, Query(max_length=200)] = None,
    department: Annotated[str | None, Query(max_length=200)] = None,
    audience: Annotated[str | None, Query(max_length=200)] = None,
    region: Annotated[str | None, Query(max_length=200)] = None,
    valid_on: dt.date | None = None,
) -> SearchResponse:
    """Hybrid search over published knowledge and service items: ranked results with per-signal scores."""
    filters = SearchFilters(
        kinds=parse_kinds(type),
        department=department or None,
        audience=audience or None,
        region=region or None,
        valid_on=valid_on,
    )
    return service.search(session, holder, q, clock=clock, k=k, filters=filters)


def _etag(entry: EntryOut) -> str:
    # headers are Latin-1: an id with other characters (a policy's 文号) travels percent-encoded
    return f'W/"{quote(entry.external_id, safe="")}-{entry.version}"'


@router.get("/knowledge/entries")
def list_entries(
    session: DbSession,
    principal: Anyone,
    q: Annotated[str | None, Query(max_length=100)] = None,
    kind: Kind | None = None,
    status: EntryStatus | None = None,
    department: Annotated[str | None, Query(max_length=200)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = 20,
) -> EntryPage:
    filters = EntryFilter(
        status=status.value if status else None,
        kind=kind.value if kind else None,
        department=department or None,
        text=q or None,
    )
    return service.list_entries(session, principal, filters=filters, page=page, page_size=page_size)


@router.get("/knowledge/entries/{external_id:path}/versions")
def list_versions(external_id: str, session: DbSession, principal: Editor) -> list[VersionOut]:
    return service.list_versions(session, principal, external_id)


@router.get("/knowledge/entries/{external_id:path}/diff")
def diff(
    external_id: str,
    session: DbSession,
    principal: Editor,
    from_version: Annotated[int, Query(alias="from", ge=1)],
    to_version: Annotated[int, Query(alias="to", ge=1)],
) -> DiffOut:
    return service.diff_versions(session, principal, external_id, from_version, to_version)


@router.post("/knowledge/entries", status_code=201, responses={201: {"model": EntryOut}})
def create_entry(
    request: Request, body: EntryWrite, raw: RawBody, session: DbSession, clock: ClockDep, principal: Editor
) -> Any:
    """Create a draft entry. Send ``Idempotency-Key`` to make retries safe."""

    def produce() -> tuple[int, Any]:
        return 201, service.create_entry(
            session, principal, body.external_id, body.content, clock=clock, note=body.note
        )

    response = idempotent(request, session, principal, raw, produce)
    response.headers["Location"] = f"/api/v1/knowledge/entries/{body.external_id}"
    return response


@router.post("/knowledge/entries/{external_id:path}/submit")
def submit(
    external_id: str, body: Decision, session: DbSession, clock: ClockDep, principal: Editor
) -> EntryOut:
    return service.submit_entry(session, principal, external_id, clock=clock, note=body.note)


@router.post("/knowledge/entries/{external_id:path}/publish")
def publish(
    request: Request,
    external_id: str,
    body: Decision,
    raw: RawBody,
    session: DbSession,
    clock: ClockDep,
    principal: Publisher,
) -> Any:
    """Publish the version in review (someone other than its author): the active version swaps at once."""

    def produce() -> tuple[int, Any]:
        return 200, service.publish_entry(session, principal, external_id, clock=clock, note=body.note)

    return idempotent(request, session, principal, raw, produce)


@router.post("/knowledge/entries/{external_id:path}/reject")
def reject(
    external_id: str, body: Decision, session: DbSession, clock: ClockDep, principal: Reviewer
) -> EntryOut:
    return service.reject_entry(session, principal, external_id, clock=clock, note=body.note)


@router.post("/knowledge/entries/{external_id:path}/withdraw")
def withdraw(
    external_id: str, body: Decision, session: DbSession, clock: ClockDep, principal: Publisher
) -> EntryOut:
    return service.withdraw_entry(session, principal, external_id, clock=clock, note=body.note)


@router.post("/knowledge/entries/{external_id:path}/confirm")
def confirm(external_id: str, session: DbSession, clock: ClockDep, principal: Editor) -> EntryOut:
    """The content is still right: the entry stops being stale."""
    return service.confirm_entry(session, principal, external_id, clock=clock)


@router.get("/knowledge/entries/{external_id:path}")
def get_entry(external_id: str, session: DbSession, principal: Anyone, response: Response) -> EntryOut:
    entry = service.get_entry(session, principal, external_id)
    response.headers["ETag"] = _etag(entry)
    return entry


@router.put("/knowledge/entries/{external_id:path}")
def update_entry(
    external_id: str,
    body: EntryUpdate,
    session: DbSession,
    clock: ClockDep,
    principal: Editor,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> EntryOut:
    """Save new content as a draft version. ``If-Match`` (the ETag) guards against overwriting others."""
    entry = service.update_entry(
        session,
        principal,
        external_id,
        body.content,
        clock=clock,
        note=body.note,
        expected_version=parse_if_match(if_match),
    )
    response.headers["ETag"] = _etag(entry)
    return entry


@router.get("/knowledge/ops")
def ops(session: DbSession, clock: ClockDep, holder: Holder, principal: Editor) -> OpsReport:
    """Knowledge operations: stale, near expiry, questions that found nothing, conflicts, reviews."""
    service.sync_index(session, holder)
    return service.ops_report(session, principal, holder, clock=clock)


@router.get("/knowledge/lexicon")
def list_lexicon(
    session: DbSession, principal: Editor, state: Annotated[str | None, Query(max_length=20)] = None
) -> list[LexiconOut]:
    return service.list_lexicon(session, principal, state=state or None)


@router.post("/knowledge/lexicon", status_code=201)
def propose_lexicon(body: LexiconIn, session: DbSession, clock: ClockDep, principal: Editor) -> LexiconOut:
    """Propose a dictionary term or a synonym; it applies once a reviewer approves it."""
    return service.propose_lexicon(session, principal, body, clock=clock)


@router.post("/knowledge/lexicon/{row_id}/approve")
def approve_lexicon(row_id: int, session: DbSession, clock: ClockDep, principal: Reviewer) -> LexiconOut:
    return service.decide_lexicon(session, principal, row_id, approve=True, clock=clock)


@router.post("/knowledge/lexicon/{row_id}/retire")
def retire_lexicon(row_id: int, session: DbSession, clock: ClockDep, principal: Reviewer) -> LexiconOut:
    return service.decide_lexicon(session, principal, row_id, approve=False, clock=clock)
