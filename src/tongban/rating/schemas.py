"""Pydantic I/O of ratings and quality indicators."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from tongban.rating.vocab import CASE_CHANNELS, RATING_CHANNELS, CaseKind, Dimension


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


Score = Annotated[int, Field(ge=1, le=5)]
Ref = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Note = Annotated[str, StringConstraints(max_length=2000)]
RatingChannel = Literal["web", "app", "terminal", "sms", "phone"]
CaseChannel = Literal["online", "app", "window", "terminal", "phone", "mail"]
assert set(RatingChannel.__args__) == set(RATING_CHANNELS)  # type: ignore[attr-defined]  # noqa: S101
assert set(CaseChannel.__args__) == set(CASE_CHANNELS)  # type: ignore[attr-defined]  # noqa: S101


class RatingWrite(Strict):
    """A rating of a closed case: the level (1 非常不满意 … 5 非常满意), dimension scores and text."""

    level: Score
    dimensions: dict[Dimension, Score] = Field(default_factory=dict)
    text: Note = ""
    #: Not shown to the unit; a bad review then gets no return call.
    anonymous: bool = False
    channel: RatingChannel = "web"


class RatingOut(BaseModel):
    id: int
    kind: CaseKind
    ref: str
    round: Literal["initial", "follow_up"]
    level: int
    dimensions: dict[str, int]
    text: str
    reasons: list[str]
    anonymous: bool
    channel: str
    excluded: bool
    created_at: dt.datetime
    #: The rectification opened by this (bad) rating, if any.
    rectification_id: int | None = None


class CaseWrite(Strict):
    """A case registered by another system (a hotline, a department's approval system, a hall's queue
    system): its facts when it closes. Applications of this platform register themselves."""

    owner_account_id: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    parent_ref: Ref | None = None
    item_code: Annotated[str, StringConstraints(max_length=64)] | None = None
    item_name: Annotated[str, StringConstraints(max_length=200)] = ""
    department: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    region: Annotated[str, StringConstraints(max_length=200)] = ""
    region_code: Annotated[str, StringConstraints(pattern=r"^\d{6,12}$")] | None = None
    channel: CaseChannel
    opened_at: dt.datetime
    closed_at: dt.datetime | None = None
    outcome: Annotated[str, StringConstraints(max_length=30)] = ""
    limit_days: Annotated[int, Field(ge=0, le=3650)] | None = None
    work_days: Annotated[int, Field(ge=0, le=3650)] | None = None
    visits: Annotated[int, Field(ge=0, le=100)] = 0
    materials_total: Annotated[int, Field(ge=0, le=1000)] = 0
    materials_exempted: Annotated[int, Field(ge=0, le=1000)] = 0
    precheck_findings: Annotated[int, Field(ge=0, le=1000)] = 0
    supplements: Annotated[int, Field(ge=0, le=100)] = 0

    @model_validator(mode="after")
    def _consistent(self) -> CaseWrite:
        for name in ("opened_at", "closed_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} needs a time zone")
        if self.closed_at is not None and self.closed_at < self.opened_at:
            raise ValueError("closed_at is before opened_at")
        if self.materials_exempted > self.materials_total:
            raise ValueError("materials_exempted exceeds materials_total")
        return self


class VisitWrite(Strict):
    """An in-person visit recorded at a window (or by a hall terminal)."""

    item_code: Annotated[str, StringConstraints(max_length=64)] | None = None
    item_name: Annotated[str, StringConstraints(max_length=200)] = ""
    department: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    region: Annotated[str, StringConstraints(max_length=200)] = ""
    region_code: Annotated[str, StringConstraints(pattern=r"^\d{6,12}$")] | None = None
    #: The application the visit was for (its receipt number), to count visits per case.
    receipt_no: Ref | None = None
    #: The visitor's account, when they signed in at the window (they can then rate from home too).
    visitor_account_id: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    outcome: Annotated[str, StringConstraints(max_length=30)] = "served"


class CaseOut(BaseModel):
    kind: CaseKind
    ref: str
    parent_ref: str | None
    item_code: str | None
    item_name: str
    department: str
    region: str
    region_code: str | None
    channel: str
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    outcome: str
    limit_days: int | None
    work_days: int | None
    on_time: bool | None
    visits: int
    materials_total: int
    materials_exempted: int
    precheck_findings: int
    supplements: int
    first_pass: bool | None
    longest_step: str
    longest_step_hours: int | None
    rate_until: dt.datetime | None
    level: int | None
    first_level: int | None
    rated_at: dt.datetime | None
    rectification: str | None


class RateableOut(BaseModel):
    """One of the caller's cases: ratable now, rated, or waiting for the follow-up rating."""

    case: CaseOut
    ratings: list[RatingOut]
    #: ``initial`` or ``follow_up`` when the caller may rate now, else None.
    may_rate: Literal["initial", "follow_up"] | None
    rate_until: dt.datetime | None
    rectification: RectificationOut | None = None


class EventOut(BaseModel):
    at: dt.datetime
    actor: str
    action: str
    note: str


