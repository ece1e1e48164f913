"""Retrieval evaluation: load documents into a fresh temporary knowledge base, ask labelled questions.

A question counts as answered at rank r when the r-th result is the labelled document, or contains the
labelled answer text (collections often hold near-duplicate documents). Reports Recall@1, Recall@5,
MRR@10 and query latency; optionally the same for a plain BM25-over-jieba-words baseline, in the same run.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tantivy
from sqlalchemy.orm import Session, sessionmaker

from tongban.core.clock import SystemClock
from tongban.core.db import make_engine, make_sessionmaker, session_scope
from tongban.core.migrate import upgrade
from tongban.knowledge import service
from tongban.knowledge.embedding import Embedder, from_bytes, get_embedder, to_bytes
from tongban.knowledge.ingest import Section, SourceDocument
from tongban.knowledge.schemas import Kind


class EvalInputError(ValueError):
    """A documents or questions file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    docid: str
    answer: str | None


@dataclass
class Metrics:
    name: str
    questions: int
    recall_at_1: float
    recall_at_5: float
    mrr_at_10: float
    latency_p50_ms: float
    latency_p95_ms: float
    misses: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "questions": self.questions,
            "recall@1": round(self.recall_at_1, 4),
            "recall@5": round(self.recall_at_5, 4),
            "mrr@10": round(self.mrr_at_10, 4),
            "latency_p50_ms": round(self.latency_p50_ms, 2),
            "latency_p95_ms": round(self.latency_p95_ms, 2),
        }


@dataclass
class EvalReport:
    documents: int
    passages: int
    ingest_seconds: float
    embed_seconds: float
    system: Metrics
    baseline: Metrics | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "documents": self.documents,
            "passages": self.passages,
            "ingest_seconds": round(self.ingest_seconds, 1),
            "embed_seconds": round(self.embed_seconds, 1),
            "system": self.system.as_dict(),
        }
        if self.baseline is not None:
            out["baseline"] = self.baseline.as_dict()
        return out


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalInputError(f"{path}: cannot read ({exc})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalInputError(f"{path}: line {n}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise EvalInputError(f"{path}: line {n}: expected an object")
        yield n, row


def read_documents(path: Path) -> list[SourceDocument]:
    docs: list[SourceDocument] = []
    seen: set[str] = set()
    for n, row in _jsonl(path):
        doc_id = row.get("docid", row.get("id"))
        text = row.get("text")
        if not isinstance(doc_id, str) or not doc_id.strip():
            raise EvalInputError(f"{path}: line {n}: needs a string 'docid' or 'id'")
        if not isinstance(text, str) or not text.strip():
            raise EvalInputError(f"{path}: line {n}: needs a non-empty string 'text'")
        if doc_id in seen:
            raise EvalInputError(f"{path}: line {n}: duplicate document id {doc_id!r}")
        seen.add(doc_id)
        title = row.get("title")
        paragraphs = [p.strip() for p in text.splitlines() if p.strip()]
        if not isinstance(title, str) or not title.strip():
            first = paragraphs[0] if paragraphs else text
            title = first if len(first) <= 40 else first[:30] + "…"
        docs.append(
            SourceDocument(
                external_id=doc_id.strip(),
                title=title.strip(),
                sections=(Section(heading=(), text="\n".join(paragraphs)),),
                metadata={},
            )
        )
    if not docs:
        raise EvalInputError(f"{path}: no documents")
    return docs


def read_questions(path: Path) -> list[Question]:
    out: list[Question] = []
    for n, row in _jsonl(path):
        q, docid = row.get("question"), row.get("docid")
        if not isinstance(q, str) or not q.strip() or not isinstance(docid, str):
            raise EvalInputError(f"{path}: line {n}: needs string 'question' and 'docid'")
        answer = row.get("answer")
        out.append(
            Question(
                id=str(row.get("id", n)),
                question=q.strip(),
                docid=docid,
                answer=answer if isinstance(answer, str) and answer.strip() else None,
            )
        )
    if not out:
        raise EvalInputError(f"{path}: no questions")
    return out


def _score(
    name: str, questions: list[Question], texts: dict[str, str], ranked: Callable[[str], list[str]]
) -> Metrics:
    r1 = r5 = 0
    rr = 0.0
    latencies: list[float] = []
    misses: list[str] = []
    for q in questions:
        start = time.perf_counter()
        ids = ranked(q.question)
        latencies.append((time.perf_counter() - start) * 1000)
        rank = next(
            (
                i
                for i, doc_id in enumerate(ids[:10])
                if doc_id == q.docid or (q.answer is not None and q.answer in texts.get(doc_id, ""))
            ),
            None,
        )
        if rank is None:
            misses.append(q.id)
            continue
        r1 += rank == 0
        r5 += rank < 5
        rr += 1 / (rank + 1)
    n = len(questions)
    return Metrics(
        name=name,
        questions=n,
        recall_at_1=r1 / n,
        recall_at_5=r5 / n,
        mrr_at_10=rr / n,
        latency_p50_ms=float(np.percentile(latencies, 50)),
        latency_p95_ms=float(np.percentile(latencies, 95)),
        misses=misses,
    )


class EmbeddingCacheFile:
    """Vectors kept between evaluation runs (``.npz``: hashes and float16 vectors), keyed by model."""

    def __init__(self, path: Path | None, model: str) -> None:
        self.path = path
        self.model = model
        self.vectors: dict[str, bytes] = {}
        if path is not None and path.is_file():
            with np.load(path, allow_pickle=False) as data:
                if str(data["model"]) == model:
                    for h, v in zip(data["hashes"], data["vectors"], strict=True):
                        self.vectors[str(h)] = to_bytes(v)

    def save(self, vectors: dict[str, bytes]) -> None:
        if self.path is None or not vectors:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        hashes = np.array(list(vectors))
        matrix = np.vstack([from_bytes(v) for v in vectors.values()]).astype(np.float16)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, model=np.array(self.model), hashes=hashes, vectors=matrix)
        tmp.replace(self.path)


