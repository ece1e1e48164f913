"""The 12345 hotline ticket classifier: suggests a ticket's category (level 1 of the city's taxonomy), the
best level-3 path inside it, and why.

The method ("REC" of docs/research/hotline-classification.md, about 0.86 macro-F1 by repeated
cross-validation on 245 labelled tickets, against about 0.52 for TF-IDF):

1. **Embeddings.** Each ticket is embedded twice as an e5 passage: ``subject + "。" + the first 200
   characters of the body`` (the full body costs 2.5 times more for the same quality) and the subject alone.
   The mean of each kind over the training tickets is subtracted and the vectors re-normalised (centring
   removes the direction every citizen complaint shares).
2. **Zero-shot scores.** Every level-3 path of a trained category becomes the e5 *query*
   ``"{level1}：{level2}，{level3}"`` (``，其他`` dropped); categories without taxonomy paths use their own
   name. The prototypes are centred on their own mean. A ticket's score for a category is the highest
   cosine over that category's prototypes, for the body vector and the subject vector, times 5.
3. **Keyword counts.** The jieba words (two characters or more) of a category's level-2 and level-3 names;
   the feature is ``log(1 + occurrences in subject and full body)``.
4. **Classifier.** Multinomial L2 logistic regression, C = 100, class-balanced weights, on
   [body vector, subject vector, zero-shot scores, keyword counts].

Labels may be level-1 names or full ``level1/level2/level3`` paths: the model trains on the first segment
and remembers the full paths seen, which join the taxonomy's as candidate paths. A trained model is plain
arrays and JSON (:meth:`TicketModel.to_bytes`), never a pickle; the prototype vectors travel with it, so
suggesting embeds only the ticket (two passages, about 0.17 s of CPU).
"""

from __future__ import annotations

import io
import json
import logging
import math
import threading
import warnings
import zipfile
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tongban.knowledge.service import Embedder

FORMAT = "tongban.hotline.classifier/1"
OTHER = "其他"
SEPARATOR = "/"
#: Body characters embedded after the subject; 0 embeds the whole body.
DEFAULT_BODY_CHARS = 200
ZS_SCALE = 5.0
C = 100.0
MAX_ITER = 2000
SEED = 0
EMBED_BATCH = 32
MIN_KEYWORD_CHARS = 2
EXPLAIN_PATHS = 3
EXPLAIN_KEYWORDS = 10
EXPLAIN_SIMILAR = 3
#: Suggestions remembered per model (a ticket's page asks again on every view).
MEMO_SIZE = 4096

Floats = npt.NDArray[np.float32]
Progress = Callable[[str, int, int], None]


class ClassifierError(ValueError):
    """Input the classifier cannot use (a malformed taxonomy line, too few categories, a foreign model)."""


# -- taxonomy --------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class TaxonomyPath:
    level1: str
    level2: str
    level3: str

    def __str__(self) -> str:
        return path_str(self)


def path_str(path: TaxonomyPath) -> str:
    """``level1/level2/level3``."""
    return SEPARATOR.join((path.level1, path.level2, path.level3))


def parse_path(text: str) -> TaxonomyPath:
    """The path of ``level1/level2/level3`` (spaces around names ignored); ValueError otherwise."""
    parts = [p.strip() for p in text.split(SEPARATOR)]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"not a level1/level2/level3 path: {text!r}")
    return TaxonomyPath(*parts)


def level1_of(category: str) -> str:
    """The level-1 name of a label that is a level-1 name or a full path."""
    name = category.split(SEPARATOR, 1)[0].strip()
    if not name:
        raise ClassifierError(f"empty category: {category!r}")
    return name


def full_path_of(category: str) -> TaxonomyPath | None:
    """The full path of a ``level1/level2/level3`` label; None for a level-1 (or partial) label."""
    try:
        return parse_path(category)
    except ValueError:
        return None


