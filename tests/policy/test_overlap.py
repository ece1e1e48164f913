"""The overlap check (查重) on real texts and on planted items.

Documents: the 599 policy texts of ``shared/data/policy_qa/kb.jsonl`` (read at run time) against pairs
labelled by reading (``data/overlap_labels.jsonl``, guide beside it). Items: overlaps planted among copies
of the demo items, changed one dimension at a time."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import SHARED_DATA
from tongban.policy import demo, overlap
from tongban.policy.rules import RuleFile, RuleSet, check, parse_text

KB = SHARED_DATA / "policy_qa" / "kb.jsonl"
LABELS = Path(__file__).parent / "data" / "overlap_labels.jsonl"


@pytest.fixture(scope="module")
def library_pairs() -> dict[tuple[str, str], overlap.DocumentPair]:
    if not KB.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{KB} is missing: CI runs with ../shared beside the clone")
        pytest.skip("the shared data are not beside this checkout")
    texts = [json.loads(line) for line in KB.read_text(encoding="utf-8").splitlines()]
    index = overlap.DocumentIndex.build((t["docid"], t["text"]) for t in texts)
    assert len(index) == len(texts) == 599
    return {(p.a, p.b): p for p in index.pairs()}


def test_near_duplicate_documents_are_found_with_high_precision_and_recall(
    library_pairs: dict[tuple[str, str], overlap.DocumentPair],
) -> None:
    labels = {}
    for line in LABELS.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        labels[(min(r["a"], r["b"]), max(r["a"], r["b"]))] = r["label"]
    keys = list(labels)
    duplicates = overlap.precision_recall(
        [k for k, p in library_pairs.items() if p.kind == "duplicate"],
        [k for k in keys if labels[k] == "duplicate"],
        keys,
    )
    assert duplicates["true"] == 67
    assert duplicates["precision"] >= 0.95, duplicates
    assert duplicates["recall"] >= 0.95, duplicates
    overlapping = overlap.precision_recall(
        list(library_pairs), [k for k in keys if labels[k] in ("duplicate", "contained")], keys
    )
    assert overlapping["precision"] >= 0.85, overlapping
    assert overlapping["recall"] >= 0.95, overlapping
    # what is reported is exact, and the shorter text of a contained pair is named
    for p in library_pairs.values():
        assert p.jaccard >= overlap.JACCARD or (
            p.kind == "contained" and p.containment >= overlap.CONTAINMENT
        )
        assert p.shorter in (p.a, p.b)


def test_a_draft_is_checked_against_the_library() -> None:
    a = (
        "第一条 为支持中小微企业发展，对符合条件的企业给予房租补贴。"
        "第二条 补贴标准为已缴房租的一半，每户最高五十万元。"
    ) * 3
    b = (
        "关于发放高龄津贴的通知。本市户籍年满八十周岁的老年人按月领取津贴，由民政部门依据户籍信息自动发放。"
        * 3
    )
    others = "".join(
        f"第{n}项 {topic}：申请条件、办理材料与流程见附件{n}。"
        for n, topic in enumerate(
            [
                "就业创业补贴",
                "职业培训补贴",
                "稳岗返还",
                "创业担保贷款",
                "社保补贴",
                "见习补贴",
                "住房公积金缓缴",
                "医疗救助",
                "临时救助",
                "教育资助",
            ],
            1,
        )
    )
    compilation = "政策汇编\n" + b + "\n另附：" + others
    index = overlap.DocumentIndex.build([("A", a), ("C", compilation)])
    assert [(p.kind, p.b) for p in index.check(a.replace("一半", "百分之五十"))] == [("duplicate", "A")]
    contained = index.check(b)  # the draft is reproduced inside the compilation
    assert [(p.kind, p.shorter) for p in contained] == [("contained", "(draft)")]
    assert index.check("共享单车停放管理办法，规范停放秩序。") == []
    # layout and punctuation do not count
    assert overlap.shingles("第一条，补贴 标准") == overlap.shingles("第一条补贴标准")


def _rules(*changed: dict[str, Any]) -> RuleSet:
    variables = parse_text((Path(demo.__file__).parent / "data" / "rules" / "variables.yaml").read_text())
    items = [yaml.safe_load(s) for s in demo.item_sources()] + list(changed)
    parsed = parse_text(yaml.safe_dump({"items": items}, allow_unicode=True))
    return check(RuleFile(variables=list(variables.variables), items=list(parsed.items)))


def _copy(key: str, new_id: str, **changes: Any) -> dict[str, Any]:
    item = next(yaml.safe_load(s) for s in demo.item_sources() if yaml.safe_load(s)["id"] == key)
    item["id"] = new_id
    item.pop("stacking", None)
    item.update(changes)
    return item


def test_planted_item_overlaps_are_flagged_and_disjoint_ones_are_not() -> None:
    base = _copy("smb-rent-subsidy", "district-rent")
    base["conditions"][0]["codes"] = ["110105"]  # one district of the city
    other_region = _copy("smb-rent-subsidy", "shanghai-rent")
    other_region["conditions"][0]["codes"] = ["310000"]
    large_only = _copy("smb-rent-subsidy", "large-rent")
    large_only["conditions"][1]["values"] = ["large"]
    other_window = _copy("smb-rent-subsidy", "rent-2027", window={"from": "2027-01-01", "to": "2027-12-31"})
    stacked = _copy(
        "smb-rent-subsidy", "stacked-rent", stacking={"group": "rent-relief-2026", "rule": "highest"}
    )
    rules = _rules(base, other_region, large_only, other_window, stacked)
    library = [i for k, i in rules.items.items() if k == "smb-rent-subsidy"]
    found = {
        o.a: o
        for o in overlap.item_overlaps(
            [
                rules.items[k]
                for k in ("district-rent", "shanghai-rent", "large-rent", "rent-2027", "stacked-rent")
            ],
            against=library,
        )
        if o.b == "smb-rent-subsidy"
    }
    assert set(found) == {"district-rent", "stacked-rent"}
    assert found["district-rent"].verdict == "double_benefit"
    assert "region_code: 110105" in found["district-rent"].shared
    assert found["stacked-rent"].verdict == "settled"
    # items for another entity type or support type never overlap
    person = rules.items["elderly-allowance"]
    assert overlap.item_overlap(rules.items["district-rent"], person) is None
