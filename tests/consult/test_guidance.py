"""Situation guidance on the real database: one question at a time, skipped questions, personal checklists,
bad answers, unpublished items, English and Traditional Chinese; and the demo's situations supplement."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.conftest import make_account
from tests.factories import item
from tongban.catalog import service as catalog
from tongban.catalog.formats import guangdong_to_content
from tongban.catalog.importer import import_file
from tongban.catalog.schemas import ItemContent
from tongban.consult.guidance import ChecklistMaterial, GuidanceStep, guide, guide_item, items_with_situations
from tongban.core.clock import FixedClock
from tongban.core.errors import InvalidInput, NotFound
from tongban.demo import add_situations, situation_supplement

CODE = "4401RESIDENCE01"
Publish = Callable[[ItemContent], None]


def residence_permit(**overrides: Any) -> ItemContent:
    """居住证: first application, renewal or a lost card; two questions, the second not always needed."""
    data: dict[str, Any] = {
        "code": CODE,
        "name": "居住证申领",
        "name_en": "Residence permit",
        "audiences": ["natural_person"],
        "conditions": "在本市居住半年以上。",
        "materials": [
            {"name": "居住证申请表", "form": "original", "copies": 2},
            {"name": "居民身份证", "source": "e_licence", "source_ref": "居民身份证"},
            {
                "name": "社保缴纳记录",
                "source": "shared_data",
                "source_ref": "社保参保",
                "situations": ["first"],
            },
            {"name": "住所证明", "form": "copy", "situations": ["first", "renew"]},
            {"name": "原居住证", "form": "original", "situations": ["renew"]},
            {"name": "遗失声明", "situations": ["lost"], "note": "登报或网上声明"},
        ],
        "statutory_limit": {"value": 20, "unit": "working_day"},
        "promised_limit": {"value": 5, "unit": "working_day"},
        "charges_fee": False,
        "location": "天河区政务服务中心",
        "office_hours": "周一至周五 9:00-17:00",
        "consult_phone": "020-12345",
        "online_url": "https://example.gov.cn/residence",
        "situations": [
            {"key": "first", "name": "首次申领", "name_en": "First application"},
            {"key": "renew", "name": "有效期满换领", "name_en": "Renewal"},
            {"key": "lost", "name": "遗失补领", "extra_conditions": "须先声明原证作废。"},
        ],
        "situation_questions": [
            {
                "key": "held",
                "text": "您是否持有过本市居住证？",
                "text_en": "Have you held a residence permit here?",
                "options": [
                    {"key": "no", "label": "没有", "label_en": "No", "situations": ["first"]},
                    {"key": "yes", "label": "有", "label_en": "Yes", "situations": ["renew", "lost"]},
                ],
            },
            {
                "key": "why",
                "text": "为什么需要新证？",
                "text_en": "Why do you need a new one?",
                "options": [
                    {"key": "never", "label": "从未办过", "situations": ["first"]},
                    {
                        "key": "expired",
                        "label": "有效期满",
                        "label_en": "It expired",
                        "situations": ["renew"],
                    },
                    {"key": "lost", "label": "证件遗失", "label_en": "I lost it", "situations": ["lost"]},
                ],
            },
        ],
    }
    data.update(overrides)
    return item(**data)


@pytest.fixture
def publish(session: Session, clock: FixedClock) -> Publish:
    editor = make_account(session, clock, "editor1", ["catalog_editor"])
    reviewer = make_account(session, clock, "reviewer1", ["catalog_reviewer"])

    def _publish(content: ItemContent) -> None:
        catalog.create_item(session, editor, content, clock=clock)
        catalog.submit_for_review(session, editor, content.code, clock=clock)
        catalog.publish_item(session, reviewer, content.code, clock=clock)

    return _publish


@pytest.fixture
def permit(session: Session, publish: Publish) -> str:
    publish(residence_permit())
    return CODE


def _materials(step: GuidanceStep) -> dict[str, ChecklistMaterial]:
    assert step.checklist is not None
    return {m.name: m for m in step.checklist.materials}


def test_questions_come_one_at_a_time(session: Session, permit: str) -> None:
    first = guide(session, permit, {})
    assert first.item_name == "居住证申领"
    assert first.answered == []
    assert first.checklist is None
    assert first.question is not None
    assert first.question.key == "held"
    assert [(o.key, o.label) for o in first.question.options] == [("no", "没有"), ("yes", "有")]

    second = guide(session, permit, {"held": "yes"})
    assert second.answered == [("您是否持有过本市居住证？", "有")]
    assert second.checklist is None
    assert second.question is not None
    assert second.question.key == "why"
    # Only the options some remaining situation allows are offered.
    assert [o.key for o in second.question.options] == ["expired", "lost"]


def test_a_question_that_no_longer_tells_situations_apart_is_skipped(session: Session, permit: str) -> None:
    step = guide(session, permit, {"held": "no"})
    assert step.question is None
    assert step.checklist is not None
    assert step.checklist.situations == ["首次申领"]


def test_the_checklist_of_one_situation(session: Session, permit: str) -> None:
    step = guide(session, permit, {"held": "yes", "why": "lost"})
    assert step.question is None
    assert step.answered == [("您是否持有过本市居住证？", "有"), ("为什么需要新证？", "证件遗失")]
    checklist = step.checklist
    assert checklist is not None
    assert checklist.situations == ["遗失补领"]
    assert checklist.conditions == ["在本市居住半年以上。", "须先声明原证作废。"]
    materials = _materials(step)
    assert list(materials) == ["居住证申请表", "居民身份证", "遗失声明"]
    assert materials["居住证申请表"] == ChecklistMaterial(
        name="居住证申请表", copies=2, form="原件", required=True, supplied=False, note=None
    )
    assert materials["居民身份证"].supplied
    assert materials["遗失声明"].note == "登报或网上声明"
    assert checklist.time_limit == "承诺 5 个工作日（法定 20 个工作日）"
    assert checklist.place == "天河区政务服务中心"
    assert checklist.office_hours == "周一至周五 9:00-17:00"
    assert checklist.fees == ["免费"]
    assert checklist.phone == "020-12345"
    assert checklist.online_url == "https://example.gov.cn/residence"
    assert checklist.apply_url == f"/catalog/items/{CODE}"


def test_each_situation_gets_its_own_materials(session: Session, permit: str) -> None:
    first = _materials(guide(session, permit, {"held": "no"}))
    renew = _materials(guide(session, permit, {"held": "yes", "why": "expired"}))
    assert list(first) == ["居住证申请表", "居民身份证", "社保缴纳记录", "住所证明"]
    assert first["社保缴纳记录"].supplied
    assert first["住所证明"].required
    assert list(renew) == ["居住证申请表", "居民身份证", "住所证明", "原居住证"]
    step = guide(session, permit, {"held": "yes", "why": "expired"})
    assert step.checklist is not None
    assert step.checklist.conditions == ["在本市居住半年以上。"]


def test_answers_that_leave_several_situations_list_the_differing_materials_with_a_note(
    session: Session, publish: Publish
) -> None:
    # Only the first question: renewal and a lost card stay possible together.
    content = residence_permit(
        situation_questions=residence_permit().model_dump(mode="json")["situation_questions"][:1],
        charges_fee=True,
        fees=[{"name": "工本费", "amount_fen": 1050, "basis": "按规定"}, {"name": "邮寄费"}],
        promised_limit={"value": 0, "unit": "working_day"},
    )
    publish(content)
    step = guide(session, CODE, {"held": "yes"})
    checklist = step.checklist
    assert checklist is not None
    assert checklist.situations == ["有效期满换领", "遗失补领"]
    assert checklist.conditions == ["在本市居住半年以上。", "遗失补领：须先声明原证作废。"]
    materials = _materials(step)
    assert "社保缴纳记录" not in materials
    assert materials["居住证申请表"].required
    assert not materials["原居住证"].required
    assert materials["原居住证"].note == "仅适用于：有效期满换领"
    assert materials["住所证明"].note == "仅适用于：有效期满换领"
    assert materials["遗失声明"].note == "登报或网上声明；仅适用于：遗失补领"
    assert checklist.fees == ["工本费：10.50 元（按规定）", "邮寄费"]
    assert checklist.time_limit == "承诺即办（法定 20 个工作日）"
    english = guide(session, CODE, {"held": "yes"}, language="en").checklist
    assert english is not None
    assert english.fees == ["工本费: CNY 10.50 (按规定)", "邮寄费"]
    assert english.time_limit == "Promised: on the spot (statutory limit: 20 working days)"
    assert english.conditions[1] == "遗失补领: 须先声明原证作废。"
    assert {m.name: m.note for m in english.materials}["原居住证"] == "Only for: Renewal"


def test_an_item_without_situations_gives_the_checklist_at_once(session: Session, publish: Publish) -> None:
    publish(item(statutory_limit={"value": 1, "unit": "calendar_day"}, promised_limit=None))
    step = guide(session, "11110000TEST0001", {})
    assert step.question is None
    assert step.checklist is not None
    assert step.checklist.situations == []
    assert [(m.name, m.required, m.supplied) for m in step.checklist.materials] == [
        ("食品经营许可申请书", True, False),
        ("营业执照", True, True),
    ]
    assert step.checklist.fees == []  # the guide does not say
    assert step.checklist.time_limit == "法定 1 个自然日"
    english = guide(session, "11110000TEST0001", {}, language="en").checklist
    assert english is not None
    assert english.time_limit == "Statutory limit: 1 calendar day"


def test_situations_without_questions_get_one_implicit_question(session: Session, publish: Publish) -> None:
    publish(residence_permit(situation_questions=[]))
    step = guide(session, CODE, {})
    assert step.question is not None
    assert step.question.key == "situation"
    assert step.question.text == "您属于以下哪种情形？"
    assert [(o.key, o.label) for o in step.question.options] == [
        ("first", "首次申领"),
        ("renew", "有效期满换领"),
        ("lost", "遗失补领"),
    ]
    done = guide(session, CODE, {"situation": "renew"})
    assert done.answered == [("您属于以下哪种情形？", "有效期满换领")]
    assert list(_materials(done)) == ["居住证申请表", "居民身份证", "住所证明", "原居住证"]
    english = guide(session, CODE, {}, language="en").question
    assert english is not None
    assert english.text == "Which of these applies to you?"
    assert [o.label for o in english.options] == ["First application", "Renewal", "遗失补领"]


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"colour": "red"}, "has no question 'colour'"),
        ({"held": "maybe"}, "question 'held' has no option 'maybe'"),
        ({"held": "yes", "why": "never"}, "contradicts the earlier answers"),
    ],
)
def test_bad_answers_are_refused(
    session: Session, permit: str, answers: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        guide(session, permit, answers)


def test_an_unknown_language_is_refused(session: Session, permit: str) -> None:
    with pytest.raises(InvalidInput, match="unknown language"):
        guide(session, permit, {}, language="fr")


def test_only_published_items_are_guided(session: Session, clock: FixedClock, publish: Publish) -> None:
    with pytest.raises(NotFound):
        guide(session, "NO-SUCH-ITEM", {})
    editor = make_account(session, clock, "editor2", ["catalog_editor"])
    catalog.create_item(session, editor, residence_permit(code="4401DRAFT0001"), clock=clock)
    with pytest.raises(NotFound):
        guide(session, "4401DRAFT0001", {})
    publish(residence_permit())
    reviewer = make_account(session, clock, "reviewer2", ["catalog_reviewer"])
    catalog.withdraw_item(session, reviewer, CODE, clock=clock, note="outdated")
    with pytest.raises(NotFound):
        guide(session, CODE, {})


def test_items_with_situations_lists_published_items_with_two_or_more(
    session: Session, clock: FixedClock, publish: Publish
) -> None:
    publish(residence_permit(code="4401SITU00001", name="乙事项"))
    publish(residence_permit(code="4401SITU00002", name="甲事项", situation_questions=[]))
    publish(item(code="4401PLAIN0001"))
    publish(item(code="4401ONESITU01", situations=[{"key": "a", "name": "A"}]))
    editor = make_account(session, clock, "editor2", ["catalog_editor"])
    catalog.create_item(session, editor, residence_permit(code="4401DRAFT0001", name="丙事项"), clock=clock)
    expected = sorted([("4401SITU00001", "乙事项"), ("4401SITU00002", "甲事项")], key=lambda p: p[1])
    assert items_with_situations(session) == expected


def test_english(session: Session, permit: str) -> None:
    step = guide(session, permit, {"held": "yes"}, language="en")
    assert step.item_name == "Residence permit"
    assert step.answered == [("Have you held a residence permit here?", "Yes")]
    assert step.question is not None
    assert [(o.key, o.label) for o in step.question.options] == [
        ("expired", "It expired"),
        ("lost", "I lost it"),
    ]
    done = guide(session, permit, {"held": "no"}, language="en")
    checklist = done.checklist
    assert checklist is not None
    assert checklist.situations == ["First application"]
    assert checklist.fees == ["Free of charge"]
    assert checklist.time_limit == "Promised: 5 working days (statutory limit: 20 working days)"
    assert _materials(done)["住所证明"].form == "Copy"
    # An option without an English label falls back to Chinese.
    never = guide(session, permit, {"held": "no", "why": "never"}, language="en")
    assert never.answered[1] == ("Why do you need a new one?", "从未办过")


def test_traditional_chinese(session: Session, permit: str) -> None:
    step = guide(session, permit, {"held": "yes"}, language="zh-Hant")
    assert step.item_name == "居住證申領"
    assert step.answered == [("您是否持有過本市居住證？", "有")]
    assert step.question is not None
    assert step.question.key == "why"
    assert [(o.key, o.label) for o in step.question.options] == [
        ("expired", "有效期滿"),
        ("lost", "證件遺失"),
    ]
    checklist = guide(session, permit, {"held": "yes", "why": "lost"}, language="zh-Hant").checklist
    assert checklist is not None
    assert checklist.situations == ["遺失補領"]
    assert checklist.fees == ["免費"]
    assert checklist.time_limit == "承諾 5 個工作日（法定 20 個工作日）"
    assert checklist.conditions[1] == "須先聲明原證作廢。"
    assert [m.name for m in checklist.materials] == ["居住證申請表", "居民身份證", "遺失聲明"]
    assert checklist.materials[0].form == "原件"
    assert checklist.apply_url == f"/catalog/items/{CODE}"


# -- the demo's situations supplement ------------------------------------------------------------------------


def _demo_rows() -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    with (
        (resources.files("tongban.demo") / "guangdong_guides.jsonl.gz").open("rb") as raw,
        gzip.open(raw) as f,
    ):
        for line in f:
            row = json.loads(line)
            rows[row["TASK_CODE"]] = row
    return rows


def _final_steps(content: ItemContent, answers: Mapping[str, str] | None = None) -> list[GuidanceStep]:
    """The checklists of every path of answers through the item's questions."""
    answers = answers or {}
    step = guide_item(content, answers)
    if step.question is None:
        return [step]
    return [
        s for o in step.question.options for s in _final_steps(content, {**answers, step.question.key: o.key})
    ]


