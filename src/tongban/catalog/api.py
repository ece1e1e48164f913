"""JSON API of the catalogue under ``/api/v1/catalog``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel

from tongban.catalog import service
from tongban.catalog.repository import ItemFilter
from tongban.catalog.schemas import ItemContent, ItemOut, ItemPage, ItemWrite, ReviewDecision, VersionOut
from tongban.catalog.vocab import Audience, ItemType, Level, Status
from tongban.core import auth
from tongban.core.http import (
    ClockDep,
    DbSession,
    RawBody,
    idempotent,
    parse_if_match,
    public_with_principal,
    require,
)

router = APIRouter(prefix="/api/v1/catalog", tags=["catalog"])
Anyone = Annotated[auth.Principal, Depends(public_with_principal)]
Editor = Annotated[auth.Principal, Depends(require("catalog:edit"))]
Reviewer = Annotated[auth.Principal, Depends(require("catalog:review"))]
Publisher = Annotated[auth.Principal, Depends(require("catalog:publish"))]


def _etag(item: ItemOut) -> str:
    return f'W/"{item.code}-{item.version}"'


@router.get("/items")
def list_items(
    session: DbSession,
    principal: Anyone,
    q: Annotated[str | None, Query(max_length=100)] = None,
    theme: Annotated[str | None, Query(max_length=200)] = None,
    department: Annotated[str | None, Query(max_length=200)] = None,
    audience: Audience | None = None,
    item_type: ItemType | None = None,
    level: Level | None = None,
    region: Annotated[str | None, Query(max_length=200)] = None,
    status: Status | None = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = 20,
) -> ItemPage:
    """Service items, newest content, filtered and paged. Anonymous callers see published items only."""
    filters = ItemFilter(
        q=q or None,
        theme=theme or None,
        department=department or None,
        audience=audience.value if audience else None,
        item_type=item_type.value if item_type else None,
        level=level.value if level else None,
        region=region or None,
        status=status.value if status else None,
    )
    return service.list_items(session, principal, filters=filters, page=page, page_size=page_size)


@router.get("/items/{code}")
def get_item(code: str, session: DbSession, principal: Anyone, response: Response) -> ItemOut:
    item = service.get_item(session, principal, code)
    response.headers["ETag"] = _etag(item)
    return item


@router.post("/items", status_code=201, responses={201: {"model": ItemOut}})
def create_item(
    request: Request, body: ItemWrite, raw: RawBody, session: DbSession, clock: ClockDep, principal: Editor
) -> Any:
    """Create a draft item. Send ``Idempotency-Key`` to make retries safe."""

    def produce() -> tuple[int, Any]:
        return 201, service.create_item(session, principal, body.content, clock=clock, note=body.note)

    response = idempotent(request, session, principal, raw, produce)
    response.headers["Location"] = f"/api/v1/catalog/items/{body.content.code}"
    return response


@router.put("/items/{code}")
def update_item(
    code: str,
    body: ItemWrite,
    session: DbSession,
    clock: ClockDep,
    principal: Editor,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> ItemOut:
    """Save new content as a draft version. ``If-Match`` (the ETag) guards against overwriting others."""
    item = service.update_item(
        session,
        principal,
        code,
        body.content,
        clock=clock,
        note=body.note,
        expected_version=parse_if_match(if_match),
    )
    response.headers["ETag"] = _etag(item)
    return item


@router.post("/items/{code}/submit")
def submit_item(
    code: str, body: ReviewDecision, session: DbSession, clock: ClockDep, principal: Editor
) -> ItemOut:
    return service.submit_for_review(session, principal, code, clock=clock, note=body.note)


@router.post("/items/{code}/publish")
def publish_item(
    request: Request,
    code: str,
    body: ReviewDecision,
    raw: RawBody,
    session: DbSession,
    clock: ClockDep,
    principal: Publisher,
) -> Any:
    """Publish the version in review (by someone other than its author), or restore a withdrawn item."""

    def produce() -> tuple[int, Any]:
        return 200, service.publish_item(session, principal, code, clock=clock, note=body.note)

    return idempotent(request, session, principal, raw, produce)


@router.post("/items/{code}/reject")
def reject_item(
    code: str, body: ReviewDecision, session: DbSession, clock: ClockDep, principal: Reviewer
) -> ItemOut:
    return service.reject_item(session, principal, code, clock=clock, note=body.note)


@router.post("/items/{code}/withdraw")
def withdraw_item(
    code: str, body: ReviewDecision, session: DbSession, clock: ClockDep, principal: Publisher
) -> ItemOut:
    return service.withdraw_item(session, principal, code, clock=clock, note=body.note)


@router.get("/items/{code}/versions")
def list_versions(code: str, session: DbSession, principal: Editor) -> list[VersionOut]:
    return service.list_versions(session, principal, code)


@router.get("/items/{code}/versions/{version}")
def get_version(code: str, version: int, session: DbSession, principal: Editor) -> ItemContent:
    return service.get_version_content(session, principal, code, version)


class FacetsOut(BaseModel):
    total: int
    themes: list[tuple[str, int]]
    audiences: list[tuple[str, int]]
    departments: list[tuple[str, int]]
    item_types: list[tuple[str, int]]
    levels: list[tuple[str, int]]


@router.get("/facets")
def facets(session: DbSession, principal: Anyone) -> FacetsOut:
    """Counts of published items by theme, audience, department, type and level."""
    return FacetsOut(**asdict(service.facets(session)))


@router.get("/consistency")
def consistency(session: DbSession, principal: Editor) -> dict[str, Any]:
    """审批标准一致性: the same item across regions/departments with differing requirements."""
    report = service.check_consistency(session)
    return {
        "items_checked": report.items_checked,
        "groups_checked": report.groups_checked,
        "groups_inconsistent": len(report.inconsistent),
        "totals": report.totals(),
        "groups": [asdict(g) for g in report.inconsistent],
    }
