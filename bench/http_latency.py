"""HTTP latency and throughput of the public catalogue under 50 concurrent keep-alive clients.

For each backend: a fresh database loaded with the demo data (``tongban demo --no-serve`` in a temporary
``TONGBAN_DATA_DIR``; for PostgreSQL also ``TONGBAN_DATABASE_URL`` → a new ``bench_http_<pid>`` database,
dropped afterwards), then ``tongban serve`` (one uvicorn worker) as a subprocess on a free loopback port.
Once ``/readyz`` answers, every scenario is warmed up and then driven by ``--clients`` asyncio workers,
each with its own ``httpx.AsyncClient`` holding one keep-alive connection, for exactly ``--requests``
requests:

* ``healthz``   — ``GET /healthz``: no database, no template. The in-run baseline: half of its requests
                  run before the catalogue scenarios and half after, pooled into one row.
* ``item_page`` — ``GET /catalog/items/{code}``: the HTML page of a random published item.
* ``list_api``  — ``GET /api/v1/catalog/items?page=N&page_size=20``: a random page 1..90, one request in
                  three also filtered by a theme or an audience (then N is drawn within that filter's pages).

Every latency is recorded (client side: send → whole body read); any non-200 answer or transport error
counts as an error and makes the script exit 1. The server is stopped (terminate, wait) afterwards.

    .venv/bin/python bench/http_latency.py [--backends sqlite,postgresql] [--requests 2000] [--clients 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlencode

import httpx
from _common import (
    DEFAULT_PG_SERVER,
    fresh_database,
    machine,
    parse_backends,
    percentile,
    platform_env,
    run_cli,
    tongban_executable,
)

LIST_PAGES = 90
PAGE_SIZE = 20
FILTER_SHARE = 1 / 3


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds spent during a scenario: by the server process, by this load generator, and by the
    whole machine (busy time of all cores, out of ``capacity`` = wall time × cores)."""

    server: float
    loadgen: float
    machine_busy: float
    capacity: float

    def __add__(self, other: CpuUse) -> CpuUse:
        return CpuUse(
            self.server + other.server,
            self.loadgen + other.loadgen,
            self.machine_busy + other.machine_busy,
            self.capacity + other.capacity,
        )


CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK  # utime, stime (fields 14 and 15)


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of all cores since boot, from ``/proc/stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / CLOCK_TICK, sum(values) / CLOCK_TICK


@dataclass
class ScenarioResult:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    cpu: CpuUse = field(default_factory=lambda: CpuUse(0.0, 0.0, 0.0, 0.0))

    def merge(self, other: ScenarioResult) -> None:
        self.latencies.extend(other.latencies)
        self.errors.update(other.errors)
        self.wall_s += other.wall_s
        self.cpu = self.cpu + other.cpu

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def pct_ms(self, pct: float) -> float:
        return percentile(sorted(self.latencies), pct) * 1000

    @property
    def throughput(self) -> float:
        return self.count / self.wall_s if self.wall_s else math.nan


