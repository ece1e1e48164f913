"""``Idempotency-Key`` support for writes a client may retry.

The first response for (actor, key) is stored with a hash of the request; a retry with the same request
gets the stored response, a reuse of the key for a different request is a 409 conflict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
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


def once(
    session: Session,
    *,
    actor: str,
    key: str,
    path: str,
    body: bytes,
    clock: Clock,
    run: Callable[[], str],
) -> str:
    """Run ``run`` (a form's work, returning a short result: a receipt number, the address to go to next)
    once per form key and actor. The key is claimed before anything is stored, so a second request with
    it waits for the first and then gets the first one's result; a refusal of ``run`` undoes the claim, so
    the form may be sent again."""
    try:
        with session.begin_nested():
            remember(
                session,
                key=key,
                actor=actor,
                method="POST",
                path=path,
                body=body,
                status=303,
                response_body="",
                clock=clock,
            )
            result = run()
            claim = session.get(IdempotencyRecord, (key, actor))
            if claim is not None:
                claim.body = result
    except IntegrityError:
        earlier = lookup(session, key=key, actor=actor, method="POST", path=path, body=body)
        if earlier is None or not earlier.body:
            raise Conflict(
                "this form is being submitted already; reload the page to see the result"
            ) from None
        return earlier.body
    return result
