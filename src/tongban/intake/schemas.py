"""Pydantic I/O of intake."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tongban.intake.vocab import Classification, DataSource, ProfileKind, Purpose


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class DatumOut(BaseModel):
    key: str
    label: str
    label_en: str
    classification: Classification
    #: The value, or its masked form when the caller may not see it (``masked`` is then true).
    value: Any
    masked: bool
    source: DataSource
    source_ref: str | None
    recorded_at: dt.datetime
    #: True when a verified source (e-licence, shared data, officer) recorded it: the holder cannot change it.
    verified: bool


class ConsentOut(BaseModel):
    purpose: Purpose
    description: str
    description_en: str
    granted_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    active: bool


class LicenceOut(BaseModel):
    id: int
    licence_type: str
    number: str
    masked: bool
    issuer: str
    issued_on: dt.date
    valid_until: dt.date | None
    status: str
    #: ``valid``, ``revoked`` or ``expired`` on the day asked.
    state: str


class ProfileOut(BaseModel):
    id: int
    kind: ProfileKind
    data: list[DatumOut]
    consents: list[ConsentOut]
    licences: list[LicenceOut]


class DataWrite(Strict):
    """Values to record, by data key (``person.mobile`` ...); see ``GET /api/v1/intake/data-keys``."""

    data: dict[Annotated[str, StringConstraints(max_length=64)], Any] = Field(min_length=1, max_length=50)


class OfficerDataWrite(DataWrite):
    source: DataSource = DataSource.OFFICER
    #: The shared-data item or e-licence type the values come from (required for those sources).
    source_ref: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    #: Why the officer records or corrects the values (kept in the audit trail).
    reason: Annotated[str, StringConstraints(min_length=2, max_length=500)]


class ConsentWrite(Strict):
    purpose: Purpose
    #: Days the consent lasts; none means until revoked.
    days: int | None = Field(default=None, ge=1, le=3650)


class LicenceWrite(Strict):
    licence_type: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    number: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    issuer: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    issued_on: dt.date
    valid_until: dt.date | None = None
    status: Annotated[str, StringConstraints(pattern=r"^(valid|revoked)$")] = "valid"
    data: dict[Annotated[str, StringConstraints(max_length=64)], Any] = Field(
        default_factory=dict, max_length=50
    )


class ProfileCreate(Strict):
    kind: ProfileKind
    #: For an enterprise: the account that acts for it (its representative).
    owner_username: Annotated[str, StringConstraints(max_length=64)] | None = None


class Prefilled(BaseModel):
    """A form field's value taken from the profile, with where it came from."""

    field: str
    value: Any
    profile_key: str
    source: DataSource
    source_ref: str | None
    recorded_at: dt.datetime
    verified: bool


class MaterialStatus(BaseModel):
    """Whether the platform can supply a catalogue material itself (免于提交) or the applicant uploads it."""

    name: str
    required: bool
    #: ``exempt`` (supplied by an e-licence or shared data), ``upload`` or ``not_needed``.
    status: str
    #: What satisfies it: ``e_licence:<type>`` or ``shared_data:<item>``.
    satisfied_by: str | None = None
    #: Why it is not exempt, when it could have been (no consent, no licence, licence expired ...).
    reason: str | None = None
    reason_en: str | None = None


class FormWrite(Strict):
    """An application form definition (see ``docs/intake.md``)."""

    definition: dict[str, Any]


class FormOut(BaseModel):
    item_code: str
    version: int
    #: ``draft``, ``published`` or ``retired``.
    state: str
    definition: dict[str, Any]
    author: str
    created_at: dt.datetime
    published_by: str | None
    published_at: dt.datetime | None


class ProcessWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    xml: str = Field(min_length=1, max_length=500_000)


class ProcessStepOut(BaseModel):
    id: str
    name: str
    #: The lane: ``window``, ``reviewer``, ``decider``, ``applicant``, ``dept_<code>`` or the item's own.
    role: str
    decisions: list[str]


class ProcessOut(BaseModel):
    """An item's own approval process (BPMN 2.0), one version."""

    item_code: str
    version: int
    #: ``draft``, ``published`` or ``retired``.
    state: str
    process_id: str
    name: str
    steps: list[ProcessStepOut]
    ends: dict[str, str]
    author: str
    created_at: dt.datetime
    published_by: str | None
    published_at: dt.datetime | None


class ApplicationForm(BaseModel):
    """The form an applicant fills for an item, with what the platform already knows."""

    item_code: str
    item_name: str
    item_name_en: str | None
    form_version: int
    #: The published definition without file fields for materials the platform supplies.
    definition: dict[str, Any]
    prefilled: list[Prefilled]
    materials: list[MaterialStatus]
    #: Share of required materials the applicant does not submit (None when none is required).
    exempted_share: float | None


class UploadOut(BaseModel):
    id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    pages: int | None


class FindingOut(BaseModel):
    code: str
    field: str | None
    #: ``error`` blocks submission, ``warning`` does not.
    severity: str
    message: str
    message_en: str
    related_fields: list[str] = Field(default_factory=list)


class PrecheckOut(BaseModel):
    ok: bool
    form_version: int
    findings: list[FindingOut]
    materials: list[MaterialStatus]
    #: The values as they would be stored (normalised, computed fields filled in).
    values: dict[str, Any]


