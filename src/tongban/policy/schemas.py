"""Pydantic I/O of the policy domain: documents, interpretations, items and their versions, and the
calculator's question and answer."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Level = Literal["national", "city", "district", "street"]
DocStatus = Literal["drafting", "review", "published", "amended", "repealed"]
InterpretationKind = Literal["official", "expert", "media", "qa"]
Entity = Literal["person", "household", "enterprise"]

Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
RegionCode = Annotated[str, StringConstraints(pattern=r"^(\d{6}(\d{3}(\d{3})?)?)?$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DocumentWrite(Strict):
    """A policy document as its drafter writes it."""

    code: Code
    title: Line
    title_en: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""
    level: Level
    department: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    region_code: RegionCode = ""
    issued_on: dt.date | None = None
    effective_from: dt.date | None = None
    effective_to: dt.date | None = None
    summary: Annotated[str, StringConstraints(max_length=5000)] = ""
    body: Annotated[str, StringConstraints(min_length=1, max_length=500_000)]
    #: The code of the document this one amends.
    amends: Code | None = None

    @model_validator(mode="after")
    def _dates(self) -> DocumentWrite:
        if self.effective_from and self.effective_to and self.effective_to < self.effective_from:
            raise ValueError("effective_to is before effective_from")
        if not self.body.strip():
            raise ValueError("the document has no text")
        if self.amends is not None and self.amends == self.code:
            raise ValueError("a document cannot amend itself")
        return self


class InterpretationWrite(Strict):
    kind: InterpretationKind = "official"
    title: Line
    body: Annotated[str, StringConstraints(min_length=1, max_length=200_000)]
    source: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] = ""
    published_on: dt.date | None = None


class InterpretationOut(InterpretationWrite):
    id: int
    created_by: str
    created_at: dt.datetime


class ItemSummary(BaseModel):
    key: str
    document_code: str
    entity: str
    support: str
    title: str
    title_en: str
    status: str
    published_version: int | None
    tags: dict[str, list[str]]


class DocumentSummary(BaseModel):
    code: str
    title: str
    title_en: str
    level: str
    department: str
    region_code: str
    issued_on: dt.date | None
    effective_from: dt.date | None
    effective_to: dt.date | None
    status: str
    summary: str
    revision: int


class DocumentOut(DocumentSummary):
    body: str
    amends: str | None
    amended_by: str | None
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    published_at: dt.datetime | None
    interpretations: list[InterpretationOut]
    items: list[ItemSummary]


class DocumentPage(BaseModel):
    total: int
    page: int
    per_page: int
    documents: list[DocumentSummary]


class ItemVersionWrite(Strict):
    """A new version of an item's rules: one item of a rule file, as YAML or JSON text."""

    source: Annotated[str, StringConstraints(min_length=1, max_length=200_000)]
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


class ItemVersionOut(BaseModel):
    version: int
    state: str
    digest: str
    source: str
    note: str
    created_by: str
    created_at: dt.datetime
    reviewed_by: str
    reviewed_at: dt.datetime | None


class ItemOut(ItemSummary):
    versions: list[ItemVersionOut]


class ReviewWrite(Strict):
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


class VariablesWrite(Strict):
    source: Annotated[str, StringConstraints(min_length=1, max_length=500_000)]
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


# --- the calculator -------------------------------------------------------------------------------------


class MatchRequest(Strict):
    """The facts of one person, household or enterprise: a variable's value, or ``{period: value}`` for a
    variable with periods (``{"2025": 120000000}``, ``{"2026-10": true}``). Money in whole fen. A fact left
    out is unknown: the result then says which conditions it decides."""

    entity: Entity
    facts: dict[str, Any] = Field(default_factory=dict, max_length=500)
    #: The reference date (default: today).
    date: dt.date | None = None
    #: ``all``: every item with its result; ``possible``: only those not failed.
    show: Literal["all", "possible"] = "all"


class Needed(BaseModel):
    """A fact an undetermined condition needs, and the data that would prove it."""

    column: str
    variable: str
    label: str
    #: The period it is for (``2026-06``), if the variable has periods.
    period: str | None
    proof: str
    #: ``shared_data``, ``e_licence`` or ``applicant``.
    proof_kind: str
    #: The fact's type: bool, int, money (fen), text, code, date.
    kind: str = ""


