"""The catalogue's public functions. Each takes the session first and never commits.

Life of an item: staff create or edit it (a new *draft* version each save), submit it for review, and a
reviewer other than the author publishes it (four eyes) or returns it. The published version is what
citizens see; edits to a published item stay pending until published. Operators' bulk imports publish
directly and are audited as such. Every change is kept as a version and audited.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from tongban.catalog import repository as repo
from tongban.catalog.consistency import ConsistencyReport, build_report
from tongban.catalog.models import CatalogItem, CatalogItemVersion
from tongban.catalog.schemas import ItemContent, ItemOut, ItemPage, ItemSummary, VersionOut
from tongban.catalog.vocab import Status, VersionState
from tongban.core import audit, events
from tongban.core.auth import Principal
from tongban.core.clock import Clock
from tongban.core.errors import Conflict, InvalidInput, NotFound, PreconditionFailed

MAX_PAGE_SIZE = 100
#: Events other domains can subscribe to (``tongban.core.events``); payload ``code``.
ITEM_PUBLISHED = "catalog.item.published"
ITEM_WITHDRAWN = "catalog.item.withdrawn"


class ImportOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Facets:
    themes: list[tuple[str, int]]
    audiences: list[tuple[str, int]]
    departments: list[tuple[str, int]]
    item_types: list[tuple[str, int]]
    levels: list[tuple[str, int]]
    total: int


def content_hash(content: ItemContent) -> str:
    canonical = json.dumps(content.model_dump(mode="json"), ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _dump(content: ItemContent) -> dict[str, Any]:
    return content.model_dump(mode="json", exclude_none=False)


def _content_of(item: CatalogItem) -> ItemContent:
    return ItemContent.model_validate(item.content)


def _tags(content: ItemContent) -> list[tuple[str, str]]:
    return [("theme", t) for t in content.themes] + [("audience", a.value) for a in content.audiences]


def _apply_live(session: Session, item: CatalogItem, content: ItemContent, digest: str) -> None:
    """Make ``content`` the item's live content: columns, JSON and facet tags."""
    item.basic_code = content.basic_code
    item.name = content.name
    item.name_en = content.name_en
    item.item_type = content.item_type.value
    item.department = content.department
    item.region = content.region
    item.level = content.level.value
    item.audiences = [a.value for a in content.audiences]
    item.content = _dump(content)
    item.content_hash = digest
    session.flush()
    repo.replace_tags(session, item.id, _tags(content))


def to_out(item: CatalogItem) -> ItemOut:
    return ItemOut(
        code=item.code,
        status=Status(item.status),
        version=item.version,
        published_version=item.published_version,
        pending_version=item.pending_version,
        created_at=item.created_at,
        updated_at=item.updated_at,
        published_at=item.published_at,
        content=_content_of(item),
    )


def _summary(item: CatalogItem) -> ItemSummary:
    return ItemSummary.model_validate(
        {
            "code": item.code,
            "name": item.name,
            "name_en": item.name_en,
            "item_type": item.item_type,
            "department": item.department,
            "region": item.region,
            "level": item.level,
            "audiences": item.audiences,
            "status": item.status,
            "version": item.version,
            "updated_at": item.updated_at,
        }
    )


def _can_see_unpublished(principal: Principal) -> bool:
    return principal.can("catalog:edit")


def list_items(
    session: Session,
    principal: Principal,
    *,
    filters: repo.ItemFilter,
    page: int = 1,
    page_size: int = 20,
) -> ItemPage:
    if page < 1:
        raise InvalidInput("page starts at 1")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    if filters.status is None and not _can_see_unpublished(principal):
        filters = repo.ItemFilter(**{**filters.__dict__, "status": Status.PUBLISHED.value})
    elif filters.status not in (None, Status.PUBLISHED.value):
        principal.require("catalog:edit")
    rows, total = repo.list_items(session, filters, offset=(page - 1) * page_size, limit=page_size)
    return ItemPage(items=[_summary(r) for r in rows], total=total, page=page, page_size=page_size)


def page_count(page: ItemPage) -> int:
    return max(1, math.ceil(page.total / page.page_size))


