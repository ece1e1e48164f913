"""The policy library over real HTTP: documents through their lifecycle (drafting, review, published,
amended, repealed) with four eyes and the knowledge hub; item versions whose rules and test cases are
checked before review; the calculator's explanations; the drafter's overlap check; bad input refused
with problem+json."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import yaml

from tests.policy.conftest import H
from tongban.policy import demo

PROBLEM = "application/problem+json"


def _doc(code: str, **extra: Any) -> dict[str, Any]:
    return {
        "code": code,
        "title": "示范市关于支持青年人才租房的通知",
        "level": "district",
        "department": "示范市朝阳区人力资源和社会保障局",
        "region_code": "110105",
        "issued_on": "2026-02-20",
        "body": (
            "第一条 为支持青年人才在本区就业，发放租房补贴。\n"
            "第二条 本区户籍、年满18周岁未满35周岁的人员可以申请。"
        ),
        **extra,
    }


def _path(code: str) -> str:
    return "/api/v1/policy/documents/" + quote(code, safe="")


def _item(**changes: Any) -> dict[str, Any]:
    """The shipped elderly allowance as a new item of the test document, changed as asked."""
    source = next(s for s in demo.item_sources() if "elderly-allowance" in s)
    item = yaml.safe_load(source)
    item.update({"id": "youth-rent", "document": "朝人社发〔2026〕1号", "stacking": None})
    item.update(changes)
    return {k: v for k, v in item.items() if v is not None}


def _publish_doc(client: httpx.Client, editor: H, reviewer: H, code: str, **extra: Any) -> None:
    assert (
        client.post("/api/v1/policy/documents", json=_doc(code, **extra), headers=editor).status_code == 201
    )
    assert client.post(_path(code) + "/submit", headers=editor).status_code == 200
    assert client.post(_path(code) + "/publish", headers=reviewer).status_code == 200


def test_the_public_sees_the_published_library_with_interpretations_and_items(
    client: httpx.Client, library: None
) -> None:
    listed = client.get("/api/v1/policy/documents").json()
    codes = {d["code"]: d["status"] for d in listed["documents"]}
    assert codes["示范市政发〔2026〕3号"] == "published"
    assert codes["示范市政发〔2025〕9号"] == "amended"  # the 2026 measures amend it
    doc = client.get(_path("示范市政发〔2026〕3号")).json()
    assert doc["amends"] == "示范市政发〔2025〕9号"
    assert [i["key"] for i in doc["items"]] == ["smb-rent-subsidy"]
    assert doc["items"][0]["tags"]["grant"] == ["fast_application"]  # the rent paid is the applicant's
    assert doc["interpretations"][0]["kind"] == "official"
    old = client.get(_path("示范市政发〔2025〕9号")).json()
    assert old["amended_by"] == "示范市政发〔2026〕3号"
    elderly = client.get("/api/v1/policy/items/elderly-allowance").json()
    assert elderly["tags"]["grant"] == ["automatic"]
    assert elderly["tags"]["region"] == ["110000"]
    assert [v["state"] for v in elderly["versions"]] == ["published"]
    found = client.get("/api/v1/policy/documents", params={"q": "高龄"}).json()
    assert [d["code"] for d in found["documents"]] == ["示范市民发〔2026〕7号"]


def test_a_document_goes_through_review_by_another_person_and_is_repealed(
    client: httpx.Client, editor: H, reviewer: H
) -> None:
    code = "朝人社发〔2026〕1号"
    created = client.post("/api/v1/policy/documents", json=_doc(code), headers=editor)
    assert created.status_code == 201, created.text
    assert client.get(_path(code)).status_code == 404  # drafts are not public
    etag = client.get(_path(code), headers=editor).headers["ETag"]
    stale = client.put(_path(code), json=_doc(code, summary="x"), headers={**editor, "If-Match": 'W/"x-99"'})
    assert stale.status_code == 412
    assert stale.headers["content-type"] == PROBLEM
    changed = client.put(
        _path(code), json=_doc(code, summary="青年人才租房补贴"), headers={**editor, "If-Match": etag}
    )
    assert changed.status_code == 200
    assert changed.json()["summary"] == "青年人才租房补贴"
    assert client.post(_path(code) + "/publish", headers=reviewer).status_code == 409  # not in review yet
    assert client.post(_path(code) + "/submit", headers=editor).status_code == 200
    assert client.post(_path(code) + "/publish", headers=editor).status_code == 403  # an editor cannot
    published = client.post(_path(code) + "/publish", headers=reviewer)
    assert published.status_code == 200
    assert published.json()["status"] == "published"
    assert client.get(_path(code)).json()["status"] == "published"
    # the knowledge hub knows it now
    entry = client.get("/api/v1/knowledge/entries/" + quote("policy:" + code, safe=""))
    assert entry.status_code == 200
    assert entry.json()["status"] == "published"
    # a published document is not edited: it is amended by another
    assert client.put(_path(code), json=_doc(code), headers=editor).status_code == 409
    # an item of it, then the document repealed: the item is retired
    proposed = client.post(
        "/api/v1/policy/items", json={"source": yaml.safe_dump(_item(), allow_unicode=True)}, headers=editor
    )
    assert proposed.status_code == 201, proposed.text
    assert (
        client.post(
            "/api/v1/policy/items/youth-rent/versions/1/publish", json={}, headers=reviewer
        ).status_code
        == 200
    )
    assert client.post(_path(code) + "/repeal", json={"note": ""}, headers=reviewer).status_code == 422
    repealed = client.post(_path(code) + "/repeal", json={"note": "政策到期"}, headers=reviewer)
    assert repealed.status_code == 200
    assert repealed.json()["status"] == "repealed"
    assert client.get("/api/v1/policy/items/youth-rent").json()["status"] == "retired"
    # and the public no longer finds it in the hub
    assert client.get("/api/v1/knowledge/entries/" + quote("policy:" + code, safe="")).status_code == 404


def test_an_author_does_not_publish_their_own_item_version(
    client: httpx.Client, library: None, editor: H, reviewer: H
) -> None:
    _publish_doc(client, editor, reviewer, "朝人社发〔2026〕1号")
    source = yaml.safe_dump(_item(), allow_unicode=True)
    assert client.post("/api/v1/policy/items", json={"source": source}, headers=reviewer).status_code == 201
    refused = client.post("/api/v1/policy/items/youth-rent/versions/1/publish", json={}, headers=reviewer)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == PROBLEM
    assert client.get("/api/v1/policy/items/youth-rent").status_code == 404  # not public before publishing


def test_rules_that_do_not_check_or_whose_cases_fail_are_refused_with_every_reason(
    client: httpx.Client, library: None, editor: H, reviewer: H
) -> None:
    _publish_doc(client, editor, reviewer, "朝人社发〔2026〕1号")
    cases: list[tuple[Any, str]] = [
        ("items: [", "not valid YAML"),
        (yaml.safe_dump(_item(version=2)), "version must be 1"),
        (yaml.safe_dump(_item(document="不存在〔2026〕9号")), "not a current document"),
        (yaml.safe_dump(_item(tests=[])), "at least one test case"),
        (
            yaml.safe_dump(_item(conditions=[{**_item()["conditions"][0], "variable": "no_such_fact"}])),
            "no_such_fact",
        ),
    ]
    wrong = _item()
    wrong["tests"][0]["expect"]["amount_fen"] = 50001  # the case says 500.01 yuan; the rule gives 500
    cases.append((yaml.safe_dump(wrong), "test case 'ninety-two'"))
    for source, reason in cases:
        response = client.post("/api/v1/policy/items", json={"source": source}, headers=editor)
        assert response.status_code == 422, (reason, response.text)
        assert response.headers["content-type"] == PROBLEM
        assert reason in response.json()["detail"], (reason, response.json()["detail"])
    assert (
        client.get("/api/v1/policy/items/youth-rent", headers=editor).status_code == 404
    )  # nothing half-made
    # a document must be published before its item
    assert (
        client.post("/api/v1/policy/documents", json=_doc("朝人社发〔2026〕2号"), headers=editor).status_code
        == 201
    )
    source = yaml.safe_dump(_item(id="youth-rent-2", document="朝人社发〔2026〕2号"), allow_unicode=True)
    assert client.post("/api/v1/policy/items", json={"source": source}, headers=editor).status_code == 201
    blocked = client.post("/api/v1/policy/items/youth-rent-2/versions/1/publish", json={}, headers=reviewer)
    assert blocked.status_code == 409
    assert "publish document" in blocked.json()["detail"]


def test_the_calculator_explains_every_condition_and_names_the_missing_data(
    client: httpx.Client, library: None
) -> None:
    ask = {"entity": "person", "facts": {"hukou_region": "110105", "birth_date": "1934-05-01"}}
    results = {r["key"]: r for r in client.post("/api/v1/policy/match", json=ask).json()["results"]}
    elderly = results["elderly-allowance"]
    assert elderly["result"] == "eligible"
    assert elderly["amount_fen"] == 50000
    assert elderly["automatic"]
    assert [c["outcome"] for c in elderly["conditions"]] == ["met", "met"]
    assert "示范市民发〔2026〕7号 第二条" in elderly["conditions"][0]["source"]
    disability = results["disability-living-subsidy"]
    assert disability["result"] == "undetermined"
    needs = {n["variable"]: n for n in disability["needs"]}
    assert needs["disability_certified"]["proof"] == "残联·残疾人证信息"
    # unknown facts are never defaulted: without the birth date the allowance is undetermined
    ask = {"entity": "person", "facts": {"hukou_region": "110105"}}
    again = {r["key"]: r for r in client.post("/api/v1/policy/match", json=ask).json()["results"]}
    assert again["elderly-allowance"]["result"] == "undetermined"
    assert [n["variable"] for n in again["elderly-allowance"]["needs"]] == ["birth_date"]
    # in English
    english = client.post("/api/v1/policy/match", json=ask, headers={"Accept-Language": "en"}).json()
    titles = {r["key"]: r["title"] for r in english["results"]}
    assert titles["elderly-allowance"] == "Allowance for the very old"
    # bad input: a wrong type, an unknown fact, a period no rule reads
    for facts in (
        {"birth_date": 1934},
        {"no_such": 1},
        {"monthly_income": {"1999-01": 100}},
        {"monthly_income": 100},
    ):
        bad = client.post("/api/v1/policy/match", json={"entity": "person", "facts": facts})
        assert bad.status_code == 422, facts
        assert bad.headers["content-type"] == PROBLEM
    fields = client.get("/api/v1/policy/calculator/enterprise").json()
    columns = [f["column"] for f in fields]
    assert "si_paid__p5" in columns
    household = [f["column"] for f in client.get("/api/v1/policy/calculator/household").json()]
    assert household == ["household_region"]  # the aggregates are asked per member, not given
    assert "size_class" not in columns


def test_the_overlap_check_finds_a_copied_text_and_a_planted_double_benefit(
    client: httpx.Client, library: None, editor: H
) -> None:
    original = client.get(_path("示范市民发〔2026〕7号")).json()
    draft = "示范市民政局关于发放长寿老人津贴的通知（征求意见稿）\n" + original["body"].replace(
        "高龄老年人", "长寿老人"
    )
    report = client.post("/api/v1/policy/overlap", json={"text": draft}, headers=editor).json()
    assert [(d["code"], d["kind"]) for d in report["documents"]] == [("示范市民发〔2026〕7号", "duplicate")]
    unrelated = client.post(
        "/api/v1/policy/overlap", json={"text": "第一条 为规范共享单车停放秩序，制定本办法。"}, headers=editor
    ).json()
    assert unrelated["documents"] == []
    # a planted item: the same people (city hukou, 85 and over) as the elderly allowance, no stacking group
    planted = _item(id="longevity-bonus", document="示范市民发〔2026〕7号")
    planted["conditions"][1]["min"] = 85
    report = client.post(
        "/api/v1/policy/overlap", json={"item": yaml.safe_dump(planted, allow_unicode=True)}, headers=editor
    ).json()
    found = {(o["a"], o["b"]): o for o in report["items"]}
    hit = found[("longevity-bonus", "elderly-allowance")]
    assert hit["verdict"] == "double_benefit"
    assert any(s.startswith("age: [85, ∞] ∩ [80, ∞]") for s in hit["shared"])
    # disjoint ages: no overlap; the same stacking group: settled
    planted["conditions"][1].update({"min": 18, "max": 35})
    report = client.post(
        "/api/v1/policy/overlap", json={"item": yaml.safe_dump(planted, allow_unicode=True)}, headers=editor
    ).json()
    assert report["items"] == []
    assert client.post("/api/v1/policy/overlap", json={"text": " "}, headers=editor).status_code == 422
    assert client.post("/api/v1/policy/overlap", json={"text": "x"}).status_code == 401