def baseline_bm25(docs: list[SourceDocument]) -> Callable[[str], list[str]]:
    """The peer: BM25 (Tantivy) over jieba search-mode words with jieba's own dictionary, per document."""
    import jieba  # type: ignore[import-untyped]

    jieba.setLogLevel(logging.WARNING)
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("id", stored=True, tokenizer_name="raw")
    sb.add_text_field("words", stored=False, tokenizer_name="whitespace")
    schema = sb.build()
    index = tantivy.Index(schema)
    writer = index.writer(heap_size=64_000_000, num_threads=1)

    def words(text: str) -> list[str]:
        return [
            w.strip().lower()
            for w in jieba.lcut_for_search(text)
            if w.strip() and any(c.isalnum() for c in w)
        ]

    for doc in docs:
        body = doc.title + "\n" + "\n".join(s.text for s in doc.sections)
        writer.add_document(tantivy.Document(id=doc.external_id, words=" ".join(words(body))))
    writer.commit()
    index.reload()
    searcher = index.searcher()

    def ranked(question: str) -> list[str]:
        terms = list(dict.fromkeys(words(question)))
        if not terms:
            return []
        query = tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "words", t)) for t in terms]
        )
        return [str(searcher.doc(addr)["id"][0]) for _, addr in searcher.search(query, 10).hits]

    return ranked


@dataclass
class TemporaryKnowledgeBase:
    """A fresh knowledge base in a temporary SQLite file, loaded with documents and indexed."""

    factory: sessionmaker[Session]
    holder: service.IndexHolder
    documents: int
    passages: int
    ingest_seconds: float
    embed_seconds: float


@contextmanager
def temporary_knowledge_base(
    docs_path: Path,
    *,
    embedding: str = "e5",
    threads: int = 1,
    cache_path: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Iterator[TemporaryKnowledgeBase]:
    """Load ``docs_path`` (JSONL: ``docid`` or ``id``, ``text``, optional ``title``) into a fresh knowledge
    base; embeddings are read from and saved to ``cache_path`` (an .npz file) when given."""
    docs = read_documents(docs_path)
    embedder: Embedder | None = get_embedder(embedding, threads)
    clock = SystemClock()
    with tempfile.TemporaryDirectory(prefix="tongban-eval-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'eval.sqlite3'}")
        try:
            upgrade(engine)
            factory = make_sessionmaker(engine)
            cache = EmbeddingCacheFile(cache_path, embedder.name) if embedder else None
            start = time.perf_counter()
            with session_scope(factory) as session:
                if embedder is not None and cache is not None and cache.vectors:
                    service.store_vectors(session, embedder.name, cache.vectors)
                for n, doc in enumerate(docs, 1):
                    content = service.content_from_document(doc, service.IngestDefaults(kind=Kind.POLICY))
                    service.ingest_content(
                        session, doc.external_id, content, actor="eval", clock=clock, source=docs_path.name
                    )
                    if progress:
                        progress("ingest", n, len(docs))
            ingest_seconds = time.perf_counter() - start
            start = time.perf_counter()
            holder = service.IndexHolder(embedder)
            with session_scope(factory) as session:
                if embedder is not None:
                    service.embed_missing(
                        session, embedder, progress=(lambda n: progress("embed", n, 0)) if progress else None
                    )
                    if cache is not None:
                        from tongban.knowledge import repository as repo

                        passages = repo.passages_of(session, [e.id for e in repo.published_entries(session)])
                        cache.save(
                            repo.cached_vectors(session, embedder.name, (p.embed_hash for p in passages))
                        )
                index = service.rebuild_index(session, holder)
            yield TemporaryKnowledgeBase(
                factory=factory,
                holder=holder,
                documents=len(docs),
                passages=index.passage_count,
                ingest_seconds=ingest_seconds,
                embed_seconds=time.perf_counter() - start,
            )
        finally:
            engine.dispose()


def evaluate_retrieval(
    docs_path: Path,
    questions_path: Path,
    *,
    k: int = 10,
    embedding: str = "e5",
    threads: int = 1,
    cache_path: Path | None = None,
    with_baseline: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> EvalReport:
    docs = read_documents(docs_path)
    questions = read_questions(questions_path)
    texts = {d.external_id: "\n".join(s.text for s in d.sections) for d in docs}
    clock = SystemClock()
    with temporary_knowledge_base(
        docs_path, embedding=embedding, threads=threads, cache_path=cache_path, progress=progress
    ) as kb:

        def ranked(question: str) -> list[str]:
            with session_scope(kb.factory) as session:
                response = service.search(session, kb.holder, question, clock=clock, k=k, record_miss=False)
            return [r.id for r in response.results]

        system = _score("tongban hybrid", questions, texts, ranked)
    baseline = (
        _score("BM25 over jieba words", questions, texts, baseline_bm25(docs)) if with_baseline else None
    )
    return EvalReport(
        documents=len(docs),
        passages=kb.passages,
        ingest_seconds=kb.ingest_seconds,
        embed_seconds=kb.embed_seconds,
        system=system,
        baseline=baseline,
    )
