"""Knowledge ingestion throughput, embeddings included, and what a re-ingest costs.

For each ``--threads`` value: a fresh SQLite database, then, each step in its own transaction as
``tongban knowledge ingest`` runs it:

(a) ingest     — ``--docs`` documents (default: the first 150 policy texts of policy_qa) through
                 ``content_from_document`` + ``ingest_content`` (versions, passages, facts, audit, log);
(b) embed      — ``embed_missing``: every passage through multilingual-e5-small on the CPU;
(c) re-ingest  — the same documents again: all unchanged, nothing embedded;
(d) edit       — every document with one sentence appended: new versions; only the changed passages
                 are embedded again (the cache is keyed by text).

Also reports the index size: vectors in the database cache, and the in-memory index of a node.

    .venv/bin/python bench/knowledge_ingest.py [--docs 150] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine

DEFAULT_DOCS = Path("/work/shared/data/policy_qa/kb.jsonl")


def run(docs_path: Path, limit: int, threads: int) -> dict[str, float]:
    from sqlalchemy import func, select

    from tongban.core.clock import SystemClock
    from tongban.core.db import make_engine, make_sessionmaker, session_scope
    from tongban.core.migrate import upgrade
    from tongban.knowledge import evaluate, service
    from tongban.knowledge.embedding import E5Embedder
    from tongban.knowledge.ingest import Section, SourceDocument
    from tongban.knowledge.models import KnowledgeEmbedding
    from tongban.knowledge.schemas import Kind

    docs = evaluate.read_documents(docs_path)[:limit]
    embedder = E5Embedder(threads)
    clock = SystemClock()
    defaults = service.IngestDefaults(kind=Kind.POLICY)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="tongban-bench-") as tmp:
        db = Path(tmp) / "bench.sqlite3"
        engine = make_engine(f"sqlite:///{db}")
        upgrade(engine)
        factory = make_sessionmaker(engine)

        def ingest(batch: list[SourceDocument]) -> float:
            start = time.perf_counter()
            with session_scope(factory) as session:
                for doc in batch:
                    content = service.content_from_document(doc, defaults)
                    service.ingest_content(
                        session, doc.external_id, content, actor="bench", clock=clock, source="b"
                    )
            return time.perf_counter() - start

        def embed() -> tuple[float, int]:
            start = time.perf_counter()
            with session_scope(factory) as session:
                n = service.embed_missing(session, embedder)
            return time.perf_counter() - start, n

        out["ingest_s"] = ingest(docs)
        out["embed_s"], out["embedded"] = embed()
        out["reingest_s"] = ingest(docs)
        out["reembed_s"], out["reembedded"] = embed()
        edited = [
            SourceDocument(
                external_id=d.external_id,
                title=d.title,
                sections=(*d.sections, Section(heading=(), text="本文件自发布之日起施行。")),
                metadata=d.metadata,
            )
            for d in docs
        ]
        out["edit_ingest_s"] = ingest(edited)
        out["edit_embed_s"], out["edit_embedded"] = embed()
        with session_scope(factory) as session:
            from tongban.knowledge import repository as repo

            out["passages"] = repo.passage_total(session)
            out["vector_bytes"] = float(
                session.scalar(select(func.sum(func.length(KnowledgeEmbedding.vector)))) or 0
            )
            holder = service.IndexHolder(embedder)
            start = time.perf_counter()
            index = service.rebuild_index(session, holder)
            out["index_build_s"] = time.perf_counter() - start
            out["index_vectors_bytes"] = float(index.passage_count * embedder.dim * 4)
        engine.dispose()
        out["db_bytes"] = float(sum(f.stat().st_size for f in db.parent.glob(db.name + "*")))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=150)
    parser.add_argument("--file", type=Path, default=DEFAULT_DOCS)
    parser.add_argument("--threads", default="1,2", help="embedding threads to compare, comma-separated")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        # OpenMP reads its thread count once per process: each setting runs in a process of its own.
        print(json.dumps(run(args.file, args.docs, args.worker)))
        return
    host = machine(None)
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        print(f"threads={threads} …", file=sys.stderr)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        worker = [
            sys.executable,
            __file__,
            "--worker",
            str(threads),
            "--docs",
            str(args.docs),
            "--file",
            str(args.file),
        ]
        done = subprocess.run(worker, env=env, capture_output=True, text=True, check=True)
        rows.append((threads, json.loads(done.stdout.strip().splitlines()[-1])))
    print("## Knowledge ingestion (`bench/knowledge_ingest.py`)\n")
    print(host.markdown())
    print(f"- {args.docs} documents of {args.file.name}\n")
    print(
        "| threads | passages | ingest passages/s | embed passages/s | ingest+embed passages/s | "
        "re-ingest unchanged s | edit: re-embedded | edit ingest+embed s | index build s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for threads, r in rows:
        p = r["passages"]
        print(
            f"| {threads} | {p:.0f} | {p / r['ingest_s']:.0f} | {r['embedded'] / r['embed_s']:.1f} | "
            f"{p / (r['ingest_s'] + r['embed_s']):.1f} | {r['reingest_s']:.2f} | {r['edit_embedded']:.0f} | "
            f"{r['edit_ingest_s'] + r['edit_embed_s']:.1f} | {r['index_build_s']:.1f} |"
        )
    r = rows[-1][1]
    print(
        f"\nSizes: vectors cached in the database {r['vector_bytes'] / 1e6:.1f} MB (float16), SQLite file "
        f"{r['db_bytes'] / 1e6:.1f} MB, node index vectors {r['index_vectors_bytes'] / 1e6:.1f} MB (float32) "
        f"for {r['passages']:.0f} passages."
    )
    print(json.dumps({str(t): r for t, r in rows}), file=sys.stderr)


if __name__ == "__main__":
    main()
