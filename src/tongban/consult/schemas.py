"""Consultation I/O: the question, the answer with its citations, agents."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Question = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z][a-z0-9_-]{1,63}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Language(StrEnum):
    ZH_HANS = "zh-Hans"
    ZH_HANT = "zh-Hant"
    EN = "en"


class RefusalReason(StrEnum):
    #: The knowledge does not support an answer.
    NO_SUPPORT = "no_support"
    #: The question names a place, year, document or programme that no retrieved text mentions.
    NOT_COVERED = "not_covered"
    #: The composed answer failed the grounding checks and could not be repaired.
    UNGROUNDED = "ungrounded"
    MEDICAL = "medical"
    LEGAL_ADVICE = "legal_advice"
    OUT_OF_SCOPE = "out_of_scope"
    #: The question was nothing but an instruction to the assistant.
    INSTRUCTION = "instruction"


class ConsultIn(Strict):
    question: Question
    conversation_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")] | None = None
    language: Language = Language.ZH_HANS
    #: An agent code (社保, 住房, …); empty lets the router choose.
    domain: Code | None = None


class CitationOut(BaseModel):
    #: The knowledge id as ingested (JSONL ``id``/``docid``, ``catalog:<code>``, a file path).
    id: str
    title: str
    #: The passage quoted, as published in that version.
    quote: str
    version: int
    start: int
    end: int
    heading: str = ""


class ServiceItemOut(BaseModel):
    code: str
    name: str
    url: str


class ConsultOut(BaseModel):
    conversation_id: str
    answer: str
    citations: list[CitationOut]
    refused: bool
    reason: RefusalReason | None = None
    #: A sentence for the citizen explaining a refusal, in their language.
    reason_text: str = ""
    service_items: list[ServiceItemOut]
    next_questions: list[str]
    #: The agent that answered, if any.
    agent: str | None = None
    #: ``extractive`` (offline reader) or ``llm`` (a configured endpoint).
    mode: str
    confidence: float
    #: Where a person can take over: the hotline hand-off, prefilled with the question.
    handoff_url: str | None = None
    language: Language


class AgentIn(Strict):
    code: Code
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    name_en: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    instructions: Annotated[str, StringConstraints(max_length=4000)] = ""
    examples: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]] = (
        Field(default_factory=list, max_length=50)
    )
    keywords: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]] = (
        Field(default_factory=list, max_length=200)
    )
    #: What the agent may quote: {"kinds": [...], "departments": [...], "regions": [...]}.
    scope: dict[str, list[str]] = Field(default_factory=dict)
    enabled: bool = True


class AgentOut(AgentIn):
    version: int
    updated_at: str
    updated_by: str


def scope_filters(scope: dict[str, Any]) -> dict[str, list[str]]:
    """Only the known scope keys, each a list of strings."""
    return {
        k: [str(v) for v in scope.get(k, [])] for k in ("kinds", "departments", "regions") if scope.get(k)
    }
