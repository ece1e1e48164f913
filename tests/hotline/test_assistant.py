"""The operator's assistant: the suggested category and its dispatch plan, similar answered tickets with
their replies (bounded, same level-1 category, newest first), grounded answers from the knowledge hub with
their sources, or an honest "nothing grounded"; who may ask; the JSON endpoint. The texts are written for
these tests (the shared data are evaluation-only)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.conftest import make_account
from tests.hotline.conftest import act, new_ticket
from tests.hotline.test_classifier import FakeEmbedder
from tongban.core import auth
from tongban.core.clock import FixedClock
from tongban.core.errors import Forbidden
from tongban.hotline import assistant as hl_assistant
from tongban.hotline import service
from tongban.knowledge import service as knowledge
from tongban.knowledge.schemas import EntryContent

H = dict[str, dict[str, str]]

ROAD = {
    "subject": "建国路路面塌陷",
    "body": "朝阳区建国路88号门口路面塌陷一个大坑，晚上很危险，请尽快修复。",
}
ROAD_AGAIN = {
    "subject": "建国路有坑",
    "body": "建国路88号附近路面塌陷出现大坑，夜里骑车很危险，希望尽快修复路面。",
}
WATER = {"subject": "停水", "body": "小区停水三天了没有通知，什么时候恢复供水？"}
PENSION = (
    "关于企业缓缴社会保险费的通知。受影响的企业可以申请缓缴养老保险费，缓缴期限最长不超过6个月，"
    "缓缴期间免收滞纳金。企业向社会保险经办机构提交缓缴申请，经审核同意后执行。"
)


def policy(title: str, text: str) -> EntryContent:
    return EntryContent.model_validate(
        {"title": title, "sections": [{"heading": [], "text": text}], "kind": "policy"}
    )


def publish_pension(session: Session, clock: FixedClock) -> None:
    """The knowledge entry the questions below are about, published."""
    knowledge.ingest_content(
        session,
        "pension-defer",
        policy("关于企业缓缴社会保险费的通知", PENSION),
        actor="t",
        clock=clock,
        source="t",
    )
    session.commit()


def pension_question(client: httpx.Client, hl: H) -> dict[str, Any]:
    """A citizen's question about the entry of :func:`publish_pension`, as a received ticket."""
    return new_ticket(
        client,
        hl["citizen.chen"],
        request_type="consultation",
        subject="缓缴社保",
        body="企业申请缓缴养老保险费，缓缴期限最长多久？",
        address="",
    )


def operator(session: Session, clock: FixedClock) -> auth.Principal:
    return make_account(session, clock, "op.assist", ["hotline_operator"])


def replied(client: httpx.Client, hl: H, text: dict[str, str], category: str, reply: str) -> str:
    """A ticket taken through to the unit's reply; its number."""
    ref = str(new_ticket(client, hl["citizen.chen"], **text)["ref"])
    act(client, hl["op.li"], ref, "classify", {"category_path": category})
    t = act(client, hl["op.li"], ref, "dispatch", {})
    who = {"roads": "u.roads", "water": "u.water", "labour": "u.labour", "cy": "u.cy"}[t["lead_unit"]]
    act(client, hl[who], ref, "sign")
    act(client, hl[who], ref, "reply", {"reply": reply})
    return ref


def ask(
    session: Session, principal: auth.Principal, ref: str, clock: FixedClock, **kw: Any
) -> hl_assistant.AssistantOut:
    holder = kw.pop("holder", knowledge.IndexHolder(None))
    return hl_assistant.assistant(session, principal, ref, embedder=None, holder=holder, clock=clock, **kw)


