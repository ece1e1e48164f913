"""All SQL of the policy domain (the same statements on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from tongban.policy.models import (
    PolicyDocument,
    PolicyInterpretation,
    PolicyItem,
    PolicyItemVersion,
    PolicyVariableSet,
)

# --- documents -----------------------------------------------------------------------------------------


def document(session: Session, code: str, *, for_update: bool = False) -> PolicyDocument | None:
    stmt = select(PolicyDocument).where(PolicyDocument.code == code)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def find_documents(
    session: Session,
    *,
    statuses: Sequence[str],
    q: str = "",
    level: str = "",
    department: str = "",
    page: int = 1,
    per_page: int = 20,
) -> tuple[int, list[PolicyDocument]]:
    where: list[ColumnElement[bool]] = [PolicyDocument.status.in_(statuses)]
    if q:
        like = f"%{q.replace('%', '').replace('_', '')}%"
        where.append(
            or_(
                PolicyDocument.title.like(like),
                PolicyDocument.title_en.like(like),
                PolicyDocument.code.like(like),
                PolicyDocument.summary.like(like),
            )
        )
    if level:
        where.append(PolicyDocument.level == level)
    if department:
        where.append(PolicyDocument.department == department)
    total = session.scalar(select(func.count()).select_from(PolicyDocument).where(*where)) or 0
    rows = session.scalars(
        select(PolicyDocument)
        .where(*where)
        .order_by(PolicyDocument.issued_on.desc().nulls_last(), PolicyDocument.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return total, list(rows)


def departments(session: Session, statuses: Sequence[str]) -> list[str]:
    return list(
        session.scalars(
            select(PolicyDocument.department)
            .where(PolicyDocument.status.in_(statuses))
            .distinct()
            .order_by(PolicyDocument.department)
        )
    )


def interpretations(session: Session, document_id: int) -> list[PolicyInterpretation]:
    return list(
        session.scalars(
            select(PolicyInterpretation)
            .where(PolicyInterpretation.document_id == document_id)
            .order_by(PolicyInterpretation.published_on.desc().nulls_last(), PolicyInterpretation.id)
        )
    )


def all_document_texts(session: Session, statuses: Sequence[str]) -> list[tuple[str, str, str]]:
    """(code, title, body) of every document in ``statuses``."""
    rows = session.execute(
        select(PolicyDocument.code, PolicyDocument.title, PolicyDocument.body)
        .where(PolicyDocument.status.in_(statuses))
        .order_by(PolicyDocument.id)
    )
    return [(r[0], r[1], r[2]) for r in rows]


# --- items ---------------------------------------------------------------------------------------------


def item(session: Session, key: str, *, for_update: bool = False) -> PolicyItem | None:
    stmt = select(PolicyItem).where(PolicyItem.key == key)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def items(
    session: Session, *, statuses: Sequence[str], entity: str = "", document_code: str = ""
) -> list[PolicyItem]:
    stmt = select(PolicyItem).where(PolicyItem.status.in_(statuses))
    if entity:
        stmt = stmt.where(PolicyItem.entity == entity)
    if document_code:
        stmt = stmt.where(PolicyItem.document_code == document_code)
    return list(session.scalars(stmt.order_by(PolicyItem.key)))


def versions(session: Session, item_id: int) -> list[PolicyItemVersion]:
    return list(
        session.scalars(
            select(PolicyItemVersion)
            .where(PolicyItemVersion.item_id == item_id)
            .order_by(PolicyItemVersion.version.desc())
        )
    )


def version(
    session: Session, item_id: int, number: int, *, for_update: bool = False
) -> PolicyItemVersion | None:
    stmt = select(PolicyItemVersion).where(
        PolicyItemVersion.item_id == item_id, PolicyItemVersion.version == number
    )
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def published_versions(session: Session) -> list[tuple[PolicyItem, PolicyItemVersion]]:
    """Every published item with its published version, in key order."""
    rows = session.execute(
        select(PolicyItem, PolicyItemVersion)
        .join(
            PolicyItemVersion,
            (PolicyItemVersion.item_id == PolicyItem.id)
            & (PolicyItemVersion.version == PolicyItem.published_version),
        )
        .where(PolicyItem.status == "published")
        .order_by(PolicyItem.key)
    )
    return [(r[0], r[1]) for r in rows]


def published_digests(session: Session) -> list[tuple[str, str]]:
    """(key, digest) of every published item version: what the current rule set is made of."""
    rows = session.execute(
        select(PolicyItem.key, PolicyItemVersion.digest)
        .join(
            PolicyItemVersion,
            (PolicyItemVersion.item_id == PolicyItem.id)
            & (PolicyItemVersion.version == PolicyItem.published_version),
        )
        .where(PolicyItem.status == "published")
        .order_by(PolicyItem.key)
    )
    return [(r[0], r[1]) for r in rows]


# --- variables -----------------------------------------------------------------------------------------


def current_variables(session: Session) -> PolicyVariableSet | None:
    return session.scalars(
        select(PolicyVariableSet).order_by(PolicyVariableSet.version.desc()).limit(1)
    ).first()
