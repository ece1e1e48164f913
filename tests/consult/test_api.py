"""The consultation JSON API over real HTTP: answers, refusals, retries, errors as problem+json, agents."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import bearer, make_account
from tongban.consult.models import ConsultTurn
from tongban.core.clock import FixedClock
from tongban.knowledge import service as knowledge
from tongban.knowledge.schemas import EntryContent

PROBLEM = "application/problem+json"
DEFER = (
    "受疫情影响生产经营出现严重困难的企业，可申请缓缴社会保险费，缓缴期限原则上不超过6个月，"
    "缓缴期间免收滞纳金。"
)


@pytest.fixture
def kb(session: Session, clock: FixedClock) -> None:
    content = EntryContent.model_validate(
        {
            "title": "关于阶段性缓缴社会保险费的通知",
            "kind": "policy",
            "sections": [{"heading": [], "text": DEFER}],
        }
    )
    knowledge.ingest_content(session, "defer-2020", content, actor="test", clock=clock, source="test")
    session.commit()


def test_consult_answers_with_citations(client: httpx.Client, kb: None) -> None:
    response = client.post("/api/v1/consult", json={"question": "企业缓缴社会保险费的期限最长多久？"})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["refused"] is False
    assert "6个月" in data["answer"]
    assert data["citations"][0]["id"] == "defer-2020"
    assert data["citations"][0]["title"] == "关于阶段性缓缴社会保险费的通知"
    assert "6个月" in data["citations"][0]["quote"]
    assert set(data) >= {"service_items", "next_questions", "conversation_id", "reason", "language"}


def test_consult_refusal_has_a_reason_and_a_way_forward(client: httpx.Client, kb: None) -> None:
    data = client.post(
        "/api/v1/consult", json={"question": "How much is the 2024 childcare subsidy?", "language": "en"}
    ).json()
    assert data["refused"] is True
    assert data["reason"] in ("not_covered", "no_support")
    assert "12345" in data["reason_text"]
    assert data["answer"] == ""
    # The way forward: the hotline's web form with the question prefilled.
    assert data["handoff_url"].startswith("/hotline/new?content=")
    assert "childcare" in data["handoff_url"]


def test_a_retried_request_is_one_turn(client: httpx.Client, kb: None, session: Session) -> None:
    headers = {"Idempotency-Key": "consult-retry-0001"}
    body = {"question": "企业缓缴社会保险费期间免收滞纳金吗？"}
    first = client.post("/api/v1/consult", json=body, headers=headers)
    second = client.post("/api/v1/consult", json=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert first.json() == second.json()
    conversation = first.json()["conversation_id"]
    turns = session.scalar(
        select(func.count()).select_from(ConsultTurn).where(ConsultTurn.conversation_id == conversation)
    )
    assert turns == 1


@pytest.mark.parametrize(
    "body",
    [
        {"question": ""},
        {"question": "x" * 501},
        {"question": "社保", "language": "fr"},
        {"question": "社保", "conversation_id": "not-an-id"},
        {"question": "社保", "domain": "Bad Code!"},
        {"question": "社保", "unexpected": 1},
        {},
    ],
)
def test_bad_input_is_a_problem_json_422(client: httpx.Client, body: dict[str, object]) -> None:
    response = client.post("/api/v1/consult", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM)


def test_unknown_agent_and_conversation_are_404(client: httpx.Client, kb: None) -> None:
    response = client.post("/api/v1/consult", json={"question": "社保缓缴", "domain": "no-such-agent"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM)
    response = client.get("/api/v1/consult/conversations/" + "0" * 32)
    assert response.status_code == 404


def test_conversation_history_is_returned_masked(client: httpx.Client, kb: None) -> None:
    data = client.post(
        "/api/v1/consult", json={"question": "我的手机13812345678，企业缓缴社会保险费期间免收滞纳金吗？"}
    ).json()
    turns = client.get(f"/api/v1/consult/conversations/{data['conversation_id']}").json()
    assert len(turns) == 1
    assert "13812345678" not in turns[0]["question"]
    assert "[手机号]" in turns[0]["question"]


def test_agents_are_configured_by_operators_only(
    client: httpx.Client, session: Session, clock: FixedClock
) -> None:
    make_account(session, clock, "consultop", ["consult_operator"])
    make_account(session, clock, "citizen9", [])
    session.commit()
    agent = {
        "code": "housing",
        "name": "住房咨询",
        "name_en": "Housing",
        "keywords": ["公积金", "住房"],
        "examples": ["住房公积金怎么提取？"],
        "scope": {"kinds": ["policy", "faq"]},
    }
    assert client.put("/api/v1/consult/agents/housing", json=agent).status_code == 401
    citizen = bearer(client, "citizen9")
    assert client.put("/api/v1/consult/agents/housing", json=agent, headers=citizen).status_code == 403
    operator = bearer(client, "consultop")
    mismatch = client.put("/api/v1/consult/agents/other", json=agent, headers=operator)
    assert mismatch.status_code == 422
    saved = client.put("/api/v1/consult/agents/housing", json=agent, headers=operator)
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"] == 1
    listed = client.get("/api/v1/consult/agents").json()
    assert [a["code"] for a in listed] == ["housing"]
    assert saved.headers["ETag"] == 'W/"housing-1"'
    stale = client.put(
        "/api/v1/consult/agents/housing",
        json={**agent, "name": "住房"},
        headers={**operator, "If-Match": 'W/"housing-0"'},
    )
    assert stale.status_code == 412
    assert stale.headers["content-type"].startswith(PROBLEM)
    disabled = client.put(
        "/api/v1/consult/agents/housing",
        json={**agent, "enabled": False},
        headers={**operator, "If-Match": saved.headers["ETag"]},
    ).json()
    assert disabled["version"] == 2
    assert client.get("/api/v1/consult/agents").json() == []  # the public sees enabled agents only
    assert [a["code"] for a in client.get("/api/v1/consult/agents", headers=operator).json()] == ["housing"]
