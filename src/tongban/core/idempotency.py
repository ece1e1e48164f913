"""``Idempotency-Key`` support for writes a client may retry.

The first response for (actor, key) is stored with a hash of the request; a retry with the same request
gets the stored response, a reuse of the key for a different request is a 409 conflict.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy.orm import Session

from tongban.core.clock import Clock
from tongban.core.errors import Conflict, InvalidInput
from tongban.core.models import IdempotencyRecord


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: str


def _digest(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


def check_key(key: str) -> str:
    if not 8 <= len(key) <= 128 or not key.isascii() or not key.isprintable():
        raise InvalidInput("Idempotency-Key must be 8–128 printable ASCII characters")
    return key


def lookup(
    session: Session, *, key: str, actor: str, method: str, path: str, body: bytes
) -> StoredResponse | None:
    row = session.get(IdempotencyRecord, (check_key(key), actor))
    if row is None:
        return None
    if row.request_hash != _digest(method, path, body):
        raise Conflict("this Idempotency-Key was already used for a different request")
    return StoredResponse(status=row.status, body=row.body)


def remember(
    session: Session,
    *,
    key: str,
    actor: str,
    method: str,
    path: str,
    body: bytes,
    status: int,
    response_body: str,
    clock: Clock,
) -> None:
    session.add(
        IdempotencyRecord(
            key=check_key(key),
            actor=actor,
            method=method,
            path=path,
            request_hash=_digest(method, path, body),
            status=status,
            body=response_body,
            created_at=clock.now(),
        )
    )
    session.flush()
