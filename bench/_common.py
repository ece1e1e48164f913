"""Helpers shared by the benchmarks: machine description, throw-away databases, percentiles.

Not a benchmark itself. The scripts in this folder put ``bench/`` on ``sys.path`` by being run as
``python bench/<script>.py``, so they import this module as ``_common``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import psycopg
from psycopg import sql

BACKENDS = ("sqlite", "postgresql")
DEFAULT_PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
DEFAULT_GUIDES = Path("/work/shared/data/service_guides/guides.jsonl")


def tongban_executable() -> str:
    """The ``tongban`` console script of the interpreter running the bench (the project venv)."""
    candidate = Path(sys.executable).parent / "tongban"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("tongban")
    if found is None:
        raise SystemExit("cannot find the `tongban` command; run the bench with the project's venv python")
    return found


def parse_backends(value: str) -> list[str]:
    chosen = [b.strip() for b in value.split(",") if b.strip()]
    unknown = [b for b in chosen if b not in BACKENDS]
    if unknown or not chosen:
        raise SystemExit(f"--backends: choose from {', '.join(BACKENDS)} (comma-separated), got {value!r}")
    return chosen


# --- PostgreSQL throw-away databases -------------------------------------------------------------------


def _pg_conninfo(server: str, dbname: str) -> str:
    return f"{server.rstrip('/')}/{dbname}"


def sqlalchemy_pg_url(server: str, dbname: str) -> str:
    """``postgresql://user@host:port`` + a database name as the SQLAlchemy URL the platform takes."""
    rest = server.split("://", 1)[1].rstrip("/")
    return f"postgresql+psycopg://{rest}/{dbname}"


@contextmanager
def pg_database(server: str, dbname: str) -> Iterator[str]:
    """Create the (``bench_``-prefixed) database ``dbname``; drop it afterwards, whatever happens.

    Yields the SQLAlchemy URL of the new database.
    """
    if not dbname.startswith("bench_"):
        raise ValueError("benchmark databases must be named bench_*")
    ident = sql.Identifier(dbname)
    with psycopg.connect(_pg_conninfo(server, "postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    try:
        yield sqlalchemy_pg_url(server, dbname)
    finally:
        with psycopg.connect(_pg_conninfo(server, "postgres"), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))


@contextmanager
def fresh_database(backend: str, pg_server: str, name: str) -> Iterator[tuple[Path, str]]:
    """A temporary data dir and the database URL the platform should use ("" = SQLite in the data dir);
    on PostgreSQL a new database ``name``, dropped afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"tongban-{name}-") as tmp:
        data_dir = Path(tmp)
        if backend == "sqlite":
            yield data_dir, ""
        else:
            with pg_database(pg_server, name) as url:
                yield data_dir, url


def pg_server_version(server: str) -> str:
    try:
        with psycopg.connect(_pg_conninfo(server, "postgres"), connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        return f"unreachable ({type(exc).__name__})"
    return str(row[0]) if row else "?"


# --- machine description -------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _mem_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                kib = int(line.split()[1])
                return f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError):
        pass
    return "?"


@dataclass(frozen=True)
class Machine:
    cpus: int
    cpu_model: str
    memory: str
    python: str
    sqlite: str
    postgresql: str
    load_at_start: str

    def markdown(self) -> str:
        return (
            f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}\n"
            f"- machine: {self.cpus} CPU(s) usable, {self.cpu_model}, {self.memory} RAM, "
            f"load average at start {self.load_at_start}\n"
            f"- Python {self.python}, SQLite {self.sqlite}, PostgreSQL server {self.postgresql}"
        )


def machine(pg_server: str | None) -> Machine:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 0
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return Machine(
        cpus=cpus,
        cpu_model=_cpu_model(),
        memory=_mem_total(),
        python=platform.python_version(),
        sqlite=sqlite3.sqlite_version,
        postgresql=pg_server_version(pg_server) if pg_server else "not used",
        load_at_start=load,
    )


# --- small utilities -----------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending sequence (no interpolation)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def run_cli(args: Sequence[str], env: dict[str, str], *, cwd: Path, timeout: float = 600) -> str:
    """Run the real ``tongban`` CLI in ``cwd`` (away from any ``.env``); raise with its output on failure."""
    proc = subprocess.run(
        [tongban_executable(), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"`tongban {' '.join(args)}` exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc.stdout


def platform_env(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The environment the platform reads its settings from (``TONGBAN_*``), isolated from any ``.env``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TONGBAN_")}
    env["TONGBAN_DATA_DIR"] = str(data_dir)
    env["TONGBAN_DATABASE_URL"] = database_url
    env.update(extra)
    return env


# --- a server for the HTTP benchmarks ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server_process(
    command: Sequence[str], env: dict[str, str], cwd: Path, log: IO[bytes]
) -> Iterator[subprocess.Popen[bytes]]:
    """Run the platform's server as a child process for the benchmark's duration (stopped, then killed)."""
    proc = subprocess.Popen(
        list(command),
        env={**env, "PYTHONFAULTHANDLER": "1"},
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def wait_ready(base_url: str, proc: subprocess.Popen[bytes], tries: int) -> None:
    with httpx.Client(base_url=base_url, timeout=2.0) as client:
        for _ in range(tries):
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode} before it was ready")
            with contextlib.suppress(httpx.TransportError):
                if client.get("/readyz").status_code == 200:
                    return
            time.sleep(0.2)
    raise RuntimeError(f"/readyz did not answer 200 after {tries} tries")


CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLOCK_TICK, sum(values) / CLOCK_TICK
