"""Catalogue import throughput: a first import into an empty catalogue, then a re-import of the same file.

For each backend and each repetition: a fresh database (a new temporary data dir for SQLite, a new
``bench_import_<pid>`` database for PostgreSQL, dropped afterwards), ``tongban db upgrade`` through the
real CLI, then two timed calls of :func:`tongban.catalog.importer.import_file` in-process, each in its own
unit of work exactly as ``tongban catalog import`` runs it (``session_scope`` → one transaction, commit
included in the time):

(a) first import  — every row is validated, hashed and stored (item, tags, version, audit event);
(b) re-import     — the same unchanged file; every row must come back ``unchanged`` and no table may change.

Prints the median items/s of both over ``--repeat`` runs as a Markdown table.

    .venv/bin/python bench/import_throughput.py [--backends sqlite,postgresql] [--repeat 3] [--file F]
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from _common import (
    DEFAULT_GUIDES,
    DEFAULT_PG_SERVER,
    fresh_database,
    machine,
    parse_backends,
    platform_env,
    run_cli,
)
from sqlalchemy import text

from tongban.catalog.formats import detect_format
from tongban.catalog.importer import ImportReport, import_file
from tongban.core.clock import SystemClock
from tongban.core.db import make_engine, make_sessionmaker, session_scope

#: Tables an unchanged re-import must leave exactly as they were (row counts and a cheap fingerprint).
FINGERPRINT_SQL = {
    "catalog_item": "SELECT count(*), coalesce(sum(version), 0), max(updated_at) FROM catalog_item",
    "catalog_item_version": "SELECT count(*), 0, NULL FROM catalog_item_version",
    "catalog_item_tag": "SELECT count(*), 0, NULL FROM catalog_item_tag",
    "core_audit_event": "SELECT count(*), 0, NULL FROM core_audit_event",
}


@dataclass(frozen=True)
class Run:
    rows: int
    first_s: float
    reimport_s: float
    created: int
    errors: int

    @property
    def first_rate(self) -> float:
        return self.rows / self.first_s

    @property
    def reimport_rate(self) -> float:
        return self.rows / self.reimport_s


def _fingerprint(url: str) -> dict[str, tuple[object, ...]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {t: tuple(conn.execute(text(q)).one()) for t, q in FINGERPRINT_SQL.items()}
    finally:
        engine.dispose()


def _timed_import(url: str, path: Path, fmt: str) -> tuple[ImportReport, float]:
    engine = make_engine(url)
    factory, clock = make_sessionmaker(engine), SystemClock()
    try:
        started = time.perf_counter()
        with session_scope(factory) as session:
            report = import_file(session, path, actor="bench", clock=clock, fmt=fmt)
        elapsed = time.perf_counter() - started
    finally:
        engine.dispose()
    return report, elapsed


def one_run(backend: str, pg_server: str, path: Path, tag: str) -> Run:
    fmt = detect_format(path)
    with fresh_database(backend, pg_server, f"bench_import_{tag}") as (data_dir, database_url):
        env = platform_env(data_dir, database_url, TONGBAN_LOG_LEVEL="WARNING")
        run_cli(["db", "upgrade"], env, cwd=data_dir)
        url = database_url or f"sqlite:///{(data_dir / 'tongban.sqlite3').resolve()}"

        first, first_s = _timed_import(url, path, fmt)
        if first.updated or first.unchanged or not first.created:
            raise RuntimeError(f"the first import did not start from an empty catalogue: {first}")
        before = _fingerprint(url)

        again, again_s = _timed_import(url, path, fmt)
        if again.created or again.updated or again.unchanged != first.created:
            raise RuntimeError(
                f"the re-import changed something: {again.created} created, {again.updated} updated, "
                f"{again.unchanged} unchanged (expected {first.created} unchanged)"
            )
        after = _fingerprint(url)
        if after != before:
            raise RuntimeError(f"the re-import changed the tables: {before} -> {after}")
    return Run(
        rows=first.rows, first_s=first_s, reimport_s=again_s, created=first.created, errors=len(first.errors)
    )


def _guides_file(arg: Path | None, workdir: Path) -> Path:
    if arg is not None:
        return arg
    if DEFAULT_GUIDES.is_file():
        return DEFAULT_GUIDES
    # The package ships the same 1,843 guides gzipped.
    target = workdir / "guangdong_guides.jsonl"
    source = resources.files("tongban.demo") / "guangdong_guides.jsonl.gz"
    with source.open("rb") as raw, gzip.open(raw) as unpacked, target.open("wb") as fh:
        shutil.copyfileobj(unpacked, fh)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated (default: both)")
    parser.add_argument("--repeat", type=int, default=3, help="fresh-database runs per backend (default 3)")
    parser.add_argument("--file", type=Path, default=None, help=f"guides file (default {DEFAULT_GUIDES})")
    parser.add_argument("--pg-server", default=DEFAULT_PG_SERVER, help="postgresql://user@host:port")
    args = parser.parse_args(argv)
    backends = parse_backends(args.backends)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    with tempfile.TemporaryDirectory(prefix="tongban-bench-guides-") as workdir:
        path = _guides_file(args.file, Path(workdir))
        host = machine(args.pg_server if "postgresql" in backends else None)
        print(f"# Import throughput — {path.name}, {args.repeat} run(s) per backend\n", flush=True)
        print(host.markdown() + "\n", flush=True)

        results: dict[str, list[Run]] = {}
        for backend in backends:
            runs: list[Run] = []
            for i in range(args.repeat):
                run = one_run(backend, args.pg_server, path, tag=str(os.getpid()))
                runs.append(run)
                print(
                    f"  {backend} run {i + 1}/{args.repeat}: {run.rows} rows ({run.created} created, "
                    f"{run.errors} failed); first {run.first_s:.2f} s = {run.first_rate:.0f} items/s, "
                    f"re-import {run.reimport_s:.2f} s = {run.reimport_rate:.0f} items/s",
                    file=sys.stderr,
                    flush=True,
                )
            results[backend] = runs

    print(
        "| backend | rows | first import: median s | first import: items/s (median, min–max) "
        "| re-import: median s | re-import: items/s (median, min–max) | runs |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for backend, runs in results.items():
        first = [r.first_rate for r in runs]
        again = [r.reimport_rate for r in runs]
        print(
            f"| {backend} | {runs[0].rows} | {statistics.median(r.first_s for r in runs):.2f} "
            f"| **{statistics.median(first):.0f}** ({min(first):.0f}–{max(first):.0f}) "
            f"| {statistics.median(r.reimport_s for r in runs):.2f} "
            f"| **{statistics.median(again):.0f}** ({min(again):.0f}–{max(again):.0f}) | {len(runs)} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
