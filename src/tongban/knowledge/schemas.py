"""Knowledge I/O: the editable content of an entry, what the API returns, search results."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ExternalId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300, pattern=r"^[^\s]+$")
]


class Kind(StrEnum):
    SERVICE_ITEM = "service_item"
    POLICY = "policy"
    GUIDE = "guide"
    FAQ = "faq"
    ARTICLE = "article"


class EntryStatus(StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    PUBLISHED = "published"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


class VersionState(StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    PUBLISHED = "published"
    SUPERSEDED = "superseded"
    REJECTED = "rejected"


class LexiconKind(StrEnum):
    TERM = "term"
    SYNONYM = "synonym"


class LexiconState(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    RETIRED = "retired"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SectionIn(Strict):
    heading: list[Annotated[str, StringConstraints(max_length=300)]] = Field(
        default_factory=list, max_length=8
    )
    text: Annotated[str, StringConstraints(max_length=200_000)]
    page: int | None = Field(default=None, ge=1)


class EntryContent(Strict):
    """One version of an entry: what an editor writes and a reviewer approves."""

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    kind: Kind = Kind.ARTICLE
    department: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""
    source: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] = ""
    audiences: list[ShortText] = Field(default_factory=list, max_length=10)
    region: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""
    effective_from: dt.date | None = None
    expires_on: dt.date | None = None
    sections: list[SectionIn] = Field(min_length=1, max_length=2000)
    #: Annotations: tags, alternative questions this entry answers, entry-specific synonyms.
    tags: list[ShortText] = Field(default_factory=list, max_length=50)
    questions: list[
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    ] = Field(default_factory=list, max_length=100)
    synonyms: list[ShortText] = Field(default_factory=list, max_length=50)
    #: What the fact checker compares across entries: the item or topic this entry speaks about.
    subject: Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] = ""
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _dates_in_order(self) -> EntryContent:
        if self.effective_from and self.expires_on and self.expires_on < self.effective_from:
            raise ValueError("expires_on is before effective_from")
        if not any(s.text.strip() for s in self.sections):
            raise ValueError("the entry has no text")
        return self


class EntryWrite(Strict):
    external_id: ExternalId
    content: EntryContent
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


class EntryUpdate(Strict):
    content: EntryContent
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


class Decision(Strict):
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


class EntrySummary(BaseModel):
    external_id: str
    kind: Kind
    title: str
    department: str
    region: str
    status: EntryStatus
    version: int
    published_version: int | None
    pending_version: int | None
    effective_from: dt.date | None
    expires_on: dt.date | None
    updated_at: dt.datetime


class EntryOut(EntrySummary):
    source: str
    audiences: list[str]
    created_at: dt.datetime
    published_at: dt.datetime | None
    content: EntryContent


class EntryPage(BaseModel):
    entries: list[EntrySummary]
    total: int
    page: int
    page_size: int


class VersionOut(BaseModel):
    version: int
    state: VersionState
    author: str
    note: str
    created_at: dt.datetime
    reviewed_by: str | None
    reviewed_at: dt.datetime | None
    content_hash: str


class DiffOut(BaseModel):
    external_id: str
    from_version: int
    to_version: int
    #: A unified diff of the two versions' text and metadata, line by line.
    unified: list[str]


class Citation(BaseModel):
    """What a result quotes: the entry, the version, and where in it."""

    external_id: str
    version: int
    heading: str
    start: int
    end: int
    page: int | None


class SearchResultOut(BaseModel):
    id: str
    kind: Kind
    title: str
    snippet: str
    #: [start, end) character ranges of ``snippet`` to highlight.
    highlights: list[tuple[int, int]]
    scores: dict[str, float]
    source: str
    department: str
    region: str
    citation: Citation
    #: The catalogue item code, for service items.
    item_code: str | None = None


class SearchResponse(BaseModel):
    query: str
    total: int
    results: list[SearchResultOut]
    #: Synonyms applied to the query, as [found, added] pairs.
    expansions: list[tuple[str, str]]
    found: bool


class LexiconIn(Strict):
    kind: LexiconKind
    term: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    canonical: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None
    ) = None
    note: Annotated[str, StringConstraints(max_length=500)] = ""

    @model_validator(mode="after")
    def _canonical_for_synonyms(self) -> LexiconIn:
        if self.kind == LexiconKind.SYNONYM and not self.canonical:
            raise ValueError("a synonym needs the canonical (official) term")
        if self.kind == LexiconKind.TERM and self.canonical:
            raise ValueError("a dictionary term has no canonical")
        if self.canonical and self.canonical == self.term:
            raise ValueError("a synonym must differ from its canonical term")
        return self


class LexiconOut(BaseModel):
    id: int
    kind: LexiconKind
    term: str
    canonical: str | None
    state: LexiconState
    note: str
    proposed_by: str
    approved_by: str | None
    updated_at: dt.datetime


class Conflict(BaseModel):
    subject: str
    attribute: str
    #: Each differing value with the entries that state it.
    values: dict[str, list[str]]


class MissOut(BaseModel):
    query: str
    count: int
    last_seen: dt.datetime


class OpsReport(BaseModel):
    stale: list[EntrySummary]
    expiring: list[EntrySummary]
    misses: list[MissOut]
    conflicts: list[Conflict]
    pending_review: list[EntrySummary]
    index: dict[str, Any]
