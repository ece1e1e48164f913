"""Pydantic I/O of the hotline."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from tongban.hotline.vocab import Channel, RequestType, Urgency


def _no_nul(value: Any, where: str = "") -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where or 'text'}: NUL characters are not allowed")
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_nul(k, where)
            _no_nul(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list | tuple):
        for v in value:
            _no_nul(v, where)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        _no_nul(data)
        return data


Note = Annotated[str, StringConstraints(max_length=4000)]
Reason = Annotated[str, StringConstraints(min_length=2, max_length=2000)]
UnitCode = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
RegionCode = Annotated[str, StringConstraints(pattern=r"^\d{2,12}$")]
CategoryPath = Annotated[str, StringConstraints(min_length=1, max_length=300)]
Phone = Annotated[str, StringConstraints(max_length=40, pattern=r"^\+?[0-9][0-9 -]{2,38}$")]
Email = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class Contact(Strict):
    name: Annotated[str, StringConstraints(max_length=100)] = ""
    phone: Phone | None = None
    email: Email | None = None
    device_id: Annotated[str, StringConstraints(max_length=200)] = ""


class TicketWrite(Strict):
    """A new ticket, from an operator's entry, a web or app form, a consultation hand-off or Open311."""

    channel: Channel = Channel.WEB
    request_type: RequestType = RequestType.REQUEST
    subject: Annotated[str, StringConstraints(max_length=300)] = ""
    body: Annotated[str, StringConstraints(min_length=2, max_length=8000)]
    contact: Contact = Field(default_factory=Contact)
    anonymous: bool = False
    enterprise: bool = False
    enterprise_name: Annotated[str, StringConstraints(max_length=200)] = ""
    address: Annotated[str, StringConstraints(max_length=500)] = ""
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None
    region_code: RegionCode | None = None
    category_path: CategoryPath | None = None
    urgency: Urgency = Urgency.ORDINARY
    service_code: Annotated[str, StringConstraints(max_length=64)] | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    media_url: Annotated[str, StringConstraints(max_length=1000)] = ""
    #: The conversation a consultation hand-off came from (stored as a digest).
    source_ref: Annotated[str, StringConstraints(max_length=200)] = ""

    @model_validator(mode="after")
    def _consistent(self) -> TicketWrite:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give both lat and long, or neither")
        if self.enterprise and not self.enterprise_name:
            raise ValueError("an enterprise request needs the enterprise's name")
        return self


class Classification(Strict):
    """The operator's decision on category and urgency (confirming or correcting the suggestion)."""

    category_path: CategoryPath
    urgency: Urgency | None = None
    enterprise: bool | None = None


class DispatchWrite(Strict):
    """Send a ticket to a lead unit with helpers; without units, the dispatch catalogue decides."""

    lead_unit: UnitCode | None = None
    helper_units: list[UnitCode] = Field(default_factory=list, max_length=10)
    note: Note = ""


class NoteWrite(Strict):
    note: Note = ""


class ReplyWrite(Strict):
    reply: Annotated[str, StringConstraints(min_length=2, max_length=8000)]


class ReturnWrite(Strict):
    """A unit sends a ticket back (退单) with its reason; it may say which unit owns it."""

    reason: Reason
    suggested_unit: UnitCode | None = None


class ReturnDecision(Strict):
    """A reviewer's decision on a return: ``accept`` re-dispatches (改派), ``reject`` sends it back."""

    decision: Literal["accept", "reject"]
    lead_unit: UnitCode | None = None
    helper_units: list[UnitCode] = Field(default_factory=list, max_length=10)
    note: Note = ""


class VisitWrite(Strict):
    """The return visit (回访): solved or not and how satisfied (1–5); an unresolved or dissatisfied ticket
    may be reopened."""

    resolved: bool
    satisfaction: Annotated[int, Field(ge=1, le=5)]
    comment: Note = ""
    reopen: bool = False


class MergeWrite(Strict):
    into: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    note: Note = ""


class AnswerWrite(Strict):
    """Answer directly (直接答复) a question that needs no dispatch."""

    answer: Annotated[str, StringConstraints(min_length=2, max_length=8000)]
    category_path: CategoryPath | None = None


class EventOut(BaseModel):
    id: int
    at: dt.datetime
    actor: str
    action: str
    status_from: str
    status_to: str
    unit: str | None
    note: str
    data: dict[str, Any]
    public: bool


class AttachmentOut(BaseModel):
    id: int
    name: str
    media_type: str
    size: int
    added_by: str
    created_at: dt.datetime


class TicketOut(BaseModel):
    id: int
    ref: str
    channel: str
    request_type: str
    status: str
    subject: str
    body: str
    anonymous: bool
    contact_hint: str
    enterprise: bool
    enterprise_name: str
    address: str
    lat: float | None
    lon: float | None
    region_code: str | None
    service_code: str | None
    attributes: dict[str, Any]
    media_url: str
    category_path: str
    category_confirmed: bool
    suggested_path: str
    suggested_confidence: float | None
    urgency: str
    deadline_class: str
    lead_unit: str | None
    helper_units: list[str]
    dispatch_count: int
    reopen_count: int
    dispatched_at: dt.datetime | None
    respond_by: dt.datetime | None
    due_at: dt.datetime | None
    signed_at: dt.datetime | None
    responded_at: dt.datetime | None
    replied_at: dt.datetime | None
    reply: str
    revisited_at: dt.datetime | None
    resolved: bool | None
    satisfaction: int | None
    closed_at: dt.datetime | None
    merged_into: str | None
    warned_at: dt.datetime | None
    escalated_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


