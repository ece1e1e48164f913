"""All SQL of the policy domain (the same statements on SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import ColumnElement, func, or_, select, text, update
from sqlalchemy.orm import Session, aliased

from tongban.policy.models import (
    PolicyAppeal,
    PolicyApplication,
    PolicyDocument,
    PolicyGrant,
    PolicyInterpretation,
    PolicyItem,
    PolicyItemVersion,
    PolicyPush,
    PolicyRun,
    PolicySnapshot,
    PolicySubscription,
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


# --- snapshots, runs, grants, appeals ------------------------------------------------------------------


def snapshot_by_name(session: Session, name: str) -> PolicySnapshot | None:
    return session.scalars(select(PolicySnapshot).where(PolicySnapshot.name == name)).one_or_none()


def snapshots(session: Session) -> list[PolicySnapshot]:
    return list(session.scalars(select(PolicySnapshot).order_by(PolicySnapshot.id.desc())))


def run(session: Session, run_id: int, *, for_update: bool = False) -> PolicyRun | None:
    stmt = select(PolicyRun).where(PolicyRun.id == run_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def runs(session: Session, *, limit: int = 100) -> list[PolicyRun]:
    return list(session.scalars(select(PolicyRun).order_by(PolicyRun.id.desc()).limit(limit)))


def approved_after(session: Session, since: dt.datetime) -> list[PolicyRun]:
    """Runs approved after ``since`` (of any entity type: pools and groups may span them)."""
    return list(
        session.scalars(select(PolicyRun).where(PolicyRun.status == "approved", PolicyRun.decided_at > since))
    )


def lock_grants(session: Session) -> None:
    """Serialise the decisions that grant (run approvals, fast applications, upheld appeals), so that
    two of them never both read a budget or stacking state the other is changing. On PostgreSQL a
    transaction-level advisory lock; SQLite already runs one writing transaction at a time."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(7283917)"))


def published_version_numbers(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(PolicyItem.key, PolicyItem.published_version).where(PolicyItem.status == "published")
    )
    return {r[0]: int(r[1]) for r in rows if r[1] is not None}


def proposed_fen(session: Session, run_id: int, item_keys: Sequence[str]) -> int:
    """Fen a computed run would grant for these items on approval."""
    return int(
        session.scalar(
            select(func.coalesce(func.sum(PolicyGrant.amount_fen), 0)).where(
                PolicyGrant.run_id == run_id,
                PolicyGrant.status == "proposed",
                PolicyGrant.result == "eligible",
                PolicyGrant.automatic.is_(True),
                PolicyGrant.item_key.in_(item_keys),
            )
        )
        or 0
    )


def granted_in_group_since(session: Session, run_id: int, item_keys: Sequence[str]) -> bool:
    """Whether a subject this run would grant an item of the group has been granted one elsewhere."""
    mine = aliased(PolicyGrant)
    other = aliased(PolicyGrant)
    found = session.scalar(
        select(func.count())
        .select_from(mine)
        .join(other, other.subject_id == mine.subject_id)
        .where(
            mine.run_id == run_id,
            mine.status == "proposed",
            mine.result == "eligible",
            mine.item_key.in_(item_keys),
            other.run_id != run_id,
            other.status == "granted",
            other.item_key.in_(item_keys),
        )
    )
    return bool(found)


def open_appeal(session: Session, grant_id: int) -> bool:
    return (
        session.scalar(
            select(func.count())
            .select_from(PolicyAppeal)
            .where(PolicyAppeal.grant_id == grant_id, PolicyAppeal.status == "open")
        )
        or 0
    ) > 0


def granted_fen(session: Session, item_keys: Sequence[str]) -> int:
    """Fen granted by approved runs (and upheld appeals) for these items."""
    if not item_keys:
        return 0
    return int(
        session.scalar(
            select(func.coalesce(func.sum(PolicyGrant.amount_fen), 0))
            .join(PolicyRun, PolicyRun.id == PolicyGrant.run_id)
            .where(
                PolicyRun.status == "approved",
                PolicyGrant.status == "granted",
                PolicyGrant.item_key.in_(item_keys),
            )
        )
        or 0
    )


def granted_subjects(
    session: Session, item_keys: Sequence[str], *, before: dt.datetime | None = None
) -> list[tuple[str, str]]:
    """(subject, item) of every standing grant of these items by approved runs (decided before ``before``)."""
    if not item_keys:
        return []
    stmt = (
        select(PolicyGrant.subject_id, PolicyGrant.item_key)
        .join(PolicyRun, PolicyRun.id == PolicyGrant.run_id)
        .where(
            PolicyRun.status == "approved",
            PolicyGrant.status == "granted",
            PolicyGrant.item_key.in_(item_keys),
        )
    )
    if before is not None:
        stmt = stmt.where(PolicyRun.decided_at < before)
    rows = session.execute(stmt)
    return [(r[0], r[1]) for r in rows]


