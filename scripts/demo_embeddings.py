"""Rebuild the demo catalogue's shipped embedding cache (src/tongban/demo/knowledge-embeddings.npz).

Run after changing how service items become knowledge (their passages' text is the cache key):
    .venv/bin/python scripts/demo_embeddings.py
"""

from __future__ import annotations

import gzip
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from tongban.catalog.importer import import_file
from tongban.core.clock import SystemClock
from tongban.core.db import make_engine, make_sessionmaker, session_scope
from tongban.core.migrate import upgrade
from tongban.knowledge import repository as repo
from tongban.knowledge import service
from tongban.knowledge.embedding import get_embedder
from tongban.knowledge.evaluate import EmbeddingCacheFile

TARGET = Path(__file__).resolve().parents[1] / "src" / "tongban" / "demo" / "knowledge-embeddings.npz"


def main() -> None:
    embedder = get_embedder("e5", threads=int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    assert embedder is not None
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'demo.sqlite3'}")
        upgrade(engine)
        factory = make_sessionmaker(engine)
        guides = Path(tmp) / "guides.jsonl"
        source = resources.files("tongban.demo") / "guangdong_guides.jsonl.gz"
        with source.open("rb") as raw, gzip.open(raw) as unpacked, guides.open("wb") as fh:
            shutil.copyfileobj(unpacked, fh)
        clock = SystemClock()
        with session_scope(factory) as session:
            import_file(session, guides, actor="demo", clock=clock, fmt="guangdong")
        with session_scope(factory) as session:
            service.sync_catalog(session, clock=clock)
        old = EmbeddingCacheFile(TARGET, embedder.name)
        with session_scope(factory) as session:
            service.store_vectors(session, embedder.name, old.vectors)
            service.embed_missing(session, embedder, progress=lambda n: print(f"embedded {n}", flush=True))
            passages = repo.passages_of(session, [e.id for e in repo.published_entries(session)])
            vectors = repo.cached_vectors(session, embedder.name, (p.embed_hash for p in passages))
        print(f"{len(passages)} passages, {len(vectors)} vectors")
        EmbeddingCacheFile(TARGET, embedder.name).save(vectors)
        engine.dispose()


if __name__ == "__main__":
    main()
