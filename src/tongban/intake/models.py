"""Intake tables: profiles (一人一档, 一企一档) with sourced data, consents, and e-licence records.

Personal values are sealed at rest (:mod:`tongban.core.crypto`); identities are found by keyed digests.
A datum is never updated in place: a new value supersedes the old one, so a profile's history shows
where every value came from and when.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from tongban.core.db import Base, JSONType, UTCDateTime


class Profile(Base):
    __tablename__ = "intake_profile"
    __table_args__ = (
        UniqueConstraint("kind", "subject_digest", name="uq_intake_profile_kind_subject"),
        Index("ix_intake_profile_owner_kind", "owner_account_id", "kind"),
        # An account has one person profile (a race of two first visits cannot make two).
        Index(
            "uq_intake_profile_person_owner",
            "owner_account_id",
            unique=True,
            sqlite_where=text("kind = 'person'"),
            postgresql_where=text("kind = 'person'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: ``person`` or ``enterprise``.
    kind: Mapped[str] = mapped_column(String(20))
    #: Keyed digest of the ID number or unified social credit code, once known (finds the profile from
    #: shared data and e-licences without storing the identifier in clear).
    subject_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The account that acts for this profile: the person, or the enterprise's representative.
    owner_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("core_account.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ProfileDatum(Base):
    __tablename__ = "intake_profile_datum"
    __table_args__ = (Index("ix_intake_profile_datum_current", "profile_id", "key", "superseded_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("intake_profile.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    #: The JSON-encoded value, sealed.
    value_sealed: Mapped[str] = mapped_column(Text)
    #: ``applicant``, ``e_licence``, ``shared_data`` or ``officer``.
    source: Mapped[str] = mapped_column(String(20))
    #: The e-licence type or shared-data item the value came from.
    source_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    recorded_by: Mapped[str] = mapped_column(String(64))
    superseded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Consent(Base):
    """The profile holder's consent to one purpose of use of their data; revocable at any time."""

    __tablename__ = "intake_consent"
    __table_args__ = (Index("ix_intake_consent_profile_purpose", "profile_id", "purpose"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("intake_profile.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(40))
    granted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    granted_by: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ELicence(Base):
    """A record of an electronic licence or certificate (电子证照) held by a profile.

    Issuing and verifying licences comes later; the record is what exemption needs: who holds which
    type, its number, issuer and validity.
    """

    __tablename__ = "intake_elicence"
    __table_args__ = (
        UniqueConstraint("licence_type", "number_digest", name="uq_intake_elicence_type_number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder_profile_id: Mapped[int] = mapped_column(
        ForeignKey("intake_profile.id", ondelete="CASCADE"), index=True
    )
    #: The licence type, as catalogue materials name it in ``source_ref`` (居民身份证, 营业执照 ...).
    licence_type: Mapped[str] = mapped_column(String(200))
    #: The licence number, sealed (for an identity card it is the ID number), and its lookup digest.
    number_sealed: Mapped[str] = mapped_column(Text)
    number_digest: Mapped[str] = mapped_column(String(64))
    issuer: Mapped[str] = mapped_column(String(200))
    issued_on: Mapped[dt.date] = mapped_column()
    valid_until: Mapped[dt.date | None] = mapped_column(nullable=True)
    #: ``valid`` or ``revoked``; expiry is computed from ``valid_until``.
    status: Mapped[str] = mapped_column(String(20))
    #: What the licence states (its fields, JSON), sealed.
    data_sealed: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    recorded_by: Mapped[str] = mapped_column(String(64))


class IntakeForm(Base):
    """A version of a service item's application form (a :class:`tongban.intake.formdef.FormDefinition`)."""

    __tablename__ = "intake_form"
    __table_args__ = (
        UniqueConstraint("item_code", "version", name="uq_intake_form_item_version"),
        # One published version per item, even when two publishers act at once.
        Index(
            "uq_intake_form_published",
            "item_code",
            unique=True,
            sqlite_where=text("state = 'published'"),
            postgresql_where=text("state = 'published'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_code: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, object]] = mapped_column(JSONType)
    #: ``draft``, ``published`` (the one applicants get; at most one per item) or ``retired``.
    state: Mapped[str] = mapped_column(String(20))
    author: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    published_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Upload(Base):
    """A file an applicant uploaded, sealed on disk; attached to an application when it is submitted.

    Uploads not attached within the retention window are swept (rows and files).
    """

    __tablename__ = "intake_upload"
    __table_args__ = (Index("ix_intake_upload_owner_attached", "owner_account_id", "application_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_account_id: Mapped[int] = mapped_column(ForeignKey("core_account.id", ondelete="CASCADE"))
    application_id: Mapped[int | None] = mapped_column(
        ForeignKey("intake_application.id", ondelete="CASCADE"), nullable=True, index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    #: Pages of a PDF, when it could be read.
    pages: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: What the file checks found: ``readable``, ``blank``, ``text_chars`` ...
    checks: Mapped[dict[str, object]] = mapped_column(JSONType, default=dict)
    #: Extracted text (sealed), for the pre-check "the material mentions the applicant".
    text_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Application(Base):
    """One submitted application (办件) for one service item."""

    __tablename__ = "intake_application"
    __table_args__ = (
        Index("ix_intake_application_applicant", "applicant_account_id", "submitted_at"),
        Index("ix_intake_application_item_status", "item_code", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The receipt number (受理编号) the applicant quotes.
    receipt_no: Mapped[str] = mapped_column(String(32), unique=True)
    item_code: Mapped[str] = mapped_column(String(64))
    item_name: Mapped[str] = mapped_column(String(200))
    department: Mapped[str] = mapped_column(String(200))
    form_id: Mapped[int] = mapped_column(ForeignKey("intake_form.id"))
    applicant_account_id: Mapped[int] = mapped_column(ForeignKey("core_account.id"))
    profile_id: Mapped[int | None] = mapped_column(ForeignKey("intake_profile.id"), nullable=True)
    #: The normalised form values (JSON), sealed.
    values_sealed: Mapped[str] = mapped_column(Text)
    #: The pre-check's findings at submission (warnings only: errors block submission).
    findings: Mapped[list[dict[str, object]]] = mapped_column(JSONType, default=list)
    #: Each catalogue material with its status (exempt, uploaded, ...).
    materials: Mapped[list[dict[str, object]]] = mapped_column(JSONType, default=list)
    status: Mapped[str] = mapped_column(String(30))
    #: The BPMN definition the application runs (``standard`` or an item's own) and the serialised instance.
    process_name: Mapped[str] = mapped_column(String(64), default="standard")
    process_state: Mapped[str] = mapped_column(Text, default="")
    #: The promised time limit (from the catalogue at submission) and the day the clock started (受理).
    limit_value: Mapped[int | None] = mapped_column(Integer, nullable=True)
    limit_unit: Mapped[str | None] = mapped_column(String(20), nullable=True)
    accepted_on: Mapped[dt.date | None] = mapped_column(nullable=True)
    #: The item's own published process definition it runs (None: the standard process).
    item_process_id: Mapped[int | None] = mapped_column(ForeignKey("intake_item_process.id"), nullable=True)
    #: The bundle application (高效办成一件事) this application is a part of, if any.
    bundle_application_id: Mapped[int | None] = mapped_column(
        ForeignKey("intake_bundle_application.id", name="fk_intake_application_bundle"),
        nullable=True,
        index=True,
    )
    #: When the overdue application was escalated to the supervisor (once).
    escalated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)


class ApplicationEvent(Base):
    """Every status change of an application, timestamped, with who did it and why."""

    __tablename__ = "intake_application_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("intake_application.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[str | None] = mapped_column(String(30), nullable=True)
    to_status: Mapped[str] = mapped_column(String(30))
    note: Mapped[str] = mapped_column(String(2000), default="")


class WorkItem(Base):
    """A step of an application's process waiting for someone (the officers' work list)."""

    __tablename__ = "intake_work_item"
    __table_args__ = (Index("ix_intake_work_item_role_ready", "role", "ready_at"),)

    task_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("intake_application.id", ondelete="CASCADE"), index=True
    )
    step: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    #: The lane of the step: ``window``, ``reviewer``, ``decider``, ``applicant`` or an item's own.
    role: Mapped[str] = mapped_column(String(64))
    ready_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Suspension(Base):
    """A period the time limit does not run (补正, 听证, 专家评审, 现场勘验 ...)."""

    __tablename__ = "intake_suspension"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("intake_application.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    note: Mapped[str] = mapped_column(String(2000), default="")
    started_by: Mapped[str] = mapped_column(String(64))


class ItemSetting(Base):
    """Intake settings of a service item: the special procedures that may suspend its time limit."""

    __tablename__ = "intake_item_setting"

    item_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    special_procedures: Mapped[list[str]] = mapped_column(JSONType, default=list)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ReceiptCounter(Base):
    """Receipt numbers per day: ``<prefix><yyyymmdd><6-digit sequence>``, allocated in the transaction."""

    __tablename__ = "intake_receipt_counter"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class ItemProcess(Base):
    """A service item's own back-office process (BPMN 2.0 XML), versioned; a second person publishes."""

    __tablename__ = "intake_item_process"
    __table_args__ = (
        UniqueConstraint("item_code", "version"),
        Index(
            "uq_intake_item_process_published",
            "item_code",
            unique=True,
            sqlite_where=text("state = 'published'"),
            postgresql_where=text("state = 'published'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_code: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    xml: Mapped[str] = mapped_column(Text)
    #: The BPMN process id (the executable process of the definition).
    process_id: Mapped[str] = mapped_column(String(64))
    #: ``draft``, ``published`` or ``retired``.
    state: Mapped[str] = mapped_column(String(20))
    author: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    published_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DepartmentSystem(Base):
    """A department's own approval system: steps in the BPMN lane ``dept_<code>`` are sent to it."""

    __tablename__ = "intake_department_system"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: Where the signed webhooks go.
    url: Mapped[str] = mapped_column(String(500))
    #: The shared signing secret (Standard Webhooks ``whsec_...``), sealed.
    secret_sealed: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(default=True)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class OutboxMessage(Base):
    """A message to another system, written in the same transaction as the change it reports (transactional
    outbox); a worker delivers it with retries. ``id`` is the message id the receiver deduplicates on."""

    __tablename__ = "intake_outbox"
    __table_args__ = (Index("ix_intake_outbox_due", "state", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    #: ``department`` (a webhook to a department system), ``email`` or ``sms``.
    channel: Mapped[str] = mapped_column(String(20))
    #: The department system's code, or the (sealed) address for email/SMS.
    target: Mapped[str] = mapped_column(Text)
    event: Mapped[str] = mapped_column(String(60))
    #: The JSON payload, sealed (it carries personal data).
    payload_sealed: Mapped[str] = mapped_column(Text)
    application_id: Mapped[int | None] = mapped_column(
        ForeignKey("intake_application.id", ondelete="CASCADE"), nullable=True, index=True
    )
    #: ``pending``, ``sent`` or ``dead`` (gave up after the last attempt).
    state: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Notice(Base):
    """A notice to an applicant about their application, shown in the portal (and sent by email/SMS)."""

    __tablename__ = "intake_notice"
    __table_args__ = (Index("ix_intake_notice_account", "account_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("core_account.id", ondelete="CASCADE"))
    application_id: Mapped[int] = mapped_column(ForeignKey("intake_application.id", ondelete="CASCADE"))
    #: The status the application reached (the notice's template).
    status: Mapped[str] = mapped_column(String(30))
    #: Channels it was sent on besides the portal (e.g. ``["email", "sms"]``).
    channels: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ResultDocument(Base):
    """A result document (决定书, 通知书) issued for an application: a PDF in the file store, sealed."""

    __tablename__ = "intake_result_document"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("intake_application.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(30))
    file_key: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Bundle(Base):
    """A bundle of items of several departments applied for at once (高效办成一件事), versioned."""

    __tablename__ = "intake_bundle"
    __table_args__ = (
        UniqueConstraint("code", "version"),
        Index(
            "uq_intake_bundle_published",
            "code",
            unique=True,
            sqlite_where=text("state = 'published'"),
            postgresql_where=text("state = 'published'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    #: Names, situation questions and the items with the answers that include them (see ``bundles.py``).
    definition: Mapped[dict[str, object]] = mapped_column(JSONType)
    state: Mapped[str] = mapped_column(String(20))
    author: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    published_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class BundleApplication(Base):
    """One submission of a bundle: the answers given and one application per item that applied."""

    __tablename__ = "intake_bundle_application"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    receipt_no: Mapped[str] = mapped_column(String(32), unique=True)
    bundle_id: Mapped[int] = mapped_column(ForeignKey("intake_bundle.id"))
    applicant_account_id: Mapped[int] = mapped_column(ForeignKey("core_account.id"), index=True)
    answers: Mapped[dict[str, object]] = mapped_column(JSONType, default=dict)
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