def test_the_demo_supplement_fits_the_demo_catalogue() -> None:
    rows = _demo_rows()
    supplement = situation_supplement()
    assert len(supplement) >= 6
    for code, entry in supplement.items():
        assert code in rows, code
        assert entry["name"] == rows[code]["matter_name"]
        assert entry["note"].strip()
        plain, _warnings = guangdong_to_content(rows[code])
        content = add_situations(plain)  # raises for a material the guide lacks or unknown keys
        keys = {s.key for s in content.situations}
        assert len(keys) >= 2
        assert all(s.name_en for s in content.situations)
        assert all(q.text_en and all(o.label_en for o in q.options) for q in content.situation_questions)
        assert any(m.situations for m in content.materials), code
        # Every path of answers ends in exactly one situation, every situation is reachable, and no two
        # situations give the same checklist.
        finals = _final_steps(content)
        assert all(s.checklist is not None and len(s.checklist.situations) == 1 for s in finals), code
        reached = [s.checklist.situations[0] for s in finals if s.checklist]
        assert sorted(set(reached)) == sorted(s.name for s in content.situations), code
        lists = {(tuple(s.checklist.conditions), tuple(s.checklist.materials)) for s in finals if s.checklist}
        assert len(lists) == len(keys), code


def test_the_demo_import_adds_the_situations(tmp_path: Path, session: Session, clock: FixedClock) -> None:
    rows = _demo_rows()
    supplement = situation_supplement()
    path = tmp_path / "guides.jsonl"
    lines = [json.dumps(rows[code], ensure_ascii=False) for code in supplement]
    lines.append(json.dumps(next(r for c, r in rows.items() if c not in supplement), ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_file(session, path, actor="demo", clock=clock, fmt="guangdong", amend=add_situations)
    assert (report.created, report.errors) == (len(supplement) + 1, [])
    listed = items_with_situations(session)
    assert sorted(code for code, _name in listed) == sorted(supplement)
    assert [name for _code, name in listed] == sorted(name for _code, name in listed)
    joint = "11440100007483180K3440109014004"
    step = guide(session, joint, {"kind": "renew"})  # the second question does not apply to a renewal
    assert step.checklist is not None
    assert [m.name for m in step.checklist.materials] == [
        "律师事务所执业许可证",
        "协议联营律师事务所延续申请书",
        "律师事务所执业许可证副本",
        "联营延续协议",
    ]
    # Importing the same file again changes nothing.
    again = import_file(session, path, actor="demo", clock=clock, fmt="guangdong", amend=add_situations)
    assert again.unchanged == len(supplement) + 1
