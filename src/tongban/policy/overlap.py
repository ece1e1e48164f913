"""The overlap check (查重) a drafter runs before publishing.

**Documents**: near-duplicate text over the whole library. Each text is normalised (NFKC, letters and
digits only: punctuation, spaces and layout do not count) and cut into character 5-grams (shingles), which
suit Chinese without a word segmenter. MinHash signatures (datasketch, 128 permutations) are indexed twice:
a MinHash LSH finds pairs of similar *Jaccard* similarity (the same text, republished or lightly edited),
and an LSH Ensemble finds *containment* (a short text reproduced inside a longer one: an announcement inside
a compilation). Every candidate is then verified on the exact shingle sets, so what is reported is exact;
LSH only keeps the work near-linear for a library of tens of thousands of documents.

* ``duplicate``: Jaccard ≥ ``jaccard`` (default 0.40);
* ``contained``: not a duplicate, and the shorter text's shingles are ≥ ``containment`` (default 0.50)
  inside the longer.

The defaults were chosen on one half of a labelled sample of the 599 policy texts of
``shared/data/policy_qa`` and measured on the other (``bench/overlap.py``, BENCHMARKS §9).

**Items**: two policy items overlap when a subject could meet both: the same entity type and support type,
overlapping regions (one code inside the other) and industries, and for every variable both constrain, an
intersecting condition space (ranges, sets, flags), in overlapping windows. An overlap inside one stacking
group is settled (不重复享受 / 就高); one across groups or without a group is a possible double benefit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from datasketch import MinHash, MinHashLSH, MinHashLSHEnsemble

from tongban.policy.rules import CheckedItem

SHINGLE = 5
PERMUTATIONS = 128
JACCARD = 0.40
CONTAINMENT = 0.50
#: LSH finds candidates at this fraction of the reported thresholds (the exact check decides).
CANDIDATE_SLACK = 0.7


def normalise(text: str) -> str:
    """Letters and digits only, NFKC (full-width forms folded), lower case."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).lower() if ch.isalnum())


def shingles(text: str, k: int = SHINGLE) -> set[int]:
    """The text's character k-grams, each as a 64-bit hash (what the sets and signatures hold)."""
    t = normalise(text)
    if len(t) < k:
        return {_hash(t)} if t else set()
    return {_hash(t[i : i + k]) for i in range(len(t) - k + 1)}


