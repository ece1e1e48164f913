"""The 12345 hotline under load: Open311 intake, the operator desk under 50 clients, the analysis jobs over a
year of tickets.

1. **A node like ``tongban demo``** (``--database-url``: a PostgreSQL database named ``bench_*``, created now
   and dropped at the end, or ``sqlite``): migrated and filled in-process by ``tongban.cli.load_demo`` (the
   demo catalogue, its knowledge entries with the shipped vectors, the demo hotline with its Open311
   services and a classifier trained on its examples with the real embedder), then ``--tickets`` synthetic
   tickets over the past year (``hotline.synthetic.generate_tickets``); an Open311 API key with a rate of
   100,000 a minute (``hotline.apikeys.issue_key``) and one ``hotline_operator`` account per client
   (``core.auth.create_account``).
2. The real server, ``tongban serve`` (one uvicorn worker), on a free loopback port; log level WARNING.
3. **Open311 intake**: ``--clients`` keep-alive clients read the services and their definitions
   (``/open311/v2/services.json``, ``services/{code}.json``) and then send ``--requests`` form-encoded
   ``POST /open311/v2/requests.json`` (after ``--warmup`` unmeasured ones): service code, lat/long or an
   address, a description, a phone number for half of them, the API key. ``GET /healthz`` by the same
   clients, half before and half after, is the baseline. Checked: every answer 200 and one ticket stored
   per POST (the tickets carrying the key's id are counted).
4. **The operator desk**: every client signs in through the staff login form (``/staff/login``: CSRF token,
   session cookie) as its own operator, then the clients share ``--page-requests`` requests, one in three
   ``GET /hotline/desk`` (the queue of received tickets and of tickets awaiting their return visit; one in
   five of those a later page) and two in three ``GET /hotline/desk/{ref}`` of a different open ticket each
   time (the ticket with the assistant: the classifier's suggestion, stored on the first view, the dispatch
   plan, similar answered tickets, the knowledge hub's answer). Baseline: healthz by the same clients.
   Then the same mix again, each ticket page one of the tickets already shown (the page an operator sees
   again after each action on a ticket), with its own healthz baseline.
5. **The analysis jobs over a year**: for each volume of ``--tickets-per-year`` (comma-separated) a fresh
   database (``--year-database-url``) with that many synthetic tickets over the past 365 days, ``VACUUM
   ANALYZE``-ed; in-process ``analysis.run_hotspots`` and ``analysis.run_index`` for the last complete day,
   week and month (``--repeat`` times each: median, max; each run in its own transaction, commit included;
   the time spent in SQL statements is measured on the engine, and in each repository function the jobs
   call), then both jobs for each of the 52 ISO weeks ending with the last complete one. Baseline:
   ``SELECT count(*) FROM hotline_ticket`` (the year's tickets) in the same run.

Every latency is the client's, from sending to having read the whole body. CPU per request: of the server
process, of every PostgreSQL process (other sessions' included), of the load generator, and how busy the
machine was. The figures go to standard output as Markdown and, with every parameter, to ``--json``.

    .venv/bin/python bench/hotline.py                                   # the defaults: PostgreSQL, 50 clients
    .venv/bin/python bench/hotline.py --skip-intake --skip-desk --tickets-per-year 5000000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from _common import (
    CLOCK_TICK,
    free_port,
    machine,
    machine_cpu,
    percentile,
    platform_env,
    server_process,
    tongban_executable,
    wait_ready,
)
from sqlalchemy import Engine, event, make_url, text

from tongban.cli import load_demo
from tongban.core import auth, migrate
from tongban.core.clock import SystemClock
from tongban.core.config import Settings
from tongban.core.db import make_engine, make_sessionmaker, session_scope
from tongban.core.errors import InvalidInput
from tongban.hotline import analysis, apikeys, synthetic
from tongban.hotline import repository as repo
from tongban.hotline.schemas import ApiKeyWrite
from tongban.hotline.vocab import ADMIN

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
PASSWORD = "bench password, not a secret"  # noqa: S105
POST = "/open311/v2/requests.json"
DESK = "/hotline/desk"
#: Statuses of tickets that are no longer open (the desk shows no assistant for them).
FINISHED = ("closed", "merged", "cancelled")
JOBS: dict[str, Callable[..., Any]] = {"hotspots": analysis.run_hotspots, "index": analysis.run_index}
GRANULARITIES = ("day", "week", "month")

#: What the Open311 clients report (written here): ``{place}`` is a district and a road.
DESCRIPTIONS = (
    "{place}路面有一个大坑，电动车经过差点摔倒，请尽快修补。",
    "{place}这一段路灯已经三天晚上不亮了，走夜路很不安全。",
    "{place}人行道井盖松动，踩上去会翻，存在安全隐患。",
    "{place}附近工地晚上十一点以后还在施工，噪音很大。",
    "{place}垃圾桶已经满出来两天了，没有人来清运。",
    "{place}小区从早上开始停水，没有看到任何通知。",
    "{place}有车辆长期占用消防通道停放，请处理。",
)
PLACES = (
    ("朝阳区", "建国路", 39.921, 116.486),
    ("海淀区", "中关村大街", 39.959, 116.298),
    ("丰台区", "方庄路", 39.858, 116.287),
    ("西城区", "广安门内大街", 39.912, 116.366),
    ("通州区", "新华大街", 39.902, 116.657),
    ("昌平区", "回龙观西大街", 40.218, 116.231),
)


def log(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


# --- databases -------------------------------------------------------------------------------------------


@contextmanager
def bench_database(url_arg: str, data_dir: Path, filename: str) -> Iterator[str]:
    """The SQLAlchemy URL to use: SQLite ``filename`` in ``data_dir``, or the named ``bench_*`` PostgreSQL
    database created now (dropped first if it exists) and dropped afterwards, whatever happens."""
    if url_arg == "sqlite":
        yield f"sqlite:///{data_dir / filename}"
        return
    url = make_url(Settings(database_url=url_arg).database_url)
    name = url.database or ""
    if url.get_backend_name() != "postgresql" or not name.startswith("bench_"):
        raise SystemExit(f"{url_arg}: a PostgreSQL database whose name starts with bench_ (it is dropped)")
    admin = make_engine(url.set(database="postgres").render_as_string(hide_password=False))

    def run(sql: str) -> None:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(sql))

    run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    run(f'CREATE DATABASE "{name}"')
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def year_url(url_arg: str, volume: int) -> str:
    if url_arg == "sqlite":
        return url_arg
    url = make_url(url_arg)
    return url.set(database=f"{url.database}_{volume}").render_as_string(hide_password=False)


def scalar(engine: Engine, sql: str, **params: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


# --- CPU of the processes ---------------------------------------------------------------------------------


def _stats() -> Iterator[tuple[int, str, list[str]]]:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, tail = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        pid, comm = head.split(" (", 1)
        yield int(pid), comm, tail.split()


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (``/proc``)."""
    return sum((int(f[11]) + int(f[12])) / CLOCK_TICK for p, _, f in _stats() if pid in (p, int(f[1])))


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL process, plus what the postmaster reaped from exited ones."""
    procs = [(p, f) for p, comm, f in _stats() if comm == "postgres"]
    pids = {p for p, _ in procs}
    total = 0.0
    for _, f in procs:
        total += (int(f[11]) + int(f[12])) / CLOCK_TICK
        if int(f[1]) not in pids:  # the postmaster
            total += (int(f[13]) + int(f[14])) / CLOCK_TICK
    return total


# --- the load --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    kind: str
    method: str
    url: str
    data: dict[str, Any] | None = None
    expect: tuple[int, ...] = (200,)


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    server_cpu: float = 0.0
    pg_cpu: float = 0.0
    loadgen_cpu: float = 0.0
    busy: float = 0.0
    capacity: float = 0.0
    cut_short: bool = False

    def merge(self, other: Result) -> None:
        self.latencies += other.latencies
        for kind, values in other.by_kind.items():
            self.by_kind.setdefault(kind, []).extend(values)
        self.errors.update(other.errors)
        self.wall_s += other.wall_s
        self.server_cpu += other.server_cpu
        self.pg_cpu += other.pg_cpu
        self.loadgen_cpu += other.loadgen_cpu
        self.busy += other.busy
        self.capacity += other.capacity
        self.cut_short = self.cut_short or other.cut_short

    def ms(self, pct: float, kind: str | None = None) -> float:
        values = self.latencies if kind is None else self.by_kind.get(kind, [])
        return percentile(sorted(values), pct) * 1000

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall_s if self.wall_s else math.nan

    def per_request_ms(self, seconds: float) -> float:
        return 1000 * seconds / len(self.latencies) if self.latencies else math.nan

    def summary(self, baseline: Result | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": len(self.latencies),
            "errors": dict(self.errors),
            "cut_short": self.cut_short,
            "wall_s": round(self.wall_s, 3),
            "req_per_s": round(self.rate, 2),
            **{f"p{p}_ms": round(self.ms(p), 1) for p in (50, 95, 99, 100)},
            "server_cpu_ms_per_req": round(self.per_request_ms(self.server_cpu), 2),
            "postgres_cpu_ms_per_req": round(self.per_request_ms(self.pg_cpu), 2),
            "loadgen_cpu_ms_per_req": round(self.per_request_ms(self.loadgen_cpu), 2),
            "machine_busy_pct": round(100 * self.busy / self.capacity, 1) if self.capacity else None,
        }
        if len(self.by_kind) > 1:
            out["by_kind"] = {
                k: {"requests": len(v), **{f"p{p}_ms": round(self.ms(p, k), 1) for p in (50, 95, 99)}}
                for k, v in self.by_kind.items()
            }
        if baseline is not None:
            out["p95_over_healthz_p95"] = round(self.ms(95) / baseline.ms(95), 2)
            out["healthz_rate_over_rate"] = round(baseline.rate / self.rate, 2)
        return out


async def drive(
    name: str, clients: Sequence[httpx.AsyncClient], calls: Sequence[Call], pid: int, max_seconds: float
) -> Result:
    """The clients share ``calls``: each takes the next one when its previous answer is in, until none is
    left or ``max_seconds`` have passed (requests already sent are still waited for)."""
    result = Result(name)
    pending = iter(calls)
    deadline = time.perf_counter() + max_seconds

    async def worker(client: httpx.AsyncClient) -> None:
        for call in pending:
            if time.perf_counter() > deadline:
                result.cut_short = True
                return
            started = time.perf_counter()
            try:
                response = await client.request(call.method, call.url, data=call.data)
                error = None if response.status_code in call.expect else str(response.status_code)
                if error is not None:
                    error += " " + re.sub(r"\s+", " ", response.text)[:100]
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:120]
            elapsed = time.perf_counter() - started
            result.latencies.append(elapsed)
            result.by_kind.setdefault(call.kind, []).append(elapsed)
            if error is not None:
                result.errors[error] += 1

    server0, pg0, loadgen0, (busy0, total0) = (
        tree_cpu(pid),
        postgres_cpu(),
        time.process_time(),
        machine_cpu(),
    )
    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in clients))
    result.wall_s = time.perf_counter() - started
    busy1, total1 = machine_cpu()
    result.server_cpu = tree_cpu(pid) - server0
    result.pg_cpu = postgres_cpu() - pg0
    result.loadgen_cpu = time.process_time() - loadgen0
    result.busy, result.capacity = busy1 - busy0, total1 - total0
    log(
        f"{name}: {len(result.latencies)} requests, {result.rate:.1f}/s, p95 {result.ms(95):.0f} ms, "
        f"errors {dict(result.errors)}"
    )
    return result


def new_clients(base_url: str, n: int) -> list[httpx.AsyncClient]:
    # One keep-alive connection each; idle ones are dropped before uvicorn's 5 s keep-alive timeout closes
    # them under the client (a client that finished its share waits for the others).
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=2.0)
    return [
        httpx.AsyncClient(base_url=base_url, limits=limits, timeout=httpx.Timeout(600.0)) for _ in range(n)
    ]


async def bracketed(
    name: str,
    clients: Sequence[httpx.AsyncClient],
    pid: int,
    *,
    warm: Sequence[Call],
    timed: Sequence[Call],
    max_seconds: float,
) -> tuple[Result, Result]:
    """Warm-up (healthz and ``warm``), then healthz, ``timed``, healthz again: (the scenario, healthz)."""
    healthz = Call("healthz", "GET", "/healthz")
    for label, calls in (("healthz", [healthz] * len(warm)), (name, warm)):
        done = await drive(f"warm-up {label}", clients, calls, pid, max_seconds)
        if done.errors:
            raise RuntimeError(f"warm-up of {label} failed: {dict(done.errors)}")
    half = max(len(clients), len(timed) // 2)
    base = await drive("healthz", clients, [healthz] * half, pid, max_seconds)
    result = await drive(name, clients, timed, pid, max_seconds)
    base.merge(await drive("healthz", clients, [healthz] * half, pid, max_seconds))
    return result, base


# --- 1. Open311 intake ------------------------------------------------------------------------------------


async def open311_forms(client: httpx.AsyncClient) -> list[tuple[str, dict[str, str]]]:
    """Each active service and the attributes a request must carry (from its definition, as a client
    reads them): ``(code, {"attribute[x]": value})``."""
    response = await client.get("/open311/v2/services.json")
    response.raise_for_status()
    out = []
    for service in response.json():
        code = str(service["service_code"])
        attrs: dict[str, str] = {}
        if service.get("metadata"):
            definition = (await client.get(f"/open311/v2/services/{code}.json")).json()
            for a in definition.get("attributes", []):
                if not a.get("variable", True) or not a.get("required"):
                    continue
                values = a.get("values") or []
                attrs[f"attribute[{a['code']}]"] = str(values[0]["key"]) if values else "bench"
        out.append((code, attrs))
    return out


def open311_calls(n: int, first: int, forms: Sequence[tuple[str, dict[str, str]]], key: str) -> list[Call]:
    rng = random.Random(first)
    calls = []
    for k in range(first, first + n):
        code, attrs = forms[k % len(forms)]
        district, road, lat, lon = PLACES[k % len(PLACES)]
        place = f"{district}{road}"
        data: dict[str, Any] = {
            "api_key": key,
            "service_code": code,
            "description": DESCRIPTIONS[k % len(DESCRIPTIONS)].format(place=place) + f"（第{k}次反映）",
            **attrs,
        }
        if k % 5:  # four in five give a position, one in five only an address
            data["lat"] = f"{lat + rng.gauss(0, 0.02):.6f}"
            data["long"] = f"{lon + rng.gauss(0, 0.025):.6f}"
        data["address_string"] = f"北京市{place}{1 + k % 300}号"
        if k % 2:
            data["phone"] = f"1391{k % 10_000_000:07d}"
            data["first_name"] = "张"
        calls.append(Call("open311", "POST", POST, data))
    return calls


async def measure_open311(
    base_url: str, pid: int, key: str, *, clients_n: int, requests: int, warmup: int, max_seconds: float
) -> tuple[Result, Result, int]:
    clients = new_clients(base_url, clients_n)
    try:
        forms = await open311_forms(clients[0])
        log(f"Open311 services: {', '.join(c for c, _ in forms)}")
        result, base = await bracketed(
            "Open311 POST requests.json",
            clients,
            pid,
            warm=open311_calls(warmup, 0, forms, key),
            timed=open311_calls(requests, warmup, forms, key),
            max_seconds=max_seconds,
        )
        return result, base, len(forms)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


# --- 2. The operator desk -----------------------------------------------------------------------------------


async def sign_in(client: httpx.AsyncClient, username: str) -> None:
    """The staff login form, as a browser does it: the form (CSRF cookie and token), then the POST."""
    form = await client.get("/staff/login")
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form.text)
    if found is None:
        raise RuntimeError("the login form has no CSRF token")
    response = await client.post(
        "/staff/login",
        data={"username": username, "password": PASSWORD, "next": DESK, "csrf_token": found.group(1)},
    )
    if response.status_code != 303:
        raise RuntimeError(f"sign-in of {username}: {response.status_code} {response.text[:200]}")


def desk_calls(refs: Sequence[str], n: int, seed: int) -> list[Call]:
    """``n`` calls: one in three the desk (one in five of those a later page of its queue), two in three a
    ticket page, each of the next ticket of ``refs`` (a ticket not viewed before while there are enough)."""
    rng = random.Random(seed)
    tickets = itertools.cycle(refs)  # again from the first only when there are too few open tickets
    calls = []
    for k in range(n):
        if k % 3 == 0:
            url = DESK if rng.random() < 0.8 else f"{DESK}?page={rng.randint(2, 5)}"
            calls.append(Call("desk", "GET", url))
        else:
            calls.append(Call("ticket", "GET", f"{DESK}/{next(tickets)}"))
    return calls


async def measure_desk(
    base_url: str,
    pid: int,
    operators: Sequence[str],
    refs: Sequence[str],
    *,
    requests: int,
    warmup: int,
    max_seconds: float,
) -> tuple[Result, Result, Result, Result, float, int]:
    clients = new_clients(base_url, len(operators))
    try:
        started = time.perf_counter()
        await asyncio.gather(*(sign_in(c, u) for c, u in zip(clients, operators, strict=True)))
        login_s = time.perf_counter() - started
        log(f"{len(operators)} operators signed in in {login_s:.1f} s")
        if not refs:
            raise RuntimeError("no open ticket to show at the desk")
        cut = warmup * 2 // 3 + 1
        warm_refs, timed_refs = (refs[:cut], refs[cut:]) if len(refs) > cut else (refs, refs)
        result, base = await bracketed(
            "operator desk (mix)",
            clients,
            pid,
            warm=desk_calls(warm_refs, warmup, 1),
            timed=desk_calls(timed_refs, requests, 2),
            max_seconds=max_seconds,
        )
        distinct = min(len(result.by_kind.get("ticket", [])), len(timed_refs))
        # The same mix again over the tickets just viewed: the page an operator sees again after each
        # action on a ticket (classify, dispatch ... each answers with the ticket's page).
        again, base_again = await bracketed(
            "operator desk (mix), tickets seen before",
            clients,
            pid,
            warm=[],
            timed=desk_calls(timed_refs[:distinct], requests, 3),
            max_seconds=max_seconds,
        )
        return result, base, again, base_again, login_s, distinct
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


# --- the node for parts 1 and 2 -----------------------------------------------------------------------------


@dataclass
class Node:
    demo_s: float
    generate_s: float
    tickets: int
    key: str
    key_id: int
    operators: list[str]


def prepare_node(settings: Settings, engine: Engine, *, tickets: int, operators: int, seed: int) -> Node:
    clock = SystemClock()
    started = time.perf_counter()
    load_demo(settings)
    demo_s = time.perf_counter() - started
    log(f"demo node ready in {demo_s:.0f} s")
    factory = make_sessionmaker(engine)
    started = time.perf_counter()
    if tickets:
        with session_scope(factory) as session:
            synthetic.generate_tickets(
                session,
                count=tickets,
                start=analysis.today(clock) - dt.timedelta(days=364),
                days=365,
                seed=seed,
                clock=clock,
            )
    generate_s = time.perf_counter() - started
    log(f"{tickets} synthetic tickets in {generate_s:.0f} s")
    admin = auth.system_principal("bench", frozenset({ADMIN}))
    names = [f"bench.operator{n:03d}" for n in range(operators)]
    with session_scope(factory) as session:
        issued = apikeys.issue_key(
            session, admin, ApiKeyWrite(name="bench", rate_per_minute=100_000), clock=clock
        )
        for name in names:
            auth.create_account(
                session,
                username=name,
                password=PASSWORD,
                roles=["hotline_operator"],
                display_name=name,
                clock=clock,
            )
    assert issued.key is not None
    total = scalar(engine, "SELECT count(*) FROM hotline_ticket")
    return Node(demo_s, generate_s, total, issued.key, issued.id, names)


def open_refs(engine: Engine, seed: int) -> tuple[list[str], Counter[str]]:
    """The open tickets' references in a random order, and how many there are by status and channel."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT ref, status, channel FROM hotline_ticket "
                "WHERE ref IS NOT NULL AND status NOT IN ('closed', 'merged', 'cancelled')"
            )
        ).all()
    refs = [str(r[0]) for r in rows]
    random.Random(seed).shuffle(refs)
    return refs, Counter(f"{r[2]}:{r[1]}" for r in rows)


