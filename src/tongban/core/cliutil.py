"""What every domain's command group shares: a refusal with a message and exit code 2, and a database
session for one command (one transaction) that refuses an unmigrated or unreachable database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tongban.core import migrate
from tongban.core.config import Settings
from tongban.core.db import make_engine, make_sessionmaker, session_scope
from tongban.core.errors import DomainError

err = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print ``message`` on stderr; the exit (code 2) to raise."""
    err.print(f"[red]{message}[/red]")
    return typer.Exit(2)


@contextmanager
def command_session(settings: Settings) -> Iterator[Session]:
    """One transaction for one command; a domain's refusal becomes a message and exit code 2."""
    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url())
    try:  # the engine is disposed on every path, a refusal included
        try:
            current = migrate.is_current(engine)
        except OperationalError as exc:
            raise fail(f"cannot reach the database: {exc.orig}") from None
        if not current:
            raise fail("the database schema is not current; run `tongban db upgrade` first")
        with session_scope(make_sessionmaker(engine)) as session:
            yield session
    except DomainError as exc:
        raise fail(str(exc)) from None
    finally:
        engine.dispose()
