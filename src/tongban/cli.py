"""The ``tongban`` command line: serve, demo, database, catalogue, knowledge, eval, calendar, accounts."""

from __future__ import annotations

import csv
import getpass
import gzip
import json
import secrets
import shutil
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from tongban.catalog import service as catalog_service
from tongban.catalog.formats import CSV_COLUMNS, FORMATS, FileFormatError, content_to_csv_row, detect_format
from tongban.catalog.importer import ImportReport, StrictImportFailed, import_file
from tongban.consult import evaluate as consult_eval
from tongban.consult import service as consult_service
from tongban.core import auth, migrate
from tongban.core.calendar import load_schedule, working_calendar
from tongban.core.clock import SystemClock
from tongban.core.config import Settings, get_settings
from tongban.core.db import make_engine, make_sessionmaker, session_scope
from tongban.core.errors import DomainError
from tongban.core.files import FileStore
from tongban.core.llm import get_chat_model
from tongban.core.logging import configure_logging
from tongban.core.tasks import purge_expired
from tongban.core.workdays import YearSchedule
from tongban.demo import amend_demo
from tongban.hotline import classifier as hotline_classifier
from tongban.hotline import demo as hotline_demo
from tongban.hotline import evaluation as hotline_eval
from tongban.hotline import service as hotline_service
from tongban.hotline.cli import hotline_app
from tongban.intake import service as intake_service
from tongban.knowledge import evaluate as knowledge_eval
from tongban.knowledge import ingest as knowledge_ingest
from tongban.knowledge import service as knowledge_service
from tongban.knowledge.embedding import get_embedder
from tongban.knowledge.schemas import Kind
from tongban.policy import demo as policy_demo
from tongban.policy.cli import policy_app
from tongban.rating import service as rating_service
from tongban.rating import synthetic as rating_synthetic

app = typer.Typer(help="通办 tongban — one-stop government services platform.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
catalog_app = typer.Typer(help="The service catalogue (事项).", no_args_is_help=True)
admin_app = typer.Typer(help="Staff accounts.", no_args_is_help=True)
calendar_app = typer.Typer(help="The official working-day calendar.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(catalog_app, name="catalog")
app.add_typer(admin_app, name="admin")
app.add_typer(calendar_app, name="calendar")
knowledge_app = typer.Typer(help="The knowledge hub (知识库) and its search index.", no_args_is_help=True)
index_app = typer.Typer(help="The search index.", no_args_is_help=True)
eval_app = typer.Typer(help="Measure quality on labelled data.", no_args_is_help=True)
consult_app = typer.Typer(help="The consultation service (问).", no_args_is_help=True)
app.add_typer(knowledge_app, name="knowledge")
app.add_typer(consult_app, name="consult")
intake_app = typer.Typer(help="Unified intake (办): applications, deadlines, uploads.", no_args_is_help=True)
app.add_typer(intake_app, name="intake")
quality_app = typer.Typer(help="Ratings (评) and service-quality monitoring.", no_args_is_help=True)
app.add_typer(quality_app, name="quality")
knowledge_app.add_typer(index_app, name="index")
app.add_typer(eval_app, name="eval")
app.add_typer(hotline_app, name="hotline")
app.add_typer(policy_app, name="policy")


@app.callback()
def _main(ctx: typer.Context) -> None:
    """通办 tongban — one-stop government services platform."""
    try:
        settings = get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"TONGBAN_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise _fail(f"the settings are not valid: {problems}") from None
    settings.configure_password_hashing()
    ctx.call_on_close(_dispose_engines)


out = Console()
err = Console(stderr=True, soft_wrap=True)
EXIT_ROWS_FAILED = 1
EXIT_USAGE = 2


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


#: Engines the running command made: disposed when it ends (its connections closed, not left to exit).
_ENGINES: list[Engine] = []


def _engine(settings: Settings) -> Engine:
    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url())
    _ENGINES.append(engine)
    return engine


def _dispose_engines() -> None:
    while _ENGINES:
        _ENGINES.pop().dispose()


def _require_schema(engine: Engine) -> None:
    try:
        current = migrate.is_current(engine)
    except OperationalError as exc:
        raise _fail(f"cannot reach the database: {exc.orig}") from None
    if not current:
        raise _fail("the database schema is not current; run `tongban db upgrade` first")


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Migrate the database schema to the newest revision (or REVISION)."""
    settings = get_settings()
    engine = _engine(settings)
    try:
        migrate.upgrade(engine, revision)
    except OperationalError as exc:
        raise _fail(f"cannot reach the database: {exc.orig}") from None
    out.print(f"database at revision [bold]{migrate.current_revision(engine)}[/] ({engine.dialect.name})")


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the database and the newest one."""
    engine = _engine(get_settings())
    out.print(f"current: {migrate.current_revision(engine)}  newest: {migrate.head_revision()}")


def _print_report(report: ImportReport, *, show: int = 50) -> None:
    out.print(
        f"[bold]{report.source}[/]: {report.created} created, {report.updated} updated, "
        f"{report.unchanged} unchanged, {len(report.errors)} failed, {len(report.warnings)} warnings"
    )
    for title, rows, style in (
        ("Failed rows", report.errors, "red"),
        ("Warnings", report.warnings, "yellow"),
    ):
        if not rows:
            continue
        table = Table(title=title, title_style=style, show_lines=False)
        table.add_column("line", justify="right")
        table.add_column("code")
        table.add_column("reason", overflow="fold")
        for p in rows[:show]:
            table.add_row(str(p.line), p.code or "", p.reason)
        if len(rows) > show:
            table.add_row("…", "", f"{len(rows) - show} more")
        err.print(table)


def _count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for _ in fh)


