"""In-process domain events, delivered inside the emitting transaction.

A lower domain announces what happened (``catalog.item.published``) without knowing who listens; a higher
domain subscribes when its service module is imported (the web app and the CLI import every domain). The
handler runs synchronously in the same session, so the reaction commits or rolls back with the change
itself: there is no batch job to remember and no window where the two disagree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from tongban.core.clock import Clock

Handler = Callable[..., None]

_handlers: dict[str, list[Handler]] = defaultdict(list)


def subscribe(name: str, handler: Handler) -> None:
    """Register ``handler(session, clock=..., **payload)`` for events called ``name`` (once per handler)."""
    if handler not in _handlers[name]:
        _handlers[name].append(handler)


def emit(session: Session, name: str, *, clock: Clock, **payload: Any) -> None:
    for handler in list(_handlers.get(name, ())):
        handler(session, clock=clock, **payload)