def _hash(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little")


def _identity(b: bytes) -> int:
    """datasketch's hash function over our already-hashed shingles (8 little-endian bytes → 32 bits)."""
    return int(struct.unpack("<Q", b)[0] & 0xFFFFFFFF)


def signature(shingle_set: set[int]) -> MinHash:
    m = MinHash(num_perm=PERMUTATIONS, hashfunc=_identity, seed=1)
    if shingle_set:
        m.update_batch([struct.pack("<Q", s) for s in shingle_set])
    return m


@dataclass(frozen=True)
class DocumentPair:
    a: str
    b: str
    kind: Literal["duplicate", "contained"]
    jaccard: float
    #: Of the shorter text inside the longer.
    containment: float
    #: For ``contained``: which one is the shorter text (reproduced in the other).
    shorter: str


@dataclass
class _Doc:
    key: str
    shingles: set[int]
    minhash: MinHash


@dataclass
class DocumentIndex:
    """MinHash indexes over a library's texts, built once and queried for each text (or a draft)."""

    jaccard: float = JACCARD
    containment: float = CONTAINMENT
    _docs: dict[str, _Doc] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lsh = MinHashLSH(threshold=self.jaccard * CANDIDATE_SLACK, num_perm=PERMUTATIONS)
        self._ensemble: MinHashLSHEnsemble | None = None

    @classmethod
    def build(
        cls, texts: Iterable[tuple[str, str]], *, jaccard: float = JACCARD, containment: float = CONTAINMENT
    ) -> DocumentIndex:
        index = cls(jaccard=jaccard, containment=containment)
        for key, text in texts:
            s = shingles(text)
            if not s:
                continue
            doc = _Doc(key, s, signature(s))
            index._docs[key] = doc
            index._lsh.insert(key, doc.minhash)
        if index._docs:
            # candidates at a lower containment than reported: the ensemble's estimate is coarse, and
            # every candidate is verified exactly
            ensemble = MinHashLSHEnsemble(
                threshold=containment * CANDIDATE_SLACK, num_perm=PERMUTATIONS, num_part=16
            )
            ensemble.index((d.key, d.minhash, len(d.shingles)) for d in index._docs.values())
            index._ensemble = ensemble
        return index

    def __len__(self) -> int:
        return len(self._docs)

    def _candidates(self, doc: _Doc) -> set[str]:
        found = set(self._lsh.query(doc.minhash))
        if self._ensemble is not None:
            # documents that contain this one; and this one containing them is found from their side
            found |= set(self._ensemble.query(doc.minhash, len(doc.shingles)))
        found.discard(doc.key)
        return found

    def _verify(self, x: _Doc, y: _Doc) -> DocumentPair | None:
        inter = len(x.shingles & y.shingles)
        if not inter:
            return None
        jac = inter / (len(x.shingles) + len(y.shingles) - inter)
        shorter, _longer = (x, y) if len(x.shingles) <= len(y.shingles) else (y, x)
        cont = inter / len(shorter.shingles)
        if jac >= self.jaccard:
            kind: Literal["duplicate", "contained"] = "duplicate"
        elif cont >= self.containment:
            kind = "contained"
        else:
            return None
        a, b = sorted((x.key, y.key))
        return DocumentPair(a, b, kind, round(jac, 4), round(cont, 4), shorter.key)

    def pairs(self) -> list[DocumentPair]:
        """Every near-duplicate or contained pair in the library (each once), most similar first."""
        out: dict[tuple[str, str], DocumentPair] = {}
        for doc in self._docs.values():
            for other in self._candidates(doc):
                key = (min(doc.key, other), max(doc.key, other))
                if key in out:
                    continue
                found = self._verify(doc, self._docs[other])
                if found is not None:
                    out[key] = found
        return sorted(out.values(), key=lambda p: (-p.jaccard, -p.containment, p.a, p.b))

    def check(self, text: str, *, key: str = "(draft)") -> list[DocumentPair]:
        """The library's documents a new text (a draft) duplicates, is contained in, or contains."""
        s = shingles(text)
        if not s:
            return []
        draft = _Doc(key, s, signature(s))
        found = set(self._lsh.query(draft.minhash))
        if self._ensemble is not None:
            found |= set(self._ensemble.query(draft.minhash, len(s)))
        # libraries' texts inside the draft: the draft's shingles cover theirs; an ensemble query per
        # document is what `pairs` does, so for one draft an exact pass over candidates sharing a band is
        # cheaper: every document whose signature agrees with the draft's on enough slots.
        draft_values = draft.minhash.hashvalues
        for d in self._docs.values():
            if d.key in found or len(d.shingles) > len(s):
                continue
            agree = float(np.mean(d.minhash.hashvalues == draft_values))
            # a text contained in the draft has Jaccard ≥ containment × |d| / |draft|
            if agree >= self.containment * len(d.shingles) / len(s) * 0.5:
                found.add(d.key)
        out = [p for k in found if (p := self._verify(draft, self._docs[k])) is not None]
        return sorted(out, key=lambda p: (-p.jaccard, -p.containment, p.a, p.b))


# --- items ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemOverlap:
    a: str
    b: str
    #: What both constrain and where the spaces meet, in words: ``age: [80, ∞) ∩ [70, ∞)``.
    shared: tuple[str, ...]
    #: ``settled`` (one stacking group: 不重复享受 / 就高) or ``double_benefit`` (nothing stops a subject
    #: from receiving both).
    verdict: Literal["settled", "double_benefit"]
    reason: str


@dataclass
class _Space:
    """What an item's typed conditions allow, per variable: code prefixes, an interval, a set, a flag."""

    codes: dict[str, set[str]] = field(default_factory=dict)
    interval: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    values: dict[str, set[Any]] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=dict)


def _space(item: CheckedItem) -> _Space:
    s = _Space()
    for c in item.conditions:
        spec = c.spec
        v = spec.variable
        if v is None:
            continue
        if spec.type in ("region", "industry"):
            new = _region_codes(set(spec.codes)) if spec.type == "region" else set(spec.codes)
            s.codes[v] = _narrow(s.codes[v], new) if v in s.codes else new
        elif spec.type == "range":
            s.interval[v] = _meet(s.interval.get(v, (None, None)), (spec.min, spec.max))
        elif spec.type == "compare" and spec.op in ("<", "<=", ">", ">=", "="):
            lo, hi = None, None
            if spec.op in (">", ">="):
                lo = spec.value if spec.op == ">=" else _after(spec.value)
            elif spec.op in ("<", "<="):
                hi = spec.value if spec.op == "<=" else _before(spec.value)
            else:
                lo = hi = spec.value
            s.interval[v] = _meet(s.interval.get(v, (None, None)), (lo, hi))
        elif spec.type == "one_of":
            s.values[v] = s.values[v] & set(spec.values) if v in s.values else set(spec.values)
        elif spec.type == "flag":
            s.flags[v] = bool(spec.value if spec.value is not None else True)
    return s


def _narrow(a: set[str], b: set[str]) -> set[str]:
    """Codes meeting both lists (a code inside another: the narrower one)."""
    return {x for x in a for y in b if x.startswith(y)} | {y for x in a for y in b if y.startswith(x)}


def _after(v: Any) -> Any:
    return v + 1 if isinstance(v, int) else v


def _before(v: Any) -> Any:
    return v - 1 if isinstance(v, int) else v


def _value(v: Any) -> Any:
    """A bound as a comparable value: dates written as text become dates."""
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v)
        except ValueError:
            return v
    return v