# --- the server ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(env: dict[str, str], cwd: Path, log: IO[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    # PYTHONFAULTHANDLER: should the server die of a fatal signal, its log says where.
    proc = subprocess.Popen(
        [tongban_executable(), "serve"],
        env={**env, "PYTHONFAULTHANDLER": "1"},
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: no stray group signal reaches it
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def wait_ready(base_url: str, proc: subprocess.Popen[bytes], *, tries: int, interval: float) -> int:
    """Poll ``/readyz`` at most ``tries`` times; return how many it took."""
    with httpx.Client(base_url=base_url, timeout=2.0) as client:
        for attempt in range(1, tries + 1):
            if proc.poll() is not None:
                raise RuntimeError(f"`tongban serve` exited with {proc.returncode} before it was ready")
            with contextlib.suppress(httpx.TransportError):
                if client.get("/readyz").status_code == 200:
                    return attempt
            time.sleep(interval)
    raise RuntimeError(f"/readyz did not answer 200 after {tries} tries")


# --- the workload --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Catalogue:
    codes: list[str]
    themes: list[tuple[str, int]]
    audiences: list[tuple[str, int]]


def discover(base_url: str) -> Catalogue:
    """Published item codes (through the list API) and the theme/audience facets."""
    codes: list[str] = []
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        page = 1
        while True:
            resp = client.get("/api/v1/catalog/items", params={"page": page, "page_size": 100})
            resp.raise_for_status()
            body = resp.json()
            codes.extend(item["code"] for item in body["items"])
            if not body["items"] or len(codes) >= body["total"]:
                break
            page += 1
        facets = client.get("/api/v1/catalog/facets")
        facets.raise_for_status()
        f = facets.json()
    if not codes:
        raise RuntimeError("the demo catalogue has no published items")
    return Catalogue(
        codes=codes,
        themes=[(str(v), int(n)) for v, n in f["themes"]],
        audiences=[(str(v), int(n)) for v, n in f["audiences"]],
    )


def scenario_urls(name: str, n: int, cat: Catalogue, rng: random.Random) -> list[str]:
    if name == "healthz":
        return ["/healthz"] * n
    if name == "item_page":
        return [f"/catalog/items/{quote(rng.choice(cat.codes), safe='')}" for _ in range(n)]
    if name == "list_api":
        urls = []
        for _ in range(n):
            params: dict[str, Any] = {"page_size": PAGE_SIZE}
            filters = [("theme", t) for t in cat.themes] + [("audience", a) for a in cat.audiences]
            if filters and rng.random() < FILTER_SHARE:
                kind, (value, count) = rng.choice(filters)
                params[kind] = value
                params["page"] = rng.randint(1, max(1, min(LIST_PAGES, math.ceil(count / PAGE_SIZE))))
            else:
                params["page"] = rng.randint(1, LIST_PAGES)
            urls.append("/api/v1/catalog/items?" + urlencode(params))
        return urls
    raise ValueError(name)


async def drive(
    name: str, clients: Sequence[httpx.AsyncClient], urls: Sequence[str], server_pid: int
) -> ScenarioResult:
    """Send every URL once, ``len(clients)`` at a time; each worker owns one client (one connection)."""
    result = ScenarioResult(name)
    todo = iter(urls)  # shared by the workers; safe, they all run on this one event loop

    async def worker(client: httpx.AsyncClient) -> None:
        for url in todo:
            started = time.perf_counter()
            try:
                resp = await client.get(url)
                status = resp.status_code
                error = None if status == 200 else str(status)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:120]
            result.latencies.append(time.perf_counter() - started)
            if error is not None:
                result.errors[error] += 1

    server0, loadgen0, (busy0, total0) = process_cpu(server_pid), time.process_time(), machine_cpu()
    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in clients))
    result.wall_s = time.perf_counter() - started
    busy1, total1 = machine_cpu()
    result.cpu = CpuUse(
        server=process_cpu(server_pid) - server0,
        loadgen=time.process_time() - loadgen0,
        machine_busy=busy1 - busy0,
        capacity=total1 - total0,
    )
    return result


