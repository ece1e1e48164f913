"""Situation questions in the item schema: validation, dumps and hashes, CSV, and amending rows on import."""

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.orm import Session

from tests.factories import item, item_data
from tongban.catalog import service
from tongban.catalog.formats import CSV_COLUMNS, content_to_csv_row, read_items
from tongban.catalog.importer import import_file
from tongban.catalog.schemas import ItemContent
from tongban.core.auth import ANONYMOUS
from tongban.core.clock import FixedClock

SITUATIONS = [{"key": "first", "name": "首次申领"}, {"key": "lost", "name": "遗失补领", "name_en": "Lost"}]


def question(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "key": "held",
        "text": "您是否持有旧证？",
        "text_en": "Do you hold an old card?",
        "options": [
            {"key": "no", "label": "否", "situations": ["first"]},
            {"key": "lost", "label": "已遗失", "label_en": "Lost", "situations": ["lost", "lost"]},
        ],
    }
    data.update(overrides)
    return data


def test_an_item_with_situation_questions_validates() -> None:
    content = item(situations=SITUATIONS, situation_questions=[question()])
    q = content.situation_questions[0]
    assert [o.key for o in q.options] == ["no", "lost"]
    assert q.options[1].situations == ["lost"]  # duplicates dropped
    assert ItemContent.model_validate(content.model_dump(mode="json")) == content


@pytest.mark.parametrize(
    ("questions", "message"),
    [
        ([question(), question(text="又一个")], "situation question keys must be unique"),
        (
            [question(options=[{"key": "a", "label": "A", "situations": ["first"]}] * 2)],
            "option keys must be unique",
        ),
        (
            [
                question(
                    options=[
                        {"key": "a", "label": "A", "situations": ["first"]},
                        {"key": "b", "label": "B", "situations": ["moved"]},
                    ]
                )
            ],
            "option 'b' of question 'held' names unknown situation(s): moved",
        ),
        ([question(options=[{"key": "a", "label": "A", "situations": ["first"]}])], "at least 2 items"),
        (
            [
                question(
                    options=[
                        {"key": "a", "label": "A", "situations": []},
                        {"key": "b", "label": "B", "situations": ["first"]},
                    ]
                )
            ],
            "at least 1 item",
        ),
        ([question(key="Not A Slug")], "String should match pattern"),
    ],
)
def test_bad_situation_questions_are_rejected(questions: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationError) as failure:
        item(situations=SITUATIONS, situation_questions=questions)
    assert message in str(failure.value)


def test_questions_need_the_situations_they_name() -> None:
    with pytest.raises(ValidationError, match="unknown situation"):
        item(situation_questions=[question()])


def test_new_fields_left_empty_do_not_change_dumps_or_hashes() -> None:
    # Items stored before the fields existed keep their content hash: empty values are not dumped.
    content = item(situations=[{"key": "first", "name": "首次申领"}])
    dumped = content.model_dump(mode="json")
    assert "situation_questions" not in dumped
    assert "name_en" not in dumped["situations"][0]
    with_questions = item(situations=SITUATIONS, situation_questions=[question()])
    assert with_questions.model_dump(mode="json")["situation_questions"][0]["key"] == "held"
    assert service.content_hash(with_questions) != service.content_hash(item(situations=SITUATIONS))


def _write_csv(path: Path, contents: list[ItemContent]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(content_to_csv_row(c) for c in contents)
    return path


def test_csv_round_trip_keeps_the_questions(tmp_path: Path) -> None:
    contents = [
        item(situations=SITUATIONS, situation_questions=[question()]),
        item(code="TB-0002"),
    ]
    rows = list(read_items(_write_csv(tmp_path / "items.csv", contents)))
    assert [r.error for r in rows] == [None, None]
    assert [r.content for r in rows] == contents
    assert content_to_csv_row(contents[1])["situation_questions"] == ""


def test_import_amends_rows_and_reports_rows_it_cannot_amend(
    tmp_path: Path, session: Session, clock: FixedClock
) -> None:
    path = tmp_path / "items.jsonl"
    codes = ["TB-AMEND-1", "TB-AMEND-2"]
    path.write_text("\n".join(json.dumps(item_data(code=c), ensure_ascii=False) for c in codes) + "\n")

    def amend(content: ItemContent) -> ItemContent:
        if content.code == "TB-AMEND-2":
            raise ValueError("no situations for this one")
        return content.model_copy(update={"name_en": "Amended"})

    report = import_file(session, path, actor="op", clock=clock, amend=amend)
    assert report.created == 1
    assert [(e.line, e.code, e.reason) for e in report.errors] == [
        (2, "TB-AMEND-2", "no situations for this one")
    ]
    assert service.get_item(session, ANONYMOUS, "TB-AMEND-1").content.name_en == "Amended"
