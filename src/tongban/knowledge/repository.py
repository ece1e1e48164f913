"""All SQL of the knowledge domain."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from tongban.knowledge.models import (
    KnowledgeChange,
    KnowledgeEmbedding,
    KnowledgeEntry,
    KnowledgeFact,
    KnowledgeLexicon,
    KnowledgeMiss,
    KnowledgePassage,
    KnowledgeVersion,
)


@dataclass(frozen=True)
class EntryFilter:
    status: str | None = None
    kind: str | None = None
    department: str | None = None
    text: str | None = None


def get_entry(session: Session, external_id: str, *, for_update: bool = False) -> KnowledgeEntry | None:
    stmt = select(KnowledgeEntry).where(KnowledgeEntry.external_id == external_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def get_entry_by_id(session: Session, entry_id: int) -> KnowledgeEntry | None:
    return session.get(KnowledgeEntry, entry_id)


def entries_by_id(session: Session, ids: Iterable[int]) -> dict[int, KnowledgeEntry]:
    id_list = list(ids)
    if not id_list:
        return {}
    rows = session.scalars(select(KnowledgeEntry).where(KnowledgeEntry.id.in_(id_list)))
    return {r.id: r for r in rows}


def add(session: Session, row: object) -> None:
    session.add(row)
    session.flush()


def list_entries(
    session: Session, f: EntryFilter, *, offset: int, limit: int
) -> tuple[list[KnowledgeEntry], int]:
    stmt = select(KnowledgeEntry)
    if f.status:
        stmt = stmt.where(KnowledgeEntry.status == f.status)
    if f.kind:
        stmt = stmt.where(KnowledgeEntry.kind == f.kind)
    if f.department:
        stmt = stmt.where(KnowledgeEntry.department == f.department)
    if f.text:
        like = f"%{f.text.replace('%', '').replace('_', '')}%"
        stmt = stmt.where(KnowledgeEntry.title.like(like) | KnowledgeEntry.external_id.like(like))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(KnowledgeEntry.updated_at.desc(), KnowledgeEntry.id.desc()).offset(offset).limit(limit)
    )
    return list(rows), total


def get_version(session: Session, entry_id: int, version: int) -> KnowledgeVersion | None:
    return session.scalars(
        select(KnowledgeVersion).where(
            KnowledgeVersion.entry_id == entry_id, KnowledgeVersion.version == version
        )
    ).one_or_none()


def list_versions(session: Session, entry_id: int) -> list[KnowledgeVersion]:
    return list(
        session.scalars(
            select(KnowledgeVersion)
            .where(KnowledgeVersion.entry_id == entry_id)
            .order_by(KnowledgeVersion.version.desc())
        )
    )


def replace_passages(session: Session, entry_id: int, passages: Sequence[KnowledgePassage]) -> None:
    session.execute(delete(KnowledgePassage).where(KnowledgePassage.entry_id == entry_id))
    session.add_all(passages)
    session.flush()


def delete_passages(session: Session, entry_id: int) -> None:
    session.execute(delete(KnowledgePassage).where(KnowledgePassage.entry_id == entry_id))


def passages_of(session: Session, entry_ids: Sequence[int]) -> list[KnowledgePassage]:
    if not entry_ids:
        return []
    return list(
        session.scalars(
            select(KnowledgePassage)
            .where(KnowledgePassage.entry_id.in_(entry_ids))
            .order_by(KnowledgePassage.entry_id, KnowledgePassage.seq)
        )
    )


def replace_facts(session: Session, entry_id: int, facts: Sequence[KnowledgeFact]) -> None:
    session.execute(delete(KnowledgeFact).where(KnowledgeFact.entry_id == entry_id))
    session.add_all(facts)
    session.flush()


def delete_facts(session: Session, entry_id: int) -> None:
    session.execute(delete(KnowledgeFact).where(KnowledgeFact.entry_id == entry_id))


def conflicting_facts(session: Session) -> list[tuple[str, str, str, str, str]]:
    """(subject, attribute, normalized, value, external_id) of facts whose subject+attribute disagree."""
    disagreeing = (
        select(KnowledgeFact.subject, KnowledgeFact.attribute)
        .join(KnowledgeEntry, KnowledgeEntry.id == KnowledgeFact.entry_id)
        .where(KnowledgeEntry.status == "published")
        .group_by(KnowledgeFact.subject, KnowledgeFact.attribute)
        .having(func.count(func.distinct(KnowledgeFact.normalized)) > 1)
        .subquery()
    )
    rows = session.execute(
        select(
            KnowledgeFact.subject,
            KnowledgeFact.attribute,
            KnowledgeFact.normalized,
            KnowledgeFact.value,
            KnowledgeEntry.external_id,
        )
        .join(KnowledgeEntry, KnowledgeEntry.id == KnowledgeFact.entry_id)
        .join(
            disagreeing,
            (disagreeing.c.subject == KnowledgeFact.subject)
            & (disagreeing.c.attribute == KnowledgeFact.attribute),
        )
        .where(KnowledgeEntry.status == "published")
        .order_by(KnowledgeFact.subject, KnowledgeFact.attribute, KnowledgeEntry.external_id)
    )
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


# -- embeddings ---------------------------------------------------------------------------------------


def cached_vectors(session: Session, model: str, hashes: Iterable[str]) -> dict[str, bytes]:
    wanted = list(dict.fromkeys(hashes))
    out: dict[str, bytes] = {}
    for i in range(0, len(wanted), 500):
        chunk = wanted[i : i + 500]
        rows = session.execute(
            select(KnowledgeEmbedding.text_hash, KnowledgeEmbedding.vector).where(
                KnowledgeEmbedding.model == model, KnowledgeEmbedding.text_hash.in_(chunk)
            )
        )
        out.update({h: v for h, v in rows})
    return out


def store_vectors(session: Session, model: str, vectors: dict[str, bytes]) -> None:
    existing = cached_vectors(session, model, vectors)
    session.add_all(
        KnowledgeEmbedding(model=model, text_hash=h, vector=v)
        for h, v in vectors.items()
        if h not in existing
    )
    session.flush()


def passages_missing_vectors(session: Session, model: str, limit: int) -> list[KnowledgePassage]:
    """Published passages with no cached vector for ``model``."""
    return list(
        session.scalars(
            select(KnowledgePassage)
            .outerjoin(
                KnowledgeEmbedding,
                (KnowledgeEmbedding.text_hash == KnowledgePassage.embed_hash)
                & (KnowledgeEmbedding.model == model),
            )
            .where(KnowledgeEmbedding.text_hash.is_(None))
            .limit(limit)
        )
    )


# -- index log ----------------------------------------------------------------------------------------


def log_change(session: Session, entry_id: int | None, action: str, at: dt.datetime) -> None:
    session.add(KnowledgeChange(entry_id=entry_id, action=action, at=at))
    session.flush()


def last_change(session: Session) -> int:
    return int(session.scalar(select(func.max(KnowledgeChange.seq))) or 0)


def changes_since(session: Session, seq: int) -> list[KnowledgeChange]:
    return list(
        session.scalars(
            select(KnowledgeChange).where(KnowledgeChange.seq > seq).order_by(KnowledgeChange.seq)
        )
    )


def published_entries(session: Session) -> list[KnowledgeEntry]:
    return list(session.scalars(select(KnowledgeEntry).where(KnowledgeEntry.status == "published")))


# -- operations ---------------------------------------------------------------------------------------


def stale_entries(session: Session, before: dt.datetime, limit: int) -> list[KnowledgeEntry]:
    reviewed = func.coalesce(KnowledgeEntry.reviewed_at, KnowledgeEntry.published_at)
    return list(
        session.scalars(
            select(KnowledgeEntry)
            .where(KnowledgeEntry.status == "published", reviewed < before)
            .order_by(reviewed)
            .limit(limit)
        )
    )


def expiring_entries(session: Session, until: dt.date, limit: int) -> list[KnowledgeEntry]:
    return list(
        session.scalars(
            select(KnowledgeEntry)
            .where(
                KnowledgeEntry.status == "published",
                KnowledgeEntry.expires_on.is_not(None),
                KnowledgeEntry.expires_on <= until,
            )
            .order_by(KnowledgeEntry.expires_on)
            .limit(limit)
        )
    )


def due_to_expire(session: Session, today: dt.date) -> list[KnowledgeEntry]:
    return list(
        session.scalars(
            select(KnowledgeEntry)
            .where(
                KnowledgeEntry.status == "published",
                KnowledgeEntry.expires_on.is_not(None),
                KnowledgeEntry.expires_on < today,
            )
            .with_for_update()
        )
    )


def in_review(session: Session, limit: int) -> list[KnowledgeEntry]:
    return list(
        session.scalars(
            select(KnowledgeEntry)
            .join(
                KnowledgeVersion,
                (KnowledgeVersion.entry_id == KnowledgeEntry.id)
                & (KnowledgeVersion.version == KnowledgeEntry.pending_version),
            )
            .where(KnowledgeVersion.state == "in_review")
            .order_by(KnowledgeEntry.updated_at)
            .limit(limit)
        )
    )


def record_miss(session: Session, query: str, at: dt.datetime) -> None:
    row = session.get(KnowledgeMiss, query, with_for_update=True)
    if row is None:
        session.add(KnowledgeMiss(query=query, count=1, first_seen=at, last_seen=at))
    else:
        row.count += 1
        row.last_seen = at
    session.flush()


def top_misses(session: Session, limit: int) -> list[KnowledgeMiss]:
    return list(
        session.scalars(
            select(KnowledgeMiss)
            .order_by(KnowledgeMiss.count.desc(), KnowledgeMiss.last_seen.desc())
            .limit(limit)
        )
    )


def status_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(KnowledgeEntry.status, func.count()).group_by(KnowledgeEntry.status))
    return {r[0]: int(r[1]) for r in rows}


# -- lexicon ------------------------------------------------------------------------------------------


def lexicon_rows(session: Session, state: str | None = None) -> list[KnowledgeLexicon]:
    stmt = select(KnowledgeLexicon).order_by(KnowledgeLexicon.kind, KnowledgeLexicon.term)
    if state:
        stmt = stmt.where(KnowledgeLexicon.state == state)
    return list(session.scalars(stmt))


def lexicon_row(session: Session, kind: str, term: str) -> KnowledgeLexicon | None:
    return session.scalars(
        select(KnowledgeLexicon).where(KnowledgeLexicon.kind == kind, KnowledgeLexicon.term == term)
    ).one_or_none()


def lexicon_by_id(session: Session, row_id: int, *, for_update: bool = False) -> KnowledgeLexicon | None:
    return session.get(KnowledgeLexicon, row_id, with_for_update=for_update)


def passage_total(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(KnowledgePassage)) or 0)


def all_embed_hashes(session: Session) -> list[str]:
    return list(session.scalars(select(KnowledgePassage.embed_hash).distinct()))
