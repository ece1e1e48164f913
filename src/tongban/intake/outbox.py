"""The transactional outbox: messages to other systems (departments' webhooks, emails, SMS).

A change that must be reported elsewhere writes an :class:`~tongban.intake.models.OutboxMessage` in its
own transaction (:func:`enqueue`), so the message exists if and only if the change was committed. A worker
(:func:`deliver_due`, run by ``tongban intake deliver-outbox`` or the web server's own loop) delivers due
messages one transaction each: it claims a message (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL,
so several workers never take the same one), hands it to the channel's transport, and marks it ``sent``;
a failure counts the attempt, records why (never personal data) and schedules the next attempt with
exponential backoff (30 s, doubling, at most 1 h); after the last attempt the message is ``dead``.

Delivery is at least once: a worker that crashes after sending and before committing sends the message
again. Every message carries its id (``webhook-id``, the email's ``Message-ID``, the SMS gateway's
``Idempotency-Key``) so receivers drop repeats.

Payloads are sealed at rest (they carry personal data), bound to the message id; so is the address of an
email or SMS. A department message's target is the department system's code.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tongban.core import audit
from tongban.core.clock import Clock
from tongban.core.crypto import Sealer, SealError
from tongban.core.db import WRITES, session_scope
from tongban.intake.models import OutboxMessage

log = structlog.get_logger(__name__)

DEPARTMENT, EMAIL, SMS = "department", "email", "sms"
CHANNELS = (DEPARTMENT, EMAIL, SMS)
#: Channels whose target is an address (sealed at rest); a department's target is its code.
_SEALED_TARGETS = frozenset({EMAIL, SMS})
BACKOFF_FIRST = dt.timedelta(seconds=30)
BACKOFF_CAP = dt.timedelta(hours=1)
#: How long a claimed message is left to its worker before another may try it (a worker that died while
#: sending: the message goes out again, and receivers drop the repeat by its id).
LEASE = dt.timedelta(minutes=5)


def new_message_id() -> str:
    """A message id as Standard Webhooks recommends them: ``msg_`` and 32 hex digits."""
    return "msg_" + secrets.token_hex(16)


def _context(message_id: str, part: str) -> str:
    return f"intake_outbox:{message_id}:{part}"


def enqueue(
    session: Session,
    *,
    channel: str,
    target: str,
    event: str,
    payload: Mapping[str, Any],
    application_id: int | None,
    sealer: Sealer,
    clock: Clock,
) -> OutboxMessage:
    """Add a message to the outbox in the caller's transaction; it is due at once."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown outbox channel {channel!r}")
    message_id = new_message_id()
    now = clock.now()
    row = OutboxMessage(
        id=message_id,
        channel=channel,
        target=sealer.seal(target, _context(message_id, "target")) if channel in _SEALED_TARGETS else target,
        event=event,
        payload_sealed=sealer.seal(
            json.dumps(dict(payload), ensure_ascii=False), _context(message_id, "payload")
        ),
        application_id=application_id,
        state="pending",
        attempts=0,
        next_attempt_at=now,
        last_error="",
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class Outgoing:
    """A message as a transport sends it: target and payload opened."""

    id: str
    channel: str
    target: str
    event: str
    payload: dict[str, Any]
    application_id: int | None
    #: This attempt's number, from 1.
    attempt: int
    created_at: dt.datetime
    #: The time of this attempt (signatures carry it).
    now: dt.datetime


class DeliveryFailed(Exception):
    """A transport could not deliver. ``reason`` is stored with the message: it names the failure (an HTTP
    status, an exception type) and never personal data. ``permanent`` failures are not retried."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Transport(Protocol):
    def send(self, session: Session, message: Outgoing) -> None:
        """Deliver ``message`` or raise :class:`DeliveryFailed`; ``session`` is the delivery's transaction
        (for reading the target's configuration)."""
        ...


@dataclass
class DeliveryReport:
    sent: int = 0
    #: Failed this time, to be tried again later.
    retrying: int = 0
    #: Given up (after the last attempt, or a permanent failure).
    dead: int = 0

    @property
    def attempted(self) -> int:
        return self.sent + self.retrying + self.dead


def backoff(attempts: int) -> dt.timedelta:
    """The wait after the ``attempts``-th failed attempt: 30 s, 1 min, 2 min ... at most 1 h."""
    return min(BACKOFF_FIRST * (1 << min(max(attempts - 1, 0), 16)), BACKOFF_CAP)


def _claim(session: Session, channels: list[str], now: dt.datetime) -> OutboxMessage | None:
    stmt = (
        select(OutboxMessage)
        .where(
            OutboxMessage.state == "pending",
            OutboxMessage.next_attempt_at <= now,
            OutboxMessage.channel.in_(channels),
        )
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.created_at, OutboxMessage.id)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Another worker's claimed row is skipped, not waited for: each message goes to one worker.
        stmt = stmt.with_for_update(skip_locked=True)
    return session.scalars(stmt).first()


def _outgoing(row: OutboxMessage, sealer: Sealer, now: dt.datetime) -> Outgoing:
    target = (
        sealer.open(row.target, _context(row.id, "target")) if row.channel in _SEALED_TARGETS else row.target
    )
    return Outgoing(
        id=row.id,
        channel=row.channel,
        target=target,
        event=row.event,
        payload=json.loads(sealer.open(row.payload_sealed, _context(row.id, "payload"))),
        application_id=row.application_id,
        attempt=row.attempts + 1,
        created_at=row.created_at,
        now=now,
    )


def _attempt(session: Session, message: Outgoing, transport: Transport) -> tuple[bool, str, bool]:
    """Try once: (delivered, reason, permanent)."""
    try:
        transport.send(session, message)
    except DeliveryFailed as exc:
        return False, exc.reason, exc.permanent
    except Exception as exc:  # a transport's bug must not stop the other messages
        log.exception("outbox_transport_error", message_id=message.id, channel=message.channel)
        return False, f"unexpected {type(exc).__name__} in the {message.channel} transport", False
    return True, "", False


def deliver_due(
    sessions: sessionmaker[Session],
    transports: Mapping[str, Transport],
    *,
    sealer: Sealer,
    clock: Clock,
    limit: int = 100,
    max_attempts: int = 10,
) -> DeliveryReport:
    """Deliver up to ``limit`` due messages of the channels ``transports`` serve, one transaction each."""
    report = DeliveryReport()
    channels = [c for c in CHANNELS if c in transports]

    def writing() -> Session:  # SQLite: take the write lock when the transaction begins (core/db.py)
        return sessions(execution_options={WRITES: True})

    for _ in range(limit):
        # 1. Claim: a short transaction leases the message (another worker skips it until the lease ends).
        with session_scope(writing) as session:
            now = clock.now()
            row = _claim(session, channels, now)
            if row is None:
                break
            message_id, channel = row.id, row.channel
            try:
                message: Outgoing | None = _outgoing(row, sealer, now)
            except SealError:
                message = None
            row.next_attempt_at = now + LEASE
        # 2. Send outside any writing transaction (a slow receiver holds no lock).
        if message is None:
            delivered, reason, permanent = (
                False,
                "the message cannot be opened (is the data key that sealed it configured?)",
                True,
            )
        else:
            with session_scope(sessions) as session:
                delivered, reason, permanent = _attempt(session, message, transports[channel])
        # 3. Record the outcome.
        with session_scope(writing) as session:
            row = session.get(OutboxMessage, message_id)
            if row is None or row.state != "pending":
                continue
            _record(
                session, row, delivered, reason, permanent, report, clock=clock, max_attempts=max_attempts
            )
    return report


def _record(
    session: Session,
    row: OutboxMessage,
    delivered: bool,
    reason: str,
    permanent: bool,
    report: DeliveryReport,
    *,
    clock: Clock,
    max_attempts: int,
) -> None:
    now = clock.now()
    row.attempts += 1
    if delivered:
        row.state, row.sent_at, row.last_error = "sent", now, ""
        report.sent += 1
        return
    row.last_error = reason[:500]
    if permanent or row.attempts >= max_attempts:
        row.state = "dead"
        report.dead += 1
        log.warning(
            "outbox_message_dead",
            message_id=row.id,
            channel=row.channel,
            message_event=row.event,
            attempts=row.attempts,
            reason=row.last_error,
        )
        audit.record(
            session,
            actor="system",
            action="intake.outbox.dead",
            target_type="intake_outbox",
            target_id=row.id,
            clock=clock,
            detail={
                "channel": row.channel,
                "event": row.event,
                "attempts": row.attempts,
                "reason": row.last_error,
                "application_id": row.application_id,
            },
        )
    else:
        row.next_attempt_at = now + backoff(row.attempts)
        report.retrying += 1


def counts(session: Session) -> dict[str, int]:
    """Messages by state (for the command line and monitoring)."""
    rows = session.execute(select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state))
    return {state: int(n) for state, n in rows}


class Loop:
    """Runs ``run_once`` every ``interval_s`` seconds on a daemon thread until stopped (the web server's
    in-process delivery; a failed pass is logged and the next one runs as usual)."""

    def __init__(
        self,
        run_once: Callable[[], object],
        interval_s: float,
        *,
        on_stop: Callable[[], object] | None = None,
    ) -> None:
        self._run_once = run_once
        self._interval_s = interval_s
        self._on_stop = on_stop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tongban-outbox", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._run_once()
            except Exception:
                log.exception("outbox_pass_failed")

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            if self._thread.is_alive():  # still sending: its transports stay open (a daemon thread)
                log.warning("outbox_loop_still_sending")
                return
        if self._on_stop is not None:
            self._on_stop()