@catalog_app.command("import")
def catalog_import(
    paths: Annotated[list[Path], typer.Argument(help="JSONL or CSV files")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="guangdong, tongban-jsonl or tongban-csv (default: detect)")
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="abort the whole import (store nothing) on any bad row")
    ] = False,
    actor: Annotated[str, typer.Option(help="who is importing, for the audit trail")] = "",
) -> None:
    """Import service guides. Bad rows are reported with line and reason; the rest are stored."""
    settings = get_settings()
    engine = _engine(settings)
    _require_schema(engine)
    if fmt is not None and fmt not in FORMATS:
        raise _fail(f"--format must be one of {', '.join(FORMATS)}")
    who = actor or f"cli:{getpass.getuser()}"
    factory, clock = make_sessionmaker(engine), SystemClock()
    failed = False
    for path in paths:
        if not path.is_file():
            raise _fail(f"{path}: no such file")
        try:
            kind = fmt or detect_format(path)
        except FileFormatError as exc:
            raise _fail(f"{path}: {exc}") from None
        total = _count_lines(path)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=not sys.stderr.isatty(),
        ) as progress:
            task = progress.add_task(f"{path.name} ({kind})", total=total)

            def advance(line: int, task: TaskID = task) -> None:
                progress.update(task, completed=line)

            try:
                with session_scope(factory) as session:
                    report = import_file(
                        session,
                        path,
                        actor=who,
                        clock=clock,
                        fmt=kind,
                        strict=strict,
                        on_row=advance,
                    )
            except FileFormatError as exc:
                raise _fail(f"{path}: {exc}") from None
            except StrictImportFailed as exc:
                _print_report(exc.report)
                raise _fail(f"{path}: {exc}; nothing was stored", EXIT_ROWS_FAILED) from None
        _print_report(report)
        failed = failed or bool(report.errors)
    if failed:
        raise typer.Exit(EXIT_ROWS_FAILED)


@catalog_app.command("export")
def catalog_export(
    fmt: Annotated[str, typer.Option("--format", help="tongban-jsonl or tongban-csv")] = "tongban-jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="file to write (default: stdout)")
    ] = None,
    status: Annotated[str, typer.Option(help="published, draft or withdrawn")] = "published",
) -> None:
    """Export the catalogue in our own format (re-importable)."""
    if fmt not in ("tongban-jsonl", "tongban-csv"):
        raise _fail("--format must be tongban-jsonl or tongban-csv")
    settings = get_settings()
    engine = _engine(settings)
    _require_schema(engine)
    stream = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    count = 0
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS) if fmt == "tongban-csv" else None
            if writer:
                writer.writeheader()
            for content in catalog_service.export_items(session, status=status):
                if writer:
                    writer.writerow(content_to_csv_row(content))
                else:
                    stream.write(json.dumps(content.model_dump(mode="json"), ensure_ascii=False) + "\n")
                count += 1
    finally:
        if output:
            stream.close()
    err.print(f"exported {count} item(s)")


@catalog_app.command("check")
def catalog_check(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    limit: Annotated[int, typer.Option(help="groups to show in detail (0 = all)")] = 20,
) -> None:
    """审批标准一致性校验: the same item across regions/departments with different requirements."""
    engine = _engine(get_settings())
    _require_schema(engine)
    with session_scope(make_sessionmaker(engine)) as session:
        report = catalog_service.check_consistency(session)
    bad = report.inconsistent
    if as_json:
        from dataclasses import asdict

        payload = {
            "items_checked": report.items_checked,
            "groups_checked": report.groups_checked,
            "groups_inconsistent": len(bad),
            "totals": report.totals(),
            "groups": [asdict(g) for g in bad],
        }
        out.print_json(json.dumps(payload, ensure_ascii=False))
        return
    out.print(
        f"[bold]Consistency report[/]: {report.items_checked} published items, {report.groups_checked} items "
        f"offered by several regions/departments, [bold]{len(bad)}[/] of them inconsistent"
    )
    totals = Table(title="Inconsistent items by dimension")
    totals.add_column("dimension")
    totals.add_column("items", justify="right")
    for dim, n in report.totals().items():
        totals.add_row(dim, str(n))
    out.print(totals)
    for group in bad[: limit or None]:
        table = Table(title=f"{group.name} ({len(group.members)} implementations)", show_lines=True)
        table.add_column("dimension")
        table.add_column("variant", overflow="fold")
        table.add_column("where", overflow="fold")
        for diff in group.differences:
            for variant in diff.variants:
                where = "\n".join(f"{m.code} {m.region} {m.department}" for m in variant.members)
                table.add_row(diff.dimension, (variant.value or "(not stated)")[:300], where)
        out.print(table)
    if limit and len(bad) > limit:
        out.print(f"… {len(bad) - limit} more; use --limit 0 or --json for all")


