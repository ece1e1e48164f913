"""Policy tables (京策): the policy library (documents, their interpretations, policy items and the reviewed
versions of each item's rules, and the variables rules may read.

Rules are stored as the reviewed YAML text of one item per version, so a version is exactly what its
reviewer approved, and its digest is what a run of it records.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tongban.core.db import Base, JSONType, UTCDateTime


class PolicyDocument(Base):
    """A policy document (政策文件) with its lifecycle: drafting → review → published → amended | repealed."""

    __tablename__ = "policy_document"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The document number (文号), e.g. ``京政办发〔2020〕5号``; what items and citations refer to.
    code: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    title_en: Mapped[str] = mapped_column(String(500), default="")
    #: ``national``, ``city``, ``district`` or ``street``.
    level: Mapped[str] = mapped_column(String(20))
    department: Mapped[str] = mapped_column(String(200))
    #: GB/T 2260 code of the area the document applies to.
    region_code: Mapped[str] = mapped_column(String(12), default="")
    issued_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    effective_from: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    effective_to: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="drafting", index=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text)
    #: The code of the document this one amends (its status becomes ``amended`` when this one is published).
    amends: Mapped[str | None] = mapped_column(String(100), nullable=True)
    #: The code of the document that amended this one.
    amended_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    submitted_by: Mapped[str] = mapped_column(String(64), default="")
    published_by: Mapped[str] = mapped_column(String(64), default="")
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    repealed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Optimistic concurrency: bumped by every change (``If-Match``).
    revision: Mapped[int] = mapped_column(Integer, default=1)


class PolicyInterpretation(Base):
    """An interpretation (政策解读) of a document: the issuing department's own, a media or a graphic one."""

    __tablename__ = "policy_interpretation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("policy_document.id", ondelete="CASCADE"), index=True)
    #: ``official`` (部门解读), ``expert``, ``media`` or ``qa`` (问答).
    kind: Mapped[str] = mapped_column(String(20), default="official")
    title: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(1000), default="")
    published_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class PolicyVariableSet(Base):
    """A version of the variables rules may read (the city's data dictionary), as reviewed YAML."""

    __tablename__ = "policy_variable_set"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    source: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text, default="")


class PolicyItem(Base):
    """A policy item (政策事项: 减免, 奖补, 权益, 资质): what the public sees, with its published version."""

    __tablename__ = "policy_item"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The rule's id (``smb-rent-subsidy``).
    key: Mapped[str] = mapped_column(String(64), unique=True)
    document_code: Mapped[str] = mapped_column(String(100), index=True)
    entity: Mapped[str] = mapped_column(String(20))
    support: Mapped[str] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(String(300))
    title_en: Mapped[str] = mapped_column(String(300), default="")
    #: ``draft`` (never published), ``published`` or ``retired``.
    status: Mapped[str] = mapped_column(String(20), default="draft", index=True)
    published_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Tags derived from the published rules (audience, region, industry, support, grant, topic).
    tags: Mapped[dict[str, list[str]]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class PolicyItemVersion(Base):
    """One version of an item's rules: draft → review → published → superseded (or rejected)."""

    __tablename__ = "policy_item_version"
    __table_args__ = (UniqueConstraint("item_id", "version", name="uq_policy_item_version_item_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("policy_item.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    #: The item as YAML (one item of a rule file), exactly as written and reviewed.
    source: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20), default="draft")
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    submitted_by: Mapped[str] = mapped_column(String(64), default="")
    reviewed_by: Mapped[str] = mapped_column(String(64), default="")
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
