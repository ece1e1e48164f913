"""``tongban policy ...``: rule files, data snapshots, runs, the push job and the overlap report from the
command line. Every command is one transaction; ``push`` is idempotent and meant to be scheduled."""

from __future__ import annotations

import datetime as dt
import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.orm import Session

from tongban.core.auth import system_principal
from tongban.core.cliutil import command_session, fail
from tongban.core.clock import SystemClock
from tongban.core.config import Settings, get_settings
from tongban.policy import engine, overlap, service, tasks
from tongban.policy.rules import RuleError, load_rule_set
from tongban.policy.schemas import RunWrite, SyntheticWrite

policy_app = typer.Typer(
    help="Policy services (京策): rules, snapshots, runs, push, overlap.", no_args_is_help=True
)
snapshot_app = typer.Typer(help="Data snapshots runs read.", no_args_is_help=True)
policy_app.add_typer(snapshot_app, name="snapshot")
out = Console()
err = Console(stderr=True)
#: Commands act as the platform's policy officer (runs are still approved by a person, on the web).
#: Named ``cli:<OS user>``, which no web account can be (usernames have no colon): the four-eyes check sees
#: a run computed here as someone else's.
_OFFICER = system_principal(f"cli:{getpass.getuser()}"[:64], frozenset({service.RUN, service.EDIT}))


def _fail(message: str) -> typer.Exit:
    return fail(message)


@contextmanager
def _session(settings: Settings | None = None) -> Iterator[Session]:
    with command_session(settings or get_settings()) as session:
        yield session


@policy_app.command("check")
def check(paths: Annotated[list[Path], typer.Argument(help="rule files (YAML or JSON)")]) -> None:
    """Check rule files and run their items' test cases; every problem is listed (exit 1 on any)."""
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise _fail(f"no such file: {', '.join(missing)}")
    try:
        rules = load_rule_set(paths)
    except RuleError as exc:
        for problem in exc.problems:
            err.print(f"[red]{problem}[/red]")
        raise typer.Exit(1) from None
    failures = engine.run_cases(rules)
    for f in failures:
        err.print(f"[red]{f.item_id}, case {f.case!r}: {f.problem}[/red]")
    cases = sum(len(i.spec.tests) for i in rules.items.values())
    out.print(
        f"{len(rules.items)} items, {len(rules.variables)} variables, {cases} test cases, "
        f"{len(failures)} failed"
    )
    if failures:
        raise typer.Exit(1)


@policy_app.command("push")
def push() -> None:
    """Push newly published and amended items to their subscribers (schedule every few minutes)."""
    settings = get_settings()
    with _session(settings) as session:
        n = tasks.push(session, sealer=settings.sealer(), clock=SystemClock())
    out.print(f"{n} pushes made")


@snapshot_app.command("synthetic")
def synthetic(
    name: Annotated[str, typer.Argument(help="snapshot name: lower-case letters, digits, . _ -")],
    persons: Annotated[int, typer.Option(min=0, max=30_000_000)] = 100_000,
    enterprises: Annotated[int, typer.Option(min=0, max=5_000_000)] = 10_000,
    as_of: Annotated[str, typer.Option(help="YYYY-MM-DD (default: today)")] = "",
    seed: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """Generate a synthetic city's snapshot (census-like distributions; demos, drills, benchmarks)."""
    settings = get_settings()
    try:
        data = SyntheticWrite(
            name=name,
            persons=persons,
            enterprises=enterprises,
            as_of=dt.date.fromisoformat(as_of) if as_of else service.today(SystemClock()),
            seed=seed,
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    with _session(settings) as session:
        snap = service.synthetic_snapshot(
            session, _OFFICER, data, data_dir=settings.data_dir, clock=SystemClock()
        )
    out.print(f"snapshot {snap.name}: {snap.rows} (sha256 {snap.digest[:12]}…)")


@snapshot_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="snapshot name")],
    path: Annotated[Path, typer.Argument(help="a DuckDB file with person/enterprise tables")],
    as_of: Annotated[str, typer.Option(help="the date its facts describe, YYYY-MM-DD")],
) -> None:
    """Register a snapshot the shared-data exchange delivered (checked against the variables, copied in)."""
    if not path.is_file():
        raise _fail(f"{path}: no such file")
    try:
        date = dt.date.fromisoformat(as_of)
    except ValueError:
        raise _fail("--as-of must be YYYY-MM-DD") from None
    settings = get_settings()
    with _session(settings) as session:
        snap = service.add_snapshot(
            session,
            _OFFICER,
            name=name,
            source=path,
            as_of=date,
            data_dir=settings.data_dir,
            clock=SystemClock(),
        )
    out.print(f"snapshot {snap.name}: {snap.rows} (sha256 {snap.digest[:12]}…)")


@policy_app.command("run")
def run(
    entity: Annotated[str, typer.Argument(help="person, household or enterprise")],
    snapshot: Annotated[str, typer.Argument(help="snapshot name")],
    date: Annotated[str, typer.Option(help="reference date YYYY-MM-DD (default: today)")] = "",
) -> None:
    """Compute a 免申即享 run (it waits for an officer's approval on the web)."""
    settings = get_settings()
    try:
        data = RunWrite(
            entity=entity,
            snapshot=snapshot,
            date=dt.date.fromisoformat(date) if date else None,
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    with _session(settings) as session:
        r = service.compute_run(session, _OFFICER, data, data_dir=settings.data_dir, clock=SystemClock())
    out.print(
        json.dumps({"run": r.id, "checksum": r.checksum, "items": r.summary["items"]}, ensure_ascii=False)
    )


@policy_app.command("overlap")
def overlap_report(
    jsonl: Annotated[
        Path | None, typer.Option(help="check these texts instead of the library (JSONL: docid, text)")
    ] = None,
) -> None:
    """Near-duplicate and contained documents of the whole library (or of a JSONL of texts), as JSONL."""
    if jsonl is not None:
        if not jsonl.is_file():
            raise _fail(f"{jsonl}: no such file")
        try:
            texts = [
                json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines() if line.strip()
            ]
            pairs = overlap.DocumentIndex.build((str(t["docid"]), str(t["text"])) for t in texts).pairs()
        except (json.JSONDecodeError, KeyError, TypeError):
            raise _fail(f"{jsonl}: each line must be a JSON object with docid and text") from None
    else:
        settings = get_settings()
        with _session(settings) as session:
            pairs = service.library_overlaps(session, _OFFICER)
    for p in pairs:
        out.print(
            json.dumps(
                {"a": p.a, "b": p.b, "kind": p.kind, "jaccard": p.jaccard, "containment": p.containment},
                ensure_ascii=False,
            ),
            soft_wrap=True,
        )