@admin_app.command("create")
def admin_create(
    username: str,
    role: Annotated[
        list[str], typer.Option(help=f"repeatable; one of {', '.join(auth.ROLE_PERMISSIONS)}")
    ] = [  # noqa: B006
        "admin"
    ],
    display_name: Annotated[str, typer.Option()] = "",
    password_stdin: Annotated[bool, typer.Option(help="read the password from standard input")] = False,
) -> None:
    """Create a staff account (the password is asked for, or read from stdin)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    engine = _engine(get_settings())
    _require_schema(engine)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            account = auth.create_account(
                session,
                username=username,
                password=password,
                roles=role,
                display_name=display_name,
                clock=SystemClock(),
            )
            roles = ", ".join(account.roles)
    except DomainError as exc:
        raise _fail(exc.detail) from None
    out.print(f"created account [bold]{username}[/] with role(s) {roles}")


@admin_app.command("purge")
def admin_purge() -> None:
    """Delete ended sessions, old login failures and expired idempotency keys (safe to schedule)."""
    engine = _engine(get_settings())
    _require_schema(engine)
    with session_scope(make_sessionmaker(engine)) as session:
        purged = purge_expired(session, clock=SystemClock())
    out.print(
        f"purged {purged.sessions} session(s), {purged.login_failures} login failure(s), "
        f"{purged.idempotency_keys} idempotency key(s)"
    )


@calendar_app.command("load")
def calendar_load(path: Path) -> None:
    """Load a year's official holiday schedule (JSON; see docs/working-days.md)."""
    if not path.is_file():
        raise _fail(f"{path}: no such file")
    try:
        schedule = YearSchedule.from_text(path.read_text(encoding="utf-8"))
    except (DomainError, UnicodeDecodeError) as exc:
        raise _fail(f"{path}: {getattr(exc, 'detail', exc)}") from None
    engine = _engine(get_settings())
    _require_schema(engine)
    with session_scope(make_sessionmaker(engine)) as session:
        changed = load_schedule(session, schedule, actor=f"cli:{getpass.getuser()}", clock=SystemClock())
    out.print(f"{schedule.year}: {'loaded' if changed else 'already loaded, unchanged'}")


@calendar_app.command("deadline")
def calendar_deadline(
    start: Annotated[str, typer.Argument(help="YYYY-MM-DD, the day of acceptance")],
    days: int,
    calendar_days: Annotated[bool, typer.Option("--calendar-days", help="count natural days")] = False,
) -> None:
    """The due date of a time limit of DAYS working days accepted on START."""
    import datetime as dt

    try:
        day = dt.date.fromisoformat(start)
    except ValueError:
        raise _fail(f"{start!r} is not a date (YYYY-MM-DD)") from None
    engine = _engine(get_settings())
    _require_schema(engine)
    with session_scope(make_sessionmaker(engine)) as session:
        cal = working_calendar(session)
        try:
            due = cal.add_calendar_days(day, days) if calendar_days else cal.add_working_days(day, days)
        except DomainError as exc:
            raise _fail(exc.detail) from None
    out.print(due.isoformat())


@knowledge_app.command("ingest")
def knowledge_ingest_cmd(
    paths: Annotated[list[Path], typer.Argument(help="files or folders: JSONL, Markdown, HTML, PDF, DOCX")],
    kind: Annotated[
        Kind, typer.Option(help="kind of the entries, unless their metadata says")
    ] = Kind.ARTICLE,
    department: Annotated[str, typer.Option(help="owner department, unless the metadata says")] = "",
    region: Annotated[str, typer.Option(help="region, unless the metadata says")] = "",
    actor: Annotated[str, typer.Option(help="who is ingesting, for the audit trail")] = "",
    embed: Annotated[bool, typer.Option("--embed/--no-embed", help="compute embeddings now")] = True,
) -> None:
    """Ingest documents as published knowledge (an operator's bulk load; audited). Re-ingest is cheap."""
    settings = get_settings()
    engine = _engine(settings)
    _require_schema(engine)
    who = actor or f"cli:{getpass.getuser()}"
    defaults = knowledge_service.IngestDefaults(kind=kind, department=department, region=region)
    factory, clock = make_sessionmaker(engine), SystemClock()
    counts = {o: 0 for o in knowledge_service.IngestOutcome}
    for path in paths:
        if not path.exists():
            raise _fail(f"{path}: no such file or folder")
        try:
            with session_scope(factory) as session:
                for doc in knowledge_ingest.read_path(path):
                    content = knowledge_service.content_from_document(doc, defaults)
                    outcome = knowledge_service.ingest_content(
                        session, doc.external_id, content, actor=who, clock=clock, source=str(path)
                    )
                    counts[outcome] += 1
        except knowledge_ingest.IngestError as exc:
            raise _fail(f"{exc}; nothing from {path} was stored", EXIT_ROWS_FAILED) from None
        except DomainError as exc:
            raise _fail(f"{path}: {exc}; nothing from {path} was stored", EXIT_ROWS_FAILED) from None
    out.print(", ".join(f"{n} {o.value}" for o, n in counts.items()))
    if embed:
        _embed(engine, settings)