def test_similar_answered_tickets_come_with_their_replies_within_the_category(
    client: httpx.Client, hl: H, session: Session, clock: FixedClock
) -> None:
    road = replied(
        client, hl, ROAD_AGAIN, "城乡建设/市政设施/道路维修", "已安排施工队连夜修复路面，现已恢复通行。"
    )
    water = replied(client, hl, WATER, "城乡建设/供水/停水", "管道抢修完毕，已恢复供水。")
    # The same words under another level-1 category: found only while the category is unknown.
    other = replied(
        client, hl, ROAD, "劳动和社会保障/工资福利/拖欠工资", "经核实系误报，已联系诉求人说明情况。"
    )
    ref = str(new_ticket(client, hl["citizen.zhao"], **ROAD)["ref"])
    session.expire_all()
    op = operator(session, clock)

    before = ask(session, op, ref, clock)
    assert before.suggestion.model_id is None  # no classifier: a graceful "no model" suggestion
    assert before.category_path is None
    assert before.plan is None
    assert before.compared == 3
    found = [s.ref for s in before.similar]
    assert found == [other, road]  # the same words first
    assert water not in found  # nothing in common: below the threshold
    best = {s.ref: s for s in before.similar}[road]
    assert "修复路面" in best.reply_excerpt
    assert best.unit == "roads"
    assert best.unit_name == "市交通委员会"
    assert 0.3 < best.score <= 1

    act(client, hl["op.li"], ref, "classify", {"category_path": "城乡建设/市政设施/道路维修"})
    session.expire_all()
    after = ask(session, op, ref, clock)
    assert after.category_source == "ticket"
    assert after.plan is not None
    assert after.plan.lead_unit == "roads"
    assert [s.ref for s in after.similar] == [road]  # the other category's ticket is no candidate
    assert after.compared == 2  # the two answered tickets of 城乡建设
    assert after.similar[0].score == best.score


