"""Bulk import of service guides: stream a file, validate each row, store each good row atomically.

A bad row is reported with its line and reason and never stops or corrupts the others (each row runs in
its own savepoint). With ``strict`` any bad row aborts the whole import and nothing is stored.
Re-importing an unchanged file changes nothing: rows whose content hash matches are skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from tongban.catalog import service
from tongban.catalog.formats import ParsedRow, read_items
from tongban.catalog.schemas import ItemContent
from tongban.core.clock import Clock


@dataclass(frozen=True)
class RowProblem:
    line: int
    code: str | None
    reason: str


@dataclass
class ImportReport:
    source: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowProblem] = field(default_factory=list)
    warnings: list[RowProblem] = field(default_factory=list)
    aborted: bool = False

    @property
    def rows(self) -> int:
        return self.created + self.updated + self.unchanged + len(self.errors)

    @property
    def stored(self) -> int:
        return self.created + self.updated


class StrictImportFailed(Exception):
    def __init__(self, report: ImportReport) -> None:
        super().__init__(f"{len(report.errors)} bad row(s); nothing was imported")
        self.report = report


def import_file(
    session: Session,
    path: Path,
    *,
    actor: str,
    clock: Clock,
    fmt: str | None = None,
    strict: bool = False,
    on_row: Callable[[int], None] | None = None,
    amend: Callable[[ItemContent], ItemContent] | None = None,
) -> ImportReport:
    """Import one file into the catalogue. Raises ``FileFormatError`` when the file cannot be read at all
    and :class:`StrictImportFailed` (after rolling back its own work) in strict mode.

    ``amend`` changes each good row before it is stored (the demo adds situations with it); a ``ValueError``
    it raises makes the row a bad row."""
    report = ImportReport(source=path.name)
    seen: dict[str, int] = {}
    outer = session.begin_nested()
    for row in read_items(path, fmt):
        _import_row(session, row, report, seen, actor=actor, clock=clock, source=path.name, amend=amend)
        if on_row:
            on_row(row.line)
    if strict and report.errors:
        outer.rollback()
        report.aborted = True
        raise StrictImportFailed(report)
    outer.commit()
    return report


def _import_row(
    session: Session,
    row: ParsedRow,
    report: ImportReport,
    seen: dict[str, int],
    *,
    actor: str,
    clock: Clock,
    source: str,
    amend: Callable[[ItemContent], ItemContent] | None = None,
) -> None:
    for w in row.warnings:
        report.warnings.append(RowProblem(row.line, row.code, w))
    if row.error is not None or row.content is None:
        report.errors.append(RowProblem(row.line, row.code, row.error or "unreadable row"))
        return
    code = row.content.code
    if code in seen:
        report.errors.append(
            RowProblem(row.line, code, f"duplicate code {code!r} (first seen on line {seen[code]})")
        )
        return
    seen[code] = row.line
    content = row.content
    if amend is not None:
        try:
            content = amend(content)
        except ValueError as exc:
            report.errors.append(RowProblem(row.line, code, str(exc)))
            return
    savepoint = session.begin_nested()
    try:
        outcome = service.import_item(session, content, actor=actor, clock=clock, source=source)
    except SQLAlchemyError as exc:
        savepoint.rollback()
        report.errors.append(RowProblem(row.line, code, f"could not be stored: {type(exc).__name__}"))
        return
    savepoint.commit()
    if outcome == service.ImportOutcome.CREATED:
        report.created += 1
    elif outcome == service.ImportOutcome.UPDATED:
        report.updated += 1
    else:
        report.unchanged += 1