class ConditionOut(BaseModel):
    id: str
    text: str
    #: ``met``, ``failed`` or ``unknown``.
    outcome: Literal["met", "failed", "unknown"]
    source: str
    needs: list[Needed]


class MatchOut(BaseModel):
    key: str
    version: int
    title: str
    document_code: str
    support: str
    result: Literal["eligible", "not_eligible", "undetermined"]
    amount_fen: int | None
    automatic: bool
    conditions: list[ConditionOut]
    needs: list[Needed]


class MatchResponse(BaseModel):
    entity: str
    date: dt.date
    results: list[MatchOut]


class FieldOut(BaseModel):
    """One input of the calculator's form: a fact the published items read."""

    column: str
    variable: str
    label: str
    kind: str
    period: str | None
    proof: str
    proof_kind: str


# --- the overlap check ----------------------------------------------------------------------------------


class OverlapRequest(Strict):
    """A draft to check before publishing: its text, and/or one item's rules (YAML or JSON)."""

    text: Annotated[str, StringConstraints(max_length=500_000)] = ""
    item: Annotated[str, StringConstraints(max_length=200_000)] = ""
    #: The draft's own document code, left out of its results.
    code: Annotated[str, StringConstraints(max_length=100)] = ""

    @model_validator(mode="after")
    def _something(self) -> OverlapRequest:
        if not self.text.strip() and not self.item.strip():
            raise ValueError("give the draft's text, an item's rules, or both")
        return self


class DocumentOverlapOut(BaseModel):
    code: str
    title: str
    status: str
    #: ``duplicate`` (the same text) or ``contained`` (one reproduces most of the other).
    kind: str
    jaccard: float
    containment: float
    #: ``draft`` when the draft is the shorter text (reproduced in the library's document), else ``library``.
    shorter: str


class ItemOverlapOut(BaseModel):
    a: str
    b: str
    shared: list[str]
    #: ``settled`` (one stacking group) or ``double_benefit``.
    verdict: str
    reason: str


class OverlapReport(BaseModel):
    documents: list[DocumentOverlapOut]
    items: list[ItemOverlapOut]
    library_documents: int


# --- snapshots, runs, grants, appeals, simulation -------------------------------------------------------

SnapshotName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")]


class SnapshotOut(BaseModel):
    id: int
    name: str
    digest: str
    rows: dict[str, int]
    source: str
    as_of: dt.date
    created_by: str
    created_at: dt.datetime


class SyntheticWrite(Strict):
    """A synthetic city (demo, benchmarks): persons and enterprises with census-like distributions."""

    name: SnapshotName
    persons: int = Field(ge=0, le=30_000_000)
    enterprises: int = Field(ge=0, le=5_000_000)
    as_of: dt.date
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class RunWrite(Strict):
    entity: Literal["person", "household", "enterprise"]
    snapshot: SnapshotName
    #: The reference date (default: today).
    date: dt.date | None = None
    #: Published item keys (default: every published item for the entity).
    items: list[Annotated[str, StringConstraints(max_length=64)]] | None = Field(
        default=None, max_length=1000
    )
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


class RunOut(BaseModel):
    id: int
    entity: str
    ref_date: dt.date
    status: str
    rules: dict[str, Any]
    snapshot: dict[str, Any]
    checksum: str
    summary: dict[str, Any]
    note: str
    created_by: str
    created_at: dt.datetime
    decided_by: str
    decided_at: dt.datetime | None


class RunDecision(Strict):
    approve: bool
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


class GrantOut(BaseModel):
    id: int
    run_id: int
    subject_id: str
    item_key: str
    version: int
    title: str
    document_code: str
    result: str
    amount_fen: int | None
    automatic: bool
    status: str
    conditions: list[ConditionOut]
    needs: list[Needed]
    appeal: str | None
    #: For a noticed benefit: the facts a fast application asks for (what the shared data lacked, and
    #: what only the applicant can prove).
    asks: list[Needed] = Field(default_factory=list)
    #: The fast application's state, if one was made.
    application: str | None = None


class GrantPage(BaseModel):
    total: int
    page: int
    per_page: int
    grants: list[GrantOut]


class AppealWrite(Strict):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=5, max_length=4000)]


class AppealDecision(Strict):
    uphold: bool
    decision: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=4000)]
    #: When upheld: the amount the officer finds due (default: the amount the rules computed).
    amount_fen: int | None = Field(default=None, ge=0, le=10**13)


