"""``tongban eval classify``: train the ticket classifier on one labelled file, score it on another.

Both files are JSONL with ``id``, ``subject``, ``body`` and ``category`` (a level-1 name or a full
``level1/level2/level3`` path); scoring is at level 1. The same run measures the usual peer on the same
split: TF-IDF of jieba words and of character 1–3-grams, with a class-balanced logistic regression
(C = 10). Reported: accuracy, macro-F1 (over the categories that occur in the test file or in the
predictions, as scikit-learn does), per-category precision, recall and F1, the confusion counts, the
test categories training never saw (always wrong, still counted) and, when test labels carry full
paths, how often the suggested path is the labelled one.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tongban.hotline.classifier import (
    DEFAULT_BODY_CHARS,
    Floats,
    LabelledText,
    Progress,
    TaxonomyPath,
    body_text,
    full_path_of,
    level1_of,
    tokenize,
    train,
)
from tongban.knowledge.service import Embedder

SYSTEM = "e5 + taxonomy, LR"
BASELINE = "TF-IDF words + chars, LR"
BASELINE_E5 = "e5 embeddings, LR"
BASELINE_C = 10.0
TAXONOMY_FILE = Path("shared") / "data" / "hotline_messages" / "taxonomy.jsonl"
FIELDS = ("id", "subject", "body", "category")


class ClassifyInputError(ValueError):
    """A labelled file that cannot be used; the message names the file and the line."""


def load_labelled_jsonl(path: Path) -> list[LabelledText]:
    """The tickets of a JSONL file (blank lines skipped). ``id`` may be a string or a number."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ClassifyInputError(f"{path}: no such file") from None
    except OSError as exc:
        raise ClassifyInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ClassifyInputError(f"{path}: not UTF-8 text") from None
    rows: list[LabelledText] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ClassifyInputError(f"{path}: line {number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ClassifyInputError(f"{path}: line {number}: not a JSON object")
        missing = [f for f in FIELDS if f not in row or row[f] is None]
        if missing:
            raise ClassifyInputError(f"{path}: line {number}: missing field(s) {', '.join(missing)}")
        ticket_id = row["id"]
        if isinstance(ticket_id, bool) or not isinstance(ticket_id, str | int) or not str(ticket_id).strip():
            raise ClassifyInputError(f"{path}: line {number}: id must be a non-empty string or a number")
        for key in ("subject", "body", "category"):
            if not isinstance(row[key], str):
                raise ClassifyInputError(f"{path}: line {number}: {key} must be a string")
        if not row["category"].split("/", 1)[0].strip():
            raise ClassifyInputError(f"{path}: line {number}: category is empty")
        if not (row["subject"].strip() or row["body"].strip()):
            raise ClassifyInputError(f"{path}: line {number}: subject and body are both empty")
        rows.append(LabelledText(str(ticket_id), row["subject"], row["body"], row["category"].strip()))
    if not rows:
        raise ClassifyInputError(f"{path}: no tickets")
    return rows


def default_taxonomy_path(start: Path | None = None) -> Path | None:
    """``../shared/data/hotline_messages/taxonomy.jsonl`` beside the repository holding ``start`` (the
    current directory by default), if there is one."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() or (folder / ".git").exists():
            candidate = folder.parent / TAXONOMY_FILE
            return candidate if candidate.is_file() else None
    return None


class CachedEmbedder:
    """An embedder that keeps vectors (float32, by text hash) in an ``.npz`` between evaluation runs."""

    def __init__(self, inner: Embedder, path: Path | None) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.path = path
        self.vectors: dict[str, Floats] = {}
        self.computed = 0
        if path is not None and path.is_file():
            try:
                with np.load(path, allow_pickle=False) as data:
                    if str(data["model"]) == self.name and data["vectors"].shape[1:] == (self.dim,):
                        self.vectors = dict(zip(map(str, data["keys"]), data["vectors"], strict=True))
            except (OSError, ValueError, KeyError):
                self.vectors = {}  # a damaged cache is rebuilt

    @staticmethod
    def _key(kind: str, text: str) -> str:
        return kind + hashlib.sha256(text.encode("utf-8")).hexdigest()

    def passages(self, texts: Sequence[str]) -> Floats:
        keys = [self._key("p:", t) for t in texts]
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in self.vectors))
        if missing:
            computed = np.asarray(self.inner.passages(missing), dtype=np.float32).reshape(
                len(missing), self.dim
            )
            self.computed += len(missing)
            for text, vector in zip(missing, computed, strict=True):
                self.vectors[self._key("p:", text)] = vector
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack([self.vectors[k] for k in keys])

    def query(self, text: str) -> Floats:
        key = self._key("q:", text)
        if key not in self.vectors:
            self.vectors[key] = np.asarray(self.inner.query(text), dtype=np.float32).reshape(self.dim)
            self.computed += 1
        return self.vectors[key]

    def save(self) -> None:
        if self.path is None or not self.computed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez_compressed(
            tmp,
            model=np.array(self.name),
            keys=np.array(list(self.vectors)),
            vectors=np.vstack(list(self.vectors.values())).astype(np.float32),
        )
        tmp.replace(self.path)


# -- scores ----------------------------------------------------------------------------------------------


@dataclass
class ClassScore:
    category: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class SystemResult:
    name: str
    accuracy: float
    macro_f1: float
    per_class: list[ClassScore]
    #: Row and column labels of ``confusion`` (true in rows, predicted in columns).
    labels: list[str]
    confusion: list[list[int]]
    seconds: float
    predictions: list[str] = field(repr=False, default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "per_class": [
                {
                    "category": c.category,
                    "precision": round(c.precision, 4),
                    "recall": round(c.recall, 4),
                    "f1": round(c.f1, 4),
                    "support": c.support,
                }
                for c in self.per_class
            ],
            "confusion": {"labels": self.labels, "counts": self.confusion},
            "seconds": round(self.seconds, 2),
        }


def score(name: str, truth: Sequence[str], predicted: Sequence[str], seconds: float) -> SystemResult:
    from sklearn.metrics import (  # type: ignore[import-untyped]
        accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    labels = sorted(set(truth) | set(predicted))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    matrix = confusion_matrix(truth, predicted, labels=labels)
    return SystemResult(
        name=name,
        accuracy=float(accuracy_score(truth, predicted)),
        macro_f1=float(np.mean(f1)),
        per_class=[
            ClassScore(label, float(p), float(r), float(f), int(s))
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        ],
        labels=labels,
        confusion=[[int(v) for v in row] for row in matrix],
        seconds=seconds,
        predictions=list(predicted),
    )


def _words(text: str) -> list[str]:
    return [w for w in tokenize(text) if any(c.isalnum() for c in w)]


def baseline_predict(train_rows: Sequence[LabelledText], test_rows: Sequence[LabelledText]) -> list[str]:
    """The peer: TF-IDF (sublinear) of jieba words and of character 1–3-grams side by side, LR C = 10."""
    from sklearn.feature_extraction.text import TfidfVectorizer  # type: ignore[import-untyped]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
    from sklearn.pipeline import make_pipeline, make_union  # type: ignore[import-untyped]

    def text(row: LabelledText) -> str:
        return f"{row.subject}。{row.body}"

    pipeline = make_pipeline(
        make_union(
            TfidfVectorizer(analyzer=_words, sublinear_tf=True),
            TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True),
        ),
        LogisticRegression(C=BASELINE_C, class_weight="balanced", max_iter=2000, random_state=0),
    )
    pipeline.fit([text(r) for r in train_rows], [level1_of(r.category) for r in train_rows])
    return [str(p) for p in pipeline.predict([text(r) for r in test_rows])]


def e5_baseline_predict(
    train_rows: Sequence[LabelledText],
    test_rows: Sequence[LabelledText],
    *,
    embedder: Embedder,
    body_chars: int = DEFAULT_BODY_CHARS,
) -> list[str]:
    """The second peer the issue names: the same embedding model's vectors of the text the system embeds
    (subject and the body's start), plain (no centring, no taxonomy), and a logistic regression (C = 100)."""
    from sklearn.linear_model import LogisticRegression

    def texts(rows: Sequence[LabelledText]) -> list[str]:
        return [body_text(r.subject, r.body, body_chars) for r in rows]

    x_train = embedder.passages(texts(train_rows))
    x_test = embedder.passages(texts(test_rows))
    lr = LogisticRegression(C=100, max_iter=5000, random_state=0)
    lr.fit(x_train, [level1_of(r.category) for r in train_rows])
    return [str(p) for p in lr.predict(x_test)]


# -- the evaluation --------------------------------------------------------------------------------------


@dataclass
class ClassifyReport:
    train_tickets: int
    test_tickets: int
    train_counts: dict[str, int]
    #: Test categories (level 1) training never saw, with their number of test tickets.
    unseen_categories: dict[str, int]
    taxonomy_file: str | None
    taxonomy_paths: int
    body_chars: int
    system: SystemResult
    baseline: SystemResult
    #: Embeddings + logistic regression, without what the system adds.
    baseline_e5: SystemResult
    train_seconds: float
    #: Test tickets labelled with a full path, and how many of them got that path suggested.
    path_tickets: int
    path_correct: int
    errors: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "train_tickets": self.train_tickets,
            "test_tickets": self.test_tickets,
            "train_counts": self.train_counts,
            "unseen_categories": self.unseen_categories,
            "taxonomy": {"file": self.taxonomy_file, "paths": self.taxonomy_paths},
            "body_chars": self.body_chars,
            "system": self.system.as_dict(),
            "baseline": self.baseline.as_dict(),
            "baseline_e5": self.baseline_e5.as_dict(),
            "train_seconds": round(self.train_seconds, 2),
            "path": {
                "tickets": self.path_tickets,
                "accuracy": round(self.path_correct / self.path_tickets, 4) if self.path_tickets else None,
            },
            "errors": self.errors,
        }


def evaluate_classify(
    train_rows: Sequence[LabelledText],
    test_rows: Sequence[LabelledText],
    *,
    embedder: Embedder,
    taxonomy: Sequence[TaxonomyPath] = (),
    taxonomy_file: Path | None = None,
    body_chars: int = DEFAULT_BODY_CHARS,
    progress: Progress | None = None,
) -> ClassifyReport:
    """Train on ``train_rows``, score ``test_rows``, and the same for the TF-IDF baseline."""
    if not train_rows or not test_rows:
        raise ClassifyInputError("both the training and the test file need tickets")
    started = time.perf_counter()
    model = train(train_rows, taxonomy, embedder=embedder, body_chars=body_chars, progress=progress)
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    suggestions = model.suggest_many([(r.subject, r.body) for r in test_rows])
    predict_seconds = time.perf_counter() - started
    truth = [level1_of(r.category) for r in test_rows]
    predicted = [s.category for s in suggestions]
    system = score(SYSTEM, truth, predicted, train_seconds + predict_seconds)
    started = time.perf_counter()
    peer = baseline_predict(train_rows, test_rows)
    baseline = score(BASELINE, truth, peer, time.perf_counter() - started)
    started = time.perf_counter()
    peer_e5 = e5_baseline_predict(train_rows, test_rows, embedder=embedder, body_chars=body_chars)
    baseline_e5 = score(BASELINE_E5, truth, peer_e5, time.perf_counter() - started)

    trained = set(model.classes)
    unseen = Counter(t for t in truth if t not in trained)
    labelled_paths = [(full_path_of(r.category), s.path) for r, s in zip(test_rows, suggestions, strict=True)]
    with_paths = [(want, got) for want, got in labelled_paths if want is not None]
    return ClassifyReport(
        train_tickets=len(train_rows),
        test_tickets=len(test_rows),
        train_counts=dict(sorted(model.class_counts.items())),
        unseen_categories=dict(sorted(unseen.items())),
        taxonomy_file=str(taxonomy_file) if taxonomy_file else None,
        taxonomy_paths=model.describe()["taxonomy_paths"],
        body_chars=body_chars,
        system=system,
        baseline=baseline,
        baseline_e5=baseline_e5,
        train_seconds=train_seconds,
        path_tickets=len(with_paths),
        path_correct=sum(want == got for want, got in with_paths),
        errors=[
            {"id": r.id, "category": t, "predicted": s.category, "confidence": round(s.confidence, 4)}
            for r, t, s in zip(test_rows, truth, suggestions, strict=True)
            if t != s.category
        ],
    )