class TicketDetail(TicketOut):
    events: list[EventOut]
    attachments: list[AttachmentOut]
    duplicates: list[DuplicateOut]


class TicketPage(BaseModel):
    items: list[TicketOut]
    total: int
    page: int
    per_page: int


class ContactOut(BaseModel):
    name: str
    phone: str | None
    email: str | None
    device_id: str


class DuplicateOut(BaseModel):
    id: int
    ticket: str
    original: str
    score: float
    reasons: dict[str, Any]
    status: str
    decided_by: str
    decided_at: dt.datetime | None
    created_at: dt.datetime


TicketDetail.model_rebuild()


class UnitWrite(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    name_en: Annotated[str, StringConstraints(max_length=200)] = ""
    kind: Literal["department", "district", "street", "enterprise"] = "department"
    region_code: RegionCode | None = None
    active: bool = True


class UnitOut(BaseModel):
    code: str
    name: str
    name_en: str
    kind: str
    region_code: str | None
    active: bool


class RuleWrite(Strict):
    category_path: CategoryPath
    region_code: Annotated[str, StringConstraints(pattern=r"^(\d{2,12})?$")] = ""
    lead_unit: UnitCode
    helper_units: list[UnitCode] = Field(default_factory=list, max_length=10)
    note: Note = ""
    active: bool = True


class RuleOut(BaseModel):
    id: int
    category_path: str
    region_code: str
    lead_unit: str
    helper_units: list[str]
    note: str
    active: bool


class CategoryWrite(Strict):
    level1: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^/]+$")]
    level2: Annotated[str, StringConstraints(max_length=100, pattern=r"^[^/]*$")] = ""
    level3: Annotated[str, StringConstraints(max_length=100, pattern=r"^[^/]*$")] = ""
    label_en: Annotated[str, StringConstraints(max_length=300)] = ""
    deadline_class: Literal["ordinary", "utility", "complex"] = "ordinary"
    active: bool = True

    @model_validator(mode="after")
    def _levels(self) -> CategoryWrite:
        if self.level3 and not self.level2:
            raise ValueError("level3 needs level2")
        return self


class CategoryOut(BaseModel):
    path: str
    level1: str
    level2: str
    level3: str
    label_en: str
    deadline_class: str
    active: bool


class DispatchPlan(BaseModel):
    """Who a ticket goes to and why (the rule that matched, or the district fallback)."""

    lead_unit: str | None
    helper_units: list[str]
    rule_id: int | None
    reason: str


class SuggestionOut(BaseModel):
    category: str | None
    path: str | None
    confidence: float | None
    alternatives: list[tuple[str, float]]
    explanation: dict[str, Any]
    model_id: int | None


class SettingsWrite(Strict):
    reply_hours: (
        dict[Literal["emergency", "utility", "ordinary", "complex"], Annotated[float, Field(gt=0, le=8760)]]
        | None
    ) = None
    enterprise_reply_hours: (
        dict[Literal["emergency", "utility", "ordinary", "complex"], Annotated[float, Field(gt=0, le=8760)]]
        | None
    ) = None
    respond_hours: (
        dict[Literal["emergency", "utility", "ordinary", "complex"], Annotated[float, Field(gt=0, le=8760)]]
        | None
    ) = None
    enterprise_respond_hours: (
        dict[Literal["emergency", "utility", "ordinary", "complex"], Annotated[float, Field(gt=0, le=8760)]]
        | None
    ) = None
    warn_fraction: Annotated[float, Field(gt=0, lt=1)] | None = None
    duplicate_hours: Annotated[float, Field(gt=0, le=8760)] | None = None
    duplicate_metres: Annotated[float, Field(gt=0, le=100_000)] | None = None
    duplicate_similarity: Annotated[float, Field(gt=0, le=1)] | None = None
    rate_weights: (
        dict[Literal["response", "resolution", "satisfaction"], Annotated[float, Field(ge=0, le=100)]] | None
    ) = None
    satisfied_levels: list[Annotated[int, Field(ge=1, le=5)]] | None = None
    retrain_after: Annotated[int, Field(ge=0, le=100_000)] | None = None


class RateRow(BaseModel):
    """The three rates of one group (a unit, a category, a period), with the counts behind them."""

    key: str
    label: str
    dispatched: int
    responded_in_time: int
    response_rate: float | None
    revisited: int
    resolved: int
    resolution_rate: float | None
    rated: int
    satisfied: int
    satisfaction_rate: float | None
    score: float | None


class RateReport(BaseModel):
    by: str
    date_from: dt.date | None
    date_to: dt.date | None
    weights: dict[str, float]
    total: RateRow
    rows: list[RateRow]


class ApiKeyWrite(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    rate_per_minute: Annotated[int, Field(ge=1, le=100_000)] = 60


class ApiKeyOut(BaseModel):
    id: int
    prefix: str
    name: str
    rate_per_minute: int
    created_by: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None
    #: The key itself: only in the answer that issues it.
    key: str | None = None


class ServiceWrite(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    description: Annotated[str, StringConstraints(max_length=4000)] = ""
    group: Annotated[str, StringConstraints(max_length=200)] = ""
    keywords: Annotated[str, StringConstraints(max_length=500)] = ""
    category_path: Annotated[str, StringConstraints(max_length=300)] = ""
    attributes: list[dict[str, Any]] = Field(default_factory=list, max_length=50)
    active: bool = True


class ServiceOut(BaseModel):
    code: str
    name: str
    description: str
    group: str
    keywords: str
    category_path: str
    attributes: list[dict[str, Any]]
    active: bool
