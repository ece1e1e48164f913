"""The search index a node keeps in step with the published knowledge.

Two engines, one per signal, both embedded in the process:

* **lexical**: Tantivy (BM25) over pre-analysed tokens (see :mod:`tongban.knowledge.text`). Each passage
  is one document (words + character bigrams); each entry is one more document (title + whole body
  bigrams), because a question often matches a document as a whole better than any one passage.
* **semantic**: the passages' embeddings in a NumPy matrix; a query is one matrix-vector product.

A query asks each engine for its best candidates, normalises each signal over its candidates (min-max),
and fuses per entry: ``fused = passage_bm25 + entry_bm25 + w · semantic``. Every signal is kept on the hit
so the page can explain a ranking. Expired, not-yet-effective and withdrawn entries are never returned:
withdrawal removes them from the index; dates are checked on every query against the clock.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import tantivy

from tongban.knowledge.embedding import Embedder, Matrix
from tongban.knowledge.text import Analyzer, QueryTerms

K = TypeVar("K")

#: Candidates each signal contributes before fusion.
CANDIDATES = 100
#: Weight of the semantic signal relative to each lexical one.
SEMANTIC_WEIGHT = 0.8
#: Weight of each lexical signal for a query with no Chinese in it (an English question over Chinese
#: content matches only through stray Latin text; its meaning is what counts).
FOREIGN_LEXICAL_WEIGHT = 0.25
#: … and for one whose glossary terms were translated into official Chinese terms (partial evidence).
TRANSLATED_LEXICAL_WEIGHT = 0.5
#: Cosine similarity (e5) above which a semantic match alone counts as "found something".
SEMANTIC_FOUND = 0.86
EXPANSION_BOOST = 0.7
#: Weight of dictionary-word matches relative to character bigrams (bigrams carry recall; words precision).
WORDS_BOOST = 0.3
#: Tantivy's BM25 k1.
BM25_K1 = 1.2
#: A lexical match reaching this share of the query's BM25 ceiling counts fully; weaker best matches
#: scale the whole lexical signal down, so that a few stray shared characters do not outrank meaning.
LEXICAL_CONFIDENT: float | None = 0.15

#: Encodes queries while Tantivy searches: the model runs in C without the GIL, so the two overlap.
_encoder_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="query-encoder")


@dataclass(frozen=True)
class IndexedPassage:
    seq: int
    text: str
    heading: str = ""
    start: int = 0
    end: int = 0
    page: int | None = None
    vector: Matrix | None = None


@dataclass(frozen=True)
class IndexedEntry:
    entry_id: int
    external_id: str
    kind: str
    title: str
    version: int
    department: str = ""
    region: str = ""
    audiences: tuple[str, ...] = ()
    source: str = ""
    effective_from: dt.date | None = None
    expires_on: dt.date | None = None
    passages: tuple[IndexedPassage, ...] = ()

    def valid_on(self, day: dt.date) -> bool:
        if self.effective_from is not None and day < self.effective_from:
            return False
        return self.expires_on is None or day <= self.expires_on


@dataclass(frozen=True)
class SearchFilters:
    kinds: tuple[str, ...] = ()
    department: str | None = None
    audience: str | None = None
    region: str | None = None
    #: Only entries in force on this day (defaults to today).
    valid_on: dt.date | None = None

    def admits(self, entry: IndexedEntry) -> bool:
        if self.kinds and entry.kind not in self.kinds:
            return False
        if self.department and entry.department != self.department:
            return False
        if self.region and entry.region != self.region:
            return False
        return not (self.audience and self.audience not in entry.audiences)


@dataclass
class Hit:
    entry: IndexedEntry
    passage: IndexedPassage
    #: Per-signal raw scores (``passage_bm25``, ``entry_bm25``, ``semantic``) and ``fused``.
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class SearchOutcome:
    hits: list[Hit]
    terms: QueryTerms
    #: How strong the best lexical match is, relative to the query's BM25 ceiling (1.0 = fully trusted).
    confidence: float
    #: The best lexical score as a share of the query's BM25 ceiling.
    strength: float
    #: False when no lexical term matched and no passage was close in meaning (a question that found nothing).
    found: bool


def _long_words(words: list[str]) -> list[str]:
    """Dictionary words of three characters or more: shorter ones are exactly the bigrams already indexed,
    and letters and digits are indexed whole with the bigrams."""
    return [w for w in words if len(w) >= 3 and not w.isascii()]


def _schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_integer_field("row", stored=True, indexed=True, fast=True)
    sb.add_integer_field("entry", stored=True, indexed=True, fast=True)
    sb.add_text_field("unit", stored=False, tokenizer_name="raw")
    sb.add_text_field("kind", stored=False, tokenizer_name="raw")
    sb.add_text_field("words", stored=False, tokenizer_name="whitespace")
    sb.add_text_field("grams", stored=False, tokenizer_name="whitespace")
    return sb.build()


class SearchIndex:
    """One node's index. Thread-safe: writers take a lock; readers search a consistent snapshot."""

    def __init__(self, analyzer: Analyzer, embedder: Embedder | None, path: Path | None = None) -> None:
        self.analyzer = analyzer
        self.embedder = embedder
        self._schema = _schema()
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
            self._tantivy = tantivy.Index(self._schema, path=str(path), reuse=False)
        else:
            self._tantivy = tantivy.Index(self._schema)
        self._writer = self._tantivy.writer(heap_size=64_000_000, num_threads=1)
        self._writer.delete_all_documents()
        self._writer.commit()
        self._tantivy.reload()
        self._lock = threading.RLock()
        dim = embedder.dim if embedder is not None else 0
        self._dim = dim
        self._vectors = np.zeros((0, dim), dtype=np.float32)
        self._row_entry = np.zeros(0, dtype=np.int64)
        self._row_seq = np.zeros(0, dtype=np.int32)
        self._alive = np.zeros(0, dtype=bool)
        self._entries: dict[int, IndexedEntry] = {}
        self._rows_of: dict[int, list[int]] = {}
        self._pending_vectors: list[Matrix] = []
        self._pending_meta: list[tuple[int, int]] = []
        self._next_row = 0
        #: The last ``knowledge_change.seq`` this index reflects.
        self.applied_seq = 0
        self.generation = ""

    # -- writing ----------------------------------------------------------------------------------------

    def put(self, entry: IndexedEntry) -> None:
        """Add an entry or replace the one with the same id. Visible after :meth:`commit`."""
        with self._lock:
            self._remove(entry.entry_id)
            a = self.analyzer
            body_grams: list[str] = a.grams(entry.title)
            body_words: list[str] = _long_words(a.words(entry.title))
            for p in entry.passages:
                row = self._next_row
                self._next_row += 1
                text = f"{p.heading}\n{p.text}" if p.heading else p.text
                grams = a.grams(text)
                body_grams.extend(a.grams(p.text))
                words = _long_words(a.words(text))
                body_words.extend(words)
                self._writer.add_document(
                    tantivy.Document(
                        row=row,
                        entry=entry.entry_id,
                        unit="passage",
                        kind=entry.kind,
                        words=" ".join(words),
                        grams=" ".join(grams),
                    )
                )
                self._rows_of.setdefault(entry.entry_id, []).append(row)
                self._pending_meta.append((entry.entry_id, p.seq))
                if self._dim:
                    vec = p.vector if p.vector is not None else np.zeros(self._dim, dtype=np.float32)
                    self._pending_vectors.append(np.asarray(vec, dtype=np.float32).reshape(1, self._dim))
            self._writer.add_document(
                tantivy.Document(
                    row=-1,
                    entry=entry.entry_id,
                    unit="entry",
                    kind=entry.kind,
                    words=" ".join(body_words),
                    grams=" ".join(body_grams),
                )
            )
            self._entries[entry.entry_id] = entry

    def remove(self, entry_id: int) -> None:
        with self._lock:
            self._remove(entry_id)

    def _remove(self, entry_id: int) -> None:
        if entry_id not in self._entries:
            return
        self._writer.delete_documents_by_term("entry", entry_id)
        del self._entries[entry_id]
        for row in self._rows_of.pop(entry_id, []):
            if row < len(self._alive):
                self._alive[row] = False
            else:  # still pending: mark its metadata so the flush drops it
                idx = row - len(self._alive)
                self._pending_meta[idx] = (-1, -1)

    def clear(self) -> None:
        with self._lock:
            self._writer.delete_all_documents()
            self._entries.clear()
            self._rows_of.clear()
            self._pending_vectors.clear()
            self._pending_meta.clear()
            self._vectors = np.zeros((0, self._dim), dtype=np.float32)
            self._row_entry = np.zeros(0, dtype=np.int64)
            self._row_seq = np.zeros(0, dtype=np.int32)
            self._alive = np.zeros(0, dtype=bool)
            self._next_row = 0

    def commit(self) -> None:
        with self._lock:
            self._writer.commit()
            self._tantivy.reload()
            if self._pending_meta:
                meta = np.array(self._pending_meta, dtype=np.int64).reshape(-1, 2)
                if self._dim:
                    self._vectors = np.vstack([self._vectors, *self._pending_vectors])
                self._row_entry = np.concatenate([self._row_entry, meta[:, 0]])
                self._row_seq = np.concatenate([self._row_seq, meta[:, 1].astype(np.int32)])
                self._alive = np.concatenate([self._alive, meta[:, 0] >= 0])
                self._pending_vectors.clear()
                self._pending_meta.clear()

    # -- reading ----------------------------------------------------------------------------------------

    @property
    def entry_count(self) -> int:
        return len(self._entries)

    @property
    def passage_count(self) -> int:
        return int(self._alive.sum())

    def entry(self, entry_id: int) -> IndexedEntry | None:
        return self._entries.get(entry_id)

    def entries(self) -> Iterable[IndexedEntry]:
        return list(self._entries.values())

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        filters: SearchFilters | None = None,
        today: dt.date,
    ) -> SearchOutcome:
        filters = filters or SearchFilters()
        day = filters.valid_on or today
        terms = self.analyzer.analyze_query(query)
        with self._lock:
            searcher = self._tantivy.searcher()
            entries = self._entries
            vectors, row_entry, row_seq, alive = self._vectors, self._row_entry, self._row_seq, self._alive

        def admitted(entry_id: int) -> IndexedEntry | None:
            e = entries.get(entry_id)
            if e is None or not e.valid_on(day) or not filters.admits(e):
                return None
            return e

        restrictive = bool(filters.kinds or filters.department or filters.region or filters.audience)
        limit = CANDIDATES * (4 if restrictive or filters.valid_on else 1)
        passage_scores: dict[tuple[int, int], float] = {}
        entry_scores: dict[int, float] = {}
        embedder = self.embedder
        encoding: Future[tuple[np.ndarray, np.ndarray]] | None = None
        if embedder is not None and len(vectors):
            take = min(limit, len(vectors))

            def nearest() -> tuple[np.ndarray, np.ndarray]:
                """Encode the query and rank every passage by cosine: in C and BLAS, off the GIL."""
                qv = embedder.query(terms.rewritten)
                sims = vectors @ qv
                sims[~alive[: len(sims)]] = -1.0
                top = np.argpartition(-sims, take - 1)[:take] if take < len(sims) else np.arange(len(sims))
                top = top[np.argsort(-sims[top])]
                return top, sims[top]

            encoding = _encoder_pool.submit(nearest)
        lexical_query = self._lexical_query(terms, filters)
        if lexical_query is not None:
            unit = tantivy.Query.term_query(self._schema, "unit", "passage")
            q = tantivy.Query.boolean_query([(tantivy.Occur.Must, unit), (tantivy.Occur.Must, lexical_query)])
            for score, address in searcher.search(q, limit).hits:
                doc = searcher.doc(address)
                row = int(doc["row"][0])
                if row < len(alive) and alive[row] and admitted(int(row_entry[row])):
                    passage_scores[(int(row_entry[row]), int(row_seq[row]))] = float(score)
            unit = tantivy.Query.term_query(self._schema, "unit", "entry")
            q = tantivy.Query.boolean_query([(tantivy.Occur.Must, unit), (tantivy.Occur.Must, lexical_query)])
            for score, address in searcher.search(q, limit).hits:
                entry_id = int(searcher.doc(address)["entry"][0])
                if admitted(entry_id):
                    entry_scores[entry_id] = float(score)
        strength = 0.0
        if passage_scores or entry_scores:
            bound = self._score_bound(searcher, terms)
            best = max(max(passage_scores.values(), default=0.0), max(entry_scores.values(), default=0.0))
            strength = best / bound if bound > 0 else 1.0
        confidence = min(1.0, strength / LEXICAL_CONFIDENT) if LEXICAL_CONFIDENT else 1.0
        semantic: dict[tuple[int, int], float] = {}
        best_semantic = 0.0
        if encoding is not None:
            rows, row_sims = encoding.result()
            for row, sim in zip(rows.tolist(), row_sims.tolist(), strict=True):
                entry_id = int(row_entry[row])
                if sim <= -1.0 or not admitted(entry_id):
                    continue
                semantic[(entry_id, int(row_seq[row]))] = float(sim)
            best_semantic = max(semantic.values(), default=0.0)
        found = bool(passage_scores or entry_scores) or best_semantic >= SEMANTIC_FOUND
        if terms.han:
            lexical_weight = 1.0
        else:
            lexical_weight = TRANSLATED_LEXICAL_WEIGHT if terms.translated else FOREIGN_LEXICAL_WEIGHT
        lexical_weight *= confidence
        hits = self._fuse(entries, passage_scores, entry_scores, semantic, lexical_weight)
        return SearchOutcome(
            hits=hits[:k], terms=terms, confidence=confidence, strength=strength, found=found
        )

    @staticmethod
    def _weighted_terms(terms: QueryTerms) -> list[tuple[str, str, float]]:
        out: dict[tuple[str, str], float] = {}
        for field_name, values, boost in (
            ("grams", terms.grams, 1.0),
            ("words", _long_words(terms.words), WORDS_BOOST),
            ("grams", terms.expanded_grams, EXPANSION_BOOST),
            ("words", _long_words(terms.expanded_words), EXPANSION_BOOST * WORDS_BOOST),
        ):
            for value in values:
                out.setdefault((field_name, value), boost)
        return [(f, v, b) for (f, v), b in out.items() if b > 0]

    def _score_bound(self, searcher: tantivy.Searcher, terms: QueryTerms) -> float:
        """The BM25 score a document matching every query term very often would reach (the ceiling)."""
        n = max(1, searcher.num_docs)
        bound = 0.0
        for field_name, value, boost in self._weighted_terms(terms):
            df = searcher.doc_freq(field_name, value)
            bound += boost * math.log(1 + (n - df + 0.5) / (df + 0.5)) * (BM25_K1 + 1)
        return bound

    def _lexical_query(self, terms: QueryTerms, filters: SearchFilters) -> tantivy.Query | None:
        clauses: list[tuple[tantivy.Occur, tantivy.Query]] = []
        for field_name, value, boost in self._weighted_terms(terms):
            q = tantivy.Query.term_query(self._schema, field_name, value)
            if boost != 1.0:
                q = tantivy.Query.boost_query(q, boost)
            clauses.append((tantivy.Occur.Should, q))
        if not clauses:
            return None
        query = tantivy.Query.boolean_query(clauses)
        if filters.kinds:
            kinds = tantivy.Query.boolean_query(
                [
                    (tantivy.Occur.Should, tantivy.Query.term_query(self._schema, "kind", kind))
                    for kind in filters.kinds
                ]
            )
            query = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, kinds)])
        return query

    @staticmethod
    def _normalised(scores: Mapping[K, float]) -> dict[K, float]:
        if not scores:
            return {}
        hi, lo = max(scores.values()), min(scores.values())
        if hi - lo < 1e-9:
            return dict.fromkeys(scores, 1.0)
        return {key: (v - lo) / (hi - lo) for key, v in scores.items()}

    def _fuse(
        self,
        entries: dict[int, IndexedEntry],
        passage_scores: dict[tuple[int, int], float],
        entry_scores: dict[int, float],
        semantic: dict[tuple[int, int], float],
        lexical_weight: float = 1.0,
    ) -> list[Hit]:
        p_norm = self._normalised(passage_scores)
        e_norm = self._normalised(entry_scores)
        s_norm = self._normalised(semantic)
        per_entry: dict[int, dict[str, float]] = {}
        best_passage: dict[int, tuple[float, int]] = {}
        for key in {*passage_scores, *semantic}:
            entry_id, seq = key
            agg = per_entry.setdefault(entry_id, {})
            lex, sem = p_norm.get(key, 0.0), s_norm.get(key, 0.0)
            if key in passage_scores:
                agg["passage_bm25"] = max(agg.get("passage_bm25", 0.0), passage_scores[key])
                agg["_p"] = max(agg.get("_p", 0.0), lex)
            if key in semantic:
                agg["semantic"] = max(agg.get("semantic", 0.0), semantic[key])
                agg["_s"] = max(agg.get("_s", 0.0), sem)
            combined = lexical_weight * lex + SEMANTIC_WEIGHT * sem
            if entry_id not in best_passage or combined > best_passage[entry_id][0]:
                best_passage[entry_id] = (combined, seq)
        for entry_id, score in entry_scores.items():
            agg = per_entry.setdefault(entry_id, {})
            agg["entry_bm25"] = score
            agg["_e"] = e_norm.get(entry_id, 0.0)
        hits: list[Hit] = []
        for entry_id, agg in per_entry.items():
            entry = entries.get(entry_id)
            if entry is None or not entry.passages:
                continue
            lexical = agg.get("_p", 0.0) + agg.get("_e", 0.0)
            fused = lexical_weight * lexical + SEMANTIC_WEIGHT * agg.get("_s", 0.0)
            seq = best_passage.get(entry_id, (0.0, entry.passages[0].seq))[1]
            passage = next((p for p in entry.passages if p.seq == seq), entry.passages[0])
            scores = {k: round(v, 4) for k, v in agg.items() if not k.startswith("_")}
            scores["fused"] = round(fused, 4)
            hits.append(Hit(entry=entry, passage=passage, scores=scores))
        hits.sort(key=lambda h: (-h.scores["fused"], h.entry.entry_id))
        return hits