class RectificationOut(BaseModel):
    id: int
    kind: CaseKind
    ref: str
    item_name: str
    unit: str
    state: str
    level: int
    text: str
    reasons: list[str]
    dimensions: dict[str, int]
    anonymous: bool
    #: The rater's account name, for the return call (absent when anonymous or masked).
    rater: str | None
    opened_at: dt.datetime
    contact_due: dt.date | None
    rectify_due: dt.date
    contacted_at: dt.datetime | None
    contact_note: str
    rectified_at: dt.datetime | None
    rectify_note: str
    follow_up_until: dt.datetime | None
    follow_up_level: int | None
    closed_at: dt.datetime | None
    appeal: str
    appeal_reason: str
    appeal_by: str | None
    appeal_decided_by: str | None
    appeal_note: str
    #: ``contact`` or ``rectify`` when that deadline has passed undone.
    overdue: list[str]
    version: int
    events: list[EventOut]
    #: The case's facts (outcome, processing days, supplements ...), for the unit; absent for the rater.
    case: CaseOut | None = None


class StepWrite(Strict):
    note: Annotated[str, StringConstraints(min_length=4, max_length=2000)]


class AppealDecision(Strict):
    upheld: bool
    note: Annotated[str, StringConstraints(min_length=4, max_length=2000)]


class SettingsWrite(Strict):
    window_days: Annotated[int, Field(ge=1, le=365)] | None = None
    remind_after_days: Annotated[int, Field(ge=1, le=60)] | None = None
    max_reminders: Annotated[int, Field(ge=0, le=5)] | None = None
    contact_working_days: Annotated[int, Field(ge=1, le=10)] | None = None
    rectify_working_days: Annotated[int, Field(ge=1, le=60)] | None = None
    follow_up_days: Annotated[int, Field(ge=1, le=60)] | None = None
    visit_window_minutes: Annotated[int, Field(ge=5, le=60 * 24 * 7)] | None = None
    appeal_working_days: Annotated[int, Field(ge=1, le=30)] | None = None


class TargetWrite(Strict):
    indicator: str
    scope: Literal["all", "department", "item", "region"] = "all"
    scope_value: Annotated[str, StringConstraints(max_length=200)] = ""
    low: Annotated[float, Field(allow_inf_nan=False)] | None = None
    high: Annotated[float, Field(allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _band(self) -> TargetWrite:
        if self.low is None and self.high is None:
            raise ValueError("give low, high or both")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError("low is above high")
        if (self.scope == "all") != (self.scope_value == ""):
            raise ValueError("scope_value names the department, item or region (and is empty for all)")
        return self


class TargetOut(BaseModel):
    id: int
    indicator: str
    scope: str
    scope_value: str
    low: float | None
    high: float | None
    updated_by: str
    updated_at: dt.datetime


class AlertOut(BaseModel):
    id: int
    indicator: str
    scope: str
    scope_value: str
    period: str
    value: float
    low: float | None
    high: float | None
    raised_at: dt.datetime
    acknowledged_by: str | None
    acknowledged_at: dt.datetime | None


class Filters(Strict):
    """Which closed cases an indicator covers; dates are the day of closing, city time, inclusive."""

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    department: Annotated[str, StringConstraints(max_length=200)] | None = None
    item_code: Annotated[str, StringConstraints(max_length=64)] | None = None
    region_code: Annotated[str, StringConstraints(max_length=12)] | None = None
    kind: CaseKind | None = None
    channel: Annotated[str, StringConstraints(max_length=20)] | None = None

    @model_validator(mode="after")
    def _range(self) -> Filters:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError("date_from is after date_to")
        return self


class IndicatorValues(BaseModel):
    """The indicator set for one group (or everything), with the counts behind each rate."""

    group: str | None
    label: str
    cases: int
    applications: int
    on_time_rate: float | None
    avg_work_days: float | None
    p90_work_days: float | None
    online_share: float | None
    visits_per_case: float | None
    exempted_share: float | None
    first_pass_rate: float | None
    rating_rate: float | None
    satisfaction_rate: float | None
    bad_rate: float | None
    rectification_rate: float | None
    rectified_on_time_rate: float | None
    rated: int
    bad: int
    rectified: int
    #: Counted ratings per level ``{"5": n, ...}``.
    levels: dict[str, int]
    #: The number of cases behind each drill-down condition (``bad``, ``late``, ``supplemented`` ...).
    counts: dict[str, int] = {}


class IndicatorReport(BaseModel):
    filters: Filters
    group_by: str | None
    total: IndicatorValues
    groups: list[IndicatorValues]
    computed_at: dt.datetime


class PainPointOut(BaseModel):
    factor: str
    value: str
    rated: int
    bad: int
    bad_rate: float
    rest_rate: float | None
    risk_ratio: float | None
    low: float
    high: float
    share_of_bad: float
    significant: bool | None = None


class PainPointReport(BaseModel):
    filters: Filters
    rated: int
    bad: int
    concentrations: list[PainPointOut]
    predictors: list[PainPointOut]
    #: Reasons of bad reviews ``[{"reason", "count", "share"}]``.
    reasons: list[dict[str, object]]


class CasePage(BaseModel):
    total: int
    page: int
    per_page: int
    cases: list[CaseOut]


class PublicationOut(BaseModel):
    period: str
    published_by: str
    published_at: dt.datetime
    data: dict[str, object]


RateableOut.model_rebuild()
