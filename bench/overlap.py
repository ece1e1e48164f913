"""Document overlap check (issue 8, 查重): precision and recall against labelled pairs of the 599 policy
texts of ``shared/data/policy_qa/kb.jsonl``, and the time to index and check the whole library.

The labelled pairs (``tests/policy/data/overlap_labels.jsonl``, guide beside it) are every pair that any
of three independent signals put forward — exact 5-gram Jaccard ≥ 0.2 or containment ≥ 0.5, word TF-IDF
cosine ≥ 0.5, the same first 15 characters — each read and labelled ``duplicate``, ``contained``,
``related`` or ``unrelated`` by a reader who did not see any similarity figure. The pairs are split in two
by a hash of their ids: the thresholds are chosen on the *dev* half (best F1 over a grid) and reported on
the *test* half, next to the shipped defaults on every pair.

    .venv/bin/python bench/overlap.py [--json bench/results/overlap.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tongban.policy import overlap  # noqa: E402

KB = ROOT.parent / "shared" / "data" / "policy_qa" / "kb.jsonl"
LABELS = ROOT / "tests" / "policy" / "data" / "overlap_labels.jsonl"


def _split(a: str, b: str) -> str:
    return "dev" if hashlib.sha256(f"{a}|{b}".encode()).digest()[0] % 2 == 0 else "test"


def _scores(
    measures: dict[tuple[str, str], tuple[float, float]],
    labels: dict[tuple[str, str], str],
    keys: list[tuple[str, str]],
    tj: float,
    tc: float,
) -> dict[str, dict[str, float | int]]:
    dup = [k for k in keys if measures.get(k, (0, 0))[0] >= tj]
    over = [k for k in keys if measures.get(k, (0, 0))[0] >= tj or measures.get(k, (0, 0))[1] >= tc]
    return {
        "duplicate": overlap.precision_recall(dup, [k for k in keys if labels[k] == "duplicate"], keys),
        "overlap": overlap.precision_recall(
            over, [k for k in keys if labels[k] in ("duplicate", "contained")], keys
        ),
    }


def _f1(s: dict[str, float | int]) -> float:
    p, r = float(s["precision"]), float(s["recall"])
    return 2 * p * r / (p + r) if p + r else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    texts = [json.loads(line) for line in KB.read_text(encoding="utf-8").splitlines()]
    labels: dict[tuple[str, str], str] = {}
    for line in LABELS.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        labels[(min(r["a"], r["b"]), max(r["a"], r["b"]))] = r["label"]

    t0 = time.perf_counter()
    index = overlap.DocumentIndex.build((t["docid"], t["text"]) for t in texts)
    t1 = time.perf_counter()
    found = index.pairs()
    t2 = time.perf_counter()
    draft = texts[0]["text"]
    checks = []
    for _ in range(20):
        s = time.perf_counter()
        index.check(draft)
        checks.append(time.perf_counter() - s)

    # exact measures of every labelled pair, for the threshold grid (the detector's own verification)
    wide = overlap.DocumentIndex.build(
        ((t["docid"], t["text"]) for t in texts), jaccard=0.05, containment=0.05
    )
    docs = wide._docs
    measures: dict[tuple[str, str], tuple[float, float]] = {}
    for a, b in labels:
        sa, sb = docs[a].shingles, docs[b].shingles
        inter = len(sa & sb)
        measures[(a, b)] = (inter / len(sa | sb), inter / min(len(sa), len(sb)))

    dev = [k for k in labels if _split(*k) == "dev"]
    test = [k for k in labels if _split(*k) == "test"]
    grid = [round(0.05 * i, 2) for i in range(2, 20)]
    best_j = max(grid, key=lambda tj: (_f1(_scores(measures, labels, dev, tj, 1.01)["duplicate"]), -tj))
    best_c = max(grid, key=lambda tc: (_f1(_scores(measures, labels, dev, best_j, tc)["overlap"]), -tc))

    reported = {(p.a, p.b): p.kind for p in found}
    keys = list(labels)
    shipped = {
        "duplicate": overlap.precision_recall(
            [k for k, v in reported.items() if v == "duplicate"],
            [k for k in keys if labels[k] == "duplicate"],
            keys,
        ),
        "overlap": overlap.precision_recall(
            list(reported), [k for k in keys if labels[k] in ("duplicate", "contained")], keys
        ),
    }
    outside = [k for k in reported if k not in labels]
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "documents": len(texts),
        "labelled_pairs": len(labels),
        "labels": {k: sum(1 for v in labels.values() if v == k) for k in sorted(set(labels.values()))},
        "index_s": round(t1 - t0, 3),
        "all_pairs_s": round(t2 - t1, 3),
        "check_one_draft_ms": round(1000 * sorted(checks)[len(checks) // 2], 2),
        "reported": {
            "duplicate": sum(1 for v in reported.values() if v == "duplicate"),
            "contained": sum(1 for v in reported.values() if v == "contained"),
            "outside_labelled_pool": len(outside),
        },
        "defaults": {"jaccard": overlap.JACCARD, "containment": overlap.CONTAINMENT},
        "shipped_on_all_labelled": shipped,
        "chosen_on_dev": {"jaccard": best_j, "containment": best_c, "dev_pairs": len(dev)},
        "test_with_dev_choice": _scores(measures, labels, test, best_j, best_c) | {"pairs": len(test)},
        "test_with_defaults": _scores(measures, labels, test, overlap.JACCARD, overlap.CONTAINMENT),
    }
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