def _embed(engine: Engine, settings: Settings) -> None:
    embedder = get_embedder(settings.embedding, settings.batch_threads())
    if embedder is None:
        return
    with session_scope(make_sessionmaker(engine)) as session:
        done = knowledge_service.embed_missing(
            session, embedder, progress=lambda n: err.print(f"embedded {n} passages", end="\r")
        )
    out.print(f"{done} passages embedded")


@knowledge_app.command("sync-catalog")
def knowledge_sync_catalog() -> None:
    """Make every published service item's knowledge entry current (normally automatic on publish)."""
    settings = get_settings()
    engine = _engine(settings)
    _require_schema(engine)
    with session_scope(make_sessionmaker(engine)) as session:
        n = knowledge_service.sync_catalog(session, clock=SystemClock())
    out.print(f"{n} entries created or updated")
    _embed(engine, settings)


@knowledge_app.command("expire")
def knowledge_expire() -> None:
    """Move entries past their expiry date out of service (idempotent; schedule it daily)."""
    engine = _engine(get_settings())
    _require_schema(engine)
    with session_scope(make_sessionmaker(engine)) as session:
        expired = knowledge_service.expire_due(session, clock=SystemClock())
    out.print(f"{len(expired)} entries expired")


@consult_app.command("expire")
def consult_expire() -> None:
    """Delete conversations silent past their expiry, with their turns (idempotent; schedule it hourly)."""
    engine = _engine(get_settings())
    _require_schema(engine)
    with session_scope(make_sessionmaker(engine)) as session:
        n = consult_service.expire_conversations(session, clock=SystemClock())
    out.print(f"{n} conversations deleted")


@intake_app.command("escalate")
def intake_escalate() -> None:
    """Escalate overdue applications to their supervisors, once each (idempotent; schedule it daily)."""
    engine = _engine(get_settings())
    _require_schema(engine)
    with session_scope(make_sessionmaker(engine)) as session:
        receipts = intake_service.escalate_overdue(session, clock=SystemClock())
    out.print(
        f"{len(receipts)} overdue applications escalated" + (f": {', '.join(receipts)}" if receipts else "")
    )


@intake_app.command("generate-forms")
def intake_generate_forms(
    item: Annotated[
        list[str] | None, typer.Option("--item", help="only these item codes (repeatable); default: all")
    ] = None,
) -> None:
    """Give every published item without an application form a generated basic one (idempotent)."""
    engine = _engine(get_settings())
    _require_schema(engine)
    with session_scope(make_sessionmaker(engine)) as session:
        n = intake_service.publish_generated_forms(session, actor="system", clock=SystemClock(), codes=item)
    out.print(f"{n} items got a generated application form")


@intake_app.command("sweep-uploads")
def intake_sweep_uploads(
    hours: Annotated[int, typer.Option(min=1, help="Delete unattached uploads older than this.")] = 24,
) -> None:
    """Delete uploads never attached to an application, and files no record refers to (idempotent)."""
    settings = get_settings()
    engine = _engine(settings)
    _require_schema(engine)
    store = FileStore(settings.data_dir / "files", settings.sealer())
    with session_scope(make_sessionmaker(engine)) as session:
        n = intake_service.sweep_uploads(session, store, clock=SystemClock(), hours=hours)
    out.print(f"{n} files removed")


# --- departments, notices, documents ---


@intake_app.command("deliver-outbox")
def intake_deliver_outbox(
    limit: Annotated[int, typer.Option(min=1, help="Deliver at most this many messages.")] = 500,
) -> None:
    """Deliver due outbox messages once: departments' webhooks, notice emails and SMS (retried with
    backoff; schedule it every minute, or let the web server's own loop do it)."""
    settings = get_settings()
    engine = _engine(settings)
    _require_schema(engine)
    sealer = settings.sealer()
    transports = intake_service.outbox_transports(settings, sealer)
    try:
        report = intake_service.deliver_outbox(
            make_sessionmaker(engine),
            transports,
            settings=settings,
            sealer=sealer,
            clock=SystemClock(),
            limit=limit,
        )
    finally:
        intake_service.close_transports(transports)
    out.print(f"{report.sent} sent, {report.retrying} to retry, {report.dead} given up")