def test_the_candidates_are_bounded_and_the_newest_first(
    client: httpx.Client, hl: H, session: Session, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = replied(client, hl, ROAD_AGAIN, "城乡建设/市政设施/道路维修", "第一次：已修复路面。")
    clock.advance(dt.timedelta(hours=1))
    new = replied(client, hl, ROAD_AGAIN, "城乡建设/市政设施/道路维修", "第二次：已再次修复路面。")
    ref = str(new_ticket(client, hl["citizen.zhao"], **ROAD)["ref"])
    session.expire_all()
    op = operator(session, clock)
    monkeypatch.setattr(hl_assistant, "CANDIDATES", 1)
    out = ask(session, op, ref, clock)
    assert out.compared == 1
    assert [s.ref for s in out.similar] == [new]
    monkeypatch.setattr(hl_assistant, "CANDIDATES", 2000)
    out = ask(session, op, ref, clock)
    assert [s.ref for s in out.similar] == [new, old]  # equal scores: the newer first


def test_a_question_gets_a_grounded_answer_with_its_source_and_a_direct_answer_fits(
    client: httpx.Client, hl: H, session: Session, clock: FixedClock
) -> None:
    publish_pension(session, clock)
    question = pension_question(client, hl)
    session.expire_all()
    op = operator(session, clock)
    out = ask(session, op, question["ref"], clock)
    k = out.knowledge
    assert k.grounded, k
    assert "6个月" in k.answer
    assert k.citations
    assert k.citations[0].id == "pension-defer"
    assert k.citations[0].version == 1
    assert k.answer.replace(" ", "") in PENSION or k.citations[0].quote in PENSION
    assert out.direct_answer_fits

    # A complaint the knowledge says nothing about: no answer, and it says so.
    road = new_ticket(client, hl["citizen.chen"], **ROAD)
    session.expire_all()
    out = ask(session, op, road["ref"], clock)
    assert not out.knowledge.grounded
    assert out.knowledge.answer == ""
    assert out.knowledge.citations == []
    assert out.knowledge.reason in ("no_support", "not_covered")
    assert not out.direct_answer_fits
    # The operator may put another question to the hub.
    out = ask(session, op, road["ref"], clock, question="缓缴养老保险费的期限最长多久")
    assert out.knowledge.grounded
    assert out.knowledge.question == "缓缴养老保险费的期限最长多久"
    # Without a knowledge hub on the node: no answer, and why.
    out = ask(session, op, road["ref"], clock, holder=None)
    assert out.knowledge.reason == "no_index"
    assert not out.knowledge.grounded


def test_a_trained_classifier_suggests_and_the_plan_follows_the_suggestion(
    client: httpx.Client, hl: H, session: Session, clock: FixedClock
) -> None:
    rows = [
        {
            "id": 1,
            "subject": "路灯不亮",
            "body": "小区门口路灯坏了一个月，晚上很黑",
            "category": "城乡建设/市政设施/路灯照明",
        },
        {
            "id": 2,
            "subject": "路面坑洼",
            "body": "道路有大坑塌陷，车辆经过很危险，请修补路面",
            "category": "城乡建设/市政设施/道路维修",
        },
        {
            "id": 3,
            "subject": "路面塌陷",
            "body": "路面塌陷一个大坑，请尽快修复道路",
            "category": "城乡建设/市政设施/道路维修",
        },
        {
            "id": 4,
            "subject": "工资",
            "body": "公司拖欠工资三个月不发",
            "category": "劳动和社会保障/工资福利/拖欠工资",
        },
        {
            "id": 5,
            "subject": "欠薪",
            "body": "老板拖欠农民工工资",
            "category": "劳动和社会保障/工资福利/拖欠工资",
        },
    ]
    service.import_examples(session, rows, source="assistant-test", clock=clock)
    admin = make_account(session, clock, "hl.trainer", ["hotline_admin"])
    embedder = FakeEmbedder()
    service.train_model(session, admin, embedder=embedder, clock=clock)
    session.commit()
    ref = new_ticket(client, hl["citizen.chen"], **ROAD)["ref"]
    session.expire_all()
    op = operator(session, clock)
    out = hl_assistant.assistant(
        session, op, ref, embedder=embedder, holder=knowledge.IndexHolder(None), clock=clock
    )
    assert out.suggestion.model_id is not None
    assert out.suggestion.category
    assert out.category_source == "suggestion"
    assert out.category_path == (out.suggestion.path or out.suggestion.category)
    assert out.plan == service.plan_dispatch(session, out.category_path or "", "110105")


def test_only_operators_ask_and_only_about_open_tickets(
    client: httpx.Client, hl: H, session: Session, clock: FixedClock
) -> None:
    ref = str(new_ticket(client, hl["citizen.chen"], **ROAD)["ref"])
    unit = make_account(session, clock, "u.assist", ["hotline_unit:roads"])
    with pytest.raises(Forbidden):
        ask(session, unit, ref, clock)
    act(client, hl["op.li"], ref, "cancel", {"note": "测试电话"})
    session.expire_all()
    with pytest.raises(service.WrongStatus):
        ask(session, operator(session, clock), ref, clock)


def test_the_json_endpoint(client: httpx.Client, hl: H, session: Session, clock: FixedClock) -> None:
    road = replied(client, hl, ROAD_AGAIN, "城乡建设/市政设施/道路维修", "已修复路面。")
    ref = str(new_ticket(client, hl["citizen.zhao"], **ROAD)["ref"])
    r = client.get(f"/api/v1/tickets/{ref}/assistant", headers=hl["op.li"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ref"] == ref
    assert body["suggestion"]["model_id"] is None
    assert [s["ref"] for s in body["similar"]] == [road]
    assert body["similar"][0]["reply_excerpt"] == "已修复路面。"
    assert set(body["knowledge"]) >= {"grounded", "answer", "citations", "reason", "leads"}
    r = client.get(f"/api/v1/tickets/{ref}/assistant", params={"question": "路灯"}, headers=hl["op.li"])
    assert r.status_code == 200
    assert r.json()["knowledge"]["question"] == "路灯"
    for who, status in (("u.roads", 403), ("citizen.zhao", 403), ("ana.zhou", 403)):
        r = client.get(f"/api/v1/tickets/{ref}/assistant", headers=hl[who])
        assert r.status_code == status, (who, r.text)
    assert client.get(f"/api/v1/tickets/{ref}/assistant").status_code == 401
    r = client.get("/api/v1/tickets/20260302999/assistant", headers=hl["op.li"])
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    r = client.get(f"/api/v1/tickets/{ref}/assistant", params={"question": "x" * 301}, headers=hl["op.li"])
    assert r.status_code == 422
    act(client, hl["op.li"], road, "revisit", {"resolved": True, "satisfaction": 5})
    r = client.get(f"/api/v1/tickets/{road}/assistant", headers=hl["op.li"])
    assert r.status_code == 409
    assert r.json()["type"].endswith("ticket-wrong-status")


def test_many_at_once_scores_exactly_as_one_by_one() -> None:
    """The vectorised comparison of the similar tickets (bigram codes, cached between pages) gives the same
    Dice coefficients as :func:`service.text_similarity`, for Chinese, English, punctuation, one character
    and empty texts."""
    import random

    rng = random.Random(7)
    alphabet = "道路维修噪音扰民小区垃圾清运供水停电公交站台abcXYZ 12,。！_-"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 90))) for _ in range(400)]
    texts += ["", "a", "A", "。。", "ab", "道"]
    codes = [service.gram_codes(t) for t in texts]
    for query in [*texts[:40], "", "a", "道路 维修，噪音"]:
        got = service.similarities(service.gram_codes(query), codes)
        want = [service.text_similarity(query, t) for t in texts]
        assert got.tolist() == pytest.approx(want, abs=1e-12)
    assert service.similarities(service.gram_codes("道路"), []).size == 0


