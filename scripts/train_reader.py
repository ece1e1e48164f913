"""Fit the extractive reader's ranking model on labelled questions (writes consult/data/reader.lgb.txt).

    .venv/bin/python scripts/train_reader.py --docs ../shared/data/policy_qa/kb.jsonl
        --questions ../shared/data/policy_qa/qa.jsonl --cache data/cache/eval-embeddings.npz

The documents are loaded into a fresh temporary knowledge base exactly as ``tongban eval consult`` does;
each question's top documents are retrieved by the real search and cut into candidates by the reader, and
every candidate is labelled with its character-F1 against the gold answer (0–10 in tenths). The model is
LightGBM LambdaRank. Before fitting on everything, the script prints two-fold held-out figures (fit on
every other question, measure on the rest). ``--only even|odd`` fits on one half only, so that
``tongban eval consult --split`` on the other half measures questions the model has never seen.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from tongban.consult import reader
from tongban.consult.service import covering_documents, documents_from
from tongban.core.clock import SystemClock
from tongban.core.db import session_scope
from tongban.knowledge import service as knowledge
from tongban.knowledge.evaluate import read_questions, temporary_knowledge_base

Example = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
PARAMS = {
    "objective": "lambdarank",
    "label_gain": list(range(11)),
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 100,
    "feature_fraction": 0.7,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "seed": 7,
    "deterministic": True,
    "num_threads": 1,
    "verbose": -1,
}
ROUNDS = 200


def fit(examples: list[Example]) -> lgb.Booster:
    matrix = np.vstack([x for x, _ in examples])
    labels = np.round(np.concatenate([y for _, y in examples]) * 10).astype(int)
    data = lgb.Dataset(
        matrix,
        label=labels,
        group=[len(y) for _, y in examples],
        feature_name=[f.replace(" ", "_") for f in reader.FEATURES],
    )
    return lgb.train(PARAMS, data, num_boost_round=ROUNDS)


def top1(examples: list[Example], model: lgb.Booster) -> float:
    return float(np.mean([y[int(np.argmax(model.predict(x)))] for x, y in examples]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=Path, required=True)
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--only", choices=("all", "even", "odd"), default="all")
    parser.add_argument("--out", type=Path, default=Path("src/tongban/consult/data/reader.lgb.txt"))
    args = parser.parse_args()
    questions = [q for q in read_questions(args.questions) if q.answer]
    clock = SystemClock()
    examples: list[Example | None] = []
    start = time.perf_counter()
    with temporary_knowledge_base(args.docs, cache_path=args.cache) as kb:
        for q in questions:
            with session_scope(kb.factory) as session:
                found = knowledge.retrieve(session, kb.holder, q.question, clock=clock, k=reader.READ_DOCS)
            docs, _ = covering_documents(q.question, documents_from(found))
            matrix, cands, _ = reader.candidates(q.question, docs)
            gold = q.answer or ""
            labels = np.array([reader.char_f1(c.text, gold) for c in cands])
            examples.append((matrix, labels) if cands and labels.max() > 0 else None)
    usable = [e for e in examples if e is not None]
    print(f"{len(usable)} of {len(questions)} questions usable, {time.perf_counter() - start:.0f} s")
    print(f"oracle (best candidate) F1 {np.mean([y.max() for _, y in usable]):.3f}")
    even = [e for e in examples[0::2] if e is not None]
    odd = [e for e in examples[1::2] if e is not None]
    for name, train, test in (("even", even, odd), ("odd", odd, even)):
        model = fit(train)
        print(f"fit on {name}: train F1 {top1(train, model):.3f}, held-out F1 {top1(test, model):.3f}")
    chosen = {"all": usable, "even": even, "odd": odd}[args.only]
    model = fit(chosen)
    args.out.write_text(model.model_to_string(), encoding="utf-8")
    print(f"fit on {args.only} ({len(chosen)} questions): F1 {top1(chosen, model):.3f}; wrote {args.out}")


if __name__ == "__main__":
    main()
