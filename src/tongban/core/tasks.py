"""Housekeeping jobs of the shared base. Each is idempotent and safe to run on a schedule (cron, a worker)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Delete, delete, or_
from sqlalchemy.orm import Session

from tongban.core.auth import LOCKOUT_WINDOW
from tongban.core.clock import Clock
from tongban.core.models import AuthSession, IdempotencyRecord, LoginFailure

#: How long a client may retry a write with the same Idempotency-Key.
IDEMPOTENCY_RETENTION = dt.timedelta(days=7)


@dataclass(frozen=True)
class Purged:
    sessions: int
    login_failures: int
    idempotency_keys: int


def purge_expired(session: Session, *, clock: Clock) -> Purged:
    """Delete ended sessions, login failures past the lockout window and old idempotency records."""
    now = clock.now()

    def run(statement: Delete) -> int:
        result = session.execute(statement)
        return int(getattr(result, "rowcount", 0) or 0)

    return Purged(
        sessions=run(
            delete(AuthSession).where(or_(AuthSession.expires_at <= now, AuthSession.revoked.is_(True)))
        ),
        login_failures=run(delete(LoginFailure).where(LoginFailure.at <= now - LOCKOUT_WINDOW)),
        idempotency_keys=run(
            delete(IdempotencyRecord).where(IdempotencyRecord.created_at <= now - IDEMPOTENCY_RETENTION)
        ),
    )