def _get(session: Session, code: str, *, for_update: bool = False) -> CatalogItem:
    item = repo.get_by_code(session, code, for_update=for_update)
    if item is None:
        raise NotFound(f"no service item with code {code!r}")
    return item


def get_item(session: Session, principal: Principal, code: str) -> ItemOut:
    item = _get(session, code)
    if item.status != Status.PUBLISHED and not _can_see_unpublished(principal):
        raise NotFound(f"no service item with code {code!r}")
    return to_out(item)


def item_region(session: Session, code: str) -> tuple[str, str | None] | None:
    """The region of an item and its GB/T 2260 code, if known (None: no such item)."""
    item = repo.get_by_code(session, code)
    if item is None:
        return None
    return item.region, _content_of(item).region_code


def get_working_copy(session: Session, principal: Principal, code: str) -> tuple[ItemOut, ItemContent]:
    """The item and the content an editor should start from (the pending version if there is one)."""
    principal.require("catalog:edit")
    item = _get(session, code)
    return to_out(item), _working_content(session, item)


def _working_content(session: Session, item: CatalogItem) -> ItemContent:
    if item.pending_version is not None:
        pending = repo.get_version(session, item.id, item.pending_version)
        if pending is not None:
            return ItemContent.model_validate(pending.content)
    return _content_of(item)


def _add_item(
    session: Session, content: ItemContent, digest: str, clock: Clock, *, published: bool
) -> CatalogItem:
    """A new item at version 1: a draft pending review, or (operators' imports) published at once."""
    now = clock.now()
    item = repo.add_item(
        session,
        CatalogItem(
            code=content.code,
            name=content.name,
            item_type=content.item_type.value,
            department=content.department,
            region=content.region,
            level=content.level.value,
            audiences=[],
            status=(Status.PUBLISHED if published else Status.DRAFT).value,
            content={},
            content_hash=digest,
            version=1,
            published_version=1 if published else None,
            pending_version=None if published else 1,
            created_at=now,
            updated_at=now,
            published_at=now if published else None,
        ),
    )
    _apply_live(session, item, content, digest)
    return item


def create_item(
    session: Session, principal: Principal, content: ItemContent, *, clock: Clock, note: str = ""
) -> ItemOut:
    principal.require("catalog:edit")
    if repo.get_by_code(session, content.code) is not None:
        raise Conflict(f"a service item with code {content.code!r} already exists", code=content.code)
    digest = content_hash(content)
    item = _add_item(session, content, digest, clock, published=False)
    _new_version(session, item, content, digest, VersionState.DRAFT, principal.username, note, clock)
    audit.record(
        session,
        actor=principal,
        action="catalog.item.create",
        target_type="catalog_item",
        target_id=item.code,
        clock=clock,
        detail={"version": 1, "note": note},
    )
    return to_out(item)


def _new_version(
    session: Session,
    item: CatalogItem,
    content: ItemContent,
    digest: str,
    state: VersionState,
    author: str,
    note: str,
    clock: Clock,
    *,
    reviewed_by: str | None = None,
) -> CatalogItemVersion:
    now = clock.now()
    return repo.add_version(
        session,
        CatalogItemVersion(
            item_id=item.id,
            version=item.version,
            state=state.value,
            content=_dump(content),
            content_hash=digest,
            author=author,
            note=note,
            created_at=now,
            reviewed_by=reviewed_by,
            reviewed_at=now if reviewed_by else None,
        ),
    )


def update_item(
    session: Session,
    principal: Principal,
    code: str,
    content: ItemContent,
    *,
    clock: Clock,
    note: str = "",
    expected_version: int | None = None,
) -> ItemOut:
    principal.require("catalog:edit")
    item = _get(session, code, for_update=True)
    if content.code != code:
        raise InvalidInput("the implementation code of an item cannot change; create a new item instead")
    if expected_version is not None and expected_version != item.version:
        raise PreconditionFailed(
            f"the item changed meanwhile (now version {item.version}, you edited {expected_version}); "
            "reload it",
            current_version=item.version,
        )
    digest = content_hash(content)
    if content_hash(_working_content(session, item)) == digest:
        return to_out(item)
    if item.pending_version is not None:
        old = repo.get_version(session, item.id, item.pending_version)
        if old is not None:
            old.state = VersionState.SUPERSEDED.value
    item.version += 1
    item.pending_version = item.version
    item.updated_at = clock.now()
    if item.published_version is None:
        _apply_live(session, item, content, digest)
    _new_version(session, item, content, digest, VersionState.DRAFT, principal.username, note, clock)
    audit.record(
        session,
        actor=principal,
        action="catalog.item.update",
        target_type="catalog_item",
        target_id=code,
        clock=clock,
        detail={"version": item.version, "note": note},
    )
    return to_out(item)


