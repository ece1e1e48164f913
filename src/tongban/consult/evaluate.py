"""Consultation evaluation: answer quality, citations, refusals, grounding and latency in one run.

The documents are loaded into a fresh temporary knowledge base (as ``tongban eval retrieval`` does) and
every question goes through the real consultation service (offline reader unless a model is given).

Measures, on the answerable questions (``id``, ``question``, ``docid``, ``answer``):

* **answer char-F1** — character-level F1 against the gold answer after NFKC and Traditional→Simplified,
  ignoring spaces and punctuation; a refused question scores 0;
* **containment** — the share of answers that contain the whole gold answer;
* **citation precision** — the share of citations whose document is the labelled one or contains the gold
  answer (collections hold near-duplicates), and, stricter, whose quoted passage contains it;
* **false-refusal rate** — answerable questions refused;
* **ungrounded numbers** — facts (numbers with units, dates, document numbers, material names) in answers
  that none of the answer's citations contains;
* **latency** p50/p95 of the whole consultation.

On the ``--refuse`` questions (``id``, ``question``; the documents cannot answer them): the refusal rate.
The naive baseline — the sentence of the top BM25 document that overlaps the question most — is measured on
the same questions in the same run.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tongban.consult import grounding, reader
from tongban.consult import service as consult
from tongban.consult.schemas import ConsultIn
from tongban.core.auth import ANONYMOUS
from tongban.core.clock import SystemClock
from tongban.core.db import session_scope
from tongban.core.llm import ChatModel
from tongban.knowledge.evaluate import (
    EvalInputError,
    Question,
    baseline_bm25,
    read_documents,
    read_questions,
    temporary_knowledge_base,
)


@dataclass(frozen=True)
class RefuseQuestion:
    id: str
    question: str


def read_refuse(path: Path) -> list[RefuseQuestion]:
    out: list[RefuseQuestion] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalInputError(f"{path}: line {n}: not JSON ({exc.msg})") from exc
        q = row.get("question") if isinstance(row, dict) else None
        if not isinstance(q, str) or not q.strip():
            raise EvalInputError(f"{path}: line {n}: needs a string 'question'")
        out.append(RefuseQuestion(str(row.get("id", n)), q.strip()))
    if not out:
        raise EvalInputError(f"{path}: no questions")
    return out


@dataclass
class AnswerMetrics:
    name: str
    questions: int
    char_f1: float
    containment: float
    false_refusal_rate: float | None = None
    citation_precision: float | None = None
    quote_precision: float | None = None
    ungrounded_facts: int | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass
class ConsultReport:
    documents: int
    passages: int
    system: AnswerMetrics
    baseline: AnswerMetrics
    refusal_rate: float | None = None
    refuse_questions: int = 0
    not_refused: list[str] = field(default_factory=list)
    falsely_refused: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "passages": self.passages,
            "system": self.system.as_dict(),
            "baseline": self.baseline.as_dict(),
            "refusal_rate": None if self.refusal_rate is None else round(self.refusal_rate, 4),
            "refuse_questions": self.refuse_questions,
            "not_refused": self.not_refused,
            "falsely_refused": self.falsely_refused,
        }


def _contains(answer: str, gold: str) -> bool:
    a, g = "".join(reader.clean_chars(answer)), "".join(reader.clean_chars(gold))
    return bool(g) and g in a


_SENTENCE = re.compile(r"[^。！？!?；;\n]+[。！？!?；;]?")


def naive_answer(question: str, text: str) -> str:
    """The baseline's answer: the sentence of ``text`` sharing most characters with the question."""
    qchars = set(reader.clean_chars(question))
    best, best_score = "", -1
    for match in _SENTENCE.finditer(text):
        sentence = match.group(0).strip()
        score = len(qchars & set(reader.clean_chars(sentence)))
        if score > best_score:
            best, best_score = sentence, score
    return best


def _split(questions: list[Question], split: str) -> list[Question]:
    if split == "even":
        return questions[0::2]
    if split == "odd":
        return questions[1::2]
    return questions


