"""What keeps runs, fast applications and appeals honest: an approval refused when the rules it read
changed; a fast application never overrides a fact the shared data hold; an appeal and an application of
one benefit never undo each other; a simulation sets a draft beside its published version without
stacking them; malformed input is refused, never a 500."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy.orm import Session

from tests.conftest import bearer, make_account
from tests.policy.conftest import H
from tongban.core.clock import FixedClock
from tongban.core.llm import ChatMessage
from tongban.policy import demo, drafting, overlap
from tongban.policy import service as policy
from tongban.policy.rules import RuleFile, check, parse_text

DATE = "2026-03-02"


@pytest.fixture
def staff(client: httpx.Client, session: Session, clock: FixedClock, library: None) -> dict[str, H]:
    make_account(session, clock, "guard.officer", ["policy_officer"])
    make_account(session, clock, "guard.approver", ["policy_approver"])
    session.commit()
    return {
        "officer": bearer(client, "guard.officer"),
        "approver": bearer(client, "guard.approver"),
        "reviewer": bearer(client, "policy.reviewer"),
    }


@pytest.fixture
def snapshot(client: httpx.Client, staff: dict[str, H]) -> str:
    name = f"guard-{uuid.uuid4().hex[:10]}"
    body = {"name": name, "persons": 3000, "enterprises": 3000, "as_of": "2026-03-01", "seed": 9}
    assert (
        client.post("/api/v1/policy/snapshots/synthetic", json=body, headers=staff["officer"]).status_code
        == 201
    )
    return name


def test_an_approval_is_refused_when_an_item_was_retired_since(
    client: httpx.Client, staff: dict[str, H], snapshot: str
) -> None:
    run = client.post(
        "/api/v1/policy/runs",
        json={"entity": "person", "snapshot": snapshot, "date": DATE},
        headers=staff["officer"],
    ).json()
    retired = client.post(
        "/api/v1/policy/items/elderly-allowance/retire",
        json={"note": "并入新政策"},
        headers=staff["reviewer"],
    )
    assert retired.status_code == 200
    refused = client.post(
        f"/api/v1/policy/runs/{run['id']}/decision", json={"approve": True}, headers=staff["approver"]
    )
    assert refused.status_code == 409
    assert "elderly-allowance" in refused.json()["detail"]
    twice = client.post(
        "/api/v1/policy/runs",
        json={"entity": "person", "snapshot": snapshot, "items": ["disability-living-subsidy"] * 2},
        headers=staff["officer"],
    )
    assert twice.status_code == 422


def test_a_fast_application_never_replaces_a_fact_the_shared_data_hold(
    session: Session, library: None
) -> None:
    _, rules = policy.current_rules(session)
    item = rules.items["disability-living-subsidy"]
    # registered, certified, and "poor" unknown: the income is on file, the allowance register is not
    asked = policy._application_columns(rules, item, "TTU", {"monthly_income": 300000, "low_income": None})
    assert "monthly_income" not in asked
    assert "low_income" in asked
    household = rules.items["household-hardship-grant"]
    assert policy._application_columns(rules, household, "TUU", {"household_region": "110105"}) == set()


def test_a_simulation_does_not_stack_the_draft_on_its_published_version(
    client: httpx.Client, staff: dict[str, H], snapshot: str
) -> None:
    same = yaml.safe_load(next(s for s in demo.item_sources() if "smb-rent-subsidy" in s))
    out = client.post(
        "/api/v1/policy/simulations",
        json={"source": yaml.safe_dump(same, allow_unicode=True), "snapshot": snapshot, "date": DATE},
        headers=staff["officer"],
    ).json()
    assert out["published"]["cost_fen"] > 0
    assert out["draft"] == out["published"]


def test_malformed_model_output_and_mixed_dates_are_reported_not_crashed(
    session: Session, library: None
) -> None:
    _, rules = policy.current_rules(session)

    class Model:
        name = "stub"

        def __init__(self, reply: str) -> None:
            self.reply = reply

        def complete(self, messages: list[ChatMessage], **_: object) -> str:
            return self.reply

        def stream(self, messages: list[ChatMessage], **_: object) -> object:
            return iter([self.reply])

    for reply in ("conditions: just words", "conditions: [1, 2]", "conditions: [{source: a string}]"):
        proposal = drafting.propose("第一条 年满80周岁。", model=Model(reply), rules=rules)  # type: ignore[arg-type]
        assert not proposal.ok
    variables = parse_text((Path(demo.__file__).parent / "data" / "rules" / "variables.yaml").read_text())
    base = yaml.safe_load(next(s for s in demo.item_sources() if "smb-rent-subsidy" in s))
    a = {
        **base,
        "id": "young-a",
        "stacking": None,
        "conditions": [
            *base["conditions"],
            {
                "id": "young",
                "text": {"zh": "成立不满3年"},
                "type": "range",
                "variable": "registered_on",
                "min": "2024-01-01",
                "source": {"article": "第二条"},
            },
        ],
    }
    b = {
        **a,
        "id": "young-b",
        "conditions": [
            *base["conditions"],
            {
                "id": "young",
                "text": {"zh": "成立不满3年"},
                "type": "range",
                "variable": "registered_on",
                "min": dt.date(2023, 6, 1),
                "source": {"article": "第二条"},
            },
        ],
    }
    for item in (a, b):
        item.pop("stacking")
    parsed = parse_text(yaml.safe_dump({"items": [a, b]}, allow_unicode=True))
    checked = check(RuleFile(variables=list(variables.variables), items=list(parsed.items)))
    found = overlap.item_overlaps([checked.items["young-a"]], against=[checked.items["young-b"]])
    assert [(o.a, o.b, o.verdict) for o in found] == [("young-a", "young-b", "double_benefit")]
