"""Background jobs of the policy domain (idempotent; one transaction each, committed by the caller)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tongban.core.clock import Clock
from tongban.core.crypto import Sealer
from tongban.policy import service


def push(session: Session, *, sealer: Sealer, clock: Clock) -> int:
    """Push item versions published since the last run to their subscribers (``tongban policy push``,
    every few minutes). Returns the pushes made."""
    return service.push_new_items(session, sealer=sealer, clock=clock)
