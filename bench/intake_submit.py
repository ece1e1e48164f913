"""Submissions of unified intake under 50 concurrent clients, and the share of exempted materials on the demo
catalogue.

1. A fresh database (``--database-url``: a PostgreSQL database whose name starts with ``bench_``, created
   now and dropped at the end; or ``sqlite`` for a file in the temporary data directory), migrated.
2. Prepared through the services, in-process: an item with four materials (an ID card the e-licence
   library supplies, a household register from shared data, a lease to upload, a pledge not needed), its
   published form, and one citizen per client with the ID-card licence and the household record on file,
   consent to prefill and exemption, and a session token.
3. The real server, ``tongban serve`` (one uvicorn worker: what the CLI runs in production), or with
   ``--workers N`` > 1 ``uvicorn --workers N --factory tongban.web.app:create_app``, as a subprocess on a
   free loopback port; default settings otherwise (log level WARNING, as the HTTP bench).
4. Every submission's lease is uploaded first (``POST /api/v1/intake/uploads``; not part of the measure, its
   rate is reported on the side).
5. Warm-up (``--warmup`` submissions and as many healthz requests, not measured), then ``--clients``
   asyncio workers, each a citizen with one keep-alive connection, send ``--requests`` submissions in all
   (``POST /api/v1/intake/applications`` with an ``Idempotency-Key`` and the uploaded lease). The baseline,
   ``GET /healthz`` by the same clients, runs half before and half after, pooled: the ratio to it is what
   compares across runs on a noisy machine.
6. Checked: every answer 201, as many applications in the database as submissions sent.
7. Exemption on the demo catalogue (``tongban/demo/guangdong_guides.jsonl.gz``, imported as ``tongban demo``
   does): a demo citizen gets every e-licence and shared-data record the catalogue's materials name (with
   consent to exemption); ``intake.service.material_status`` and ``exempted_share`` per published item.

    .venv/bin/python bench/intake_submit.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_intake --clients 50 --requests 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
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
from sqlalchemy import Engine, make_url, text
from stdnum.cn import ric

from tongban.catalog import service as catalog
from tongban.catalog.importer import import_file
from tongban.catalog.schemas import ItemContent
from tongban.core import auth, migrate
from tongban.core.clock import SystemClock
from tongban.core.config import Settings
from tongban.core.crypto import Sealer
from tongban.core.db import make_engine, make_sessionmaker, session_scope
from tongban.core.models import Account
from tongban.demo import amend_demo
from tongban.intake import service as intake
from tongban.intake.vocab import DATA_KEYS, DataSource, ProfileKind, Purpose

CODE = "11110000BENCH0001"
SUBMIT = "/api/v1/intake/applications"
PASSWORD = "bench password, not a secret"  # noqa: S105
MATERIALS: list[dict[str, Any]] = [
    {"name": "居民身份证", "source": "e_licence", "source_ref": "居民身份证"},
    {"name": "户口簿", "source": "shared_data", "source_ref": "户籍信息"},
    {"name": "房屋租赁合同", "source": "applicant"},
    {"name": "告知承诺书", "source": "exempt"},
]
DEFINITION: dict[str, Any] = {
    "fields": [
        {"key": "name", "label": "姓名", "label_en": "Name", "type": "text", "required": True,
         "profile_key": "person.name"},
        {"key": "id_number", "label": "公民身份号码", "label_en": "ID number", "type": "id_number",
         "required": True, "profile_key": "person.id_number"},
        {"key": "mobile", "label": "手机号码", "label_en": "Mobile", "type": "mobile", "required": True,
         "profile_key": "person.mobile"},
        {"key": "monthly_rent", "label": "月租金", "label_en": "Monthly rent", "type": "money",
         "required": True, "min": 1},
        {"key": "months", "label": "租期（月）", "label_en": "Months", "type": "integer", "required": True,
         "min": 1, "max": 120},
        {"key": "total_rent", "label": "租金总额", "label_en": "Total rent", "type": "money",
         "computed": {"*": [{"var": "monthly_rent"}, {"var": "months"}]}},
        {"key": "id_card", "label": "身份证扫描件", "label_en": "ID card scan", "type": "file",
         "required": True, "material": "居民身份证", "accept": ["application/pdf", "image/jpeg"]},
        {"key": "household", "label": "户口簿扫描件", "label_en": "Household register scan", "type": "file",
         "required": True, "material": "户口簿", "accept": ["application/pdf"]},
        {"key": "lease", "label": "房屋租赁合同", "label_en": "Lease", "type": "file", "required": True,
         "material": "房屋租赁合同", "accept": ["application/pdf"], "max_bytes": 5_000_000},
    ]
}  # fmt: skip


# --- data ------------------------------------------------------------------------------------------------


def pdf(line: str) -> bytes:
    """A one-page PDF showing ``line`` (ASCII), with a correct cross-reference table."""
    stream = b"BT /F1 14 Tf 72 720 Td (" + line.encode("ascii") + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def id_number(n: int) -> str:
    body = f"440106198805{1 + n // 900 % 28:02d}{100 + n % 900:03d}"
    return body + ric.calc_check_digit(body + "0")


@dataclass(frozen=True)
class Citizen:
    username: str
    token: str
    id_number: str


def principal_of(account: Account) -> auth.Principal:
    return auth.Principal(
        account_id=account.id,
        username=account.username,
        display_name=account.display_name,
        roles=tuple(account.roles),
        permissions=auth.permissions_for(account.roles),
    )


def prepare(engine: Engine, sealer: Sealer, citizens: int) -> list[Citizen]:
    clock = SystemClock()
    today = clock.now().date()
    content = ItemContent.model_validate(
        {
            "code": CODE,
            "name": "租房提取住房公积金",
            "item_type": "public_service",
            "department": "广州住房公积金管理中心",
            "region": "广州市",
            "level": "municipal",
            "audiences": ["natural_person"],
            "materials": MATERIALS,
            "statutory_limit": {"value": 20, "unit": "working_day"},
            "promised_limit": {"value": 3, "unit": "working_day"},
            "channels": ["online"],
        }
    )
    out = []
    with session_scope(make_sessionmaker(engine)) as session:
        catalog.import_item(session, content, actor="bench", clock=clock, source="bench")

        def account(username: str, roles: list[str]) -> Account:
            return auth.create_account(
                session, username=username, password=PASSWORD, roles=roles, display_name=username, clock=clock
            )

        editor = principal_of(account("bench.editor", ["intake_form_editor"]))
        publisher = principal_of(account("bench.publisher", ["intake_form_publisher"]))
        officer = principal_of(account("bench.officer", ["intake_officer"]))
        form = intake.save_form(session, editor, CODE, DEFINITION, clock=clock)
        intake.publish_form(session, publisher, CODE, form.version, clock=clock)
        for n in range(citizens):
            row = account(f"bench.citizen{n:03d}", [])
            citizen = principal_of(row)
            number = id_number(n)
            profile = intake.my_profile(session, citizen, ProfileKind.PERSON, clock=clock)
            intake.set_own_data(
                session,
                citizen,
                profile,
                {"person.name": "陈晓明", "person.mobile": "13800138000"},
                sealer=sealer,
                clock=clock,
            )
            intake.record_data(
                session,
                officer,
                profile,
                {"person.id_number": number, "person.household_address": "广州市越秀区"},
                source=DataSource.SHARED_DATA,
                source_ref="户籍信息",
                reason="户籍信息共享",
                sealer=sealer,
                clock=clock,
            )
            intake.record_licence(
                session,
                officer,
                profile,
                licence_type="居民身份证",
                number=number,
                issuer="广州市公安局越秀区分局",
                issued_on=today.replace(year=2016),
                valid_until=today.replace(year=2036),
                status="valid",
                data={},
                sealer=sealer,
                clock=clock,
            )
            for purpose in (Purpose.PREFILL, Purpose.EXEMPT):
                intake.grant_consent(session, citizen, profile, purpose, days=None, clock=clock)
            token, _ = auth.start_session(session, row, clock=clock, hours=12)
            out.append(Citizen(row.username, token, number))
    return out


# --- the database and the server -------------------------------------------------------------------------


@contextmanager
def bench_database(url_arg: str, data_dir: Path) -> Iterator[str]:
    """The SQLAlchemy URL to use: SQLite in the data dir, or the named ``bench_*`` PostgreSQL database
    created now (dropped first if it exists) and dropped afterwards, whatever happens."""
    if url_arg == "sqlite":
        yield f"sqlite:///{data_dir / 'tongban.sqlite3'}"
        return
    url = make_url(Settings(database_url=url_arg).database_url)
    name = url.database or ""
    if not name.startswith("bench_"):
        raise SystemExit(
            "--database-url: the database name must start with bench_ (it is dropped afterwards)"
        )
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


@contextlib.contextmanager
def running_server(
    env: dict[str, str], cwd: Path, log: IO[bytes], workers: int
) -> Iterator[subprocess.Popen[bytes]]:
    if workers == 1:
        command = [tongban_executable(), "serve"]
    else:
        command = [
            sys.executable, "-m", "uvicorn", "tongban.web.app:create_app", "--factory",
            "--host", env["TONGBAN_HOST"], "--port", env["TONGBAN_PORT"], "--workers", str(workers),
            "--proxy-headers", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    with server_process(command, env, cwd, log) as proc:
        yield proc


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its children (uvicorn's workers), from ``/proc``."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, tail = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        fields = tail.split()
        proc_pid, ppid = int(head.split("(", 1)[0]), int(fields[1])
        if pid in (proc_pid, ppid):
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICK
    return total


# --- the load --------------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    server_cpu: float = 0.0
    loadgen_cpu: float = 0.0
    busy: float = 0.0
    capacity: float = 0.0
    #: Answers of the calls that carry a ``tag``, by tag.
    bodies: dict[int, Any] = field(default_factory=dict)

    def merge(self, other: Result) -> None:
        self.latencies += other.latencies
        self.errors.update(other.errors)
        self.wall_s += other.wall_s
        self.server_cpu += other.server_cpu
        self.loadgen_cpu += other.loadgen_cpu
        self.busy += other.busy
        self.capacity += other.capacity

    def ms(self, pct: float) -> float:
        return percentile(sorted(self.latencies), pct) * 1000

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall_s if self.wall_s else math.nan


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    files: Any = None
    expect: int = 200
    tag: int | None = None


async def drive(
    name: str, clients: Sequence[httpx.AsyncClient], work: Sequence[list[Call]], pid: int
) -> Result:
    """Client ``i`` sends the calls of ``work[i]`` one after the other; all clients at once."""
    result = Result(name)

    async def worker(client: httpx.AsyncClient, calls: list[Call]) -> None:
        for call in calls:
            started = time.perf_counter()
            try:
                response = await client.request(
                    call.method, call.url, headers=call.headers, json=call.json, files=call.files
                )
                error = None if response.status_code == call.expect else f"{response.status_code}"
                if error and response.headers.get("content-type", "").endswith("json"):
                    error += f" {response.json().get('title', '')}"
                elif call.tag is not None:
                    result.bodies[call.tag] = response.json()
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:120]
            result.latencies.append(time.perf_counter() - started)
            if error is not None:
                result.errors[error] += 1

    server0, loadgen0, (busy0, total0) = tree_cpu(pid), time.process_time(), machine_cpu()
    started = time.perf_counter()
    await asyncio.gather(*(worker(c, w) for c, w in zip(clients, work, strict=True)))
    result.wall_s = time.perf_counter() - started
    busy1, total1 = machine_cpu()
    result.server_cpu = tree_cpu(pid) - server0
    result.loadgen_cpu = time.process_time() - loadgen0
    result.busy, result.capacity = busy1 - busy0, total1 - total0
    return result


def split(calls: Sequence[Call], n: int) -> list[list[Call]]:
    return [list(calls[i::n]) for i in range(n)]


def submission(k: int, citizen: Citizen, upload_id: str) -> Call:
    values = {
        "name": "陈晓明",
        "id_number": citizen.id_number,
        "mobile": "13800138000",
        "monthly_rent": f"{2000 + k % 3000}.00",
        "months": 1 + k % 24,
        "lease": [upload_id],
    }
    return Call(
        "POST",
        SUBMIT,
        headers={"Idempotency-Key": f"bench-submit-{k:07d}"},
        json={"item_code": CODE, "values": values},
        expect=201,
    )


async def measure(
    base_url: str, pid: int, citizens: Sequence[Citizen], *, requests: int, warmup: int
) -> tuple[Result, Result, Result]:
    """(uploads, submissions, healthz): every lease uploaded first; then the warm-ups; then healthz, the
    submissions, healthz again. Client ``i`` is citizen ``i`` throughout and sends submissions
    ``i, i + clients, ...``."""
    n = len(citizens)
    # Idle connections are dropped before uvicorn's 5 s keep-alive timeout closes them under the client (a
    # client that finished its share waits for the others, and would otherwise reuse a closed connection).
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=2.0)
    clients = [
        httpx.AsyncClient(
            base_url=base_url,
            limits=limits,
            timeout=httpx.Timeout(120.0),
            headers={"Authorization": f"Bearer {c.token}"},
        )
        for c in citizens
    ]
    try:
        total = warmup + requests
        mine = [range(i, total, n) for i in range(n)]
        files = {
            k: pdf(f"Residential lease {k}. Lessee ID {citizens[k % n].id_number}") for k in range(total)
        }
        uploads = await drive(
            "upload",
            clients,
            [
                [
                    Call("POST", "/api/v1/intake/uploads",
                         files={"file": (f"lease-{k}.pdf", files[k], "application/pdf")}, expect=201, tag=k)
                    for k in ks
                ]
                for ks in mine
            ],
            pid,
        )  # fmt: skip
        if uploads.errors:
            raise RuntimeError(f"uploads failed: {dict(uploads.errors)}")
        ids = {k: str(body["id"]) for k, body in uploads.bodies.items()}
        warm = [[submission(k, citizens[k % n], ids[k]) for k in ks if k < warmup] for ks in mine]
        timed = [[submission(k, citizens[k % n], ids[k]) for k in ks if k >= warmup] for ks in mine]
        healthz = [Call("GET", "/healthz") for _ in range(max(requests, warmup))]
        for name, calls in (("healthz", split(healthz[:warmup], n)), ("submit", warm)):
            done = await drive(f"warm-up {name}", clients, calls, pid)
            if done.errors:
                raise RuntimeError(f"warm-up of {name} failed: {dict(done.errors)}")
        base = await drive("healthz", clients, split(healthz[: requests // 2], n), pid)
        submit = await drive("submit", clients, timed, pid)
        print(f"    submit: {submit.rate:.1f}/s, errors {dict(submit.errors)}", file=sys.stderr, flush=True)
        base.merge(await drive("healthz", clients, split(healthz[requests // 2 : requests], n), pid))
        return uploads, submit, base
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


# --- exemption on the demo catalogue ---------------------------------------------------------------------


@dataclass
class Exemption:
    items: int = 0
    #: Materials by the catalogue's source (applicant, e_licence, shared_data, exempt).
    sources: Counter[str] = field(default_factory=Counter)
    items_with_supplied: int = 0
    refs: Counter[str] = field(default_factory=Counter)
    #: Items with no required material (their share is undefined).
    no_required: int = 0
    shares: list[float] = field(default_factory=list)
    required: int = 0
    exempted: int = 0
    unrecorded_refs: list[str] = field(default_factory=list)
    #: Materials (any source) whose name mentions a document of :data:`LICENCE_WORDS`.
    licence_like: int = 0
    import_s: float = 0.0
    status_s: float = 0.0


#: Documents an e-licence library commonly issues: only to count material names that mention one (a hint of
#: what marking the catalogue could exempt; the platform itself goes by the catalogue's ``source`` alone).
LICENCE_WORDS = (
    "身份证", "营业执照", "户口", "结婚证", "离婚证", "不动产权", "房产证", "驾驶证", "行驶证", "社会保障卡",
    "出生医学证明", "残疾人证", "毕业证", "学位证", "护照", "通行证", "居住证", "许可证",
)  # fmt: skip

#: Person data keys a shared-data record can be kept under (one current value per key and source item).
_SHARED_KEYS = [k.key for k in DATA_KEYS.values() if k.key.startswith("person.") and k.type == "text"]


def demo_exemption(engine: Engine, data_dir: Path, sealer: Sealer) -> Exemption:
    """Import the shipped demo catalogue as ``tongban demo`` does, give one demo citizen every e-licence and
    shared-data record its materials name (with consent), and compute each item's exempted share."""
    report = Exemption()
    clock = SystemClock()
    today = clock.now().date()
    target = data_dir / "demo_guangdong_guides.jsonl"
    source = resources.files("tongban.demo") / "guangdong_guides.jsonl.gz"
    with source.open("rb") as raw, gzip.open(raw) as unpacked, target.open("wb") as fh:
        shutil.copyfileobj(unpacked, fh)
    factory = make_sessionmaker(engine)
    started = time.perf_counter()
    with session_scope(factory) as session:
        imported = import_file(session, target, actor="bench", clock=clock, fmt="guangdong", amend=amend_demo)
    report.import_s = time.perf_counter() - started
    if imported.errors:
        print(f"  demo import: {len(imported.errors)} rows failed", file=sys.stderr)
    with session_scope(factory) as session:
        items = [c for c in catalog.export_items(session) if c.code != CODE]
        licences: set[str] = set()
        shared: set[str] = set()
        for content in items:
            kinds = {m.source.value for m in content.materials}
            report.sources.update(m.source.value for m in content.materials)
            report.licence_like += sum(
                1 for m in content.materials if any(w in m.name for w in LICENCE_WORDS)
            )
            if kinds & {"e_licence", "shared_data"}:
                report.items_with_supplied += 1
            for m in content.materials:
                if m.source.value in ("e_licence", "shared_data") and m.source_ref:
                    report.refs[f"{m.source.value}:{m.source_ref}"] += 1
                    (licences if m.source.value == "e_licence" else shared).add(m.source_ref)
        row = auth.create_account(
            session, username="bench.demo", password=PASSWORD, roles=[], display_name="demo", clock=clock
        )
        citizen = principal_of(row)
        officer = principal_of(
            auth.create_account(
                session,
                username="bench.demo.officer",
                password=PASSWORD,
                roles=["intake_officer"],
                display_name="officer",
                clock=clock,
            )
        )
        profile = intake.my_profile(session, citizen, ProfileKind.PERSON, clock=clock)
        for n, ref in enumerate(sorted(licences)):
            intake.record_licence(
                session,
                officer,
                profile,
                licence_type=ref,
                number=f"DEMO{n:06d}",
                issuer="演示发证机关",
                issued_on=today.replace(year=today.year - 1),
                valid_until=today.replace(year=today.year + 5),
                status="valid",
                data={},
                sealer=sealer,
                clock=clock,
            )
        for key, ref in zip(_SHARED_KEYS, sorted(shared), strict=False):
            intake.record_data(
                session,
                officer,
                profile,
                {key: "演示共享数据"},
                source=DataSource.SHARED_DATA,
                source_ref=ref,
                reason="演示",
                sealer=sealer,
                clock=clock,
            )
        report.unrecorded_refs = sorted(shared)[len(_SHARED_KEYS) :]
        intake.grant_consent(session, citizen, profile, Purpose.EXEMPT, days=None, clock=clock)
        started = time.perf_counter()
        for content in items:
            needs = [
                intake.MaterialNeed(
                    name=m.name, required=m.required, source=m.source.value, source_ref=m.source_ref
                )
                for m in content.materials
            ]
            statuses = intake.material_status(session, profile, needs, clock=clock)
            share = intake.exempted_share(statuses)
            required = [s for s in statuses if s.required]
            report.required += len(required)
            report.exempted += sum(1 for s in required if s.status in ("exempt", "not_needed"))
            if share is None:
                report.no_required += 1
            else:
                report.shares.append(share)
        report.status_s = time.perf_counter() - started
        report.items = len(items)
    return report


