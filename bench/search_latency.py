"""Search latency with a large knowledge base (default 100,000 passages), end to end through the service.

1. A fresh SQLite database in a temporary directory, migrated.
2. Entries made of real Chinese government text: the policy texts of ``--docs`` (default the policy_qa
   collection) and the service guides, cut into sentences and recombined into distinct synthetic
   documents until ``--passages`` passages exist. Ingested through ``service.ingest_content`` (versions,
   passages, facts, audit, index log), as an operator's bulk load would.
3. Vectors: computing 100,000 real embeddings takes hours on a 2-core machine, so each passage gets a
   random unit vector in the embedding cache (the semantic step costs the same: one matrix-vector product
   over every row). The *query* is embedded by the real model on every search, so its cost is included.
4. The node's index is built from the database (``service.rebuild_index``): build time reported.
5. ``--queries`` real questions (the ``--questions`` file) through ``service.search`` (sync check SQL,
   both Tantivy searches, the semantic product, fusion, snippets), timed one by one: p50/p95/p99.
   In the same run, the same queries lexical-only (``--embedding none`` equivalent) as the reference.

    .venv/bin/python bench/search_latency.py [--passages 100000] [--queries 300] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine, percentile

DEFAULT_DOCS = Path("/work/shared/data/policy_qa/kb.jsonl")
DEFAULT_QUESTIONS = Path("/work/shared/data/policy_qa/qa.jsonl")
DEFAULT_GUIDES = Path("/work/shared/data/service_guides/guides.jsonl")
_SENTENCE = re.compile(r"(?<=[。！？；])")


def sentences(docs: Path, guides: Path) -> list[str]:
    out: list[str] = []
    for line in docs.read_text(encoding="utf-8").splitlines():
        out.extend(s.strip() for s in _SENTENCE.split(json.loads(line)["text"]) if len(s.strip()) > 8)
    if guides.is_file():
        for line in guides.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            for key in ("matter_name", "accept_standard", "handle_location"):
                value = row.get(key)
                if isinstance(value, str) and len(value) > 8:
                    out.extend(s.strip() for s in _SENTENCE.split(value) if len(s.strip()) > 8)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="embedding threads (query encoding)")
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS)
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--guides", type=Path, default=DEFAULT_GUIDES)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    from tongban.core.clock import SystemClock
    from tongban.core.db import make_engine, make_sessionmaker, session_scope
    from tongban.core.migrate import upgrade
    from tongban.knowledge import repository as repo
    from tongban.knowledge import service
    from tongban.knowledge.embedding import get_embedder, to_bytes
    from tongban.knowledge.schemas import EntryContent, Kind, SectionIn

    rng = random.Random(args.seed)
    pool = sentences(args.docs, args.guides)
    questions = [
        json.loads(line)["question"] for line in args.questions.read_text(encoding="utf-8").splitlines()
    ]
    rng.shuffle(questions)
    # Warm-up questions are not among the measured ones (the embedder caches repeated questions).
    warmup = questions[args.queries : args.queries + 10]
    questions = questions[: args.queries]
    host = machine(None)
    embedder = get_embedder("e5", args.threads)
    assert embedder is not None
    clock = SystemClock()
    with tempfile.TemporaryDirectory(prefix="tongban-bench-") as tmp:
        db_path = Path(tmp) / "bench.sqlite3"
        engine = make_engine(f"sqlite:///{db_path}")
        upgrade(engine)
        factory = make_sessionmaker(engine)
        start = time.perf_counter()
        passages = 0
        n = 0
        while passages < args.passages:
            with session_scope(factory) as session:
                for _ in range(500):
                    if passages >= args.passages:
                        break
                    n += 1
                    sections = []
                    for s in range(rng.randint(2, 5)):
                        body = "".join(rng.choice(pool) for _ in range(rng.randint(3, 8)))
                        sections.append(SectionIn(heading=[f"第{s + 1}部分"], text=body))
                    content = EntryContent(
                        title="".join(rng.choice(pool)[:20] for _ in range(1)),
                        kind=rng.choice([Kind.POLICY, Kind.GUIDE, Kind.FAQ]),
                        sections=sections,
                    )
                    service.ingest_content(
                        session, f"bench-{n}", content, actor="bench", clock=clock, source="bench"
                    )
                    passages = repo.passage_total(session) if n % 100 == 0 else passages
            print(f"\r{passages} passages", end="", file=sys.stderr)
        ingest_s = time.perf_counter() - start
        with session_scope(factory) as session:
            passages = repo.passage_total(session)
            hashes = repo.all_embed_hashes(session)
            vectors = (
                np.random.default_rng(args.seed)
                .standard_normal((len(hashes), embedder.dim))
                .astype(np.float32)
            )
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            service.store_vectors(
                session, embedder.name, {h: to_bytes(v) for h, v in zip(hashes, vectors, strict=True)}
            )
        print(f"\ningested {n} entries, {passages} passages in {ingest_s:.0f} s", file=sys.stderr)
        results = {}
        for label, emb in (("hybrid (BM25 + e5)", embedder), ("lexical only (BM25)", None)):
            holder = service.IndexHolder(emb)
            start = time.perf_counter()
            with session_scope(factory) as session:
                index = service.rebuild_index(session, holder)
            build_s = time.perf_counter() - start
            with session_scope(factory) as session:  # warm-up
                for q in warmup:
                    service.search(session, holder, q, clock=clock, record_miss=False)
            timings = []
            for q in questions:
                with session_scope(factory) as session:
                    t0 = time.perf_counter()
                    service.search(session, holder, q, clock=clock, record_miss=False)
                    timings.append((time.perf_counter() - t0) * 1000)
            timings.sort()
            results[label] = (build_s, index.passage_count, timings)
            print(f"{label}: p95 {percentile(timings, 95):.1f} ms", file=sys.stderr)
        qtimes = []
        for i, q in enumerate(questions[:100]):
            t0 = time.perf_counter()
            embedder.query(f"{q} {i}")  # not cached
            qtimes.append((time.perf_counter() - t0) * 1000)
        qtimes.sort()
        db_mb = db_path.stat().st_size / 1e6
        engine.dispose()
    print("## Search latency (`bench/search_latency.py`)\n")
    print(host.markdown())
    print(
        f"- {passages:,} passages in {n:,} entries; {len(questions)} questions; "
        f"embedding threads {args.threads}"
    )
    print(
        f"- ingest (no embeddings): {ingest_s:.0f} s = {passages / ingest_s:.0f} passages/s; "
        f"SQLite file {db_mb:.0f} MB"
    )
    print(
        f"- query embedding alone: p50 {percentile(qtimes, 50):.1f} ms, p95 {percentile(qtimes, 95):.1f} ms"
    )
    print(f"- vectors in memory: {passages * embedder.dim * 4 / 1e6:.0f} MB (float32)\n")
    print("| signal set | index build s | passages | p50 ms | p95 ms | p99 ms | mean ms |")
    print("|---|---|---|---|---|---|---|")
    for label, (build_s, count, timings) in results.items():
        print(
            f"| {label} | {build_s:.0f} | {count:,} | {percentile(timings, 50):.1f} | "
            f"{percentile(timings, 95):.1f} | {percentile(timings, 99):.1f} | "
            f"{statistics.mean(timings):.1f} |"
        )


if __name__ == "__main__":
    main()
