"""Open311 API keys (``hotline_api_key``): issued, listed and revoked by the hotline's administrators, and
checked on every Open311 POST.

A key is shown once, when it is issued; only its SHA-256 digest is stored (the key is 256 random bits, so a
plain digest is as safe as the session tokens of :mod:`tongban.core.auth`). Each key may make
``rate_per_minute`` requests a minute; the count of the current minute lives in ``hotline_api_key_window``,
so every worker process shares it. The check runs in a short transaction of its own: a refused request
still counts, and the row lock of the count is never held while a ticket is being created.

The functions take a session and never commit, like :mod:`tongban.hotline.service`; the command line calls
them as ``tongban hotline api-key issue|list|revoke`` with the platform's administrator principal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from tongban.core import audit
from tongban.core.auth import Principal
from tongban.core.clock import Clock
from tongban.core.db import WRITES
from tongban.core.errors import NotFound
from tongban.hotline import repository as repo
from tongban.hotline.models import ApiKey
from tongban.hotline.schemas import ApiKeyOut, ApiKeyWrite
from tongban.hotline.vocab import ADMIN

#: Keys start with this, so that a leaked one is recognisable (secret scanners, logs).
KEY_PREFIX = "o311_"
#: Characters of a key kept in clear (``prefix``) to tell keys apart in lists.
SHOWN = 12
#: ``last_used_at`` is written at most this often per key (it is a hint, not an audit trail).
LAST_USED_EVERY = dt.timedelta(minutes=1)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _out(row: ApiKey, key: str | None = None) -> ApiKeyOut:
    return ApiKeyOut(
        id=row.id,
        prefix=row.prefix,
        name=row.name,
        rate_per_minute=row.rate_per_minute,
        created_by=row.created_by,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        key=key,
    )


# --- administration ---------------------------------------------------------------------------------------


def issue_key(session: Session, principal: Principal, write: ApiKeyWrite, *, clock: Clock) -> ApiKeyOut:
    """Issue a key to a client; the answer carries the key itself, which is never shown again."""
    principal.require(ADMIN)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        prefix=key[:SHOWN],
        digest=digest(key),
        name=write.name,
        rate_per_minute=write.rate_per_minute,
        created_by=principal.username,
        created_at=clock.now(),
        revoked_by="",
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=principal,
        action="hotline.api_key.issue",
        target_type="hotline_api_key",
        target_id=str(row.id),
        clock=clock,
        detail={"name": row.name, "prefix": row.prefix, "rate_per_minute": row.rate_per_minute},
    )
    return _out(row, key)


def list_keys(session: Session, principal: Principal) -> list[ApiKeyOut]:
    """Every key, revoked ones included (without the keys themselves)."""
    principal.require(ADMIN)
    return [_out(r) for r in repo.api_keys(session)]


def revoke_key(session: Session, principal: Principal, key_id: int, *, clock: Clock) -> ApiKeyOut:
    """Revoke a key: its requests are refused from now on. Revoking a revoked key changes nothing."""
    principal.require(ADMIN)
    row = repo.api_key(session, key_id, for_update=True)
    if row is None:
        raise NotFound(f"no API key {key_id}")
    if row.revoked_at is None:
        row.revoked_at = clock.now()
        row.revoked_by = principal.username
        session.flush()
        audit.record(
            session,
            actor=principal,
            action="hotline.api_key.revoke",
            target_type="hotline_api_key",
            target_id=str(row.id),
            clock=clock,
            detail={"name": row.name, "prefix": row.prefix},
        )
    return _out(row)


# --- checking a request -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyCheck:
    """The outcome of checking a request's key: ``refused`` (``missing``, ``invalid``, ``revoked``) or a
    known key with the minute's count (``limited`` when over the key's rate)."""

    refused: str = ""
    key_id: int = 0
    name: str = ""
    limit: int = 0
    count: int = 0
    #: Seconds until the next minute begins (``Retry-After`` of a limited request).
    retry_after: int = 0

    @property
    def ok(self) -> bool:
        return not self.refused and self.count <= self.limit

    @property
    def limited(self) -> bool:
        return not self.refused and self.count > self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)


def check_key(session: Session, key: str | None, *, clock: Clock) -> KeyCheck:
    """Look the key up and count the request against its rate (in ``session``'s transaction)."""
    if not key:
        return KeyCheck(refused="missing")
    if len(key) > 200:
        return KeyCheck(refused="invalid")
    row = repo.api_key_by_digest(session, digest(key))
    if row is None:
        return KeyCheck(refused="invalid")
    if row.revoked_at is not None:
        return KeyCheck(refused="revoked", key_id=row.id, name=row.name)
    now = clock.now()
    seconds = int(now.timestamp())
    count = repo.count_api_key_use(session, row.id, seconds // 60)
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
        row.last_used_at = now
        session.flush()
    return KeyCheck(
        key_id=row.id,
        name=row.name,
        limit=row.rate_per_minute,
        count=count,
        retry_after=60 - seconds % 60,
    )


def check_key_apart(sessions: sessionmaker[Session], key: str | None, *, clock: Clock) -> KeyCheck:
    """:func:`check_key` in a transaction of its own, committed at once: the count stays even when the
    request then fails, and the count's row is not locked while the request's own work runs. Call it
    before the request's session begins (one connection at a time per request)."""
    session = sessions(execution_options={WRITES: True})
    try:
        result = check_key(session, key, clock=clock)
        session.commit()
        return result
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