def test_a_kept_answer_follows_the_knowledge(
    client: httpx.Client, hl: H, session: Session, clock: FixedClock
) -> None:
    """Answers are kept between views of a ticket, but never past a change of the knowledge: a question
    the hub cannot answer is answered once an entry is published, and not after it is withdrawn."""
    holder = knowledge.IndexHolder(None)
    ticket = pension_question(client, hl)
    session.expire_all()
    op = operator(session, clock)
    first = ask(session, op, ticket["ref"], clock, holder=holder)
    assert not first.knowledge.grounded
    assert ask(session, op, ticket["ref"], clock, holder=holder).knowledge == first.knowledge

    publish_pension(session, clock)
    published = ask(session, op, ticket["ref"], clock, holder=holder).knowledge
    assert published.grounded
    assert "6个月" in published.answer

    admin = make_account(session, clock, "kb.admin", ["knowledge_reviewer"])
    knowledge.withdraw_entry(session, admin, "pension-defer", clock=clock, note="superseded")
    session.commit()
    withdrawn = ask(session, op, ticket["ref"], clock, holder=holder).knowledge
    assert not withdrawn.grounded
    assert withdrawn.citations == []


def test_the_hub_is_asked_on_its_own_only_while_a_direct_answer_is_possible(
    client: httpx.Client, hl: H, session: Session, clock: FixedClock
) -> None:
    publish_pension(session, clock)
    text = {"subject": "缓缴社保", "body": "企业申请缓缴养老保险费，缓缴期限最长多久？"}
    ref = str(new_ticket(client, hl["citizen.chen"], request_type="consultation", address="", **text)["ref"])
    session.expire_all()
    op = operator(session, clock)
    holder = knowledge.IndexHolder(None)
    assert ask(session, op, ref, clock, holder=holder).knowledge.grounded  # received: asked

    act(client, hl["op.li"], ref, "classify", {"category_path": "劳动和社会保障/工资福利/拖欠工资"})
    act(client, hl["op.li"], ref, "dispatch", {})
    session.expire_all()
    out = ask(session, op, ref, clock, holder=holder)
    assert out.status == "dispatched"
    assert out.knowledge.reason == "not_asked"
    assert not out.knowledge.grounded
    assert not out.direct_answer_fits
    # The operator's own question is answered at any time.
    asked = ask(session, op, ref, clock, holder=holder, question="缓缴养老保险费的期限最长多久").knowledge
    assert asked.grounded
    assert "6个月" in asked.answer
