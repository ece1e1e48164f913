"""Knowledge tables.

``knowledge_entry`` is one piece of governed knowledge (a policy text, a guide, a FAQ, a service item of the
catalogue); every change is a ``knowledge_version``. Only the active (published) version has passages; they
are what the search index holds. ``knowledge_change`` is the ordered log every node's index follows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tongban.core.db import Base, JSONType, UTCDateTime


class KnowledgeEntry(Base):
    __tablename__ = "knowledge_entry"
    __table_args__ = (
        Index("ix_knowledge_entry_status_kind", "status", "kind"),
        Index("ix_knowledge_entry_status_expires", "status", "expires_on"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The id the source gave (JSONL ``id``, a file path, ``catalog:<code>``); stable across versions.
    external_id: Mapped[str] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(500))
    department: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(1000), default="")
    audiences: Mapped[list[str]] = mapped_column(JSONType, default=list)
    region: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(20), index=True)
    effective_from: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    expires_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    #: Newest version number (any state), the published one, and a draft/in-review one newer than it.
    version: Mapped[int] = mapped_column(Integer)
    published_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pending_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: When an editor last confirmed the content is still right (staleness is measured from here).
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class KnowledgeVersion(Base):
    __tablename__ = "knowledge_version"
    __table_args__ = (UniqueConstraint("entry_id", "version", name="uq_knowledge_version_entry_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("knowledge_entry.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))
    #: The whole editable unit (title, sections, metadata, annotations): ``schemas.EntryContent``.
    content: Mapped[dict[str, Any]] = mapped_column(JSONType)
    content_hash: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    reviewed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class KnowledgePassage(Base):
    """A searchable piece of an entry's published version, with its place in the document."""

    __tablename__ = "knowledge_passage"
    __table_args__ = (UniqueConstraint("entry_id", "seq", name="uq_knowledge_passage_entry_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("knowledge_entry.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    heading: Mapped[str] = mapped_column(String(1000), default="")
    text: Mapped[str] = mapped_column(Text)
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    page: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: SHA-256 of the text the embedding model saw; the key into ``knowledge_embedding``.
    embed_hash: Mapped[str] = mapped_column(String(64))


class KnowledgeEmbedding(Base):
    """Embedding cache: one vector per (model, text hash), so re-ingesting unchanged text costs nothing."""

    __tablename__ = "knowledge_embedding"

    model: Mapped[str] = mapped_column(String(80), primary_key=True)
    text_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class KnowledgeFact(Base):
    """A checkable statement of a published entry: (subject, attribute) = value, e.g. an item's time limit."""

    __tablename__ = "knowledge_fact"
    __table_args__ = (Index("ix_knowledge_fact_subject_attribute", "subject", "attribute"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("knowledge_entry.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(300))
    attribute: Mapped[str] = mapped_column(String(40))
    value: Mapped[str] = mapped_column(String(1000))
    #: The value in a comparable form (digits and units normalised); conflicts compare this.
    normalized: Mapped[str] = mapped_column(String(1000))


class KnowledgeLexicon(Base):
    """The governed lexicon: dictionary terms and synonyms (alias → canonical), proposed then approved."""

    __tablename__ = "knowledge_lexicon"
    __table_args__ = (UniqueConstraint("kind", "term", name="uq_knowledge_lexicon_kind_term"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    term: Mapped[str] = mapped_column(String(100))
    canonical: Mapped[str | None] = mapped_column(String(100), nullable=True)
    state: Mapped[str] = mapped_column(String(20), index=True)
    note: Mapped[str] = mapped_column(String(500), default="")
    proposed_by: Mapped[str] = mapped_column(String(64))
    approved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class KnowledgeChange(Base):
    """The index log: each publish, expiry, withdrawal or lexicon change appends one row, in order."""

    __tablename__ = "knowledge_change"
    #: Sequence numbers never go back, even after the newest row is deleted (SQLite reuses them otherwise).
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 - SQLAlchemy's declarative attribute

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: The entry whose searchable content changed; None for a lexicon change (every node re-tokenises).
    entry_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    action: Mapped[str] = mapped_column(String(20))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class KnowledgeMiss(Base):
    """Questions that found nothing, aggregated by normalised text (personal numbers masked)."""

    __tablename__ = "knowledge_miss"

    query: Mapped[str] = mapped_column(String(200), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime)
