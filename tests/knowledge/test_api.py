"""The knowledge JSON API over real HTTP: search, the governance workflow, errors as problem+json."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import bearer, make_account
from tongban.core.clock import FixedClock
from tongban.knowledge import service
from tongban.knowledge.api import start_warmup
from tongban.knowledge.models import KnowledgeEntry, KnowledgeVersion
from tongban.knowledge.schemas import EntryContent

PROBLEM = "application/problem+json"


def body(title: str, text: str, **extra: object) -> dict[str, object]:
    return {"title": title, "kind": "faq", "sections": [{"heading": ["办理"], "text": text}], **extra}


@pytest.fixture
def staff(session: Session, clock: FixedClock) -> None:
    make_account(session, clock, "keditor", ["knowledge_editor"])
    make_account(session, clock, "kreviewer", ["knowledge_reviewer"])
    session.commit()


def test_search_returns_ranked_results_with_scores_citation_and_source(
    client: httpx.Client, session: Session, clock: FixedClock
) -> None:
    for external_id, title, text in (
        ("faq-card", "社会保障卡补领", "社会保障卡遗失后，可持身份证到合作银行网点挂失并补领。"),
        ("faq-fund", "住房公积金提取", "购房、租房可申请提取住房公积金。"),
    ):
        content = EntryContent.model_validate(
            body(title, text, source=f"https://example.gov.cn/{external_id}")
        )
        service.ingest_content(session, external_id, content, actor="op", clock=clock, source="t")
    session.commit()
    response = client.get("/api/v1/search", params={"q": "社保卡丢了", "k": 5})
    assert response.status_code == 200
    data = response.json()
    top = data["results"][0]
    assert top["id"] == "faq-card"
    assert top["source"] == "https://example.gov.cn/faq-card"
    assert top["citation"] == {
        "external_id": "faq-card",
        "version": 1,
        "heading": "办理",
        "start": top["citation"]["start"],
        "end": top["citation"]["end"],
        "page": None,
    }
    assert {"passage_bm25", "entry_bm25", "semantic", "fused"} <= set(top["scores"])
    assert ["社保卡", "社会保障卡"] in data["expansions"]
    assert data["found"] is True
    only_policies = client.get("/api/v1/search", params={"q": "社保卡", "type": "policy"}).json()
    assert only_policies["results"] == []


def test_english_question_finds_chinese_content(
    client: httpx.Client, session: Session, clock: FixedClock
) -> None:
    for external_id, title, text in (
        (
            "visa",
            "外国人签证延期",
            "外国人在华停留期间需要延长签证停留期的，应当在签证停留期满七日前向出入境管理机构申请。",
        ),
        ("dog", "犬只登记", "养犬人应当为犬只办理登记，领取犬牌。"),
        ("fund", "住房公积金提取", "购房、租房可申请提取住房公积金。"),
    ):
        content = EntryContent.model_validate(body(title, text))
        service.ingest_content(session, external_id, content, actor="op", clock=clock, source="t")
    session.commit()
    data = client.get("/api/v1/search", params={"q": "How can a foreigner extend a visa?"}).json()
    assert data["results"][0]["id"] == "visa"


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({}, 422),
        ({"q": ""}, 422),
        ({"q": "护照", "k": 0}, 422),
        ({"q": "护照", "k": 500}, 422),
        ({"q": "护照", "type": "spaceship"}, 422),
        ({"q": "护照", "valid_on": "not-a-date"}, 422),
        ({"q": "x" * 501}, 422),
    ],
)
def test_bad_search_input_is_problem_json(
    client: httpx.Client, params: dict[str, object], status: int
) -> None:
    response = client.get("/api/v1/search", params=params)
    assert response.status_code == status
    assert response.headers["content-type"].startswith(PROBLEM)


def test_governance_workflow_over_http(client: httpx.Client, session: Session, staff: None) -> None:
    editor, reviewer = bearer(client, "keditor"), bearer(client, "kreviewer")
    created = client.post(
        "/api/v1/knowledge/entries",
        json={"external_id": "faq/tax-2026", "content": body("个税汇算", "每年三月至六月办理个税汇算。")},
        headers={**editor, "Idempotency-Key": "create-tax-2026"},
    )
    assert created.status_code == 201, created.text
    again = client.post(
        "/api/v1/knowledge/entries",
        json={"external_id": "faq/tax-2026", "content": body("个税汇算", "每年三月至六月办理个税汇算。")},
        headers={**editor, "Idempotency-Key": "create-tax-2026"},
    )
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert session.scalar(select(func.count()).select_from(KnowledgeEntry)) == 1
    # Anonymous callers and the public search do not see drafts.
    assert client.get("/api/v1/knowledge/entries/faq/tax-2026").status_code == 404
    assert client.get("/api/v1/search", params={"q": "个税汇算"}).json()["results"] == []
    assert (
        client.post("/api/v1/knowledge/entries/faq/tax-2026/submit", json={}, headers=editor).status_code
        == 200
    )
    denied = client.post("/api/v1/knowledge/entries/faq/tax-2026/publish", json={}, headers=editor)
    assert denied.status_code == 403
    assert denied.headers["content-type"].startswith(PROBLEM)
    published = client.post("/api/v1/knowledge/entries/faq/tax-2026/publish", json={}, headers=reviewer)
    assert published.status_code == 200
    assert published.json()["status"] == "published"
    assert client.get("/api/v1/search", params={"q": "个税汇算"}).json()["results"][0]["id"] == "faq/tax-2026"
    got = client.get("/api/v1/knowledge/entries/faq/tax-2026")
    etag = got.headers["etag"]
    update = {"content": body("个税汇算", "每年三月一日至六月三十日办理个税综合所得汇算。")}
    saved = client.put(
        "/api/v1/knowledge/entries/faq/tax-2026", json=update, headers={**editor, "If-Match": etag}
    )
    assert saved.status_code == 200
    stale = client.put(
        "/api/v1/knowledge/entries/faq/tax-2026",
        json={"content": body("个税汇算", "别的内容。")},
        headers={**editor, "If-Match": etag},
    )
    assert stale.status_code == 412
    diff = client.get(
        "/api/v1/knowledge/entries/faq/tax-2026/diff", params={"from": 1, "to": 2}, headers=editor
    )
    assert any(line.startswith("+") and "三十日" in line for line in diff.json()["unified"])
    versions = client.get("/api/v1/knowledge/entries/faq/tax-2026/versions", headers=editor).json()
    assert [v["state"] for v in versions] == ["draft", "published"]
    ops = client.get("/api/v1/knowledge/ops", headers=editor)
    assert ops.status_code == 200
    assert ops.json()["index"]["entries"] == 1


def test_invalid_entries_are_rejected_without_a_trace(
    client: httpx.Client, session: Session, staff: None
) -> None:
    editor = bearer(client, "keditor")
    for content in (
        body("", "正文"),
        body("标题", "正文", expires_on="2026-01-01", effective_from="2026-06-01"),
        {"title": "无正文", "sections": []},
        body("标题", "正文", kind="rumour"),
    ):
        response = client.post(
            "/api/v1/knowledge/entries", json={"external_id": "bad-1", "content": content}, headers=editor
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith(PROBLEM)
    catalogue_owned = client.post(
        "/api/v1/knowledge/entries",
        json={"external_id": "catalog:11440000X", "content": body("标题", "正文")},
        headers=editor,
    )
    assert catalogue_owned.status_code == 422
    assert session.scalar(select(func.count()).select_from(KnowledgeVersion)) == 0
    assert client.post("/api/v1/knowledge/entries", json={}, headers={}).status_code == 401


def test_lexicon_proposal_and_approval(client: httpx.Client, session: Session, staff: None) -> None:
    editor, reviewer = bearer(client, "keditor"), bearer(client, "kreviewer")
    bad = client.post("/api/v1/knowledge/lexicon", json={"kind": "synonym", "term": "狗证"}, headers=editor)
    assert bad.status_code == 422
    row = client.post(
        "/api/v1/knowledge/lexicon",
        json={"kind": "synonym", "term": "狗证", "canonical": "犬只登记证"},
        headers=editor,
    )
    assert row.status_code == 201
    row_id = row.json()["id"]
    assert client.post(f"/api/v1/knowledge/lexicon/{row_id}/approve", headers=editor).status_code == 403
    approved = client.post(f"/api/v1/knowledge/lexicon/{row_id}/approve", headers=reviewer)
    assert approved.json()["state"] == "approved"
    assert client.post("/api/v1/knowledge/lexicon/99999/approve", headers=reviewer).status_code == 404


def test_not_ready_until_the_index_is_built(
    client: httpx.Client, app: FastAPI, session: Session, clock: FixedClock
) -> None:
    content = EntryContent.model_validate(body("护照补办", "护照遗失后申请补发。"))
    service.ingest_content(session, "warm-1", content, actor="op", clock=clock, source="t")
    session.commit()
    app.state.knowledge_index_warming = True
    waiting = client.get("/readyz")
    assert waiting.status_code == 503
    assert "search index" in waiting.json()["detail"]
    start_warmup(app).join(timeout=120)
    assert client.get("/readyz").status_code == 200
    holder = app.state.knowledge_index
    assert holder.index is not None
    assert [e.external_id for e in holder.index.entries()] == ["warm-1"]
