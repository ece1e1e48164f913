"""Policy tables (京策): the policy library (documents, their interpretations, policy items and the reviewed
versions of each item's rules, and the variables rules may read; the data snapshots runs read; the runs
that grant benefits without application (免申即享) or push a prefilled fast application (直达快享), with
their grants, notices and appeals; and subscriptions with what was pushed to each.

Rules are stored as the reviewed YAML text of one item per version, so a version is exactly what its
reviewer approved; a run records the digest of every item version and of the variables it read, and the
digest of the data snapshot, so it can be reproduced.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tongban.core.db import Base, JSONType, UTCDateTime

_BigId = BigInteger().with_variant(Integer, "sqlite")


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
    #: When subscribers were told of this version (``tasks.push_new_items``); None: not yet.
    pushed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PolicySnapshot(Base):
    """An immutable snapshot of the shared data (a DuckDB file: a table per entity type, a row per subject
    keyed by the platform's keyed digest of its ID number or credit code) that runs read."""

    __tablename__ = "policy_snapshot"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: The file, relative to ``<data_dir>/policy/snapshots``.
    path: Mapped[str] = mapped_column(String(300))
    #: SHA-256 of the file: a run refuses a snapshot whose file changed.
    digest: Mapped[str] = mapped_column(String(64))
    #: Rows per entity table: ``{"person": 1000000, "enterprise": 100000}``.
    rows: Mapped[dict[str, int]] = mapped_column(JSONType)
    #: Where it came from: ``synthetic seed=1``, an imported file's name.
    source: Mapped[str] = mapped_column(String(300))
    #: The date its facts describe (periods are read back from a run's reference date).
    as_of: Mapped[dt.date] = mapped_column(Date)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class PolicyRun(Base):
    """A 免申即享 / 直达快享 run: published items evaluated over a data snapshot on a reference date."""

    __tablename__ = "policy_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity: Mapped[str] = mapped_column(String(20))
    ref_date: Mapped[dt.date] = mapped_column(Date)
    #: ``computed`` → ``approved`` (grants made, notices pushed) or ``rejected``.
    status: Mapped[str] = mapped_column(String(20), default="computed", index=True)
    #: ``[{key, version, digest}]`` of the items evaluated, and the variables' version and digest.
    rules: Mapped[dict[str, Any]] = mapped_column(JSONType)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("policy_snapshot.id"))
    #: ``{name, digest, rows}`` of the data snapshot read.
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONType)
    #: A checksum over every stored row (subject, item, result, amount, marks, status): what a rerun
    #: must reproduce.
    checksum: Mapped[str] = mapped_column(String(64), default="")
    #: Per item: counts by result, fen totals, budget use, stacking; by district and industry.
    summary: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    decided_by: Mapped[str] = mapped_column(String(64), default="")
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PolicyGrant(Base):
    """One subject's outcome of one item in a run (rows not eligible are not kept)."""

    __tablename__ = "policy_grant"
    __table_args__ = (
        UniqueConstraint("run_id", "subject_id", "item_key", name="uq_policy_grant_run_subject_item"),
        Index("ix_policy_grant_subject", "subject_id"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("policy_run.id", ondelete="CASCADE"), index=True)
    subject_id: Mapped[str] = mapped_column(String(64))
    item_key: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    #: ``eligible`` or ``undetermined``.
    result: Mapped[str] = mapped_column(String(20))
    amount_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: One letter per condition, in the item's order: T (met), F (failed), U (undetermined).
    marks: Mapped[str] = mapped_column(String(100))
    automatic: Mapped[bool] = mapped_column(Boolean)
    #: ``proposed`` → ``granted`` (免申即享) | ``noticed`` (直达快享: a prefilled application pushed);
    #: ``over_budget`` or ``stacked`` (another grant of the stacking group won) stay as such;
    #: ``withdrawn`` after an upheld appeal or a correction.
    status: Mapped[str] = mapped_column(String(20), default="proposed")
    region_code: Mapped[str] = mapped_column(String(12), default="")
    industry_code: Mapped[str] = mapped_column(String(10), default="")
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PolicyAppeal(Base):
    """A person's or enterprise's objection to an automated decision (PIPL art. 24), decided by an officer."""

    __tablename__ = "policy_appeal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("policy_grant.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    #: ``open`` → ``upheld`` or ``dismissed``.
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    decision: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PolicySubscription(Base):
    """A person's or enterprise's subscription to new and amended policies, by tags and (with consent)
    their own facts, which decide whether an item reaches them."""

    __tablename__ = "policy_subscription"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("core_account.id", ondelete="CASCADE"), index=True)
    entity: Mapped[str] = mapped_column(String(20))
    #: ``{"topic": ["养老"], "region": ["110105"], "support": ["奖补"], …}``: every key given must match.
    tags: Mapped[dict[str, list[str]]] = mapped_column(JSONType, default=dict)
    #: The subscriber's facts as the calculator takes them, sealed (personal data); empty: tags only.
    facts_sealed: Mapped[str] = mapped_column(Text, default="")
    #: ``inbox`` always; ``email`` or ``sms`` with ``contact`` (sealed) too.
    channel: Mapped[str] = mapped_column(String(10), default="inbox")
    contact_sealed: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class PolicyPush(Base):
    """An item version pushed to one subscription, once, with the reason."""

    __tablename__ = "policy_push"
    __table_args__ = (
        UniqueConstraint("subscription_id", "item_key", "version", name="uq_policy_push_once"),
        Index("ix_policy_push_account", "account_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("policy_subscription.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("core_account.id", ondelete="CASCADE"))
    item_key: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    #: ``new`` or ``amended`` (a later version of an item pushed before).
    kind: Mapped[str] = mapped_column(String(10))
    #: What the subscriber's facts gave: ``eligible``, ``undetermined`` or ``""`` (tags only).
    result: Mapped[str] = mapped_column(String(20), default="")
    reason: Mapped[str] = mapped_column(Text)
    #: The outbox message id of an email or SMS, if one was sent.
    message_id: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PolicyApplication(Base):
    """A fast application (直达快享) for a noticed benefit: the person supplies only the facts the shared
    data lacked; the rules decide again on the snapshot's facts and these, and an officer verifies the
    supplied facts before the benefit is granted."""

    __tablename__ = "policy_application"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: A refused application may be followed by another: one ``submitted`` at a time (the grant's status).
    grant_id: Mapped[int] = mapped_column(ForeignKey("policy_grant.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: The supplied facts (``{column: value}``), sealed: personal data.
    facts_sealed: Mapped[str] = mapped_column(Text)
    #: The amount the rules computed with the supplied facts.
    amount_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: ``submitted`` → ``approved`` or ``refused``.
    status: Mapped[str] = mapped_column(String(20), default="submitted", index=True)
    decision: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