def _meet(a: tuple[Any, Any], b: tuple[Any, Any]) -> tuple[Any, Any]:
    a, b = (_value(a[0]), _value(a[1])), (_value(b[0]), _value(b[1]))
    lo = a[0] if b[0] is None else b[0] if a[0] is None else max(a[0], b[0])
    hi = a[1] if b[1] is None else b[1] if a[1] is None else min(a[1], b[1])
    return lo, hi


def _empty(iv: tuple[Any, Any]) -> bool:
    return iv[0] is not None and iv[1] is not None and iv[0] > iv[1]


def _region_codes(codes: set[str]) -> set[str]:
    """GB/T 2260 codes as prefixes: 110000 → 11, 110100 → 1101, 110105 → 110105."""
    out = set()
    for c in codes:
        p = c
        while len(p) > 2 and p.endswith("00"):
            p = p[:-2]
        out.add(p)
    return out


def _show(iv: tuple[Any, Any]) -> str:
    return f"[{'−∞' if iv[0] is None else iv[0]}, {'∞' if iv[1] is None else iv[1]}]"


def _windows_meet(x: CheckedItem, y: CheckedItem) -> bool:
    lo = max(x.spec.window.start or dt.date.min, y.spec.window.start or dt.date.min)
    hi = min(x.spec.window.end or dt.date.max, y.spec.window.end or dt.date.max)
    return lo <= hi


def item_overlap(x: CheckedItem, y: CheckedItem) -> ItemOverlap | None:
    """The overlap of two items, or None when no subject could meet both (by their typed conditions;
    conditions in the expression language are taken as able to meet)."""
    if x.spec.entity != y.spec.entity or x.spec.support != y.spec.support or not _windows_meet(x, y):
        return None
    sx, sy = _space(x), _space(y)
    shared: list[str] = []
    for v in sorted(set(sx.codes) & set(sy.codes)):
        meet = _narrow(sx.codes[v], sy.codes[v])
        if not meet:
            return None
        shared.append(f"{v}: {', '.join(sorted(meet))}")
    for v in sorted(set(sx.interval) & set(sy.interval)):
        iv = _meet(sx.interval[v], sy.interval[v])
        if _empty(iv) or _empty(sx.interval[v]) or _empty(sy.interval[v]):
            return None
        shared.append(f"{v}: {_show(sx.interval[v])} ∩ {_show(sy.interval[v])} = {_show(iv)}")
    for v in sorted(set(sx.values) & set(sy.values)):
        meet_values = sx.values[v] & sy.values[v]
        if not meet_values:
            return None
        shared.append(f"{v}: {', '.join(sorted(map(str, meet_values)))}")
    for v in sorted(set(sx.flags) & set(sy.flags)):
        if sx.flags[v] != sy.flags[v]:
            return None
        shared.append(f"{v} = {str(sx.flags[v]).lower()}")
    gx, gy = x.spec.stacking, y.spec.stacking
    if gx is not None and gy is not None and gx.group == gy.group:
        rule = "不重复享受 (exclusive)" if gx.rule == "exclusive" else "就高 (highest)"
        return ItemOverlap(x.id, y.id, tuple(shared), "settled", f"one stacking group {gx.group}: {rule}")
    return ItemOverlap(
        x.id,
        y.id,
        tuple(shared),
        "double_benefit",
        "no common stacking group: a subject meeting both would receive both",
    )


def _overlap_or_none(x: CheckedItem, y: CheckedItem) -> ItemOverlap | None:
    try:
        return item_overlap(x, y)
    except TypeError:  # bounds of kinds that do not compare: cannot rule the overlap out
        return ItemOverlap(
            x.id, y.id, (), "double_benefit", "the conditions could not be compared; check by hand"
        )


def item_overlaps(items: Sequence[CheckedItem], *, against: Sequence[CheckedItem] = ()) -> list[ItemOverlap]:
    """Overlaps among ``items`` and between them and ``against`` (the published library)."""
    out = []
    pool = list(items)
    for i, x in enumerate(pool):
        for y in pool[i + 1 :]:
            if (o := _overlap_or_none(x, y)) is not None:
                out.append(o)
        for y in against:
            if y.id != x.id and (o := _overlap_or_none(x, y)) is not None:
                out.append(o)
    return out


def _pair(p: tuple[str, str]) -> tuple[str, str]:
    return (min(p), max(p))


def precision_recall(
    found: Iterable[tuple[str, str]], truth: Iterable[tuple[str, str]], universe: Iterable[tuple[str, str]]
) -> dict[str, float | int]:
    """Precision and recall of ``found`` pairs against ``truth`` within the labelled ``universe``."""
    u = {_pair(p) for p in universe}
    f = {_pair(p) for p in found} & u
    t = {_pair(p) for p in truth} & u
    tp = len(f & t)
    return {
        "found": len(f),
        "true": len(t),
        "tp": tp,
        "precision": round(tp / len(f), 4) if f else 1.0,
        "recall": round(tp / len(t), 4) if t else 1.0,
    }


def by_key(pairs: Iterable[DocumentPair]) -> Mapping[tuple[str, str], DocumentPair]:
    return {(p.a, p.b): p for p in pairs}