def grant(session: Session, grant_id: int, *, for_update: bool = False) -> PolicyGrant | None:
    stmt = select(PolicyGrant).where(PolicyGrant.id == grant_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def grants_of_run(
    session: Session, run_id: int, *, status: str = "", page: int = 1, per_page: int = 50
) -> tuple[int, list[PolicyGrant]]:
    where = [PolicyGrant.run_id == run_id]
    if status:
        where.append(PolicyGrant.status == status)
    total = session.scalar(select(func.count()).select_from(PolicyGrant).where(*where)) or 0
    rows = session.scalars(
        select(PolicyGrant)
        .where(*where)
        .order_by(PolicyGrant.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return total, list(rows)


def grants_of_subjects(session: Session, subjects: Sequence[str]) -> list[PolicyGrant]:
    """Grants of approved runs for these subjects, newest first."""
    if not subjects:
        return []
    return list(
        session.scalars(
            select(PolicyGrant)
            .join(PolicyRun, PolicyRun.id == PolicyGrant.run_id)
            .where(PolicyRun.status == "approved", PolicyGrant.subject_id.in_(subjects))
            .order_by(PolicyGrant.id.desc())
        )
    )


def set_status_on_approval(session: Session, run_id: int, now: dt.datetime) -> None:
    session.execute(
        update(PolicyGrant)
        .where(
            PolicyGrant.run_id == run_id,
            PolicyGrant.status == "proposed",
            PolicyGrant.result == "eligible",
            PolicyGrant.automatic.is_(True),
        )
        .values(status="granted", decided_at=now)
    )
    session.execute(
        update(PolicyGrant)
        .where(PolicyGrant.run_id == run_id, PolicyGrant.status == "proposed")
        .values(status="noticed", decided_at=now)
    )


def appeals(session: Session, *, status: str = "") -> list[PolicyAppeal]:
    stmt = select(PolicyAppeal).order_by(PolicyAppeal.id)
    if status:
        stmt = stmt.where(PolicyAppeal.status == status)
    return list(session.scalars(stmt))


def appeal(session: Session, appeal_id: int, *, for_update: bool = False) -> PolicyAppeal | None:
    stmt = select(PolicyAppeal).where(PolicyAppeal.id == appeal_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def appeals_of_grants(session: Session, grant_ids: Sequence[int]) -> dict[int, PolicyAppeal]:
    if not grant_ids:
        return {}
    rows = session.scalars(
        select(PolicyAppeal).where(PolicyAppeal.grant_id.in_(grant_ids)).order_by(PolicyAppeal.id)
    )
    return {a.grant_id: a for a in rows}


def variable_set(session: Session, version: int) -> PolicyVariableSet | None:
    return session.scalars(
        select(PolicyVariableSet).where(PolicyVariableSet.version == version)
    ).one_or_none()


def item_version_source(session: Session, key: str, number: int) -> str | None:
    return session.scalar(
        select(PolicyItemVersion.source)
        .join(PolicyItem, PolicyItem.id == PolicyItemVersion.item_id)
        .where(PolicyItem.key == key, PolicyItemVersion.version == number)
    )


# --- subscriptions and push ----------------------------------------------------------------------------


def subscriptions_of(session: Session, account_id: int) -> list[PolicySubscription]:
    return list(
        session.scalars(
            select(PolicySubscription)
            .where(PolicySubscription.account_id == account_id)
            .order_by(PolicySubscription.id)
        )
    )


def subscription(session: Session, subscription_id: int) -> PolicySubscription | None:
    return session.get(PolicySubscription, subscription_id)


def active_subscriptions(
    session: Session, entity: str, *, after_id: int = 0, limit: int = 1000
) -> list[PolicySubscription]:
    return list(
        session.scalars(
            select(PolicySubscription)
            .where(
                PolicySubscription.active.is_(True),
                PolicySubscription.entity == entity,
                PolicySubscription.id > after_id,
            )
            .order_by(PolicySubscription.id)
            .limit(limit)
        )
    )


def unpushed_versions(session: Session) -> list[tuple[PolicyItem, PolicyItemVersion]]:
    rows = session.execute(
        select(PolicyItem, PolicyItemVersion)
        .join(PolicyItemVersion, PolicyItemVersion.item_id == PolicyItem.id)
        .where(PolicyItemVersion.state == "published", PolicyItemVersion.pushed_at.is_(None))
        .order_by(PolicyItemVersion.reviewed_at, PolicyItemVersion.id)
    )
    return [(r[0], r[1]) for r in rows]


def pushed(session: Session, subscription_id: int, key: str, version: int) -> bool:
    return (
        session.scalar(
            select(func.count())
            .select_from(PolicyPush)
            .where(
                PolicyPush.subscription_id == subscription_id,
                PolicyPush.item_key == key,
                PolicyPush.version == version,
            )
        )
        or 0
    ) > 0


def pushes_of(session: Session, account_id: int, *, limit: int = 200) -> list[PolicyPush]:
    return list(
        session.scalars(
            select(PolicyPush)
            .where(PolicyPush.account_id == account_id)
            .order_by(PolicyPush.created_at.desc(), PolicyPush.id.desc())
            .limit(limit)
        )
    )


def push(session: Session, push_id: int) -> PolicyPush | None:
    return session.get(PolicyPush, push_id)


def applications(session: Session, *, status: str = "") -> list[PolicyApplication]:
    stmt = select(PolicyApplication).order_by(PolicyApplication.id)
    if status:
        stmt = stmt.where(PolicyApplication.status == status)
    return list(session.scalars(stmt))


def application(
    session: Session, application_id: int, *, for_update: bool = False
) -> PolicyApplication | None:
    stmt = select(PolicyApplication).where(PolicyApplication.id == application_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def applications_of_grants(session: Session, grant_ids: Sequence[int]) -> dict[int, PolicyApplication]:
    if not grant_ids:
        return {}
    rows = session.scalars(
        select(PolicyApplication)
        .where(PolicyApplication.grant_id.in_(grant_ids))
        .order_by(PolicyApplication.id)
    )
    return {a.grant_id: a for a in rows}  # the latest of each


def snapshots_of_approved_runs(session: Session, entity: str) -> list[str]:
    """Names of the snapshots approved runs of ``entity`` read."""
    rows = session.execute(
        select(PolicySnapshot.name)
        .join(PolicyRun, PolicyRun.snapshot_id == PolicySnapshot.id)
        .where(PolicyRun.entity == entity, PolicyRun.status == "approved")
        .distinct()
    )
    return [r[0] for r in rows]