def evaluate_consult(
    docs_path: Path,
    questions_path: Path,
    *,
    refuse_path: Path | None = None,
    split: str = "all",
    embedding: str = "e5",
    threads: int = 1,
    cache_path: Path | None = None,
    model: ChatModel | None = None,
    reader_model: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ConsultReport:
    docs = read_documents(docs_path)
    texts = {d.external_id: "\n".join(s.text for s in d.sections) for d in docs}
    questions = _split([q for q in read_questions(questions_path) if q.answer], split)
    if not questions:
        raise EvalInputError(f"{questions_path}: no question with an answer")
    refuse = read_refuse(refuse_path) if refuse_path else []
    ranker = reader.Ranker.load(reader_model) if reader_model else None
    clock = SystemClock()
    f1s: list[float] = []
    contained = 0
    refused_ids: list[str] = []
    cited = cited_ok = quote_ok = 0
    ungrounded = 0
    latencies: list[float] = []
    not_refused: list[str] = []
    with temporary_knowledge_base(
        docs_path, embedding=embedding, threads=threads, cache_path=cache_path, progress=progress
    ) as kb:

        def ask(question: str) -> tuple[Any, float]:
            start = time.perf_counter()
            with session_scope(kb.factory) as session:
                out = consult.consult(
                    session,
                    kb.holder,
                    ANONYMOUS,
                    ConsultIn(question=question),
                    clock=clock,
                    model=model,
                    ranker=ranker,
                )
            return out, (time.perf_counter() - start) * 1000

        for n, q in enumerate(questions, 1):
            out, ms = ask(q.question)
            latencies.append(ms)
            gold = q.answer or ""
            if out.refused:
                refused_ids.append(q.id)
                f1s.append(0.0)
            else:
                f1s.append(reader.char_f1(out.answer, gold))
                contained += _contains(out.answer, gold)
                quotes = "\n".join(c.quote for c in out.citations)
                ungrounded += sum(
                    1
                    for f in grounding.facts(out.answer)
                    if not grounding.grounded(f, grounding.normalise(quotes))
                )
                for c in out.citations:
                    cited += 1
                    cited_ok += c.id == q.docid or gold in texts.get(c.id, "")
                    quote_ok += _contains(c.quote, gold)
            if progress:
                progress("ask", n, len(questions))
        refused_count = 0
        for n, r in enumerate(refuse, 1):
            out, ms = ask(r.question)
            latencies.append(ms)
            if out.refused:
                refused_count += 1
            else:
                not_refused.append(r.id)
            if progress:
                progress("refuse", n, len(refuse))
        passages = kb.passages
    ranked = baseline_bm25(docs)
    base_f1s: list[float] = []
    base_contained = 0
    for q in questions:
        top = ranked(q.question)
        answer = naive_answer(q.question, texts.get(top[0], "")) if top else ""
        base_f1s.append(reader.char_f1(answer, q.answer or ""))
        base_contained += _contains(answer, q.answer or "")
    n = len(questions)
    system = AnswerMetrics(
        name="tongban " + ("llm" if model else "extractive"),
        questions=n,
        char_f1=float(np.mean(f1s)),
        containment=contained / n,
        false_refusal_rate=len(refused_ids) / n,
        citation_precision=cited_ok / cited if cited else 0.0,
        quote_precision=quote_ok / cited if cited else 0.0,
        ungrounded_facts=ungrounded,
        latency_p50_ms=float(np.percentile(latencies, 50)),
        latency_p95_ms=float(np.percentile(latencies, 95)),
    )
    baseline = AnswerMetrics(
        name="best-overlap sentence of the top BM25 document",
        questions=n,
        char_f1=float(np.mean(base_f1s)),
        containment=base_contained / n,
    )
    return ConsultReport(
        documents=len(docs),
        passages=passages,
        system=system,
        baseline=baseline,
        refusal_rate=refused_count / len(refuse) if refuse else None,
        refuse_questions=len(refuse),
        not_refused=not_refused,
        falsely_refused=refused_ids,
    )