def load_taxonomy_jsonl(path: Path) -> list[TaxonomyPath]:
    """The paths of a JSONL file of ``{"level1", "level2", "level3"}`` objects, in file order, once each."""
    out: dict[TaxonomyPath, None] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ClassifierError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ClassifierError(f"{path}: not UTF-8 text") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ClassifierError(f"{path}: line {number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ClassifierError(f"{path}: line {number}: not a JSON object")
        names = []
        for key in ("level1", "level2", "level3"):
            value = row.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ClassifierError(f"{path}: line {number}: {key} is missing or empty")
            if SEPARATOR in value:
                raise ClassifierError(f"{path}: line {number}: {key} contains {SEPARATOR!r}")
            names.append(value.strip())
        out[TaxonomyPath(*names)] = None
    return list(out)


# -- training data and suggestions -----------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledText:
    id: str
    subject: str
    body: str
    #: A level-1 name, or a full ``level1/level2/level3`` path.
    category: str


@dataclass(frozen=True)
class PathMatch:
    path: TaxonomyPath
    #: Mean of the body's and the subject's cosine with the path's prototype (centred vectors).
    cosine: float


@dataclass(frozen=True)
class KeywordHit:
    keyword: str
    category: str
    count: int


@dataclass(frozen=True)
class SimilarTicket:
    id: str
    category: str
    cosine: float


@dataclass(frozen=True)
class Explanation:
    #: The taxonomy paths closest to the ticket, best first, any category.
    paths: tuple[PathMatch, ...]
    #: Taxonomy keywords found in the ticket: the suggested category's first, then by count.
    keywords: tuple[KeywordHit, ...]
    #: The most similar training tickets, best first.
    similar: tuple[SimilarTicket, ...]


@dataclass(frozen=True)
class Suggestion:
    #: The level-1 category.
    category: str
    #: The best level-3 path inside that category (taxonomy or seen in training), if it has any.
    path: TaxonomyPath | None
    #: The model's probability of ``category``.
    confidence: float
    #: The top k categories with their probabilities, best first (the first is ``category``).
    alternatives: tuple[tuple[str, float], ...]
    explanation: Explanation

    def as_dict(self) -> dict[str, Any]:
        e = self.explanation
        return {
            "category": self.category,
            "path": path_str(self.path) if self.path else None,
            "confidence": round(self.confidence, 4),
            "alternatives": [[c, round(p, 4)] for c, p in self.alternatives],
            "explanation": {
                "paths": [{"path": path_str(m.path), "cosine": round(m.cosine, 4)} for m in e.paths],
                "keywords": [
                    {"keyword": h.keyword, "category": h.category, "count": h.count} for h in e.keywords
                ],
                "similar": [
                    {"id": s.id, "category": s.category, "cosine": round(s.cosine, 4)} for s in e.similar
                ],
            },
        }


# -- text helpers ----------------------------------------------------------------------------------------

_tokenizer: Any = None
_tokenizer_lock = threading.Lock()


def tokenize(text: str) -> list[str]:
    """jieba words of ``text`` (a private tokenizer: words other modules add to jieba do not leak in)."""
    global _tokenizer
    with _tokenizer_lock:
        if _tokenizer is None:
            import jieba  # type: ignore[import-untyped]

            jieba.setLogLevel(logging.WARNING)
            tokenizer = jieba.Tokenizer()
            tokenizer.initialize()
            _tokenizer = tokenizer
    return [w for w in _tokenizer.lcut(text) if w.strip()]


def _clean(text: str) -> str:
    return " ".join(text.split())


def _body_text(subject: str, body: str, body_chars: int) -> str:
    s, b = _clean(subject), _clean(body)
    if body_chars:
        b = b[:body_chars]
    return f"{s}。{b}" if s and b else (s or b)


#: What the model embeds of a ticket's body (the evaluation's embedding baseline embeds the same).
body_text = _body_text


def _subject_text(subject: str, body: str, body_chars: int) -> str:
    return _clean(subject) or _body_text(subject, body, body_chars)


def _keyword_text(subject: str, body: str) -> str:
    return f"{_clean(subject)}。{_clean(body)}"


def _prototype_text(level1: str, path: TaxonomyPath | None) -> str:
    if path is None:
        return level1
    if path.level3 == OTHER:
        return f"{path.level1}：{path.level2}"
    return f"{path.level1}：{path.level2}，{path.level3}"


def _unit(matrix: Floats) -> Floats:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    out: Floats = np.zeros_like(matrix)
    np.divide(matrix, norms, out=out, where=norms > 1e-9)
    return out


def _embed_passages(embedder: Embedder, texts: Sequence[str], progress: Progress | None) -> dict[str, Floats]:
    """Each distinct text once, in batches."""
    distinct = list(dict.fromkeys(texts))
    out: dict[str, Floats] = {}
    for start in range(0, len(distinct), EMBED_BATCH):
        chunk = distinct[start : start + EMBED_BATCH]
        vectors = np.asarray(embedder.passages(chunk), dtype=np.float32)
        if vectors.shape != (len(chunk), embedder.dim):
            raise ClassifierError(f"the embedder returned shape {vectors.shape} for {len(chunk)} texts")
        out.update(zip(chunk, vectors, strict=True))
        if progress:
            progress("embed", len(out), len(distinct))
    return out


# -- the model -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prototype:
    category: int
    #: None: the category's own name (a category without taxonomy paths).
    path: TaxonomyPath | None
    text: str


class TicketModel:
    """A trained classifier. Build it with :func:`train` or :meth:`from_bytes`."""

    def __init__(
        self,
        *,
        embedder: Embedder,
        meta: dict[str, Any],
        arrays: dict[str, npt.NDArray[Any]],
    ) -> None:
        self._embedder = embedder
        self._meta = meta
        self.classes: tuple[str, ...] = tuple(meta["classes"])
        self.body_chars = int(meta["body_chars"])
        self.zs_scale = float(meta["zs_scale"])
        self.embedder_name = str(meta["embedder"])
        self.prototypes = tuple(
            _Prototype(int(p["category"]), parse_path(p["path"]) if p["path"] else None, str(p["text"]))
            for p in meta["prototypes"]
        )
        self.keywords: tuple[tuple[str, ...], ...] = tuple(tuple(words) for words in meta["keywords"])
        self.train_ids: tuple[str, ...] = tuple(meta["train_ids"])
        self.paths_seen: tuple[TaxonomyPath, ...] = tuple(parse_path(p) for p in meta["paths_seen"])
        self.class_counts: dict[str, int] = dict(meta["class_counts"])
        self._arrays = arrays
        self._body_mean = arrays["body_mean"].astype(np.float32)
        self._subject_mean = arrays["subject_mean"].astype(np.float32)
        self._proto_vectors = arrays["proto_vectors"].astype(np.float32)
        self._proto_class = arrays["proto_class"].astype(np.int64)
        self._coef = arrays["coef"].astype(np.float64)
        self._intercept = arrays["intercept"].astype(np.float64)
        self._train_vectors = arrays["train_vectors"].astype(np.float32)
        self._train_class = arrays["train_class"].astype(np.int64)
        self._path_mask = np.array([p.path is not None for p in self.prototypes], dtype=bool)
        # A ticket's page asks for its suggestion on every view: the answers for recent texts are kept
        # (they are immutable and depend only on this model and the text).
        self._memo: OrderedDict[tuple[str, str, int], Suggestion] = OrderedDict()
        self._memo_lock = threading.Lock()
        self._check()

    def _check(self) -> None:
        k, d, p, n = len(self.classes), self._body_mean.shape[0], len(self.prototypes), len(self.train_ids)
        expected = {
            "subject_mean": (d,),
            "proto_vectors": (p, d),
            "proto_class": (p,),
            "coef": (k, 2 * d + 3 * k),
            "intercept": (k,),
            "train_vectors": (n, d),
            "train_class": (n,),
        }
        for name, shape in expected.items():
            if self._arrays[name].shape != shape:
                raise ClassifierError(f"model array {name} has shape {self._arrays[name].shape}, not {shape}")
        if len(self.keywords) != k or k < 2:
            raise ClassifierError("model categories and keywords do not match")
        if p and (self._proto_class.min() < 0 or self._proto_class.max() >= k):
            raise ClassifierError("model prototypes name unknown categories")

    # -- features

    def _centred(self, texts: Sequence[str], mean: Floats, vectors: dict[str, Floats]) -> Floats:
        if not texts:
            return np.zeros((0, mean.shape[0]), dtype=np.float32)
        return _unit(np.vstack([vectors[t] for t in texts]) - mean)

    def _class_max(self, cosines: Floats) -> Floats:
        """Per category, the highest cosine over its prototypes (0 for a category without any)."""
        out = np.zeros((cosines.shape[0], len(self.classes)), dtype=np.float32)
        for c in range(len(self.classes)):
            columns = self._proto_class == c
            if columns.any():
                out[:, c] = cosines[:, columns].max(axis=1)
        return out

    def _keyword_counts(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        out = np.zeros((len(texts), len(self.classes)), dtype=np.float64)
        for i, text in enumerate(texts):
            for c, words in enumerate(self.keywords):
                out[i, c] = math.log1p(sum(text.count(w) for w in words))
        return out

    def _features(
        self, body: Floats, subject: Floats, keyword_texts: Sequence[str]
    ) -> tuple[npt.NDArray[np.float64], Floats, Floats]:
        body_cos = body @ self._proto_vectors.T
        subject_cos = subject @ self._proto_vectors.T
        features = np.hstack(
            [
                body.astype(np.float64),
                subject.astype(np.float64),
                self.zs_scale * self._class_max(body_cos).astype(np.float64),
                self.zs_scale * self._class_max(subject_cos).astype(np.float64),
                self._keyword_counts(keyword_texts),
            ]
        )
        return features, body_cos, subject_cos

    def _probabilities(self, features: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        logits = features @ self._coef.T + self._intercept
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        probabilities: npt.NDArray[np.float64] = exp / exp.sum(axis=1, keepdims=True)
        return probabilities

    # -- suggestions

    def suggest(self, subject: str, body: str, *, k: int = 3) -> Suggestion:
        """The suggestion for one ticket; the last :data:`MEMO_SIZE` texts' suggestions are remembered."""
        key = (subject, body, k)
        with self._memo_lock:
            known = self._memo.get(key)
            if known is not None:
                self._memo.move_to_end(key)
                return known
        suggestion = self.suggest_many([(subject, body)], k=k)[0]
        with self._memo_lock:
            self._memo[key] = suggestion
            while len(self._memo) > MEMO_SIZE:
                self._memo.popitem(last=False)
        return suggestion

    def suggest_many(self, tickets: Sequence[tuple[str, str]], *, k: int = 3) -> list[Suggestion]:
        """Suggestions for ``(subject, body)`` pairs; the texts are embedded in batches, each once."""
        if not tickets:
            return []
        body_texts = [_body_text(s, b, self.body_chars) for s, b in tickets]
        subject_texts = [_subject_text(s, b, self.body_chars) for s, b in tickets]
        vectors = _embed_passages(self._embedder, body_texts + subject_texts, None)
        body = self._centred(body_texts, self._body_mean, vectors)
        subject = self._centred(subject_texts, self._subject_mean, vectors)
        keyword_texts = [_keyword_text(s, b) for s, b in tickets]
        features, body_cos, subject_cos = self._features(body, subject, keyword_texts)
        probabilities = self._probabilities(features)
        path_scores = (body_cos + subject_cos) / 2
        similar = body @ self._train_vectors.T
        k = max(1, min(k, len(self.classes)))
        return [
            self._suggestion(probabilities[i], path_scores[i], similar[i], keyword_texts[i], k)
            for i in range(len(tickets))
        ]

    def _suggestion(
        self,
        probabilities: npt.NDArray[np.float64],
        path_scores: Floats,
        similar: Floats,
        keyword_text: str,
        k: int,
    ) -> Suggestion:
        order = np.argsort(-probabilities, kind="stable")
        best = int(order[0])
        candidates = np.flatnonzero(self._path_mask & (self._proto_class == best))
        path = None
        if candidates.size:
            path = self.prototypes[int(candidates[np.argmax(path_scores[candidates])])].path
        all_paths = np.flatnonzero(self._path_mask)
        ranked_paths = all_paths[np.argsort(-path_scores[all_paths], kind="stable")][:EXPLAIN_PATHS]
        matches = tuple(
            PathMatch(path=p, cosine=float(path_scores[j]))
            for j in ranked_paths
            if (p := self.prototypes[int(j)].path) is not None
        )
        hits = [
            KeywordHit(keyword=w, category=self.classes[c], count=n)
            for c, words in enumerate(self.keywords)
            for w in words
            if (n := keyword_text.count(w))
        ]
        hits.sort(key=lambda h: (h.category != self.classes[best], -h.count, h.keyword, h.category))
        nearest = np.argsort(-similar, kind="stable")[:EXPLAIN_SIMILAR]
        return Suggestion(
            category=self.classes[best],
            path=path,
            confidence=float(probabilities[best]),
            alternatives=tuple((self.classes[int(c)], float(probabilities[c])) for c in order[:k]),
            explanation=Explanation(
                paths=matches,
                keywords=tuple(hits[:EXPLAIN_KEYWORDS]),
                similar=tuple(
                    SimilarTicket(
                        id=self.train_ids[int(j)],
                        category=self.classes[int(self._train_class[j])],
                        cosine=float(similar[j]),
                    )
                    for j in nearest
                ),
            ),
        )

    # -- persistence

    def to_bytes(self) -> bytes:
        """The model as an ``.npz``: no pickles, and fixed timestamps (one model, one byte string)."""
        arrays = dict(self._arrays)
        arrays["meta"] = np.frombuffer(
            json.dumps(self._meta, ensure_ascii=False, sort_keys=True).encode("utf-8"), dtype=np.uint8
        )
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(arrays):
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                with archive.open(info, "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.ascontiguousarray(arrays[name]), allow_pickle=False)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, *, embedder: Embedder) -> TicketModel:
        """A model saved by :meth:`to_bytes`; ``embedder`` must be the model it was trained with."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError):
            raise ClassifierError("not a hotline classifier model") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ClassifierError("not a hotline classifier model of this version")
        if meta["embedder"] != embedder.name or int(meta["dim"]) != embedder.dim:
            raise ClassifierError(
                f"the model was trained with the embedder {meta['embedder']!r}, not {embedder.name!r}"
            )
        try:
            return cls(embedder=embedder, meta=meta, arrays=arrays)
        except (KeyError, TypeError, ValueError) as exc:
            raise ClassifierError(f"damaged hotline classifier model: {exc}") from None

    def describe(self) -> dict[str, Any]:
        """What the model was trained on (for the service's pages and logs)."""
        return {
            "classes": list(self.classes),
            "class_counts": dict(self.class_counts),
            "tickets": len(self.train_ids),
            "prototypes": len(self.prototypes),
            "taxonomy_paths": int(self._path_mask.sum()),
            "paths_seen": [path_str(p) for p in self.paths_seen],
            "embedder": self.embedder_name,
            "body_chars": self.body_chars,
            "converged": bool(self._meta.get("converged", True)),
        }


# -- training --------------------------------------------------------------------------------------------


def _prototypes(
    classes: Sequence[str], taxonomy: Iterable[TaxonomyPath], seen: Iterable[TaxonomyPath]
) -> list[_Prototype]:
    index = {c: i for i, c in enumerate(classes)}
    paths = [p for p in dict.fromkeys([*taxonomy, *sorted(seen)]) if p.level1 in index]
    out = [_Prototype(index[p.level1], p, _prototype_text(p.level1, p)) for p in paths]
    covered = {p.category for p in out}
    out += [_Prototype(i, None, _prototype_text(c, None)) for i, c in enumerate(classes) if i not in covered]
    return out


def _keywords(classes: Sequence[str], prototypes: Sequence[_Prototype]) -> list[list[str]]:
    words: list[dict[str, None]] = [{} for _ in classes]
    for proto in prototypes:
        if proto.path is None:
            continue
        for name in (proto.path.level2, proto.path.level3):
            if name == OTHER:
                continue
            for word in tokenize(name):
                if len(word) >= MIN_KEYWORD_CHARS and word != OTHER:
                    words[proto.category][word] = None
    return [sorted(w) for w in words]


def _fit(
    features: npt.NDArray[np.float64], labels: npt.NDArray[np.int64], n_classes: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], bool]:
    """Multinomial logistic regression; the coefficients of every class (a binary fit made symmetric)."""
    from sklearn.exceptions import ConvergenceWarning  # type: ignore[import-untyped]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    model = LogisticRegression(C=C, class_weight="balanced", max_iter=MAX_ITER, random_state=SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(features, labels)
    converged = bool(np.all(model.n_iter_ < MAX_ITER))
    coef = np.asarray(model.coef_, dtype=np.float64)
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    if n_classes == 2 and coef.shape[0] == 1:  # softmax([-z/2, z/2]) is the sigmoid of z
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.concatenate([-intercept / 2, intercept / 2])
    return coef, intercept, converged


def train(
    records: Iterable[LabelledText],
    taxonomy: Iterable[TaxonomyPath] = (),
    *,
    embedder: Embedder,
    body_chars: int = DEFAULT_BODY_CHARS,
    progress: Progress | None = None,
) -> TicketModel:
    """Train on labelled tickets (at least two categories). ``taxonomy`` may be empty or partial: a category
    without paths is represented by its own name. Deterministic for a given input and embedder."""
    rows = list(records)
    if not rows:
        raise ClassifierError("no training tickets")
    if body_chars < 0:
        raise ClassifierError("body_chars must be 0 (whole body) or more")
    labels1 = [level1_of(r.category) for r in rows]
    counts = Counter(labels1)
    classes = sorted(counts)
    if len(classes) < 2:
        raise ClassifierError(f"training needs at least two categories; all tickets are {classes[0]!r}")
    seen = {p for r in rows if (p := full_path_of(r.category)) is not None}
    prototypes = _prototypes(classes, taxonomy, seen)
    keywords = _keywords(classes, prototypes)

    body_texts = [_body_text(r.subject, r.body, body_chars) for r in rows]
    subject_texts = [_subject_text(r.subject, r.body, body_chars) for r in rows]
    vectors = _embed_passages(embedder, body_texts + subject_texts, progress)
    body_raw = np.vstack([vectors[t] for t in body_texts])
    subject_raw = np.vstack([vectors[t] for t in subject_texts])
    body_mean = body_raw.mean(axis=0).astype(np.float32)
    subject_mean = subject_raw.mean(axis=0).astype(np.float32)

    proto_texts = list(dict.fromkeys(p.text for p in prototypes))
    query_vectors: dict[str, Floats] = {}
    for i, text in enumerate(proto_texts, start=1):
        query_vectors[text] = np.asarray(embedder.query(text), dtype=np.float32).reshape(embedder.dim)
        if progress and (i % EMBED_BATCH == 0 or i == len(proto_texts)):
            progress("taxonomy", i, len(proto_texts))
    proto_raw = np.vstack([query_vectors[p.text] for p in prototypes])
    proto_vectors = _unit(proto_raw - proto_raw.mean(axis=0))

    class_index = {c: i for i, c in enumerate(classes)}
    labels = np.array([class_index[c] for c in labels1], dtype=np.int64)
    body = _unit(body_raw - body_mean)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "embedder": embedder.name,
        "dim": embedder.dim,
        "body_chars": body_chars,
        "zs_scale": ZS_SCALE,
        "classes": classes,
        "class_counts": {c: counts[c] for c in classes},
        "prototypes": [
            {"category": p.category, "path": path_str(p.path) if p.path else None, "text": p.text}
            for p in prototypes
        ],
        "keywords": keywords,
        "train_ids": [str(r.id) for r in rows],
        "paths_seen": [path_str(p) for p in sorted(seen)],
    }
    k, d = len(classes), embedder.dim
    arrays: dict[str, npt.NDArray[Any]] = {
        "body_mean": body_mean,
        "subject_mean": subject_mean,
        "proto_vectors": proto_vectors,
        "proto_class": np.array([p.category for p in prototypes], dtype=np.int32),
        # the neighbours of the explanation only: half precision keeps a large model small
        "train_vectors": body.astype(np.float16),
        "train_class": labels.astype(np.int32),
        "coef": np.zeros((k, 2 * d + 3 * k)),
        "intercept": np.zeros(k),
    }
    model = TicketModel(embedder=embedder, meta=meta, arrays=arrays)
    subject = _unit(subject_raw - subject_mean)
    features, _, _ = model._features(body, subject, [_keyword_text(r.subject, r.body) for r in rows])
    coef, intercept, converged = _fit(features, labels, k)
    meta["converged"] = converged
    arrays["coef"], arrays["intercept"] = coef, intercept
    return TicketModel(embedder=embedder, meta=meta, arrays=arrays)
