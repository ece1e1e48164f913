"""Bulk import into the database: bad rows reported, good rows stored, re-import changes nothing."""

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import GUIDES
from tests.factories import item_data
from tongban.catalog.importer import StrictImportFailed, import_file
from tongban.catalog.models import CatalogItem, CatalogItemVersion
from tongban.core.clock import FixedClock


def _count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_bad_rows_are_reported_and_the_rest_stored(
    tmp_path: Path, session: Session, clock: FixedClock
) -> None:
    lines = [
        json.dumps(item_data(code="GOOD00000001"), ensure_ascii=False),
        "{not json",
        json.dumps(item_data(code="BAD000000002", colour="red"), ensure_ascii=False),
        json.dumps(item_data(code="BAD000000003", name="名" * 300), ensure_ascii=False),
        json.dumps(item_data(code="GOOD00000001", name="重复"), ensure_ascii=False),
        json.dumps(item_data(code="GOOD00000004"), ensure_ascii=False),
    ]
    report = import_file(session, _write(tmp_path / "items.jsonl", lines), actor="op", clock=clock)
    assert (report.created, report.updated, report.unchanged) == (2, 0, 0)
    assert [(e.line, e.code) for e in report.errors] == [
        (2, None),
        (3, "BAD000000002"),
        (4, "BAD000000003"),
        (5, "GOOD00000001"),
    ]
    assert "colour" in report.errors[1].reason
    assert "duplicate code" in report.errors[3].reason
    assert _count(session, CatalogItem) == 2


def test_strict_import_stores_nothing(tmp_path: Path, session: Session, clock: FixedClock) -> None:
    lines = [json.dumps(item_data(code="GOOD00000001"), ensure_ascii=False), "[1, 2]"]
    with pytest.raises(StrictImportFailed) as failure:
        import_file(session, _write(tmp_path / "x.jsonl", lines), actor="op", clock=clock, strict=True)
    assert failure.value.report.errors[0].line == 2
    assert _count(session, CatalogItem) == 0
    assert _count(session, CatalogItemVersion) == 0


@pytest.mark.skipif(not GUIDES.exists(), reason="../shared/data is not beside the project")
def test_real_guides_import_and_reimport_changes_nothing(
    tmp_path: Path, session: Session, clock: FixedClock
) -> None:
    sample = tmp_path / "guides.jsonl"
    with GUIDES.open(encoding="utf-8") as fh:
        sample.write_text("".join(next(fh) for _ in range(300)), encoding="utf-8")
    first = import_file(session, sample, actor="op", clock=clock)
    assert first.created == 300
    assert first.errors == []
    versions = _count(session, CatalogItemVersion)
    again = import_file(session, sample, actor="op", clock=clock)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 300)
    assert _count(session, CatalogItemVersion) == versions
    # a parsed item has its materials and limits
    row = session.scalars(
        select(CatalogItem).where(CatalogItem.code == "11440000006940116U2440102002002")
    ).one()
    assert [m["name"] for m in row.content["materials"]][:2] == [
        "广东省中小学地方课程教材审查登记表",
        "初审结果通知书",
    ]
    assert row.content["statutory_limit"] == {"value": 70, "unit": "working_day"}
    assert row.content["promised_limit"] == {"value": 18, "unit": "working_day"}