def _pending(session: Session, item: CatalogItem) -> CatalogItemVersion:
    if item.pending_version is None:
        raise Conflict("this item has no pending changes")
    version = repo.get_version(session, item.id, item.pending_version)
    if version is None:  # pragma: no cover - guarded by the schema
        raise Conflict("the pending version is missing")
    return version


def submit_for_review(
    session: Session, principal: Principal, code: str, *, clock: Clock, note: str = ""
) -> ItemOut:
    principal.require("catalog:edit")
    item = _get(session, code, for_update=True)
    version = _pending(session, item)
    if version.state == VersionState.IN_REVIEW:
        return to_out(item)
    version.state = VersionState.IN_REVIEW.value
    item.updated_at = clock.now()
    audit.record(
        session,
        actor=principal,
        action="catalog.item.submit",
        target_type="catalog_item",
        target_id=code,
        clock=clock,
        detail={"version": version.version, "note": note},
    )
    return to_out(item)


def publish_item(
    session: Session, principal: Principal, code: str, *, clock: Clock, note: str = ""
) -> ItemOut:
    principal.require("catalog:publish")
    item = _get(session, code, for_update=True)
    now = clock.now()
    if item.pending_version is None:
        if item.status == Status.WITHDRAWN and item.published_version is not None:
            item.status = Status.PUBLISHED.value
            item.updated_at = now
            audit.record(
                session,
                actor=principal,
                action="catalog.item.restore",
                target_type="catalog_item",
                target_id=code,
                clock=clock,
                detail={"note": note},
            )
            events.emit(session, ITEM_PUBLISHED, clock=clock, code=code)
            return to_out(item)
        raise Conflict("this item has no pending changes to publish")
    version = _pending(session, item)
    if version.state != VersionState.IN_REVIEW:
        raise Conflict("submit the changes for review before publishing them")
    principal.require_other_than(version.author)
    if item.published_version is not None:
        previous = repo.get_version(session, item.id, item.published_version)
        if previous is not None:
            previous.state = VersionState.SUPERSEDED.value
    version.state = VersionState.PUBLISHED.value
    version.reviewed_by, version.reviewed_at = principal.username, now
    content = ItemContent.model_validate(version.content)
    _apply_live(session, item, content, version.content_hash)
    item.status = Status.PUBLISHED.value
    item.published_version, item.pending_version = version.version, None
    item.published_at = item.updated_at = now
    audit.record(
        session,
        actor=principal,
        action="catalog.item.publish",
        target_type="catalog_item",
        target_id=code,
        clock=clock,
        detail={"version": version.version, "note": note},
    )
    events.emit(session, ITEM_PUBLISHED, clock=clock, code=code)
    return to_out(item)


def reject_item(session: Session, principal: Principal, code: str, *, clock: Clock, note: str) -> ItemOut:
    principal.require("catalog:review")
    if not note.strip():
        raise InvalidInput("say why the change is returned")
    item = _get(session, code, for_update=True)
    version = _pending(session, item)
    if version.state != VersionState.IN_REVIEW:
        raise Conflict("only a change in review can be returned")
    version.state = VersionState.REJECTED.value
    version.reviewed_by, version.reviewed_at = principal.username, clock.now()
    item.updated_at = clock.now()
    audit.record(
        session,
        actor=principal,
        action="catalog.item.reject",
        target_type="catalog_item",
        target_id=code,
        clock=clock,
        detail={"version": version.version, "note": note},
    )
    return to_out(item)


