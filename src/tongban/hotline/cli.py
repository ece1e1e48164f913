"""``tongban hotline ...``: the hotline's jobs and administration from the command line.

Every command is one transaction; the scheduled ones (``deadlines``, ``train --if-due``) are idempotent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy.orm import Session

from tongban.core.auth import system_principal
from tongban.core.cliutil import command_session, fail
from tongban.core.clock import SystemClock
from tongban.core.config import Settings, get_settings
from tongban.hotline import service
from tongban.hotline.vocab import ADMIN
from tongban.knowledge import service as knowledge

hotline_app = typer.Typer(
    help="The 12345 hotline (接诉即办): taxonomy, classifier, deadlines.", no_args_is_help=True
)
out = Console()
#: Commands act as the platform's administrator of the hotline.
_ADMIN = system_principal("cli", frozenset({ADMIN}))


def _fail(message: str) -> typer.Exit:
    return fail(message)


@contextmanager
def _session(settings: Settings | None = None) -> Iterator[Session]:
    with command_session(settings or get_settings()) as session:
        yield session


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSONL file; a clear message naming the line when one is not a JSON object."""
    if not path.is_file():
        raise _fail(f"{path}: no such file")
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _fail(f"{path}:{n}: not JSON ({exc.msg})") from None
            if not isinstance(value, dict):
                raise _fail(f"{path}:{n}: expected a JSON object")
            rows.append(value)
    return rows


@hotline_app.command("import-taxonomy")
def import_taxonomy(path: Annotated[Path, typer.Argument(help="JSONL with level1, level2, level3")]) -> None:
    """Load the city's three-level taxonomy of requests (idempotent)."""
    rows = read_jsonl(path)
    with _session() as session:
        n = service.import_taxonomy(session, rows, clock=SystemClock())
    out.print(f"{n} taxonomy paths loaded")


@hotline_app.command("import-examples")
def import_examples(
    path: Annotated[Path, typer.Argument(help="JSONL with id, subject, body, category (as labelled.jsonl)")],
) -> None:
    """Import labelled tickets the classifier learns from (idempotent per file name and id)."""
    rows = read_jsonl(path)
    with _session() as session:
        n = service.import_examples(session, rows, source=path.name, clock=SystemClock())
    out.print(f"{n} examples imported ({len(rows) - n} already there)")


@hotline_app.command("train")
def train(
    if_due: Annotated[
        bool, typer.Option("--if-due", help="only when enough tickets were confirmed since the last model")
    ] = False,
) -> None:
    """Train the ticket classifier on the imported examples and every confirmed ticket (corrections by
    operators feed back here); schedule ``--if-due`` daily."""
    settings = get_settings()
    embedder = knowledge.get_embedder(settings.embedding, settings.batch_threads())
    with _session(settings) as session:
        if if_due and not service.retrain_due(session):
            out.print("not due: too few newly confirmed tickets")
            return
        row = service.train_model(session, _ADMIN, embedder=embedder, clock=SystemClock())
        out.print(
            f"model {row.id}: {row.examples} examples, {row.tickets} confirmed tickets; labels {row.labels}"
        )


@hotline_app.command("deadlines")
def deadlines() -> None:
    """Warn units and escalate overdue tickets, each once (idempotent; schedule it every few minutes)."""
    with _session() as session:
        report = service.check_deadlines(session, clock=SystemClock())
    out.print(f"{len(report.warned)} warned, {len(report.escalated)} escalated")


Period = Annotated[
    str | None,
    typer.Option(help="YYYY-MM-DD (day), YYYY-Www (ISO week) or YYYY-MM (month); default: last week"),
]
AsJson = Annotated[bool, typer.Option("--json", help="print the stored result as JSON")]


def _analyse(kind: str, period: str | None, as_json: bool) -> None:
    from tongban.hotline import analysis

    clock = SystemClock()
    run = analysis.run_hotspots if kind == "hotspots" else analysis.run_index
    with _session() as session:
        snap = run(session, period=period or analysis.default_period(clock), clock=clock)
        data = analysis.snapshot_out(snap) if as_json else analysis.summary(snap)
    out.print_json(json.dumps(data, ensure_ascii=False, default=str))


@hotline_app.command("hotspots")
def hotspots(period: Period = None, as_json: AsJson = False) -> None:
    """Detect rising topics and places (bursts against a baseline) and recurring problems of a period, and
    store the result (idempotent; schedule it daily and weekly)."""
    _analyse("hotspots", period, as_json)


@hotline_app.command("index")
def index(period: Period = None, as_json: AsJson = False) -> None:
    """Compute the city sentiment index (民情指数) of a period per district and topic, and store it."""
    _analyse("index", period, as_json)


@hotline_app.command("generate")
def generate(
    count: Annotated[int, typer.Option(help="synthetic tickets to add")] = 10_000,
    days: Annotated[int, typer.Option(help="spread over this many days up to today")] = 365,
    seed: Annotated[int, typer.Option(help="random seed (the same seed gives the same tickets)")] = 0,
) -> None:
    """Add synthetic tickets (refs S…, texts written for the demo) for dashboards and benchmarks."""
    import datetime as dt

    from tongban.hotline import analysis, synthetic

    clock = SystemClock()
    if days < 1:
        raise _fail("days: at least 1")
    start = analysis.today(clock) - dt.timedelta(days=days - 1)
    with _session() as session:
        made = synthetic.generate_tickets(
            session, count=count, start=start, days=days, seed=seed, clock=clock
        )
    out.print(f"{made.count} synthetic tickets added ({made.first_ref} … {made.last_ref})")


key_app = typer.Typer(help="Open311 API keys (for POST requests).", no_args_is_help=True)
hotline_app.add_typer(key_app, name="api-key")


@key_app.command("issue")
def key_issue(
    name: Annotated[str, typer.Argument(help="who the key is for")],
    rate: Annotated[int, typer.Option("--rate", help="requests per minute")] = 60,
) -> None:
    """Issue a key; it is printed once and only its digest is stored."""
    from tongban.hotline import apikeys
    from tongban.hotline.schemas import ApiKeyWrite

    try:
        write = ApiKeyWrite(name=name, rate_per_minute=rate)
    except ValueError as exc:
        raise _fail(f"invalid key: {exc}") from None
    with _session() as session:
        key = apikeys.issue_key(session, _ADMIN, write, clock=SystemClock())
    out.print(f"key {key.id} for {key.name} ({key.rate_per_minute}/min): {key.key}")


@key_app.command("list")
def key_list() -> None:
    """Every key with its prefix, rate, use and whether it is revoked."""
    from tongban.hotline import apikeys

    with _session() as session:
        keys = apikeys.list_keys(session, _ADMIN)
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
        out.print(f"{k.id}\t{k.prefix}…\t{k.name}\t{k.rate_per_minute}/min\t{state}")


@key_app.command("revoke")
def key_revoke(key_id: Annotated[int, typer.Argument(help="the key's id (see list)")]) -> None:
    """Revoke a key: requests with it are refused from now on."""
    from tongban.hotline import apikeys

    with _session() as session:
        apikeys.revoke_key(session, _ADMIN, key_id, clock=SystemClock())
    out.print(f"key {key_id} revoked")
