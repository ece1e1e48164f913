"""All SQL of the catalogue."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, delete, exists, func, insert, or_, select
from sqlalchemy.orm import Session, defer

from tongban.catalog.models import CatalogItem, CatalogItemTag, CatalogItemVersion


@dataclass(frozen=True)
class ItemFilter:
    q: str | None = None
    theme: str | None = None
    department: str | None = None
    audience: str | None = None
    item_type: str | None = None
    level: str | None = None
    region: str | None = None
    status: str | None = None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered(stmt: Select[Any], f: ItemFilter) -> Select[Any]:
    if f.status:
        stmt = stmt.where(CatalogItem.status == f.status)
    if f.q:
        pattern = f"%{_escape_like(f.q)}%"
        stmt = stmt.where(
            or_(
                CatalogItem.name.like(pattern, escape="\\"),
                CatalogItem.name_en.like(pattern, escape="\\"),
                CatalogItem.code == f.q,
            )
        )
    if f.department:
        stmt = stmt.where(CatalogItem.department == f.department)
    if f.item_type:
        stmt = stmt.where(CatalogItem.item_type == f.item_type)
    if f.level:
        stmt = stmt.where(CatalogItem.level == f.level)
    if f.region:
        stmt = stmt.where(CatalogItem.region == f.region)
    for kind, value in (("theme", f.theme), ("audience", f.audience)):
        if value:
            stmt = stmt.where(
                exists().where(
                    CatalogItemTag.item_id == CatalogItem.id,
                    CatalogItemTag.kind == kind,
                    CatalogItemTag.value == value,
                )
            )
    return stmt


def list_items(session: Session, f: ItemFilter, *, offset: int, limit: int) -> tuple[list[CatalogItem], int]:
    total = session.scalar(_filtered(select(func.count(CatalogItem.id)), f)) or 0
    # Lists show summaries: the JSON content (several KB an item) is not loaded.
    rows = session.scalars(
        _filtered(select(CatalogItem).options(defer(CatalogItem.content)), f)
        .order_by(CatalogItem.name, CatalogItem.code)
        .offset(offset)
        .limit(limit)
    )
    return list(rows), int(total)


def get_by_code(session: Session, code: str, *, for_update: bool = False) -> CatalogItem | None:
    stmt = select(CatalogItem).where(CatalogItem.code == code)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def add_item(session: Session, item: CatalogItem) -> CatalogItem:
    session.add(item)
    session.flush()
    return item


def add_version(session: Session, version: CatalogItemVersion) -> CatalogItemVersion:
    session.add(version)
    session.flush()
    return version


def get_version(session: Session, item_id: int, version: int) -> CatalogItemVersion | None:
    return session.scalars(
        select(CatalogItemVersion).where(
            CatalogItemVersion.item_id == item_id, CatalogItemVersion.version == version
        )
    ).one_or_none()


def list_versions(session: Session, item_id: int) -> list[CatalogItemVersion]:
    return list(
        session.scalars(
            select(CatalogItemVersion)
            .where(CatalogItemVersion.item_id == item_id)
            .order_by(CatalogItemVersion.version.desc())
        )
    )


def replace_tags(session: Session, item_id: int, tags: Iterable[tuple[str, str]]) -> None:
    session.execute(delete(CatalogItemTag).where(CatalogItemTag.item_id == item_id))
    rows = [{"item_id": item_id, "kind": k, "value": v} for k, v in dict.fromkeys(tags)]
    if rows:
        session.execute(insert(CatalogItemTag), rows)


def tag_counts(session: Session, kind: str, *, status: str) -> list[tuple[str, int]]:
    stmt = (
        select(CatalogItemTag.value, func.count())
        .join(CatalogItem, CatalogItem.id == CatalogItemTag.item_id)
        .where(CatalogItemTag.kind == kind, CatalogItem.status == status)
        .group_by(CatalogItemTag.value)
        .order_by(func.count().desc(), CatalogItemTag.value)
    )
    return [(str(v), int(n)) for v, n in session.execute(stmt)]


def department_counts(session: Session, *, status: str) -> list[tuple[str, int]]:
    stmt = (
        select(CatalogItem.department, func.count())
        .where(CatalogItem.status == status)
        .group_by(CatalogItem.department)
        .order_by(func.count().desc(), CatalogItem.department)
    )
    return [(str(v), int(n)) for v, n in session.execute(stmt)]


def column_counts(session: Session, column: str, *, status: str) -> list[tuple[str, int]]:
    col = getattr(CatalogItem, column)
    stmt = select(col, func.count()).where(CatalogItem.status == status).group_by(col).order_by(col)
    return [(str(v), int(n)) for v, n in session.execute(stmt)]


def items_with_status(session: Session, status: str) -> list[CatalogItem]:
    return list(
        session.scalars(select(CatalogItem).where(CatalogItem.status == status).order_by(CatalogItem.code))
    )


def count_by_status(session: Session) -> dict[str, int]:
    stmt = select(CatalogItem.status, func.count()).group_by(CatalogItem.status)
    return {str(s): int(n) for s, n in session.execute(stmt)}
