"""Support of the crash test: a throw-away database, the real ``tongban serve`` as a child process that can
be SIGKILLed and restarted, data prepared through the services, and a driver for concurrent submissions
that kills the server after a given number of answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
from sqlalchemy import Engine, make_url, text
from sqlalchemy.orm import Session
from stdnum.cn import ric

from tests.factories import item
from tests.intake.helpers import CODE, DEFINITION, MATERIALS
from tests.intake.pdfs import pdf
from tongban.catalog import service as catalog
from tongban.core import auth
from tongban.core.clock import SystemClock
from tongban.core.config import Settings
from tongban.core.crypto import Sealer
from tongban.core.db import make_engine, session_scope
from tongban.core.models import Account
from tongban.intake import service
from tongban.intake.vocab import DataSource, ProfileKind, Purpose

T = TypeVar("T")

PASSWORD = "correct horse battery staple"
SUBMIT = "/api/v1/intake/applications"


# --- the database ----------------------------------------------------------------------------------------


@contextmanager
def fresh_database(tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database of its own: a SQLite file under ``tmp_path``, or, when
    ``TONGBAN_TEST_DATABASE_URL`` names a PostgreSQL server, a new database ``test_crash_<pid>`` on it
    (dropped afterwards) so the session-wide test schema is left alone."""
    configured = os.environ.get("TONGBAN_TEST_DATABASE_URL")
    if not configured:
        yield f"sqlite:///{tmp_path / 'crash.sqlite3'}"
        return
    url = make_url(Settings(database_url=configured).database_url)
    name = f"test_crash_{os.getpid()}"
    admin = make_engine(url.set(database="postgres").render_as_string(hide_password=False))

    def run(sql: str) -> None:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(sql))

    try:
        run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        run(f'CREATE DATABASE "{name}"')
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


# --- the server ------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tongban() -> str:
    return str(Path(sys.executable).parent / "tongban")