def withdraw_item(session: Session, principal: Principal, code: str, *, clock: Clock, note: str) -> ItemOut:
    principal.require("catalog:publish")
    if not note.strip():
        raise InvalidInput("say why the item is withdrawn")
    item = _get(session, code, for_update=True)
    if item.status != Status.PUBLISHED:
        raise Conflict("only a published item can be withdrawn")
    item.status = Status.WITHDRAWN.value
    item.updated_at = clock.now()
    audit.record(
        session,
        actor=principal,
        action="catalog.item.withdraw",
        target_type="catalog_item",
        target_id=code,
        clock=clock,
        detail={"note": note},
    )
    events.emit(session, ITEM_WITHDRAWN, clock=clock, code=code)
    return to_out(item)


def _changed_fields(new: dict[str, Any], old: dict[str, Any] | None) -> list[str]:
    if old is None:
        return []
    return sorted(k for k in new.keys() | old.keys() if new.get(k) != old.get(k))


def list_versions(session: Session, principal: Principal, code: str) -> list[VersionOut]:
    principal.require("catalog:edit")
    item = _get(session, code)
    versions = repo.list_versions(session, item.id)
    out = []
    for i, v in enumerate(versions):
        older = versions[i + 1].content if i + 1 < len(versions) else None
        out.append(
            VersionOut(
                version=v.version,
                state=VersionState(v.state),
                author=v.author,
                note=v.note,
                created_at=v.created_at,
                reviewed_by=v.reviewed_by,
                reviewed_at=v.reviewed_at,
                changed_fields=_changed_fields(v.content, older),
            )
        )
    return out


def get_version_content(session: Session, principal: Principal, code: str, version: int) -> ItemContent:
    principal.require("catalog:edit")
    item = _get(session, code)
    row = repo.get_version(session, item.id, version)
    if row is None:
        raise NotFound(f"item {code!r} has no version {version}")
    return ItemContent.model_validate(row.content)


def import_item(
    session: Session,
    content: ItemContent,
    *,
    actor: str,
    clock: Clock,
    source: str,
) -> ImportOutcome:
    """Create or update one item from an operator's bulk import, published at once."""
    digest = content_hash(content)
    item = repo.get_by_code(session, content.code, for_update=True)
    now = clock.now()
    note = f"imported from {source}"
    if item is None:
        item = _add_item(session, content, digest, clock, published=True)
        _new_version(
            session, item, content, digest, VersionState.PUBLISHED, actor, note, clock, reviewed_by=actor
        )
        outcome = ImportOutcome.CREATED
    elif item.content_hash == digest and item.status == Status.PUBLISHED:
        return ImportOutcome.UNCHANGED
    else:
        if item.published_version is not None:
            previous = repo.get_version(session, item.id, item.published_version)
            if previous is not None:
                previous.state = VersionState.SUPERSEDED.value
        item.version += 1
        _apply_live(session, item, content, digest)
        item.status = Status.PUBLISHED.value
        item.published_version = item.version
        item.updated_at = item.published_at = now
        _new_version(
            session, item, content, digest, VersionState.PUBLISHED, actor, note, clock, reviewed_by=actor
        )
        outcome = ImportOutcome.UPDATED
    audit.record(
        session,
        actor=actor,
        action=f"catalog.item.import.{outcome.value}",
        target_type="catalog_item",
        target_id=content.code,
        clock=clock,
        detail={"version": item.version, "source": source},
    )
    events.emit(session, ITEM_PUBLISHED, clock=clock, code=content.code)
    return outcome


def facets(session: Session) -> Facets:
    status = Status.PUBLISHED.value
    counts = repo.count_by_status(session)
    return Facets(
        themes=repo.tag_counts(session, "theme", status=status),
        audiences=repo.tag_counts(session, "audience", status=status),
        departments=repo.department_counts(session, status=status),
        item_types=repo.column_counts(session, "item_type", status=status),
        levels=repo.column_counts(session, "level", status=status),
        total=counts.get(status, 0),
    )


def export_items(session: Session, *, status: str = Status.PUBLISHED.value) -> Iterable[ItemContent]:
    for item in repo.items_with_status(session, status):
        yield _content_of(item)


def check_consistency(session: Session) -> ConsistencyReport:
    return build_report(list(export_items(session)))


def status_counts(session: Session) -> dict[str, int]:
    return repo.count_by_status(session)
