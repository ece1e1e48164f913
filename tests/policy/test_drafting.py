"""The drafting aid: candidates from a policy text offline (over real HTTP), and with a (fake) language
model a proposal of the item's rules whose every number and quote is checked against the text."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import yaml
from sqlalchemy.orm import Session

from tests.fakes.llm_server import FakeLLM
from tests.policy.conftest import H
from tongban.core.llm import OpenAICompatible
from tongban.policy import demo, drafting
from tongban.policy import service as policy

TEXT = next(
    d["body"]
    for d in yaml.safe_load((demo._rules_dir() / ".." / "demo-library.yaml").read_text(encoding="utf-8"))[
        "documents"
    ]
    if d["code"] == "示范市民发〔2026〕7号"
)

PROPOSAL = {
    "id": "elderly-allowance-draft",
    "version": 1,
    "title": {"zh": "高龄老年人津贴", "en": "Allowance for the very old"},
    "entity": "person",
    "support": "权益",
    "document": "示范市民发〔2026〕7号",
    "conditions": [
        {
            "id": "hukou",
            "text": {"zh": "本市户籍"},
            "type": "region",
            "variable": "hukou_region",
            "codes": ["110000"],
            "source": {"document": "示范市民发〔2026〕7号", "article": "第二条", "quote": "本市户籍"},
        },
        {
            "id": "aged",
            "text": {"zh": "年满80周岁"},
            "type": "range",
            "variable": "age",
            "min": 80,
            "source": {
                "document": "示范市民发〔2026〕7号",
                "article": "第二条",
                "quote": "年满80周岁的老年人",
            },
        },
    ],
    "amount": {"expr": "CASE WHEN age >= 100 THEN 80000 WHEN age >= 90 THEN 50000 ELSE 10000 END"},
    "tests": [
        {
            "name": "ninety-two",
            "date": "2026-12-03",
            "inputs": {"hukou_region": "110101", "birth_date": "1934-05-01"},
            "expect": {"result": "eligible", "amount_fen": 50000},
        }
    ],
}


def test_candidates_are_extracted_from_the_text(client: httpx.Client, editor: H) -> None:
    found = client.post("/api/v1/policy/drafts", json={"text": TEXT}, headers=editor)
    assert found.status_code == 200, found.text
    out = found.json()
    assert out["mode"] == "rules"
    assert out["proposal"] is None
    kinds = {(c["kind"], c["value"]) for c in out["candidates"]}
    assert {("age_min", 80), ("age_min", 90), ("age_max", 99), ("amount", 10000), ("amount", 80000)} <= kinds
    assert ("region", "本市") in kinds
    assert ("audience", "老年人") in kinds
    first = next(c for c in out["candidates"] if c["kind"] == "age_min")
    assert TEXT[first["start"] : first["end"]] == "年满80周岁"
    assert client.post("/api/v1/policy/drafts", json={"text": TEXT}).status_code == 401
    cap = drafting.extract(
        "每户最高不超过五十万元，按已缴房租的百分之五十给予补贴，上年度营业收入增长20%以上"
    )
    numbers = [(c.kind, c.value) for c in cap if c.kind != "support"]
    assert numbers == [("cap", 50_000_000), ("percent", 50.0), ("growth", 20.0)]
    assert ("support", "奖补") in [(c.kind, c.value) for c in cap]


@pytest.fixture
def model() -> Iterator[tuple[FakeLLM, OpenAICompatible]]:
    with FakeLLM(api_key="sk-test") as fake:
        client = OpenAICompatible(fake.base_url, "fake-model", "sk-test", timeout_s=5)
        yield fake, client
        client.close()


def test_a_proposal_is_checked_number_by_number_and_quote_by_quote(
    session: Session, library: None, model: tuple[FakeLLM, OpenAICompatible]
) -> None:
    fake, client = model
    _, rules = policy.current_rules(session)
    fake.responder = lambda messages: "```yaml\n" + yaml.safe_dump(PROPOSAL, allow_unicode=True) + "```"
    good = drafting.propose(TEXT, model=client, rules=rules, entity="person")
    assert good.ok, (good.problems, good.unsupported_numbers, good.unquoted)
    assert "hukou_region" in fake.requests[-1]["messages"][0]["content"]  # the variables were given

    invented = yaml.safe_load(yaml.safe_dump(PROPOSAL))
    invented["conditions"][1]["min"] = 85
    invented["conditions"][0]["source"]["quote"] = "本市常住人口"
    fake.responder = lambda messages: yaml.safe_dump(invented, allow_unicode=True)
    bad = drafting.propose(TEXT, model=client, rules=rules, entity="person")
    assert not bad.ok
    assert bad.unsupported_numbers == ["conditions[1].min: 85"]
    assert bad.unquoted == ["hukou"]

    fake.responder = lambda messages: "items: [ this is not"
    broken = drafting.propose(TEXT, model=client, rules=rules)
    assert not broken.ok
    assert broken.problems
    unknown = yaml.safe_load(yaml.safe_dump(PROPOSAL))
    unknown["conditions"][1]["variable"] = "wealth"
    fake.responder = lambda messages: yaml.safe_dump(unknown, allow_unicode=True)
    assert any("wealth" in p for p in drafting.propose(TEXT, model=client, rules=rules).problems)