class PrecheckWrite(Strict):
    #: Field values by key; file fields carry lists of upload ids.
    values: dict[Annotated[str, StringConstraints(max_length=40)], Any] = Field(max_length=300)


class ApplicationWrite(Strict):
    item_code: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    #: Field values by key; file fields carry lists of upload ids.
    values: dict[Annotated[str, StringConstraints(max_length=40)], Any] = Field(max_length=300)


#: Merged-form keys of a bundle may carry the item code (``<item>__<field>``).
BundleKey = Annotated[str, StringConstraints(max_length=110)]


class BundleWrite(Strict):
    """A bundle definition (see ``docs/intake.md``, Bundles)."""

    definition: dict[str, Any]


class BundleAnswers(Strict):
    #: Answers to the bundle's situation questions by key.
    answers: dict[Annotated[str, StringConstraints(max_length=40)], Any] = Field(max_length=20)


class BundleCheckWrite(BundleAnswers):
    values: dict[BundleKey, Any] = Field(max_length=600)


class BundleApplicationWrite(BundleCheckWrite):
    bundle_code: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class EventOut(BaseModel):
    at: dt.datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str
    note: str


class ApplicationSummary(BaseModel):
    receipt_no: str
    item_code: str
    item_name: str
    status: str
    submitted_at: dt.datetime
    updated_at: dt.datetime


class StepOut(BaseModel):
    """A step of the application's process waiting for someone."""

    task_id: str
    step: str
    name: str
    #: The lane that does it (``applicant`` for supplementary material).
    role: str


class WorkItemOut(StepOut):
    """A line of an officer's work list."""

    ready_at: dt.datetime
    receipt_no: str
    item_code: str
    item_name: str
    status: str
    #: The pre-check's findings at submission.
    errors: int
    warnings: int
    #: Decisions the step takes (empty: any word the process's gateways use).
    decisions: list[str]


class StepWrite(Strict):
    decision: Annotated[str, StringConstraints(max_length=30)] | None = None
    #: What is missing or why (required for ``supplement`` and ``reject``); shown to the applicant.
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


class DeadlineOut(BaseModel):
    """The promised time limit as it stands: used, suspended, due, and the warning level."""

    limit: int
    unit: str
    accepted_on: dt.date
    used: int
    suspended: int
    due: dt.date | None
    paused: bool
    #: ``green``, ``yellow`` (two thirds used), ``red`` (overdue), ``paused``, or ``unknown`` when the
    #: holiday schedule of a year the limit reaches is not loaded (``tongban calendar load``).
    level: str


class SuspensionOut(BaseModel):
    id: int
    kind: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    note: str


class SuspensionWrite(Strict):
    kind: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    note: Annotated[str, StringConstraints(min_length=2, max_length=2000)]


class ItemSettingWrite(Strict):
    special_procedures: list[Annotated[str, StringConstraints(min_length=1, max_length=40)]] = Field(
        max_length=30
    )


class MonitorRow(BaseModel):
    receipt_no: str
    item_code: str
    item_name: str
    department: str
    status: str
    deadline: DeadlineOut
    escalated_at: dt.datetime | None


# --- departments, notices, documents ---


class DocumentOut(BaseModel):
    """A result document (决定书, 通知书) of an application, as a PDF to download."""

    id: int
    #: ``approval``, ``refusal`` or ``non_acceptance``.
    kind: str
    title: str
    title_en: str
    created_at: dt.datetime
    size: int
    sha256: str
    download_url: str


class NoticeOut(BaseModel):
    """A notice to the applicant about a change of one of their applications."""

    id: int
    receipt_no: str
    item_code: str
    item_name: str
    #: The status reached (``submitted``, ``supplement_requested``, ``in_progress``, ``approved``,
    #: ``refused``, ``not_accepted``) or a department's progress (``department_received`` ...).
    status: str
    title: str
    title_en: str
    text: str
    text_en: str
    #: What the officer or department wrote with the change (what to supplement, why refused).
    note: str
    #: Channels it was also sent on (``email``, ``sms``).
    channels: list[str]
    created_at: dt.datetime
    read_at: dt.datetime | None


class DepartmentWrite(Strict):
    """A department's own approval system; the signing secret is generated by the platform."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    #: Where its webhooks go (http or https).
    url: Annotated[str, StringConstraints(min_length=8, max_length=500)]
    active: bool = True


class DepartmentOut(BaseModel):
    code: str
    name: str
    url: str
    active: bool
    #: The BPMN lane whose steps go to this system.
    lane: str
    updated_by: str
    updated_at: dt.datetime
    #: The signing secret (``whsec_...``), only in the answer that created or rotated it.
    secret: str | None = None


class ApplicationOut(ApplicationSummary):
    department: str
    deadline: DeadlineOut | None = None
    suspensions: list[SuspensionOut] = Field(default_factory=list)
    waiting: list[StepOut] = Field(default_factory=list)
    values: dict[str, Any]
    findings: list[FindingOut]
    materials: list[MaterialStatus]
    uploads: list[UploadOut]
    events: list[EventOut]
    #: Result documents (决定书, 通知书) issued when it ended.
    documents: list[DocumentOut] = Field(default_factory=list)