def exemption_markdown(r: Exemption) -> str:
    lines = [
        f"Demo catalogue: {r.items} published items, {sum(r.sources.values())} materials "
        f"(import {r.import_s:.1f} s; material status of every item {r.status_s:.1f} s).",
        "",
        "| material source in the catalogue | materials |",
        "|---|---:|",
    ]
    for source in ("applicant", "e_licence", "shared_data", "exempt"):
        lines.append(f"| {source} | {r.sources.get(source, 0)} |")
    lines += [
        "",
        f"Items with at least one material the platform can supply (e-licence or shared data): "
        f"{r.items_with_supplied}; distinct licence types / shared-data items named: {len(r.refs)}"
        + (
            f" (not representable in one profile: {', '.join(r.unrecorded_refs)})"
            if r.unrecorded_refs
            else ""
        )
        + f". For comparison, {r.licence_like} material names mention a document e-licence libraries "
        "commonly issue (身份证, 营业执照, 户口簿, 不动产权证书, 许可证 …; "
        "a word match, not used by the platform).",
        "",
        f"Exempted share per item for a citizen holding every one of them, with consent "
        f"({len(r.shares)} items with required materials; {r.no_required} without any):",
        "",
        "| exempted share | items |",
        "|---|---:|",
    ]
    buckets: list[tuple[str, Callable[[float], bool]]] = [
        ("0", lambda s: s == 0),
        ("(0, 0.25)", lambda s: 0 < s < 0.25),
        ("[0.25, 0.5)", lambda s: 0.25 <= s < 0.5),
        ("[0.5, 0.75)", lambda s: 0.5 <= s < 0.75),
        ("[0.75, 1)", lambda s: 0.75 <= s < 1),
        ("1", lambda s: s == 1),
    ]
    for label, test in buckets:
        lines.append(f"| {label} | {sum(1 for s in r.shares if test(s))} |")
    mean = statistics.fmean(r.shares) if r.shares else math.nan
    median = statistics.median(r.shares) if r.shares else math.nan
    overall = r.exempted / r.required if r.required else math.nan
    lines += [
        "",
        f"Mean per item {mean:.3f}, median {median:.3f}; overall {r.exempted} of {r.required} required "
        f"materials exempted = **{overall:.3f}**.",
    ]
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------------------