class AppealOut(BaseModel):
    id: int
    grant_id: int
    item_key: str
    subject_id: str
    reason: str
    status: str
    decision: str
    decided_by: str
    created_at: dt.datetime
    decided_at: dt.datetime | None


class SimulationWrite(Strict):
    """A draft item (or a changed published one) as YAML or JSON, evaluated over a snapshot."""

    source: Annotated[str, StringConstraints(min_length=1, max_length=200_000)]
    snapshot: SnapshotName
    date: dt.date | None = None


class SimulationSide(BaseModel):
    eligible: int
    undetermined: int
    cost_fen: int
    districts: list[list[Any]]
    industries: list[list[Any]]


class SimulationOut(BaseModel):
    item: str
    snapshot: str
    date: dt.date
    draft: SimulationSide
    #: The published version of the same item on the same data, if there is one.
    published: SimulationSide | None
    budget_pool: str | None
    budget_total_fen: int | None
    #: What is left of the pool after approved runs.
    budget_left_fen: int | None
    #: Draft cost ÷ what is left of the pool.
    budget_share: float | None


# --- subscriptions and push ------------------------------------------------------------------------------

TagValue = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]


class SubscriptionWrite(Strict):
    """Subscribe to new and amended policy items by tags (each key given must match; ``region`` and
    ``industry`` match by code hierarchy), optionally with one's own facts (as the calculator takes them;
    then only items not failed on them are pushed). Inbox always; email or SMS too."""

    entity: Literal["person", "household", "enterprise"]
    tags: dict[
        Literal["topic", "region", "industry", "support", "grant"],
        list[TagValue],
    ] = Field(default_factory=dict)
    facts: dict[str, Any] = Field(default_factory=dict, max_length=500)
    #: Consent to keep ``facts`` (sealed) to decide what to push (PIPL art. 14); required with facts.
    consent: bool = False
    channel: Literal["inbox", "email", "sms"] = "inbox"
    contact: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""

    @model_validator(mode="after")
    def _consistent(self) -> SubscriptionWrite:
        if self.facts and not self.consent:
            raise ValueError("keeping your facts needs your consent (consent: true)")
        if self.channel == "email" and "@" not in self.contact:
            raise ValueError("give an email address to be told by email")
        if self.channel == "sms" and not self.contact.replace("+", "").isdigit():
            raise ValueError("give a mobile number to be told by SMS")
        if self.channel == "inbox" and self.contact:
            raise ValueError("the inbox needs no contact")
        return self


class SubscriptionOut(BaseModel):
    id: int
    entity: str
    tags: dict[str, list[str]]
    has_facts: bool
    channel: str
    #: Masked (138****5678, w***@example.cn).
    contact: str
    active: bool
    created_at: dt.datetime


class PushOut(BaseModel):
    id: int
    subscription_id: int
    item_key: str
    version: int
    title: str
    kind: str
    result: str
    reason: str
    created_at: dt.datetime
    read_at: dt.datetime | None


# --- the drafting aid ------------------------------------------------------------------------------------


class DraftWrite(Strict):
    text: Annotated[str, StringConstraints(min_length=1, max_length=100_000)]
    entity: Literal["person", "household", "enterprise"] | None = None


class CandidateOut(BaseModel):
    kind: str
    value: Any
    start: int
    end: int
    quote: str


class ProposalOut(BaseModel):
    source: str
    ok: bool
    problems: list[str]
    unsupported_numbers: list[str]
    unquoted: list[str]


class DraftOut(BaseModel):
    #: ``rules`` (offline) or ``llm`` (a proposal too).
    mode: str
    candidates: list[CandidateOut]
    proposal: ProposalOut | None


# --- fast applications (直达快享) ------------------------------------------------------------------------


class FastApplicationWrite(Strict):
    """The facts the shared data lacked (``{column: value}``, as the calculator's columns: money in fen,
    ``name__pN`` for earlier periods), and nothing else."""

    facts: dict[str, Any] = Field(default_factory=dict, max_length=100)


class ApplicationOut(BaseModel):
    id: int
    grant_id: int
    item_key: str
    subject_id: str
    amount_fen: int | None
    status: str
    decision: str
    decided_by: str
    created_at: dt.datetime
    decided_at: dt.datetime | None
    #: For officers: the supplied facts (personal data; every reading is audited).
    facts: dict[str, Any] | None = None


class ApplicationDecision(Strict):
    approve: bool
    decision: Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000)] = ""
