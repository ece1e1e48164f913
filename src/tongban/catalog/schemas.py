"""Pydantic I/O of the catalogue. :class:`ItemContent` is also the documented import format (JSONL)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from tongban.catalog.vocab import (
    Audience,
    Channel,
    ItemType,
    Level,
    LimitUnit,
    MaterialForm,
    MaterialSource,
    Status,
    VersionState,
)

Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20_000)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9A-Za-z][0-9A-Za-z_.-]{3,63}$")]
Slug = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TimeLimit(Strict):
    value: int = Field(ge=0, le=3650)
    unit: LimitUnit = LimitUnit.WORKING_DAY


class Material(Strict):
    name: ShortText
    form: MaterialForm | None = None
    copies: int = Field(default=1, ge=0, le=100)
    required: bool = True
    source: MaterialSource = MaterialSource.APPLICANT
    #: The e-licence type or shared-data item the material is fetched from.
    source_ref: Annotated[str, StringConstraints(max_length=200)] | None = None
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None
    #: Keys of the situations this material applies to; empty means every situation.
    situations: list[Slug] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _source_ref_needed(self) -> Material:
        if self.source in (MaterialSource.E_LICENCE, MaterialSource.SHARED_DATA) and not self.source_ref:
            raise ValueError(f"a material fetched from {self.source.value} must name its source_ref")
        return self


class Situation(Strict):
    """A 办理情形: a case that changes the conditions or the materials."""

    key: Slug
    name: ShortText
    #: Left out of dumps when unset, like ``ItemContent.situation_questions`` when empty.
    name_en: ShortText | None = Field(default=None, exclude_if=lambda v: v is None)
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    extra_conditions: Annotated[str, StringConstraints(max_length=5000)] | None = None


class SituationOption(Strict):
    """One answer to a :class:`SituationQuestion` and the situations that stay possible with it."""

    key: Slug
    label: ShortText
    label_en: ShortText | None = None
    situations: list[Slug] = Field(min_length=1, max_length=50)

    @field_validator("situations")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        return list(dict.fromkeys(values))


class SituationQuestion(Strict):
    """A question that tells situations apart (情形引导), asked one at a time in definition order."""

    key: Slug
    text: ShortText
    text_en: ShortText | None = None
    options: list[SituationOption] = Field(min_length=2, max_length=20)

    @model_validator(mode="after")
    def _unique_options(self) -> SituationQuestion:
        keys = [o.key for o in self.options]
        if len(keys) != len(set(keys)):
            raise ValueError(f"question {self.key!r}: option keys must be unique")
        return self


class Fee(Strict):
    name: ShortText
    #: Amount in fen (1/100 yuan); None when it varies (see ``basis``).
    amount_fen: int | None = Field(default=None, ge=0, le=10**12)
    basis: Annotated[str, StringConstraints(max_length=2000)] | None = None


class ItemContent(Strict):
    """Everything a service guide (办事指南) says about one item. The unit of import, edit and version."""

    code: Code = Field(description="实施编码, unique per implementing department and region")
    basic_code: Code | None = Field(default=None, description="基本编码: the same item across regions")
    name: ShortText
    name_en: ShortText | None = None
    item_type: ItemType
    department: ShortText
    co_departments: Annotated[str, StringConstraints(max_length=2000)] | None = None
    region: ShortText
    region_code: Annotated[str, StringConstraints(pattern=r"^\d{6,12}$")] | None = None
    level: Level
    audiences: list[Audience] = Field(min_length=1, max_length=2)
    audience_detail: list[ShortText] = Field(default_factory=list, max_length=20)
    legal_basis: Text | None = None
    conditions: Text | None = None
    materials: list[Material] = Field(default_factory=list, max_length=200)
    statutory_limit: TimeLimit | None = None
    promised_limit: TimeLimit | None = None
    #: None: the guide does not say; False: free of charge; True: see ``fees``.
    charges_fee: bool | None = None
    fees: list[Fee] = Field(default_factory=list, max_length=50)
    location: Annotated[str, StringConstraints(max_length=2000)] | None = None
    office_hours: Annotated[str, StringConstraints(max_length=500)] | None = None
    consult_phone: Annotated[str, StringConstraints(max_length=200)] | None = None
    complaint_phone: Annotated[str, StringConstraints(max_length=200)] | None = None
    channels: list[Channel] = Field(default_factory=list, max_length=2)
    online_url: Annotated[str, StringConstraints(max_length=500, pattern=r"^https?://")] | None = None
    #: 跑动次数: how many times the applicant must come in person.
    visits: int = Field(default=0, ge=0, le=20)
    situations: list[Situation] = Field(default_factory=list, max_length=50)
    #: Questions that tell the situations apart; without them an item with 2+ situations asks one implicit
    #: question whose options are the situations (see ``tongban.consult.guidance``). Left out of dumps when
    #: empty, so that the content hash of an item stored before the field existed does not change.
    situation_questions: list[SituationQuestion] = Field(
        default_factory=list, max_length=20, exclude_if=lambda v: not v
    )
    themes: list[ShortText] = Field(default_factory=list, max_length=20)

    @field_validator("audiences", "channels", "themes", "audience_detail")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        return list(dict.fromkeys(values))

    @model_validator(mode="after")
    def _consistent(self) -> ItemContent:
        keys = [s.key for s in self.situations]
        if len(keys) != len(set(keys)):
            raise ValueError("situation keys must be unique")
        for m in self.materials:
            unknown = set(m.situations) - set(keys)
            if unknown:
                raise ValueError(
                    f"material {m.name!r} names unknown situation(s): {', '.join(sorted(unknown))}"
                )
        question_keys = [q.key for q in self.situation_questions]
        if len(question_keys) != len(set(question_keys)):
            raise ValueError("situation question keys must be unique")
        for q in self.situation_questions:
            for o in q.options:
                unknown = set(o.situations) - set(keys)
                if unknown:
                    raise ValueError(
                        f"option {o.key!r} of question {q.key!r} names unknown situation(s): "
                        f"{', '.join(sorted(unknown))}"
                    )
        if self.charges_fee is False and self.fees:
            raise ValueError("an item free of charge cannot list fees")
        if (
            self.statutory_limit
            and self.promised_limit
            and self.statutory_limit.unit == self.promised_limit.unit
            and self.promised_limit.value > self.statutory_limit.value
        ):
            raise ValueError("the promised time limit cannot exceed the statutory one")
        return self


class ItemSummary(BaseModel):
    code: str
    name: str
    name_en: str | None
    item_type: ItemType
    department: str
    region: str
    level: Level
    audiences: list[Audience]
    status: Status
    version: int
    updated_at: dt.datetime


class ItemOut(BaseModel):
    code: str
    status: Status
    version: int
    published_version: int | None
    pending_version: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    published_at: dt.datetime | None
    content: ItemContent


class ItemPage(BaseModel):
    items: list[ItemSummary]
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
    changed_fields: list[str]


class ReviewDecision(Strict):
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


class ItemWrite(Strict):
    """A create or update request: the content plus a note for the history."""

    content: ItemContent
    note: Annotated[str, StringConstraints(max_length=2000)] = ""