def count_applications(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM intake_application")).scalar_one())
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default=f"postgresql+psycopg://postgres@127.0.0.1:5432/bench_intake_{os.getpid()}",
        help="a PostgreSQL database named bench_* (created and dropped), or 'sqlite'",
    )
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients, one citizen each")
    parser.add_argument(
        "--requests", type=int, default=1000, help="measured submissions (and healthz requests)"
    )
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured submissions (and healthz) first")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (1 = `tongban serve`)")
    parser.add_argument("--ready-tries", type=int, default=300, help="/readyz polls, 0.2 s apart")
    parser.add_argument("--skip-exemption", action="store_true", help="do not measure the demo catalogue")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.requests < args.clients or args.warmup < 0 or args.workers < 1:
        parser.error("--clients ≥ 1, --requests ≥ --clients, --warmup ≥ 0, --workers ≥ 1")

    pg = None if args.database_url == "sqlite" else args.database_url.split("://", 1)[1].rsplit("/", 1)[0]
    host = machine(f"postgresql://{pg}" if pg else None)
    with tempfile.TemporaryDirectory(prefix="tongban-intake-bench-") as tmp:
        data_dir = Path(tmp)
        with bench_database(args.database_url, data_dir) as url:
            backend = "sqlite" if url.startswith("sqlite") else "postgresql"
            print(
                f"# Intake submissions — {backend}, {args.clients} clients, {args.requests} submissions "
                f"(+{args.warmup} warm-up), {args.workers} uvicorn worker(s)\n",
                flush=True,
            )
            print(host.markdown() + "\n", flush=True)
            settings = Settings(data_dir=data_dir, database_url=url)
            sealer = settings.sealer()
            engine = make_engine(url)
            try:
                started = time.perf_counter()
                migrate.upgrade(engine)
                citizens = prepare(engine, sealer, args.clients)
                print(f"  prepared in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
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
                with log_path.open("wb") as log, running_server(env, data_dir, log, args.workers) as proc:
                    try:
                        wait_ready(base_url, proc, args.ready_tries)
                        uploads, submit, base = asyncio.run(
                            measure(base_url, proc.pid, citizens, requests=args.requests, warmup=args.warmup)
                        )
                    except Exception:
                        log.flush()
                        print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
                        raise
                stored = count_applications(url)
                expected = args.warmup + args.requests - submit.errors.total()
                exemption = None if args.skip_exemption else demo_exemption(engine, data_dir, sealer)
            finally:
                engine.dispose()

    print("| scenario | requests | errors | p50 ms | p95 ms | p99 ms | max ms | req/s | p95 ÷ healthz p95 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in (base, submit):
        detail = f" {dict(r.errors)}" if r.errors else ""
        print(
            f"| {r.name} | {len(r.latencies)} | {r.errors.total()}{detail} | {r.ms(50):.1f} | {r.ms(95):.1f} "
            f"| {r.ms(99):.1f} | {r.ms(100):.1f} | {r.rate:.1f} | **{r.ms(95) / base.ms(95):.1f}×** |"
        )
    print(
        f"\nThroughput ratio healthz ÷ submit: {base.rate / submit.rate:.1f}×. Uploads beforehand: "
        f"{len(uploads.latencies)} at {uploads.rate:.1f}/s (p95 {uploads.ms(95):.1f} ms). "
        f"Applications stored: {stored} (expected {expected}).\n"
    )
    print("| scenario | server CPU ms/req | load generator CPU ms/req | machine busy % of cores |")
    print("|---|---:|---:|---:|")
    for r in (base, submit, uploads):
        busy = 100 * r.busy / r.capacity if r.capacity else math.nan
        n = len(r.latencies)
        print(f"| {r.name} | {1000 * r.server_cpu / n:.2f} | {1000 * r.loadgen_cpu / n:.2f} | {busy:.0f} |")
    if exemption is not None:
        print("\n" + exemption_markdown(exemption))
    failed = base.errors.total() + submit.errors.total()
    if failed or stored != expected:
        print(f"\n{failed} request(s) failed or applications missing", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