def _holder(settings: Settings) -> knowledge_service.IndexHolder:
    return knowledge_service.IndexHolder(get_embedder(settings.embedding, settings.embedding_threads))


@index_app.command("rebuild")
def index_rebuild() -> None:
    """Re-derive passages and facts of published entries, fill missing vectors, make every node rebuild."""
    settings = get_settings()
    engine = _engine(settings)
    _require_schema(engine)
    with session_scope(make_sessionmaker(engine)) as session:
        n = knowledge_service.rederive_all(session, clock=SystemClock())
    out.print(f"{n} entries re-derived")
    _embed(engine, settings)
    _index_verify(engine, settings)


@index_app.command("verify")
def index_verify() -> None:
    """Build the index from the database as a node would and check it against the published knowledge."""
    settings = get_settings()
    engine = _engine(settings)
    _require_schema(engine)
    _index_verify(engine, settings)


def _index_verify(engine: Engine, settings: Settings) -> None:
    with session_scope(make_sessionmaker(engine)) as session:
        report = knowledge_service.verify_index(session, _holder(settings))
    for problem in report["problems"][:50]:
        err.print(problem)
    out.print(
        json.dumps({k: v for k, v in report.items() if k != "problems"}, ensure_ascii=False), soft_wrap=True
    )
    if not report["ok"] or report["missing_vectors"]:
        raise typer.Exit(EXIT_ROWS_FAILED)