async def run_scenarios(
    base_url: str, server_pid: int, cat: Catalogue, *, n: int, n_clients: int, warmup: int, seed: int
) -> dict[str, ScenarioResult]:
    rng = random.Random(seed)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [
        httpx.AsyncClient(base_url=base_url, limits=limits, timeout=httpx.Timeout(60.0))
        for _ in range(n_clients)
    ]
    results: dict[str, ScenarioResult] = {}
    try:
        # Warm up every code path (and open every connection) before anything is measured.
        for name in ("healthz", "item_page", "list_api"):
            warm = await drive(name, clients, scenario_urls(name, warmup, cat, rng), server_pid)
            if warm.error_count:
                raise RuntimeError(f"warm-up of {name} failed: {dict(warm.errors)}")
        # The baseline brackets the catalogue scenarios: half before, half after.
        healthz = await drive("healthz", clients, scenario_urls("healthz", n // 2, cat, rng), server_pid)
        for name in ("item_page", "list_api"):
            results[name] = await drive(name, clients, scenario_urls(name, n, cat, rng), server_pid)
            print(f"    {name}: {results[name].throughput:.0f} req/s", file=sys.stderr, flush=True)
        second = scenario_urls("healthz", n - n // 2, cat, rng)
        healthz.merge(await drive("healthz", clients, second, server_pid))
        print(f"    healthz: {healthz.throughput:.0f} req/s", file=sys.stderr, flush=True)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return {"healthz": healthz, **results}


def bench_backend(backend: str, args: argparse.Namespace) -> dict[str, ScenarioResult]:
    with fresh_database(backend, args.pg_server, f"bench_http_{os.getpid()}") as (data_dir, database_url):
        port = free_port()
        env = platform_env(
            data_dir,
            database_url,
            TONGBAN_HOST="127.0.0.1",
            TONGBAN_PORT=str(port),
            TONGBAN_LOG_LEVEL=args.log_level,
        )
        started = time.perf_counter()
        run_cli(["demo", "--no-serve"], env, cwd=data_dir)
        print(f"  {backend}: demo data loaded in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        base_url = f"http://127.0.0.1:{port}"
        log_path = data_dir / "server.log"
        with log_path.open("wb") as log, running_server(env, data_dir, log) as proc:
            try:
                tries = wait_ready(base_url, proc, tries=args.ready_tries, interval=0.2)
                print(f"  {backend}: ready after {tries} poll(s) on {base_url}", file=sys.stderr, flush=True)
                cat = discover(base_url)
                print(
                    f"  {backend}: {len(cat.codes)} published items, {len(cat.themes)} themes, "
                    f"{len(cat.audiences)} audiences",
                    file=sys.stderr,
                    flush=True,
                )
                results = asyncio.run(
                    run_scenarios(
                        base_url,
                        proc.pid,
                        cat,
                        n=args.requests,
                        n_clients=args.clients,
                        warmup=args.warmup,
                        seed=args.seed,
                    )
                )
            except Exception:
                _report_server(proc, log, log_path)
                raise
            if proc.poll() is not None or any(r.error_count for r in results.values()):
                _report_server(proc, log, log_path)
            return results


def _report_server(proc: subprocess.Popen[bytes], log: IO[bytes], log_path: Path) -> None:
    log.flush()
    tail = log_path.read_text(errors="replace")[-3000:]
    state = "still running" if proc.poll() is None else f"exited with {proc.returncode}"
    print(f"--- server process {proc.pid}: {state}; log (tail) ---\n{tail}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated (default: both)")
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per scenario")
    parser.add_argument("--clients", type=int, default=50, help="concurrent keep-alive clients")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured requests per scenario first")
    parser.add_argument("--ready-tries", type=int, default=150, help="/readyz polls, 0.2 s apart")
    parser.add_argument("--seed", type=int, default=20261128, help="random seed of the request mix")
    parser.add_argument(
        "--log-level", default="WARNING", help="TONGBAN_LOG_LEVEL of the server (INFO logs every request)"
    )
    parser.add_argument("--pg-server", default=DEFAULT_PG_SERVER, help="postgresql://user@host:port")
    args = parser.parse_args(argv)
    backends = parse_backends(args.backends)
    if args.requests < 2 or args.clients < 1 or args.warmup < 0:
        parser.error("--requests must be at least 2, --clients at least 1, --warmup not negative")

    host = machine(args.pg_server if "postgresql" in backends else None)
    print(
        f"# HTTP latency — {args.clients} concurrent keep-alive clients, {args.requests} requests per "
        f"scenario, one uvicorn worker, server log level {args.log_level}\n",
        flush=True,
    )
    print(host.markdown() + "\n", flush=True)

    all_results = {backend: bench_backend(backend, args) for backend in backends}

    print(
        "| backend | scenario | requests | errors | p50 ms | p95 ms | p99 ms | max ms | req/s "
        "| p95 ÷ healthz p95 |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    errors = 0
    for backend, results in all_results.items():
        base_p95 = results["healthz"].pct_ms(95)
        for name in ("healthz", "item_page", "list_api"):
            r = results[name]
            errors += r.error_count
            detail = f" {dict(r.errors)}" if r.errors else ""
            print(
                f"| {backend} | {name} | {r.count} | {r.error_count}{detail} | {r.pct_ms(50):.1f} "
                f"| {r.pct_ms(95):.1f} | {r.pct_ms(99):.1f} | {r.pct_ms(100):.1f} | {r.throughput:.0f} "
                f"| **{r.pct_ms(95) / base_p95:.1f}×** |"
            )
    print(
        "\nWhere the CPU went (CPU ms per request; machine busy = all cores, all processes, "
        "PostgreSQL and anything else on the machine included):\n"
    )
    print("| backend | scenario | server CPU ms/req | load generator CPU ms/req | machine busy % of cores |")
    print("|---|---|---:|---:|---:|")
    for backend, results in all_results.items():
        for name in ("healthz", "item_page", "list_api"):
            r = results[name]
            busy = 100 * r.cpu.machine_busy / r.cpu.capacity if r.cpu.capacity else math.nan
            print(
                f"| {backend} | {name} | {1000 * r.cpu.server / r.count:.2f} "
                f"| {1000 * r.cpu.loadgen / r.count:.2f} | {busy:.0f} |"
            )
    if errors:
        print(f"\n{errors} request(s) failed; see the errors column", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
