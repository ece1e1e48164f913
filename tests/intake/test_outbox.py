"""The transactional outbox: messages written with the change they report, sealed, delivered one
transaction each with backoff, given up after the last attempt; and the command that runs a pass."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import Connection, create_engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from tests.fakes.sms_gateway import FakeSmsGateway
from tests.test_cli import cli_env, tongban
from tongban.core import audit
from tongban.core.clock import FixedClock
from tongban.core.config import Settings
from tongban.core.crypto import Sealer, SealError
from tongban.core.db import make_sessionmaker, session_scope
from tongban.core.notify import FileEmailSender, HttpSmsSender
from tongban.intake import notices, outbox
from tongban.intake.models import OutboxMessage

__all__ = ["cli_env"]  # the fixture, used by name

MOBILE = "13800138000"


def _sms(session: Session, sealer: Sealer, clock: FixedClock, text: str = "【通办】已受理") -> OutboxMessage:
    row = outbox.enqueue(
        session,
        channel=outbox.SMS,
        target=MOBILE,
        event="notice.in_progress",
        payload={"text": text},
        application_id=None,
        sealer=sealer,
        clock=clock,
    )
    session.commit()
    return row


def _row(session: Session, message_id: str) -> OutboxMessage:
    session.expire_all()
    found = session.get(OutboxMessage, message_id)
    assert found is not None
    return found


def test_a_message_is_sealed_and_bound_to_its_id(app: FastAPI, session: Session, clock: FixedClock) -> None:
    sealer: Sealer = app.state.runtime.sealer
    sms = _sms(session, sealer, clock, text="您的申请已受理")
    assert sms.id.startswith("msg_")
    assert len(sms.id) == 36
    assert (sms.state, sms.attempts, sms.next_attempt_at) == ("pending", 0, clock.now())
    assert MOBILE not in sms.target
    assert "已受理" not in sms.payload_sealed
    department = outbox.enqueue(
        session,
        channel=outbox.DEPARTMENT,
        target="market",
        event="task.ready",
        payload={"data": {"id_number": "110105199003071234"}},
        application_id=None,
        sealer=sealer,
        clock=clock,
    )
    assert department.target == "market"
    assert "110105" not in department.payload_sealed
    with pytest.raises(SealError):  # a payload copied to another message does not open
        sealer.open(sms.payload_sealed, f"intake_outbox:{department.id}:payload")
    with pytest.raises(ValueError, match="channel"):
        outbox.enqueue(
            session,
            channel="fax",
            target="x",
            event="e",
            payload={},
            application_id=None,
            sealer=sealer,
            clock=clock,
        )


def test_backoff_doubles_from_30_seconds_up_to_an_hour() -> None:
    assert [outbox.backoff(n).total_seconds() for n in range(1, 10)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
        3600,
    ]
    assert outbox.backoff(500) == dt.timedelta(hours=1)


def test_a_failing_gateway_is_retried_with_backoff_then_given_up(
    app: FastAPI, session: Session, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    sealer: Sealer = app.state.runtime.sealer
    message = _sms(session, sealer, clock)
    with FakeSmsGateway(api_key="k") as gateway:
        sender = HttpSmsSender(gateway.url, "k")
        transports = {outbox.SMS: notices.SmsTransport(sender)}

        def run() -> outbox.DeliveryReport:
            return outbox.deliver_due(sessions, transports, sealer=sealer, clock=clock, max_attempts=4)

        gateway.fail_with = 503
        waits = []
        for attempt in (1, 2, 3):
            assert run().retrying == 1
            row = _row(session, message.id)
            assert (row.state, row.attempts) == ("pending", attempt)
            assert row.last_error == "the SMS gateway answered HTTP 503"
            waits.append(row.next_attempt_at - clock.now())
            clock.advance(waits[-1] - dt.timedelta(seconds=1))
            assert run().attempted == 0  # not due yet
            clock.advance(dt.timedelta(seconds=1))
        assert waits == [dt.timedelta(seconds=s) for s in (30, 60, 120)]
        assert run().dead == 1
        row = _row(session, message.id)
        assert (row.state, row.attempts, row.sent_at) == ("dead", 4, None)
        assert MOBILE not in row.last_error
        clock.advance(dt.timedelta(days=1))
        assert run().attempted == 0  # dead messages stay dead
        assert len(gateway.refused) == 4
        assert gateway.messages == []
        sender.close()
    (gave_up,) = audit.list_events(session, target_type="intake_outbox", target_id=message.id)
    assert gave_up.action == "intake.outbox.dead"
    assert gave_up.detail["attempts"] == 4
    assert MOBILE not in str(gave_up.detail)


def test_a_delivered_message_is_sent_once(
    app: FastAPI, session: Session, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    sealer: Sealer = app.state.runtime.sealer
    row = outbox.enqueue(
        session,
        channel=outbox.EMAIL,
        target="li@example.cn",
        event="notice.approved",
        payload={"subject": "【通办】准予许可", "body": "已办结。"},
        application_id=None,
        sealer=sealer,
        clock=clock,
    )
    session.commit()
    transports = {outbox.EMAIL: notices.EmailTransport(FileEmailSender(tmp_path, "noreply@tongban.invalid"))}
    first = outbox.deliver_due(sessions, transports, sealer=sealer, clock=clock)
    assert (first.sent, first.retrying, first.dead) == (1, 0, 0)
    assert [p.name for p in tmp_path.iterdir()] == [f"{row.id}.eml"]
    sent = _row(session, row.id)
    assert (sent.state, sent.attempts, sent.sent_at, sent.last_error) == ("sent", 1, clock.now(), "")
    clock.advance(dt.timedelta(hours=3))
    assert outbox.deliver_due(sessions, transports, sealer=sealer, clock=clock).attempted == 0
    # Channels without a transport in this worker are left for another.
    _sms(session, sealer, clock)
    assert outbox.deliver_due(sessions, transports, sealer=sealer, clock=clock).attempted == 0


class _Broken:
    """A transport whose library fails in an unexpected way, with personal data in its message."""

    def send(self, session: Session, message: outbox.Outgoing) -> None:
        raise RuntimeError(f"cannot send {message.payload['text']} to {message.target}")


def test_an_unexpected_transport_error_is_recorded_without_its_text(
    app: FastAPI, session: Session, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    sealer: Sealer = app.state.runtime.sealer
    message = _sms(session, sealer, clock)
    report = outbox.deliver_due(sessions, {outbox.SMS: _Broken()}, sealer=sealer, clock=clock)
    assert report.retrying == 1
    row = _row(session, message.id)
    assert row.last_error == "unexpected RuntimeError in the sms transport"


def test_workers_on_postgresql_skip_messages_another_worker_holds(
    app: FastAPI, connection: Connection, sessions: sessionmaker[Session], session: Session, clock: FixedClock
) -> None:
    sealer: Sealer = app.state.runtime.sealer
    _sms(session, sealer, clock)
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(connection, "before_cursor_execute", seen)
    try:
        outbox.deliver_due(sessions, {outbox.SMS: _Broken()}, sealer=sealer, clock=clock, limit=1)
    finally:
        event.remove(connection, "before_cursor_execute", seen)
    (claim,) = [
        s
        for s in statements
        if "FROM intake_outbox" in s and s.lstrip().upper().startswith("SELECT") and "ORDER BY" in s.upper()
    ]
    if connection.dialect.name == "postgresql":
        assert "FOR UPDATE SKIP LOCKED" in claim
    else:
        assert "FOR UPDATE" not in claim  # SQLite has one writer at a time


def test_the_loop_runs_passes_until_stopped() -> None:
    passes = threading.Semaphore(0)
    stopped: list[bool] = []
    loop = outbox.Loop(passes.release, 0.01, on_stop=lambda: stopped.append(True))
    loop.start()
    assert passes.acquire(timeout=5)
    assert passes.acquire(timeout=5)
    loop.stop()
    assert stopped == [True]


def test_the_command_delivers_due_messages_to_the_local_files(cli_env: dict[str, str]) -> None:
    assert tongban(cli_env, "db", "upgrade").returncode == 0
    data_dir = Path(cli_env["TONGBAN_DATA_DIR"])
    url = cli_env.get("TONGBAN_DATABASE_URL") or f"sqlite:///{data_dir / 'tongban.sqlite3'}"
    settings = Settings(data_dir=data_dir, database_url=url)
    engine = create_engine(settings.resolved_database_url())
    clock = FixedClock(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            row = outbox.enqueue(
                session,
                channel=outbox.SMS,
                target=MOBILE,
                event="notice.submitted",
                payload={"text": "【通办】已收到申请"},
                application_id=None,
                sealer=settings.sealer(),
                clock=clock,
            )
            message_id = row.id
        done = tongban(cli_env, "intake", "deliver-outbox")
        assert done.returncode == 0, done.stderr
        assert "1 sent, 0 to retry, 0 given up" in done.stdout
        written = data_dir / "outbox" / "sms" / f"{message_id}.json"
        assert written.exists()
        assert "已收到申请" in written.read_text()
        again = tongban(cli_env, "intake", "deliver-outbox")
        assert "0 sent" in again.stdout
        with session_scope(make_sessionmaker(engine)) as session:
            state = session.scalar(select(OutboxMessage.state).where(OutboxMessage.id == message_id))
        assert state == "sent"
    finally:
        engine.dispose()


class _Dies:
    def close(self) -> None:
        pass

    def send(self, session: Session, message: outbox.Outgoing) -> None:
        raise SystemExit("the worker is killed while it sends")


def test_a_worker_dying_while_it_sends_leaves_the_message_leased_not_lost(
    app: FastAPI, sessions: sessionmaker[Session], session: Session, clock: FixedClock
) -> None:
    sealer: Sealer = app.state.runtime.sealer
    message = _sms(session, sealer, clock)
    with pytest.raises(SystemExit):
        outbox.deliver_due(sessions, {outbox.SMS: _Dies()}, sealer=sealer, clock=clock)
    row = _row(session, message.id)
    session.refresh(row)
    assert (row.state, row.attempts) == ("pending", 0)
    assert row.next_attempt_at == clock.now() + outbox.LEASE
    # Nobody else takes it while the lease runs; afterwards the next worker sends it.
    sent: list[str] = []

    class _Records:
        def close(self) -> None:
            pass

        def send(self, session: Session, message: outbox.Outgoing) -> None:
            sent.append(message.id)

    assert outbox.deliver_due(sessions, {outbox.SMS: _Records()}, sealer=sealer, clock=clock).attempted == 0
    clock.advance(outbox.LEASE)
    assert outbox.deliver_due(sessions, {outbox.SMS: _Records()}, sealer=sealer, clock=clock).sent == 1
    assert sent == [message.id]