@eval_app.command("retrieval")
def eval_retrieval(
    docs: Annotated[Path, typer.Option("--docs", help="JSONL: docid (or id), text, optional title")],
    questions: Annotated[
        Path, typer.Option("--questions", help="JSONL: id, question, docid, optional answer")
    ],
    k: Annotated[int, typer.Option("--k", min=1, max=50, help="results asked per question")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    baseline: Annotated[
        bool, typer.Option("--baseline/--no-baseline", help="also measure BM25 over jieba")
    ] = True,
    cache: Annotated[
        Path | None, typer.Option(help="embedding cache file kept between runs (default: in the data dir)")
    ] = None,
) -> None:
    """Recall@1, Recall@5, MRR@10 and latency of search on a fresh temporary knowledge base."""
    settings = get_settings()
    for path in (docs, questions):
        if not path.is_file():
            raise _fail(f"{path}: no such file")
    cache_path = cache or settings.data_dir / "cache" / "eval-embeddings.npz"

    def progress(stage: str, n: int, total: int) -> None:
        if sys.stderr.isatty():
            err.print(f"{stage} {n}" + (f"/{total}" if total else ""), end="\r")

    try:
        report = knowledge_eval.evaluate_retrieval(
            docs,
            questions,
            k=k,
            embedding=settings.embedding,
            threads=settings.embedding_threads,
            cache_path=cache_path,
            with_baseline=baseline,
            progress=progress,
        )
    except knowledge_eval.EvalInputError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        out.print_json(json.dumps(report.as_dict(), ensure_ascii=False))
        return
    table = Table(
        title=f"{report.documents} documents, {report.passages} passages, {report.system.questions} questions"
    )
    for column in ("system", "Recall@1", "Recall@5", "MRR@10", "p50 ms", "p95 ms"):
        table.add_column(column)
    for m in (report.system, report.baseline):
        if m is not None:
            table.add_row(
                m.name,
                f"{m.recall_at_1:.3f}",
                f"{m.recall_at_5:.3f}",
                f"{m.mrr_at_10:.3f}",
                f"{m.latency_p50_ms:.1f}",
                f"{m.latency_p95_ms:.1f}",
            )
    out.print(table)
    out.print(f"ingest {report.ingest_seconds:.1f} s, embed + index {report.embed_seconds:.1f} s")


@eval_app.command("consult")
def eval_consult(
    docs: Annotated[Path, typer.Option("--docs", help="JSONL: docid (or id), text, optional title")],
    questions: Annotated[Path, typer.Option("--questions", help="JSONL: id, question, docid, answer")],
    refuse: Annotated[
        Path | None,
        typer.Option("--refuse", help="JSONL: id, question — questions the documents cannot answer"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    split: Annotated[
        str, typer.Option(help="all questions, or every other one: even (1st, 3rd, …) or odd (2nd, 4th, …)")
    ] = "all",
    llm: Annotated[
        bool, typer.Option("--llm", help="compose with the configured TONGBAN_LLM_* endpoint")
    ] = False,
    reader_model: Annotated[
        Path | None,
        typer.Option(
            "--reader", help="a reader model file (scripts/train_reader.py) instead of the shipped one"
        ),
    ] = None,
    cache: Annotated[
        Path | None, typer.Option(help="embedding cache file kept between runs (default: in the data dir)")
    ] = None,
) -> None:
    """Answer F1, containment, citation precision, refusals, ungrounded facts and latency of the consultation
    on a fresh temporary knowledge base, with the naive baseline measured in the same run."""
    settings = get_settings()
    for path in (docs, questions, *([refuse] if refuse else [])):
        if not path.is_file():
            raise _fail(f"{path}: no such file")
    if split not in ("all", "even", "odd"):
        raise _fail("--split must be all, even or odd")
    model = None
    if llm:
        model = get_chat_model(settings)
        if model is None:
            raise _fail("--llm needs TONGBAN_LLM_BASE_URL (and TONGBAN_LLM_MODEL) to be set")
    cache_path = cache or settings.data_dir / "cache" / "eval-embeddings.npz"

    def progress(stage: str, n: int, total: int) -> None:
        if sys.stderr.isatty():
            err.print(f"{stage} {n}" + (f"/{total}" if total else ""), end="\r")

    try:
        report = consult_eval.evaluate_consult(
            docs,
            questions,
            refuse_path=refuse,
            split=split,
            embedding=settings.embedding,
            threads=settings.embedding_threads,
            cache_path=cache_path,
            model=model,
            reader_model=reader_model,
            progress=progress,
        )
    except (knowledge_eval.EvalInputError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        out.print_json(json.dumps(report.as_dict(), ensure_ascii=False))
        return
    s, b = report.system, report.baseline
    table = Table(title=f"{report.documents} documents, {report.passages} passages, {s.questions} questions")
    for column in (
        "system",
        "char-F1",
        "containment",
        "citation precision",
        "false refusals",
        "p50 ms",
        "p95 ms",
    ):
        table.add_column(column)
    table.add_row(
        s.name,
        f"{s.char_f1:.3f}",
        f"{s.containment:.3f}",
        f"{s.citation_precision or 0:.3f} (quote {s.quote_precision or 0:.3f})",
        f"{s.false_refusal_rate or 0:.3f}",
        f"{s.latency_p50_ms or 0:.1f}",
        f"{s.latency_p95_ms or 0:.1f}",
    )
    table.add_row(b.name, f"{b.char_f1:.3f}", f"{b.containment:.3f}", "—", "—", "—", "—")
    out.print(table)
    out.print(f"ungrounded facts in answers: {s.ungrounded_facts}")
    if report.refusal_rate is not None:
        out.print(
            f"refused {report.refusal_rate:.3f} of {report.refuse_questions} questions "
            "the documents cannot answer"
        )


@eval_app.command("classify")
def eval_classify(
    train: Annotated[
        Path,
        typer.Option("--train", help="JSONL: id, subject, body, category (level 1 or level1/level2/level3)"),
    ],
    test: Annotated[Path, typer.Option("--test", help="JSONL with the same fields: the tickets scored")],
    taxonomy: Annotated[
        Path | None,
        typer.Option(
            "--taxonomy",
            help="JSONL: level1, level2, level3 (default: ../shared/data/hotline_messages/taxonomy.jsonl "
            "beside the repository, if present; else the category names alone)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    body_chars: Annotated[
        int, typer.Option("--body-chars", min=0, help="body characters embedded after the subject; 0: all")
    ] = hotline_classifier.DEFAULT_BODY_CHARS,
    cache: Annotated[
        Path | None, typer.Option(help="embedding cache file kept between runs (default: in the data dir)")
    ] = None,
) -> None:
    """Accuracy and macro-F1 of the hotline ticket classifier trained on one file and scored on another,
    with the TF-IDF baseline measured on the same split."""
    settings = get_settings()
    for path in (train, test, *([taxonomy] if taxonomy else [])):
        if not path.is_file():
            raise _fail(f"{path}: no such file")
    try:
        train_rows = hotline_eval.load_labelled_jsonl(train)
        test_rows = hotline_eval.load_labelled_jsonl(test)
        taxonomy_file = taxonomy or hotline_eval.default_taxonomy_path()
        paths = hotline_classifier.load_taxonomy_jsonl(taxonomy_file) if taxonomy_file else []
    except ValueError as exc:
        raise _fail(str(exc)) from None
    base = get_embedder(settings.embedding, settings.batch_threads())
    if base is None:
        raise _fail("eval classify needs the embedding model (TONGBAN_EMBEDDING=e5)")
    embedder = hotline_eval.CachedEmbedder(
        base, cache or settings.data_dir / "cache" / "eval-classify-embeddings.npz"
    )

    def progress(stage: str, n: int, total: int) -> None:
        if sys.stderr.isatty():
            err.print(f"{stage} {n}" + (f"/{total}" if total else ""), end="\r")

    try:
        report = hotline_eval.evaluate_classify(
            train_rows,
            test_rows,
            embedder=embedder,
            taxonomy=paths,
            taxonomy_file=taxonomy_file,
            body_chars=body_chars,
            progress=progress,
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    finally:
        try:
            embedder.save()
        except OSError as exc:
            err.print(f"[yellow]warning:[/] the embedding cache was not saved: {exc}")
    if as_json:
        out.print_json(json.dumps(report.as_dict(), ensure_ascii=False))
        return
    s, b = report.system, report.baseline
    table = Table(
        title=f"{report.train_tickets} training tickets, {report.test_tickets} test tickets, "
        f"{len(report.train_counts)} categories, {report.taxonomy_paths} taxonomy paths"
    )
    for column in ("system", "accuracy", "macro-F1", "seconds"):
        table.add_column(column)
    for m in (s, b, report.baseline_e5):
        table.add_row(m.name, f"{m.accuracy:.3f}", f"{m.macro_f1:.3f}", f"{m.seconds:.1f}")
    out.print(table)
    classes = Table(title="F1 per category")
    for column in ("category", "test tickets", "system P", "system R", "system F1", "baseline F1"):
        classes.add_column(column)
    peer = {c.category: c.f1 for c in b.per_class}
    for c in s.per_class:
        classes.add_row(
            c.category,
            str(c.support),
            f"{c.precision:.3f}",
            f"{c.recall:.3f}",
            f"{c.f1:.3f}",
            f"{peer.get(c.category, 0.0):.3f}",
        )
    out.print(classes)
    if report.unseen_categories:
        unseen = ", ".join(f"{c} ({n})" for c, n in report.unseen_categories.items())
        out.print(f"test categories absent from training (counted as errors): {unseen}")
    if report.path_tickets:
        out.print(
            f"path suggested right for {report.path_correct} of {report.path_tickets} "
            "tickets labelled with a path"
        )


def _serve(settings: Settings, reload: bool = False) -> None:
    import uvicorn

    uvicorn.run(
        "tongban.web.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        reload=reload,
        proxy_headers=True,
        log_level=settings.log_level.lower(),
        log_config=None,  # keep the JSON logging that create_app configures
        access_log=False,
    )


@app.command()
def serve(reload: Annotated[bool, typer.Option(help="reload on code changes (development)")] = False) -> None:
    """Run the web platform (migrating the embedded database first)."""
    settings = get_settings()
    engine = _engine(settings)
    if not settings.database_url:
        migrate.upgrade(engine)
    _require_schema(engine)
    out.print(f"tongban on http://{settings.host}:{settings.port} ({engine.dialect.name})")
    _serve(settings, reload)


DEMO_EMBEDDINGS = "knowledge-embeddings.npz"


def _demo_knowledge(engine: Engine, settings: Settings) -> None:
    """The demo catalogue's knowledge entries: vectors from the shipped cache, the rest computed."""
    embedder = get_embedder(settings.embedding, settings.batch_threads())
    clock = SystemClock()
    with session_scope(make_sessionmaker(engine)) as session:
        knowledge_service.sync_catalog(session, clock=clock)
    if embedder is None:
        return
    shipped = resources.files("tongban.demo") / DEMO_EMBEDDINGS
    with session_scope(make_sessionmaker(engine)) as session:
        if shipped.is_file():
            with resources.as_file(shipped) as path:
                cache = knowledge_eval.EmbeddingCacheFile(path, embedder.name)
            knowledge_service.store_vectors(session, embedder.name, cache.vectors)
        knowledge_service.embed_missing(session, embedder)


def _demo_hotline(engine: Engine, settings: Settings, clock: SystemClock) -> None:
    """The demo hotline (taxonomy, units, catalogue, services, tickets) and a first classifier trained on
    its labelled examples (seconds), unless one exists."""
    with session_scope(make_sessionmaker(engine)) as session:
        hotline_demo.seed(session, sealer=settings.sealer(), clock=clock)
    embedder = knowledge_service.get_embedder(settings.embedding, settings.batch_threads())
    with session_scope(make_sessionmaker(engine)) as session:
        if not hotline_service.has_model(session):
            hotline_service.train_model(session, hotline_demo.DEMO, embedder=embedder, clock=clock)


def load_demo(settings: Settings) -> ImportReport:
    """Migrate, import the shipped demo guides and make sure demo accounts exist."""
    engine = _engine(settings)
    migrate.upgrade(engine)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    target = settings.data_dir / "demo_guangdong_guides.jsonl"
    source = resources.files("tongban.demo") / "guangdong_guides.jsonl.gz"
    with source.open("rb") as raw, gzip.open(raw) as unpacked, target.open("wb") as fh:
        shutil.copyfileobj(unpacked, fh)
    clock = SystemClock()
    with session_scope(make_sessionmaker(engine)) as session:
        # Situations (办理情形) and their questions come from the demo's own supplement, situations.json.
        report = import_file(session, target, actor="demo", clock=clock, fmt="guangdong", amend=amend_demo)
    _demo_knowledge(engine, settings)
    with session_scope(make_sessionmaker(engine)) as session:
        intake_service.publish_generated_forms(session, actor="demo", clock=clock)
    with session_scope(make_sessionmaker(engine)) as session:
        # A synthetic year of closed cases and ratings (refs DEMO-…) so the quality dashboards show something.
        rating_synthetic.generate(session, clock=clock)
    _demo_hotline(engine, settings, clock)
    with session_scope(make_sessionmaker(engine)) as session:
        policy_demo.seed(session, clock=clock, data_dir=settings.data_dir)
    accounts_file = settings.data_dir / "demo-accounts.txt"
    if not accounts_file.exists():
        lines = []
        with session_scope(make_sessionmaker(engine)) as session:
            for username, roles in (
                ("admin", ["admin"]),
                ("editor", ["catalog_editor", "knowledge_editor"]),
                ("reviewer", ["catalog_reviewer", "knowledge_reviewer"]),
                ("citizen", []),
                ("window", ["intake_officer"]),
                ("examiner", ["intake_reviewer"]),
                ("decider", ["intake_decider"]),
                ("supervisor", ["intake_supervisor"]),
                ("formeditor", ["intake_form_editor"]),
                ("formpublisher", ["intake_form_publisher"]),
                ("quality", ["quality_supervisor"]),
                ("analyst", ["quality_analyst"]),
                ("unit", ["quality_officer"]),
                ("terminal", ["rating_terminal"]),
                ("operator", ["hotline_operator"]),
                ("hlsupervisor", ["hotline_supervisor"]),
                ("hlunit", ["hotline_unit:urban"]),
                ("hladmin", ["hotline_admin"]),
                ("policyeditor", ["policy_editor"]),
                ("policyreviewer", ["policy_reviewer"]),
                ("policyofficer", ["policy_officer"]),
                ("policyapprover", ["policy_approver"]),
            ):
                password = secrets.token_urlsafe(12)
                try:
                    auth.create_account(
                        session,
                        username=username,
                        password=password,
                        roles=roles,
                        display_name=username,
                        clock=clock,
                    )
                except DomainError:
                    continue
                lines.append(f"{username}\t{password}\t{','.join(roles)}")
        accounts_file.write_text("username\tpassword\troles\n" + "\n".join(lines) + "\n")
        accounts_file.chmod(0o600)
    return report


@app.command()
def demo(
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="start the web platform afterwards")
    ] = True,
) -> None:
    """Set up the embedded database with the demo catalogue and demo staff accounts, then serve."""
    settings = get_settings()
    report = load_demo(settings)
    out.print(
        f"demo catalogue: {report.created} created, {report.updated} updated, {report.unchanged} unchanged, "
        f"{len(report.errors)} failed"
    )
    out.print(f"demo staff accounts and passwords: {settings.data_dir / 'demo-accounts.txt'}")
    if serve_after:
        out.print(f"open http://{settings.host}:{settings.port}")
        _serve(settings)


def main() -> None:
    # Commands print their results on stdout; log lines (warnings and worse) go to stderr.
    configure_logging("WARNING", json=False)
    app()


if __name__ == "__main__":  # pragma: no cover
    main()


# --- ratings and quality monitoring ---


@quality_app.command("sync")
def quality_sync() -> None:
    """Record every closed application missing from the quality fact table (idempotent; no invitations)."""
    engine = _engine(get_settings())
    _require_schema(engine)
    with session_scope(make_sessionmaker(engine)) as session:
        n = rating_service.sync_applications(session, clock=SystemClock())
    out.print(f"{n} closed applications recorded")


@quality_app.command("remind")
def quality_remind() -> None:
    """Remind applicants who have not rated their closed applications (idempotent; schedule it daily)."""
    settings = get_settings()
    engine = _engine(settings)
    _require_schema(engine)
    with session_scope(make_sessionmaker(engine)) as session:
        n = rating_service.remind(session, clock=SystemClock(), sealer=settings.sealer())
    out.print(f"{n} reminders queued")


@quality_app.command("deadlines")
def quality_deadlines() -> None:
    """Escalate overdue return calls and rectifications, close follow-up periods that ended (idempotent;
    schedule it hourly)."""
    engine = _engine(get_settings())
    _require_schema(engine)
    with session_scope(make_sessionmaker(engine)) as session:
        counts = rating_service.run_deadlines(session, clock=SystemClock())
    out.print(
        f"{counts.get('contact_escalated', 0)} return calls and {counts.get('rectify_escalated', 0)} "
        f"rectifications escalated; {counts.get('closed', 0)} rectifications closed"
    )


@quality_app.command("alerts")
def quality_alerts(
    period: Annotated[
        str | None,
        typer.Option(help="The month YYYY-MM to check (default: the month that last ended, city time)."),
    ] = None,
) -> None:
    """Compare a month's indicators with their targets and raise alerts (idempotent; schedule it daily)."""
    clock = SystemClock()
    month = period or rating_service.previous_month(clock)
    engine = _engine(get_settings())
    _require_schema(engine)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            raised = rating_service.check_alerts(session, month, clock=clock)
            lines = [f"{a.indicator} {a.scope}:{a.scope_value or '-'} = {a.value:.4g}" for a in raised]
    except DomainError as exc:
        out.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    out.print(f"{len(lines)} alerts raised for {month}")
    for line in lines:
        out.print(f"  {line}")
