"""The audit trail: every staff write records who did what to which record, in the same transaction."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tongban.core.auth import Principal
from tongban.core.clock import Clock
from tongban.core.models import AuditEvent

#: Set by the web layer for each request so that audit rows carry the request id and client address.
request_context: ContextVar[dict[str, str | None] | None] = ContextVar(
    "tongban_request_context", default=None
)


def record(
    session: Session,
    *,
    actor: Principal | str,
    action: str,
    target_type: str,
    target_id: str,
    clock: Clock,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    ctx = request_context.get() or {}
    event = AuditEvent(
        at=clock.now(),
        actor=actor if isinstance(actor, str) else actor.username,
        action=action,
        target_type=target_type,
        target_id=target_id,
        detail=detail or {},
        request_id=ctx.get("request_id"),
        client_ip=ctx.get("client_ip"),
    )
    session.add(event)
    session.flush()
    return event


def list_events(
    session: Session, *, target_type: str | None = None, target_id: str | None = None, limit: int = 100
) -> list[AuditEvent]:
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if target_type:
        stmt = stmt.where(AuditEvent.target_type == target_type)
    if target_id:
        stmt = stmt.where(AuditEvent.target_id == target_id)
    return list(session.scalars(stmt))
