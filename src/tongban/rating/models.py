"""Rating tables: the service cases whose quality is measured (one fact row per case), their ratings,
rectification of bad reviews with appeals, indicator targets, alerts and published results.

``rating_case`` is a fact table: every column an indicator needs is on the row, written when the case
closes (and updated when it is rated), so indicators are plain aggregates that run unchanged on SQLite and
PostgreSQL. The ratings themselves (``rating_rating``) are the record; the case carries a copy
of the level for the aggregates, kept in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tongban.core.db import Base, JSONType, UTCDateTime


class Case(Base):
    """A service case that may be rated: an application (办件), a hotline ticket (工单), a consultation
    (咨询) or an in-person visit (现场办事)."""

    __tablename__ = "rating_case"
    __table_args__ = (
        UniqueConstraint("kind", "ref", name="uq_rating_case_kind_ref"),
        Index("ix_rating_case_closed", "closed_on"),
        Index("ix_rating_case_department_closed", "department", "closed_on"),
        Index("ix_rating_case_item_closed", "item_code", "closed_on"),
        Index("ix_rating_case_region_closed", "region_code", "closed_on"),
        Index("ix_rating_case_owner", "owner_account_id", "closed_at"),
        Index("ix_rating_case_parent", "parent_ref"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: ``application``, ``ticket``, ``consultation`` or ``visit``.
    kind: Mapped[str] = mapped_column(String(20))
    #: The case's own number: receipt number, ticket number, conversation id, visit number.
    ref: Mapped[str] = mapped_column(String(64))
    #: The application a visit served (its receipt number), so visits per case can be counted.
    parent_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The account entitled to rate (the applicant, the requester); None: whoever holds the case's number
    #: (an anonymous consultation) or a terminal at the window (a visit).
    owner_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("core_account.id", ondelete="SET NULL"), nullable=True
    )
    item_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    item_name: Mapped[str] = mapped_column(String(200), default="")
    #: The responsible unit (承办单位).
    department: Mapped[str] = mapped_column(String(200), default="")
    region: Mapped[str] = mapped_column(String(200), default="")
    #: GB/T 2260 code of the region (district), when known.
    region_code: Mapped[str | None] = mapped_column(String(12), nullable=True)
    #: How the case came in: ``online`` (portal, app), ``window``, ``terminal``, ``phone``.
    channel: Mapped[str] = mapped_column(String(20))
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The day (city time) it closed, and its month ``YYYY-MM``: the periods indicators group by.
    closed_on: Mapped[dt.date | None] = mapped_column(nullable=True)
    closed_month: Mapped[str | None] = mapped_column(String(7), nullable=True)
    #: How it ended (``approved``, ``refused``, ``not_accepted``, ``answered``, ``solved`` ...).
    outcome: Mapped[str] = mapped_column(String(30), default="")
    #: Promised time limit and the time used, in working days; whether it was kept.
    limit_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    work_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    on_time: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    #: Times the applicant came in person for it (跑动次数).
    visits: Mapped[int] = mapped_column(Integer, default=0)
    materials_total: Mapped[int] = mapped_column(Integer, default=0)
    materials_exempted: Mapped[int] = mapped_column(Integer, default=0)
    #: Pre-check findings at submission, supplementary-material requests (补正), and whether it went
    #: through without either (the first-time pass of the pre-check).
    precheck_findings: Mapped[int] = mapped_column(Integer, default=0)
    supplements: Mapped[int] = mapped_column(Integer, default=0)
    first_pass: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    #: The longest step and its duration in hours (pain points).
    longest_step: Mapped[str] = mapped_column(String(100), default="")
    longest_step_hours: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Durations of every step, ``[{"step", "name", "hours"}]``.
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    #: The rating window and the invitation with its reminders.
    rate_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    invited_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reminders: Mapped[int] = mapped_column(Integer, default=0)
    reminded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The counted rating's level (1 very dissatisfied … 5 very satisfied): the follow-up rating's once
    #: given, else the first; None when unrated or when an appeal struck the rating out.
    level: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: The first rating's level, kept for the bad-review and rectification figures.
    first_level: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Rectification of its bad review: ``open``, ``rectified`` (in time or late) or ``void`` (appeal upheld).
    rectification: Mapped[str | None] = mapped_column(String(20), nullable=True)
    rectified_on_time: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Rating(Base):
    """One rating of a case: the first (``initial``) and, after a rectification, the ``follow_up``."""

    __tablename__ = "rating_rating"
    __table_args__ = (UniqueConstraint("case_id", "round", name="uq_rating_rating_case_round"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("rating_case.id", ondelete="CASCADE"), index=True)
    round: Mapped[str] = mapped_column(String(20))
    #: 1 非常不满意 … 5 非常满意.
    level: Mapped[int] = mapped_column(Integer)
    #: Dimension scores 1–5: ``efficiency``, ``guide``, ``convenience``, ``attitude`` (any may be absent).
    dimensions: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    #: Free text, with identity numbers, phone numbers and addresses of mail masked.
    text: Mapped[str] = mapped_column(Text, default="")
    #: Reasons classified from the text (and the low dimension scores) of a bad review.
    reasons: Mapped[list[str]] = mapped_column(JSONType, default=list)
    #: The rater asked not to be shown to the unit (no return call then).
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    rater_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("core_account.id", ondelete="SET NULL"), nullable=True
    )
    #: ``web``, ``app``, ``terminal``, ``sms``, ``phone``.
    channel: Mapped[str] = mapped_column(String(20))
    #: Struck out of the statistics by an upheld appeal.
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Rectification(Base):
    """The rectification (整改) of a bad review by the responsible unit, with its appeal (申诉复核)."""

    __tablename__ = "rating_rectification"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("rating_case.id", ondelete="CASCADE"), unique=True)
    rating_id: Mapped[int] = mapped_column(ForeignKey("rating_rating.id", ondelete="CASCADE"))
    unit: Mapped[str] = mapped_column(String(200), index=True)
    #: ``open`` → ``contacted`` → ``rectified`` → ``closed``; ``void`` after an upheld appeal.
    state: Mapped[str] = mapped_column(String(20), index=True)
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: The return call is due by the end of this day (None: anonymous, nobody to call).
    contact_due: Mapped[dt.date | None] = mapped_column(nullable=True)
    rectify_due: Mapped[dt.date] = mapped_column()
    contacted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    contact_note: Mapped[str] = mapped_column(Text, default="")
    rectified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    rectify_note: Mapped[str] = mapped_column(Text, default="")
    #: The follow-up rating may be given until then.
    follow_up_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: ``none``, ``pending``, ``upheld`` or ``rejected``.
    appeal: Mapped[str] = mapped_column(String(20), default="none")
    appeal_reason: Mapped[str] = mapped_column(Text, default="")
    appeal_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    appeal_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    appeal_decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    appeal_decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    appeal_note: Mapped[str] = mapped_column(Text, default="")
    #: When the overdue return call or rectification was escalated (once each).
    contact_escalated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    rectify_escalated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)


class RectificationEvent(Base):
    """Every step of a rectification, with who took it and what they wrote."""

    __tablename__ = "rating_rectification_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rectification_id: Mapped[int] = mapped_column(
        ForeignKey("rating_rectification.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(Text, default="")


class Setting(Base):
    """Configurable rules (rating window, reminders, rectification deadlines), one row per key."""

    __tablename__ = "rating_setting"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Target(Base):
    """The band an indicator should stay in, for everyone or one department, item or region."""

    __tablename__ = "rating_target"
    __table_args__ = (UniqueConstraint("indicator", "scope", "scope_value", name="uq_rating_target_scope"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    indicator: Mapped[str] = mapped_column(String(40))
    #: ``all``, ``department``, ``item`` or ``region``.
    scope: Mapped[str] = mapped_column(String(20))
    scope_value: Mapped[str] = mapped_column(String(200), default="")
    low: Mapped[float | None] = mapped_column(nullable=True)
    high: Mapped[float | None] = mapped_column(nullable=True)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Alert(Base):
    """An indicator that left its band in a period (raised once per indicator, scope and period)."""

    __tablename__ = "rating_alert"
    __table_args__ = (
        UniqueConstraint("indicator", "scope", "scope_value", "period", name="uq_rating_alert_period"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    indicator: Mapped[str] = mapped_column(String(40))
    scope: Mapped[str] = mapped_column(String(20))
    scope_value: Mapped[str] = mapped_column(String(200), default="")
    #: ``YYYY-MM``.
    period: Mapped[str] = mapped_column(String(7))
    value: Mapped[float] = mapped_column()
    low: Mapped[float | None] = mapped_column(nullable=True)
    high: Mapped[float | None] = mapped_column(nullable=True)
    raised_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Publication(Base):
    """A period's results as published on the public page (a snapshot: later changes do not alter it)."""

    __tablename__ = "rating_publication"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: ``YYYY-MM``, ``YYYY-Qn`` or ``YYYY``.
    period: Mapped[str] = mapped_column(String(7), unique=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    published_by: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