@dataclass
class ServerProcess:
    """``tongban serve`` (one uvicorn worker: the child process *is* the server) with its settings in the
    environment, started in its own session; its output goes to ``log_path``."""

    data_dir: Path
    database_url: str
    log_path: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None
    starts: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TONGBAN_")}
        env.update(
            TONGBAN_DATA_DIR=str(self.data_dir),
            TONGBAN_DATABASE_URL=self.database_url,
            TONGBAN_HOST="127.0.0.1",
            TONGBAN_PORT=str(self.port),
            TONGBAN_LOG_LEVEL="WARNING",
            TONGBAN_EMBEDDING="none",  # no search model to load: the test is about intake
            PYTHONFAULTHANDLER="1",
        )
        return env

    def start(self, *, ready_within_s: float = 60.0) -> None:
        """Start the server and wait until ``/readyz`` answers 200."""
        assert self.proc is None, "already running"
        self.port = _free_port()
        self._log = self.log_path.open("ab")
        self.starts += 1
        self._log.write(f"--- start {self.starts} on port {self.port}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            [_tongban(), "serve"],
            env=self.env(),
            cwd=self.data_dir,  # away from any .env of the working tree
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + ready_within_s
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/readyz").status_code == 200:
                        return
                time.sleep(0.1)  # waiting for a process to start, not for time to pass
        raise RuntimeError(f"the server was not ready within {ready_within_s} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the server process itself (no shutdown, no cleanup), and reap it."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        assert self.proc.returncode == -signal.SIGKILL
        self._closed()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._closed()

    def _closed(self) -> None:
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, chars: int = 4000) -> str:
        if self._log is not None:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


# --- data prepared through the services ------------------------------------------------------------------


@dataclass(frozen=True)
class Citizen:
    username: str
    token: str
    id_number: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def id_number(n: int) -> str:
    """A valid mainland ID number, distinct for each ``n`` < 1000 (sequence digits)."""
    body = f"11010519900307{n:03d}"
    return body + ric.calc_check_digit(body + "0")


def _principal(account: Account) -> auth.Principal:
    return auth.Principal(
        account_id=account.id,
        username=account.username,
        display_name=account.display_name,
        roles=tuple(account.roles),
        permissions=auth.permissions_for(account.roles),
    )


def prepare(engine: Engine, sealer: Sealer, citizens: int) -> list[Citizen]:
    """The test item (with materials the platform supplies and one to upload), its published form, an
    officer, and ``citizens`` citizens whose ID card licence and household record are on file, with
    consent to prefill and exemption, each signed in (a bearer token)."""
    from tongban.core.db import make_sessionmaker

    clock = SystemClock()
    out = []
    with session_scope(make_sessionmaker(engine)) as session:
        catalog.import_item(
            session,
            item(code=CODE, name="租房提取住房公积金", audiences=["natural_person"], materials=MATERIALS),
            actor="test",
            clock=clock,
            source="test",
        )

        def account(username: str, roles: list[str]) -> Account:
            return auth.create_account(
                session,
                username=username,
                password=PASSWORD,
                roles=roles,
                display_name=username,
                clock=clock,
            )

        editor = _principal(account("editor.sun", ["intake_form_editor"]))
        publisher = _principal(account("publisher.qian", ["intake_form_publisher"]))
        officer = _principal(account("officer.wang", ["intake_officer"]))
        form = service.save_form(session, editor, CODE, DEFINITION, clock=clock)
        service.publish_form(session, publisher, CODE, form.version, clock=clock)
        for n in range(citizens):
            row = account(f"citizen.{n:03d}", [])
            citizen = _principal(row)
            number = id_number(n)
            profile = service.my_profile(session, citizen, ProfileKind.PERSON, clock=clock)
            service.set_own_data(
                session,
                citizen,
                profile,
                {"person.name": "李明", "person.mobile": "13800138000"},
                sealer=sealer,
                clock=clock,
            )
            service.record_data(
                session,
                officer,
                profile,
                {"person.id_number": number, "person.household_address": "北京市东城区"},
                source=DataSource.SHARED_DATA,
                source_ref="户籍信息",
                reason="户籍信息共享",
                sealer=sealer,
                clock=clock,
            )
            service.record_licence(
                session,
                officer,
                profile,
                licence_type="居民身份证",
                number=number,
                issuer="北京市公安局东城分局",
                issued_on=clock.now().date().replace(year=2015),
                valid_until=clock.now().date().replace(year=2035),
                status="valid",
                data={},
                sealer=sealer,
                clock=clock,
            )
            for purpose in (Purpose.PREFILL, Purpose.EXEMPT):
                service.grant_consent(session, citizen, profile, purpose, days=None, clock=clock)
            token, _ = auth.start_session(session, row, clock=clock, hours=12)
            out.append(Citizen(username=row.username, token=token, id_number=number))
    return out


# --- submissions -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """One prepared request: who sends it, its key and body, and the file it attaches."""

    citizen: Citizen
    key: str
    body: dict[str, Any]
    upload_id: str
    file: bytes


def lease(citizen: Citizen, n: int) -> bytes:
    return pdf(f"Lease contract {n}. Lessee ID {citizen.id_number}")


def _run_loop(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on an event loop of its own thread: the test process may already run one in this
    thread (Playwright's sync API does, for the session's browser)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(main())).result()


def upload_all(base_url: str, files: Sequence[tuple[Citizen, bytes]], *, parallel: int = 8) -> list[str]:
    """Upload each file as its citizen; the upload ids in order."""

    async def run() -> list[str]:
        gate = asyncio.Semaphore(parallel)
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

            async def one(citizen: Citizen, data: bytes, n: int) -> str:
                async with gate:
                    response = await client.post(
                        "/api/v1/intake/uploads",
                        headers=citizen.headers,
                        files={"file": (f"lease-{n}.pdf", data, "application/pdf")},
                    )
                assert response.status_code == 201, response.text
                return str(response.json()["id"])

            return list(await asyncio.gather(*(one(c, d, n) for n, (c, d) in enumerate(files))))

    return _run_loop(run)


@dataclass
class Answer:
    """What a client got for one request: a whole response, or the transport error instead."""

    status: int | None = None
    body: Any = None
    replayed: bool = False
    error: str | None = None


@dataclass
class Round:
    answers: list[Answer]
    #: Requests handed to the client before the kill (all of them when there was no kill).
    sent_before_kill: int = 0
    #: Whole responses read when the kill was triggered (a few more may have been on their way: a response
    #: sent by the server before it died is read afterwards and counts as answered).
    answered_before_kill: int = 0
    killed: bool = False
    errors: dict[str, int] = field(default_factory=dict)


def submit_all(
    base_url: str,
    submissions: Sequence[Submission],
    *,
    kill_after: int | None = None,
    kill: Callable[[], None] | None = None,
) -> Round:
    """POST every submission at once (one connection each). With ``kill_after``: once that many whole
    responses have arrived and every request has been sent, ``kill`` is called (the server dies with the
    rest in flight)."""
    answers = [Answer() for _ in submissions]
    state = Round(answers=answers)
    sent = 0
    answered = 0
    all_sent: asyncio.Event

    async def run() -> None:
        nonlocal sent, answered, all_sent
        all_sent = asyncio.Event()

        async def on_request(_request: httpx.Request) -> None:
            nonlocal sent
            sent += 1
            if sent == len(submissions):
                all_sent.set()

        limits = httpx.Limits(max_connections=len(submissions), max_keepalive_connections=len(submissions))
        async with httpx.AsyncClient(
            base_url=base_url, timeout=120, limits=limits, event_hooks={"request": [on_request]}
        ) as client:

            async def one(i: int, s: Submission) -> None:
                nonlocal answered
                try:
                    response = await client.post(
                        SUBMIT, headers={**s.citizen.headers, "Idempotency-Key": s.key}, json=s.body
                    )
                except httpx.TransportError as exc:
                    answers[i].error = type(exc).__name__
                    return
                answers[i].status = response.status_code
                answers[i].body = response.json()
                answers[i].replayed = response.headers.get("idempotent-replayed") == "true"
                answered += 1
                if kill is not None and kill_after is not None and answered == kill_after:
                    await all_sent.wait()
                    state.sent_before_kill, state.answered_before_kill = sent, answered
                    kill()
                    state.killed = True

            await asyncio.gather(*(one(i, s) for i, s in enumerate(submissions)))

    _run_loop(run)
    if not state.killed:
        state.sent_before_kill, state.answered_before_kill = sent, answered
    for a in answers:
        if a.error:
            state.errors[a.error] = state.errors.get(a.error, 0) + 1
    return state


def count(session: Session, sql: str, **params: Any) -> int:
    return int(session.execute(text(sql), params).scalar_one())
