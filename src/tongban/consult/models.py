"""Consultation tables.

``consult_conversation`` is a citizen's conversation (it expires after a period of silence and is then
deleted with its turns); ``consult_turn`` one question and what the service answered, with personal numbers
masked; ``consult_agent`` a domain agent that operators configure (scope, instructions, examples).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tongban.core.db import Base, JSONType, UTCDateTime


class ConsultAgent(Base):
    __tablename__ = "consult_agent"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    #: Extra instructions given to a language model (ignored by the extractive reader).
    instructions: Mapped[str] = mapped_column(Text, default="")
    #: Example questions: they route questions to the agent and are offered as next questions.
    examples: Mapped[list[str]] = mapped_column(JSONType, default=list)
    keywords: Mapped[list[str]] = mapped_column(JSONType, default=list)
    #: What the agent may quote: knowledge kinds, departments, regions, catalogue themes and item codes.
    scope: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(100), default="")


class ConsultConversation(Base):
    __tablename__ = "consult_conversation"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    language: Mapped[str] = mapped_column(String(10))
    agent_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The account that started it, if signed in (only that account may continue it).
    account: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    turns: Mapped[int] = mapped_column(Integer, default=0)
    #: Situation guidance in progress: {"item": code, "answers": {question key: option key}}.
    guidance: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class ConsultTurn(Base):
    __tablename__ = "consult_turn"
    __table_args__ = (Index("ix_consult_turn_conversation_seq", "conversation_id", "seq", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("consult_conversation.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    #: The question with identity, phone and card numbers masked.
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text, default="")
    refused: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(String(40), default="")
    citations: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    agent_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mode: Mapped[str] = mapped_column(String(20))
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
