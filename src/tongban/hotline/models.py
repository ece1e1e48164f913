"""Hotline tables (12345, 接诉即办): tickets and their history, the taxonomy, units and the dispatch
catalogue, duplicate proposals, Open311 services and API keys, trained classifier models, settings and
analysis snapshots.

A ticket (工单) carries every column the dispatch, deadline and three-rate queries need, so those are plain
aggregates that run unchanged on SQLite and PostgreSQL. Requesters' contact data are sealed at rest
(:mod:`tongban.core.crypto`); the ticket's history (``hotline_event``) records every action with its actor.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tongban.core.db import Base, JSONType, UTCDateTime


class Category(Base):
    """A node of the city's three-level taxonomy of requests (一级/二级/三级分类), stored as full paths."""

    __tablename__ = "hotline_category"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: ``level1/level2/level3``: the code tickets and rules refer to.
    path: Mapped[str] = mapped_column(String(300), unique=True)
    level1: Mapped[str] = mapped_column(String(100))
    level2: Mapped[str] = mapped_column(String(100), default="")
    level3: Mapped[str] = mapped_column(String(100), default="")
    #: English label of the path, when the city gives one.
    label_en: Mapped[str] = mapped_column(String(300), default="")
    #: The deadline class its tickets get unless urgency says otherwise: ``ordinary``, ``utility``
    #: (water, power, gas, heating: 24 hours by default) or ``complex``.
    deadline_class: Mapped[str] = mapped_column(String(20), default="ordinary")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Unit(Base):
    """A unit that handles tickets (承办单位): a department, a district, a street office, a utility."""

    __tablename__ = "hotline_unit"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200), default="")
    #: ``department``, ``district``, ``street`` or ``enterprise`` (a utility or a public company).
    kind: Mapped[str] = mapped_column(String(20), default="department")
    #: GB/T 2260 code of the area it covers (a district's fallback role is found by it).
    region_code: Mapped[str | None] = mapped_column(String(12), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class DispatchRule(Base):
    """A line of the dispatch catalogue (派单目录): category (a path or a prefix of one) × region → the lead
    unit and helpers. The most specific category wins, then the most specific region."""

    __tablename__ = "hotline_dispatch_rule"
    __table_args__ = (
        UniqueConstraint("category_path", "region_code", name="uq_hotline_dispatch_rule_scope"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: ``level1``, ``level1/level2`` or a full path.
    category_path: Mapped[str] = mapped_column(String(300))
    #: A region code or a prefix of one (``1101`` a city, ``110105`` a district); ``""``: anywhere.
    region_code: Mapped[str] = mapped_column(String(12), default="")
    lead_unit: Mapped[str] = mapped_column(ForeignKey("hotline_unit.code"))
    helper_units: Mapped[list[str]] = mapped_column(JSONType, default=list)
    note: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Ticket(Base):
    """A request to the hotline (工单), from any channel."""

    __tablename__ = "hotline_ticket"
    __table_args__ = (
        Index("ix_hotline_ticket_status_due", "status", "due_at"),
        Index("ix_hotline_ticket_unit_status", "lead_unit", "status"),
        Index("ix_hotline_ticket_created", "created_at"),
        Index("ix_hotline_ticket_region_created", "region_code", "created_at"),
        Index("ix_hotline_ticket_service_created", "service_code", "created_at"),
        Index("ix_hotline_ticket_updated", "updated_at"),
        Index("ix_hotline_ticket_requester", "requester_account_id", "created_at"),
        Index("ix_hotline_ticket_merged_into", "merged_into_id"),
        Index("ix_hotline_ticket_place_created", "place_key", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The ticket number citizens and Open311 clients see (``service_request_id``): ``YYYYMMDD`` + id.
    ref: Mapped[str | None] = mapped_column(String(32), unique=True, nullable=True)
    #: ``phone``, ``web``, ``app``, ``consult`` (hand-off from the consultation service), ``open311``,
    #: ``wechat``, ``email``.
    channel: Mapped[str] = mapped_column(String(20))
    #: 诉求类型: ``complaint``, ``request``, ``consultation``, ``suggestion``, ``report``, ``praise``.
    request_type: Mapped[str] = mapped_column(String(20), default="request")
    #: The signed-in account that filed it (web, app), if any.
    requester_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("core_account.id", ondelete="SET NULL"), nullable=True
    )
    #: ``{"name", "phone", "email", "device_id"}`` as JSON, sealed; ``""`` when anonymous.
    contact_sealed: Mapped[str] = mapped_column(Text, default="")
    #: Masked phone (``138****5678``) for lists and searches without opening the seal.
    contact_hint: Mapped[str] = mapped_column(String(40), default="")
    #: Keyed digest of the phone number, to find a requester's earlier tickets.
    phone_digest: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    #: An enterprise's request (企业诉求): its own queue and faster limits.
    enterprise: Mapped[bool] = mapped_column(Boolean, default=False)
    enterprise_name: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(String(300), default="")
    #: What the requester said, personal numbers masked.
    body: Mapped[str] = mapped_column(Text)
    address: Mapped[str] = mapped_column(String(500), default="")
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: GB/T 2260 code of the district, from the form, the address or the coordinates.
    region_code: Mapped[str | None] = mapped_column(String(12), nullable=True)
    #: Where, for hotspots: a grid cell of about 500 m (coordinates) or the normalised address's road.
    place_key: Mapped[str] = mapped_column(String(120), default="")
    #: Open311 service code the request came with (or that its category maps to).
    service_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: Open311 ``attributes`` answered for the service definition, and ``media_url``.
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    media_url: Mapped[str] = mapped_column(String(1000), default="")
    #: The taxonomy path (``level1/level2/level3`` or a prefix) and whether an operator confirmed it.
    category_path: Mapped[str] = mapped_column(String(300), default="")
    category_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The classifier's suggestion at intake, with its confidence (kept to measure corrections).
    suggested_path: Mapped[str] = mapped_column(String(300), default="")
    suggested_confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: ``emergency``, ``ordinary`` or ``complex``, set by the operator.
    urgency: Mapped[str] = mapped_column(String(20), default="ordinary")
    #: ``emergency``, ``utility``, ``ordinary`` or ``complex``: what the deadlines were set from.
    deadline_class: Mapped[str] = mapped_column(String(20), default="ordinary")
    #: ``received`` → ``dispatched`` → ``signed`` → ``replied`` → ``closed``; also ``return_requested``,
    #: ``answered`` (answered directly, 直接答复), ``merged`` (into another ticket), ``cancelled``.
    status: Mapped[str] = mapped_column(String(20), default="received")
    lead_unit: Mapped[str | None] = mapped_column(ForeignKey("hotline_unit.code"), nullable=True)
    helper_units: Mapped[list[str]] = mapped_column(JSONType, default=list)
    #: Times it was dispatched (改派 and reopening count) and reopened after a return visit.
    dispatch_count: Mapped[int] = mapped_column(Integer, default=0)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: First contact with the requester must happen by ``respond_by``; the reply by ``due_at``.
    respond_by: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    signed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    responded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Whether the unit responded in time (响应率) and replied in time; None until known.
    responded_on_time: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    replied_on_time: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    warned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    escalated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    replied_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The unit's (or the operator's direct) answer, as the requester reads it.
    reply: Mapped[str] = mapped_column(Text, default="")
    #: The unit that replied (the lead unit at that time): what the three rates are counted against.
    replied_by_unit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The return visit (回访): solved or not, satisfaction 1–5, when; the latest round.
    revisited_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    satisfaction: Mapped[int | None] = mapped_column(Integer, nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("hotline_ticket.id"), nullable=True)
    #: Open311 token handed back on POST (a client may poll ``tokens/{token}``).
    token: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    #: The API key a request came through (Open311).
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("hotline_api_key.id"), nullable=True)
    #: A consultation handed off (its conversation id's digest), when the ticket came from one.
    source_ref: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: Optimistic concurrency (``If-Match``): bumped by every change.
    version: Mapped[int] = mapped_column(Integer, default=1)


class Event(Base):
    """One action on a ticket: the full history (受理, 派单, 签收, 退单, 改派, 回复, 回访, 并单 ...)."""

    __tablename__ = "hotline_event"
    __table_args__ = (Index("ix_hotline_event_ticket", "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("hotline_ticket.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: Username of the actor, ``system`` for jobs, ``requester`` for the requester.
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    status_from: Mapped[str] = mapped_column(String(20), default="")
    status_to: Mapped[str] = mapped_column(String(20), default="")
    unit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The note, reason or reply text (personal numbers masked).
    note: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: Whether the requester (and Open311 ``extensions``) may see it.
    public: Mapped[bool] = mapped_column(Boolean, default=False)


class Attachment(Base):
    """A file attached to a ticket (a photo of the problem, a document of the reply), sealed in the file
    store."""

    __tablename__ = "hotline_attachment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("hotline_ticket.id", ondelete="CASCADE"), index=True)
    file_key: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    #: ``requester`` or ``unit``.
    added_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Duplicate(Base):
    """A proposal that ``ticket`` reports the same problem as ``original`` (重复诉求), and its decision."""

    __tablename__ = "hotline_duplicate"
    __table_args__ = (UniqueConstraint("ticket_id", "original_id", name="uq_hotline_duplicate_pair"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("hotline_ticket.id", ondelete="CASCADE"), index=True)
    original_id: Mapped[int] = mapped_column(ForeignKey("hotline_ticket.id", ondelete="CASCADE"), index=True)
    score: Mapped[float] = mapped_column(Float)
    #: ``{"text": 0.8, "distance_m": 40, "hours": 3.5, "same_category": true}``.
    reasons: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: ``proposed``, ``merged`` or ``dismissed``.
    status: Mapped[str] = mapped_column(String(20), default="proposed")
    decided_by: Mapped[str] = mapped_column(String(100), default="")
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Service(Base):
    """An Open311 service (a request type clients may file), mapped to a taxonomy path."""

    __tablename__ = "hotline_service"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    group: Mapped[str] = mapped_column(String(200), default="")
    #: Comma-separated keywords (the spec's ``keywords``).
    keywords: Mapped[str] = mapped_column(String(500), default="")
    category_path: Mapped[str] = mapped_column(String(300), default="")
    #: The service definition's attributes (the spec's ``attributes`` list); ``metadata`` is true when any.
    attributes: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ApiKey(Base):
    """An Open311 API key, issued to a client by an administrator; only its digest is stored."""

    __tablename__ = "hotline_api_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The first characters of the key, shown in lists so an administrator can tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    #: Requests per minute this key may make.
    rate_per_minute: Mapped[int] = mapped_column(Integer, default=60)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_by: Mapped[str] = mapped_column(String(100), default="")
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ApiKeyWindow(Base):
    """Requests made with a key in one minute (rate limiting shared by every worker)."""

    __tablename__ = "hotline_api_key_window"

    key_id: Mapped[int] = mapped_column(
        ForeignKey("hotline_api_key.id", ondelete="CASCADE"), primary_key=True
    )
    #: The minute, as seconds since the epoch divided by 60.
    minute: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class Example(Base):
    """A labelled text the classifier learns from besides confirmed tickets (an imported labelled set)."""

    __tablename__ = "hotline_example"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Where it came from and its id there (``labelled.jsonl:37042``); unique so imports are idempotent.
    source: Mapped[str] = mapped_column(String(200), unique=True)
    subject: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text)
    category_path: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Model(Base):
    """A trained classifier (see :mod:`tongban.hotline.classifier`); the newest active one is used."""

    __tablename__ = "hotline_model"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(100))
    #: Training rows: imported examples and confirmed tickets, and the newest ticket id it saw.
    examples: Mapped[int] = mapped_column(Integer)
    tickets: Mapped[int] = mapped_column(Integer)
    last_ticket_id: Mapped[int] = mapped_column(Integer, default=0)
    labels: Mapped[list[str]] = mapped_column(JSONType, default=list)
    #: Cross-validated accuracy and macro-F1 on its own training rows, when measured.
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Setting(Base):
    """A hotline rule the centre configures (deadlines, warnings, duplicate window, rate weights)."""

    __tablename__ = "hotline_setting"

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONType)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(100))


class Snapshot(Base):
    """A stored result of an analysis job (hotspots, the sentiment index) for a period, reproducible from
    its parameters."""

    __tablename__ = "hotline_snapshot"
    __table_args__ = (UniqueConstraint("kind", "period", name="uq_hotline_snapshot_kind_period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: ``hotspots`` or ``index``.
    kind: Mapped[str] = mapped_column(String(20))
    #: ``YYYY-MM-DD`` (a day), ``YYYY-Www`` (a week) or ``YYYY-MM`` (a month).
    period: Mapped[str] = mapped_column(String(10))
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    computed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: Seconds the computation took.
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