@contextlib.contextmanager
def running_server(env: dict[str, str], cwd: Path, out: IO[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    with server_process([tongban_executable(), "serve"], env, cwd, out) as proc:
        yield proc


# --- 3. The analysis jobs over a year ---------------------------------------------------------------------


@dataclass
class SqlClock:
    """Seconds spent in SQL statements on an engine (cursor execute to its return)."""

    seconds: float = 0.0
    statements: int = 0
    _started: list[float] = field(default_factory=list)

    def attach(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *_: Any) -> None:
        self._started.append(time.perf_counter())

    def _after(self, *_: Any) -> None:
        if self._started:
            self.seconds += time.perf_counter() - self._started.pop()
            self.statements += 1


#: Seconds spent in each ``repository`` function the jobs call (``analysis_*``, ``save_snapshot``).
PARTS: dict[str, float] = {}


def time_repository() -> None:
    """Wrap the repository functions of the analysis jobs so that :data:`PARTS` adds up their time."""
    for name in dir(repo):
        fn = getattr(repo, name)
        wanted = name.startswith("analysis_") or name == "save_snapshot"
        if not wanted or not callable(fn) or getattr(fn, "bench_timed", False):
            continue

        def timed(*a: Any, __fn: Callable[..., Any] = fn, __name: str = name, **kw: Any) -> Any:
            started = time.perf_counter()
            try:
                return __fn(*a, **kw)
            finally:
                key = __name.removeprefix("analysis_")
                PARTS[key] = PARTS.get(key, 0.0) + time.perf_counter() - started

        timed.bench_timed = True  # type: ignore[attr-defined]
        setattr(repo, name, timed)


def timed_job(engine: Engine, sql: SqlClock, kind: str, period: str) -> dict[str, Any]:
    """One run of a job in its own transaction (commit included): seconds, SQL seconds, tickets read, the
    seconds of each repository function."""
    clock = SystemClock()
    sql0, n0, parts0 = sql.seconds, sql.statements, dict(PARTS)
    started = time.perf_counter()
    with session_scope(make_sessionmaker(engine)) as session:
        snap = JOBS[kind](session, period=period, clock=clock)
        result = snap.result
    seconds = time.perf_counter() - started
    series = result.get("city", {}).get("series") if kind == "hotspots" else result.get("series")
    read = sum(int(v if isinstance(v, int) else v["tickets"]) for v in series or [])
    return {
        "seconds": seconds,
        "sql_s": sql.seconds - sql0,
        "statements": sql.statements - n0,
        "window_tickets": read,
        "window_periods": len(series or []),
        "parts": {k: round(v - parts0.get(k, 0.0), 4) for k, v in PARTS.items() if v > parts0.get(k, 0.0)},
    }


def median_of(runs: Sequence[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def measure_year(url: str, volume: int, *, repeat: int, seed: int, weeks: int) -> dict[str, Any]:
    engine = make_engine(url)
    out: dict[str, Any] = {"volume": volume, "load_at_start": load()}
    try:
        migrate.upgrade(engine)
        clock = SystemClock()
        start = analysis.today(clock) - dt.timedelta(days=364)
        started = time.perf_counter()
        with session_scope(make_sessionmaker(engine)) as session:
            made = synthetic.generate_tickets(
                session, count=volume, start=start, days=365, seed=seed, clock=clock
            )
        out["generate_s"] = round(time.perf_counter() - started, 1)
        out["bursts"] = made.bursts
        log(f"{made.count} tickets of a year generated in {out['generate_s']} s")
        started = time.perf_counter()
        postgres = engine.dialect.name == "postgresql"
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE hotline_ticket" if postgres else "ANALYZE"))
        out["vacuum_analyze_s"] = round(time.perf_counter() - started, 1)
        out["tickets"] = scalar(engine, "SELECT count(*) FROM hotline_ticket")
        if postgres:
            out["table_size"] = scalar(engine, "SELECT pg_total_relation_size('hotline_ticket')")
        out["first_day"], out["last_day"] = start.isoformat(), analysis.today(clock).isoformat()
        counts = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            scalar(engine, "SELECT count(*) FROM hotline_ticket")
            counts.append(time.perf_counter() - t0)
        out["count_s"] = {"median": statistics.median(counts), "max": max(counts), "runs": counts}
        log(f"count(*): median {statistics.median(counts) * 1000:.0f} ms")
        sql = SqlClock()
        sql.attach(engine)
        time_repository()
        jobs: dict[str, Any] = {}
        for gran in GRANULARITIES:
            period = analysis.default_period(clock, gran)
            for kind in JOBS:
                runs = [timed_job(engine, sql, kind, period) for _ in range(repeat)]
                jobs[f"{kind}:{gran}"] = {
                    "period": period,
                    "median_s": median_of(runs, "seconds"),
                    "max_s": max(r["seconds"] for r in runs),
                    "sql_median_s": median_of(runs, "sql_s"),
                    "statements": runs[0]["statements"],
                    "window_tickets": runs[0]["window_tickets"],
                    "window_periods": runs[0]["window_periods"],
                    "parts": min(runs, key=lambda r: abs(r["seconds"] - median_of(runs, "seconds")))["parts"],
                    "runs": [r["seconds"] for r in runs],
                }
                log(f"{kind} {period}: median {jobs[f'{kind}:{gran}']['median_s']:.2f} s")
        out["jobs"] = jobs
        last = analysis.parse_period(analysis.default_period(clock, "week"))
        periods = [last.shifted(-k).text for k in range(weeks - 1, -1, -1)]
        weekly: dict[str, Any] = {}
        for kind in JOBS:
            done, refused, sql_s = [], [], 0.0
            started = time.perf_counter()
            for period in periods:
                try:
                    r = timed_job(engine, sql, kind, period)
                except InvalidInput:
                    refused.append(period)
                    continue
                done.append(r["seconds"])
                sql_s += r["sql_s"]
            weekly[kind] = {
                "weeks": len(periods),
                "computed": len(done),
                "refused": refused,
                "total_s": time.perf_counter() - started,
                "sql_s": sql_s,
                "mean_s": statistics.fmean(done) if done else math.nan,
                "max_s": max(done) if done else math.nan,
            }
            log(f"{len(done)} weekly {kind} runs in {weekly[kind]['total_s']:.1f} s ({len(refused)} refused)")
        out["weekly"] = weekly
        out["first_week"], out["last_week"] = periods[0], periods[-1]
        out["load_at_end"] = load()
        return out
    finally:
        engine.dispose()


# --- output ----------------------------------------------------------------------------------------------


def print_http(title: str, result: Result, base: Result, note: str) -> None:
    print(f"\n### {title}\n")
    print("| scenario | requests | errors | p50 ms | p95 ms | p99 ms | max ms | req/s | p95 ÷ healthz p95 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows: list[tuple[str, Result, str | None]] = [("healthz", base, None), (result.name, result, None)]
    if len(result.by_kind) > 1:
        rows += [(f"… of which {k}", result, k) for k in sorted(result.by_kind)]
    for label, r, kind in rows:
        n = len(r.by_kind.get(kind, [])) if kind else len(r.latencies)
        errors = "" if kind else f"{r.errors.total()}{' ' + str(dict(r.errors)) if r.errors else ''}"
        rate = "" if kind else f"{r.rate:.1f}"
        cut = " (cut short)" if r.cut_short and not kind else ""
        print(
            f"| {label}{cut} | {n} | {errors} | {r.ms(50, kind):.1f} | {r.ms(95, kind):.1f} | "
            f"{r.ms(99, kind):.1f} | {r.ms(100, kind):.1f} | {rate} | "
            f"**{r.ms(95, kind) / base.ms(95):.1f}×** |"
        )
    print(f"\nThroughput ratio healthz ÷ {result.name}: **{base.rate / result.rate:.1f}×**. {note}\n")
    print(
        "| scenario | server CPU ms/req | PostgreSQL CPU ms/req | load generator CPU ms/req "
        "| machine busy % |"
    )
    print("|---|---:|---:|---:|---:|")
    for r in (base, result):
        busy = 100 * r.busy / r.capacity if r.capacity else math.nan
        print(
            f"| {r.name} | {r.per_request_ms(r.server_cpu):.2f} | {r.per_request_ms(r.pg_cpu):.2f} | "
            f"{r.per_request_ms(r.loadgen_cpu):.2f} | {busy:.0f} |"
        )


def largest(parts: dict[str, float], n: int = 3) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1])[:n])


def print_year(y: dict[str, Any]) -> None:
    size = f", table with indexes {y['table_size'] / 2**20:,.0f} MiB" if "table_size" in y else ""
    print(
        f"\n### Analysis jobs over a year: {y['tickets']:,} tickets ({y['first_day']} … {y['last_day']}), "
        f"load {y['load_at_start']} at start, {y['load_at_end']} at end\n"
    )
    baseline = "`SELECT count(*) FROM hotline_ticket`"
    print(
        f"Generated in {y['generate_s']} s, `VACUUM ANALYZE` {y['vacuum_analyze_s']} s{size}. Baseline "
        f"{baseline}: median **{y['count_s']['median'] * 1000:.0f} ms** "
        f"(max {y['count_s']['max'] * 1000:.0f}).\n"
    )
    count = y["count_s"]["median"]
    print(
        "| job | period | tickets in the window (periods) | median s | max s | SQL share | ÷ count(*) "
        "| largest parts, s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for name, j in y["jobs"].items():
        share = j["sql_median_s"] / j["median_s"] if j["median_s"] else math.nan
        print(
            f"| {name.replace(':', ', ')} | {j['period']} | "
            f"{j['window_tickets']:,} ({j['window_periods']}) | **{j['median_s']:.2f}** | "
            f"{j['max_s']:.2f} | {share:.0%} | {j['median_s'] / count:.1f}× | {largest(j['parts'])} |"
        )
    print(f"\nEvery ISO week {y['first_week']} … {y['last_week']}, one run each:\n")
    print("| job | weeks computed | refused (no baseline) | total s | mean s | max s | SQL share |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind, w in y["weekly"].items():
        share = w["sql_s"] / w["total_s"] if w["total_s"] else math.nan
        print(
            f"| {kind} | {w['computed']} | {len(w['refused'])} | **{w['total_s']:.1f}** | "
            f"{w['mean_s']:.2f} | {w['max_s']:.2f} | {share:.0%} |"
        )


# --- main ------------------------------------------------------------------------------------------------


def volumes(value: str) -> list[int]:
    try:
        out = [int(v.replace("_", "")) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: comma-separated counts") from None
    if not out or any(not 1_000 <= v <= synthetic.MAX_COUNT for v in out):
        raise argparse.ArgumentTypeError(f"counts from 1,000 to {synthetic.MAX_COUNT:,}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    pid = os.getpid()
    parser.add_argument(
        "--database-url",
        default=f"{PG_SERVER}/bench_hotline_{pid}",
        help="the node of parts 1 and 2: a PostgreSQL database named bench_* (created, dropped), or 'sqlite'",
    )
    parser.add_argument(
        "--year-database-url",
        default=None,
        help="part 3: a PostgreSQL database named bench_* (suffixed with each volume; created, dropped), "
        "or 'sqlite'; default: --database-url's server, bench_hotline_year_<pid>",
    )
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (one operator each)")
    parser.add_argument("--requests", type=int, default=2000, help="measured Open311 POSTs (and healthz)")
    parser.add_argument(
        "--page-requests", type=int, default=1000, help="measured desk requests (and healthz)"
    )
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured requests of each scenario first")
    parser.add_argument("--max-seconds", type=float, default=900, help="a scenario stops sending after this")
    parser.add_argument("--tickets", type=int, default=100_000, help="synthetic tickets on the node (a year)")
    parser.add_argument(
        "--tickets-per-year",
        type=volumes,
        default=[1_000_000],
        help="volumes of part 3, comma-separated (default 1,000,000)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each analysis job and of count(*)")
    parser.add_argument("--weeks", type=int, default=52, help="weekly runs of each job over the year")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--ready-tries", type=int, default=600, help="/readyz polls, 0.2 s apart")
    parser.add_argument("--skip-intake", action="store_true", help="leave out part 1 (Open311 intake)")
    parser.add_argument("--skip-desk", action="store_true", help="leave out part 2 (the operator desk)")
    parser.add_argument("--skip-hotspots", action="store_true", help="leave out part 3 (the analysis jobs)")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="where to write the results (default bench/results/hotline-<UTC time>.json)",
    )
    args = parser.parse_args(argv)
    if args.clients < 1 or min(args.requests, args.page_requests) < args.clients or args.warmup < 0:
        parser.error("--clients ≥ 1, --requests and --page-requests ≥ --clients, --warmup ≥ 0")
    if args.repeat < 1 or not 1 <= args.weeks <= 60:
        parser.error("--repeat ≥ 1, --weeks from 1 to 60")
    year_arg = args.year_database_url
    if year_arg is None:
        year_arg = (
            "sqlite"
            if args.database_url == "sqlite"
            else make_url(args.database_url)
            .set(database=f"bench_hotline_year_{pid}")
            .render_as_string(hide_password=False)
        )
    now = dt.datetime.now(dt.UTC)
    target = args.json or Path("bench/results") / f"hotline-{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    pg = next((u for u in (args.database_url, year_arg) if u != "sqlite"), None)
    server = make_url(pg).set(drivername="postgresql").render_as_string(hide_password=False) if pg else None
    host = machine(server.rsplit("/", 1)[0] if server else None)
    report: dict[str, Any] = {
        "started": now.isoformat(),
        "argv": sys.argv[1:] if argv is None else argv,
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": host.__dict__,
    }
    print("# The 12345 hotline under load\n")
    print(host.markdown())
    failed = 0
    with tempfile.TemporaryDirectory(prefix="tongban-hotline-bench-") as tmp:
        data_dir = Path(tmp)
        if not (args.skip_intake and args.skip_desk):
            with bench_database(args.database_url, data_dir, "tongban.sqlite3") as url:
                failed += run_http(args, url, data_dir, report)
        if not args.skip_hotspots:
            report["year"] = []
            for volume in args.tickets_per_year:
                with bench_database(year_url(year_arg, volume), data_dir, f"year_{volume}.sqlite3") as url:
                    y = measure_year(url, volume, repeat=args.repeat, seed=args.seed, weeks=args.weeks)
                report["year"].append(y)
                print_year(y)
                write_json(target, report)
    report["finished"] = dt.datetime.now(dt.UTC).isoformat()
    write_json(target, report)
    print(f"\nResults: `{target}`.")
    if failed:
        print(f"\n{failed} request(s) failed or tickets missing", file=sys.stderr)
        return 1
    return 0


def write_json(target: Path, report: dict[str, Any]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")


def run_http(args: argparse.Namespace, url: str, data_dir: Path, report: dict[str, Any]) -> int:
    """Parts 1 and 2 on one node and one server; the count of failures."""
    backend = "sqlite" if url.startswith("sqlite") else "postgresql"
    settings = Settings(data_dir=data_dir, database_url=url)
    engine = make_engine(url)
    failed = 0
    try:
        migrate.upgrade(engine)
        node = prepare_node(settings, engine, tickets=args.tickets, operators=args.clients, seed=args.seed)
        report["node"] = {
            "backend": backend,
            "demo_s": round(node.demo_s, 1),
            "generate_s": round(node.generate_s, 1),
            "tickets": node.tickets,
        }
        print(
            f"\nNode ({backend}): `load_demo` {node.demo_s:.0f} s, {args.tickets:,} synthetic tickets over "
            f"the past year {node.generate_s:.0f} s; {node.tickets:,} tickets in all. `tongban serve`, "
            "one worker."
        )
        port = free_port()
        env = platform_env(
            data_dir,
            "" if backend == "sqlite" else url,
            TONGBAN_HOST="127.0.0.1",
            TONGBAN_PORT=str(port),
            TONGBAN_LOG_LEVEL="WARNING",
        )
        base_url = f"http://127.0.0.1:{port}"
        log_path = data_dir / "server.log"
        with log_path.open("wb") as out, running_server(env, data_dir, out) as proc:
            try:
                started = time.perf_counter()
                wait_ready(base_url, proc, args.ready_tries)
                log(f"server ready in {time.perf_counter() - started:.0f} s")
                if not args.skip_intake:
                    failed += part_intake(args, base_url, proc.pid, engine, node, report)
                if not args.skip_desk:
                    failed += part_desk(args, base_url, proc.pid, engine, node, report)
            except Exception:
                out.flush()
                print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
                raise
    finally:
        engine.dispose()
    return failed


def part_intake(
    args: argparse.Namespace, base_url: str, pid: int, engine: Engine, node: Node, report: dict[str, Any]
) -> int:
    load0 = load()
    result, base, services = asyncio.run(
        measure_open311(
            base_url,
            pid,
            node.key,
            clients_n=args.clients,
            requests=args.requests,
            warmup=args.warmup,
            max_seconds=args.max_seconds,
        )
    )
    sent = args.warmup + len(result.latencies)
    expected = sent - result.errors.total()
    stored = scalar(engine, "SELECT count(*) FROM hotline_ticket WHERE api_key_id = :k", k=node.key_id)
    note = (
        f"{services} services. Tickets stored with the bench's key: **{stored}** of {expected} expected "
        f"({sent} POSTs incl. {args.warmup} warm-up, {result.errors.total()} failed). Load average "
        f"{load0} before, {load()} after."
    )
    print_http(f"Open311 intake, {args.clients} clients", result, base, note)
    report["open311"] = {
        "services": services,
        "stored": stored,
        "expected": expected,
        "load_before": load0,
        "load_after": load(),
        "healthz": base.summary(),
        "post": result.summary(base),
    }
    return result.errors.total() + base.errors.total() + int(stored != expected)


def part_desk(
    args: argparse.Namespace, base_url: str, pid: int, engine: Engine, node: Node, report: dict[str, Any]
) -> int:
    refs, mix = open_refs(engine, args.seed)
    log(f"{len(refs)} open tickets: {dict(mix.most_common())}")
    load0 = load()
    result, base, again, base_again, login_s, distinct = asyncio.run(
        measure_desk(
            base_url,
            pid,
            node.operators,
            refs,
            requests=args.page_requests,
            warmup=args.warmup,
            max_seconds=args.max_seconds,
        )
    )
    open_mix = ", ".join(f"{k} {v}" for k, v in mix.most_common())
    note = (
        f"{len(refs)} open tickets to choose from ({open_mix}); the ticket pages showed "
        f"{distinct} distinct tickets (each first view stores the suggestion). {args.clients} operators "
        f"signed in through the form in {login_s:.1f} s. Load average {load0} before, {load()} after."
    )
    print_http(f"Operator desk, {args.clients} clients, {node.tickets:,} tickets", result, base, note)
    print_http(
        f"Operator desk again, {args.clients} clients: the {distinct} tickets seen before",
        again,
        base_again,
        "The same mix, each ticket page one of the tickets the first run showed.",
    )
    report["desk"] = {
        "open_tickets": len(refs),
        "open_by_channel_status": dict(mix),
        "login_s": login_s,
        "distinct_tickets_viewed": distinct,
        "load_before": load0,
        "load_after": load(),
        "healthz": base.summary(),
        "mix": result.summary(base),
        "healthz_again": base_again.summary(),
        "mix_again": again.summary(base_again),
    }
    return result.errors.total() + base.errors.total() + again.errors.total() + base_again.errors.total()


if __name__ == "__main__":
    sys.exit(main())
