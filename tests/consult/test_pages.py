"""The portal's chat (问) over real HTTP: the page in both languages, the form post without JavaScript,
input errors, the Server-Sent Events stream, and a real browser with JavaScript on and off.

Knowledge is ingested (and so published) through the knowledge hub's own service; ids carry a random
suffix so that no test depends on what another one left behind.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.conftest import csrf, make_account
from tests.web import conftest as web
from tests.web.test_accessibility import AXE, TAGS
from tongban.consult import service as consult_service
from tongban.consult.pages import answer_pieces, item_url, safe_link
from tongban.consult.schemas import AgentIn
from tongban.core.clock import FixedClock
from tongban.knowledge import service as knowledge
from tongban.knowledge.schemas import EntryContent

DEFER = (
    "人力资源社会保障部 财政部 税务总局关于阶段性减免企业社会保险费的通知。"
    "受疫情影响生产经营出现严重困难的企业，可申请缓缴社会保险费，缓缴期限原则上不超过6个月，"
    "缓缴期间免收滞纳金。企业可通过当地社会保险经办机构网上服务平台提交缓缴申请，经审核同意后执行。"
)
RENT = (
    "成都市关于减免中小企业房租的通知。对承租国有企业经营性房产的中小企业，免收2月份房租，"
    "3月、4月两个月房租减半收取。申请时须提交营业执照复印件和租赁合同。"
)
SCRIPTED = (
    "电动自行车登记管理办法。购买电动自行车后，应当在30日内到公安交通管理部门办理登记"
    "<script>alert(1)</script>，登记时须提交购车发票和产品合格证。"
)
browser = web.browser  # the shared Chromium fixture (Debian's), for the browser tests below

DEFER_Q = "受疫情影响的企业缓缴社会保险费，缓缴期限最长多久？"
REFUSED_Q = "拉萨市对中小企业房租有什么减免政策？"


def _policy(title: str, text: str) -> EntryContent:
    return EntryContent.model_validate(
        {"title": title, "kind": "policy", "sections": [{"heading": [], "text": text}]}
    )


@pytest.fixture
def kb(session: Session, clock: FixedClock) -> dict[str, str]:
    """Three published policies; their ids by short name."""
    uid = uuid.uuid4().hex[:8]
    ids = {"defer": f"policy/defer-{uid}", "rent": f"policy/rent-{uid}", "scripted": f"policy/ebike-{uid}"}
    for key, text in (("defer", DEFER), ("rent", RENT), ("scripted", SCRIPTED)):
        knowledge.ingest_content(
            session, ids[key], _policy(text.split("。")[0], text), actor="test", clock=clock, source="test"
        )
    ids["item"] = f"T{uid}"
    item = EntryContent.model_validate(
        {
            "title": "企业社会保险费缓缴申请",
            "kind": "service_item",
            "sections": [{"heading": [], "text": "受疫情影响的企业申请缓缴社会保险费。"}],
        }
    )
    knowledge.ingest_content(session, f"catalog:T{uid}", item, actor="test", clock=clock, source="test")
    session.commit()
    return ids


def _post(client: httpx.Client, path: str = "/consult", **fields: str) -> httpx.Response:
    token = csrf(client.get("/consult").text)
    return client.post(path, data={"csrf_token": token, **fields})


def _events(body: str) -> list[tuple[str, Any]]:
    events = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


# --- the page ----------------------------------------------------------------------------------------


def test_the_page_in_chinese_and_english(client: httpx.Client, session: Session, clock: FixedClock) -> None:
    page = client.get("/consult")
    assert page.status_code == 200
    assert '<html lang="zh-Hans">' in page.text
    assert "<h1>政务服务咨询</h1>" in page.text
    assert 'aria-live="polite"' in page.text
    assert '<label for="question">' in page.text
    assert 'action="/consult"' in page.text
    assert 'value="zh-Hans" lang="zh-Hans" selected' in page.text
    assert '<script src="/static/consult.js" defer>' in page.text
    assert 'href="/consult"' in client.get("/").text  # the portal's navigation links here

    english = client.get("/consult", params={"lang": "en"})
    assert '<html lang="en">' in english.text
    assert "<h1>Ask about government services</h1>" in english.text
    assert 'action="/consult?lang=en"' in english.text  # the answer comes back in English too
    assert 'value="en" lang="en" selected' in english.text
    assert client.get("/static/consult.js").status_code == 200


NEXT_Q = "企业缓缴社会保险费期间免收滞纳金吗？"


@pytest.fixture
def agents(session: Session, clock: FixedClock) -> None:
    """An enabled social-insurance agent with example questions, and a disabled housing one."""
    operator = make_account(session, clock, f"op{uuid.uuid4().hex[:8]}", ["admin"])
    for code, enabled in (("shebao", True), ("zhufang", False)):
        data = AgentIn(
            code=code,
            name=f"{code}助手",
            name_en=f"{code} helper",
            keywords=["社会保险", "缓缴"] if enabled else ["公积金"],
            examples=[NEXT_Q, "怎么提交缓缴申请？"] if enabled else [],
            enabled=enabled,
        )
        consult_service.save_agent(session, operator, data, clock=clock)
    session.commit()


def test_the_topic_choice_lists_enabled_agents(client: httpx.Client, agents: None) -> None:
    page = client.get("/consult").text
    assert '<option value="shebao" >shebao助手</option>' in page
    assert "zhufang" not in page
    assert "shebao helper" in client.get("/consult", params={"lang": "en"}).text
    # a topic that is not offered is an input error, not a server error
    response = _post(client, question="社保卡怎么补办？", domain="zhufang")
    assert response.status_code == 422
    assert 'aria-describedby="domain-error"' in response.text


def test_next_questions_are_buttons_that_ask_them(
    client: httpx.Client, kb: dict[str, str], agents: None
) -> None:
    page = _post(client, question=DEFER_Q, domain="shebao").text
    assert f'<button type="submit">{NEXT_Q}</button>' in page
    assert f'<input type="hidden" name="question" value="{NEXT_Q}">' in page
    assert '<input type="hidden" name="domain" value="shebao">' in page
    conversation = re.search(r'name="conversation_id" value="([0-9a-f]{32})"', page)
    assert conversation
    follow = _post(client, question=NEXT_Q, domain="shebao", conversation_id=conversation.group(1))
    assert follow.status_code == 200
    assert "滞纳金" in follow.text


# --- the form post (no JavaScript) -------------------------------------------------------------------


def test_a_form_post_is_answered_with_its_sources(client: httpx.Client, kb: dict[str, str]) -> None:
    response = _post(client, question=DEFER_Q, language="zh-Hans")
    assert response.status_code == 200, response.text
    page = response.text
    assert "6个月" in page
    assert f'href="/knowledge/{kb["defer"]}"' in page
    assert "<blockquote" in page
    assert "第1版" in page
    assert f'href="/catalog/items/{kb["item"]}"' in page  # a suggested service item
    # the conversation continues: its id is in the form, and the follow-up shows the first turn
    conversation = re.search(r'name="conversation_id" value="([0-9a-f]{32})"', page)
    assert conversation
    follow = _post(client, question="需要提交什么申请？", conversation_id=conversation.group(1))
    assert follow.status_code == 200
    assert DEFER_Q in follow.text  # the earlier turn
    assert follow.text.count('class="group turn') == 2
    # a page opened with the id shows the conversation; an unknown or malformed id starts afresh
    again = client.get("/consult", params={"conversation_id": conversation.group(1)}).text
    assert DEFER_Q in again
    assert f'value="{conversation.group(1)}"' in again
    for other in ("0" * 32, "not-an-id"):
        fresh = client.get("/consult", params={"conversation_id": other})
        assert fresh.status_code == 200
        assert 'name="conversation_id" value=""' in fresh.text


def test_an_expired_conversation_starts_afresh(
    client: httpx.Client, kb: dict[str, str], clock: FixedClock
) -> None:
    page = _post(client, question=DEFER_Q).text
    conversation = re.search(r'name="conversation_id" value="([0-9a-f]{32})"', page)
    assert conversation
    clock.advance(dt.timedelta(minutes=31))
    old = client.get("/consult", params={"conversation_id": conversation.group(1)}).text
    assert DEFER_Q not in old
    assert 'name="conversation_id" value=""' in old
    follow = _post(client, question="成都市中小企业房租怎么减免？", conversation_id=conversation.group(1))
    assert follow.status_code == 200
    assert DEFER_Q not in follow.text
    assert conversation.group(1) not in follow.text


def test_traditional_chinese_answers(client: httpx.Client, kb: dict[str, str]) -> None:
    page = _post(client, question="企業緩繳社會保險費期間，滯納金怎麼規定？", language="zh-Hant").text
    assert '<p class="prose" lang="zh-Hant">' in page
    assert 'value="zh-Hant" lang="zh-Hant" selected' in page


def test_quoted_passages_are_escaped(client: httpx.Client, kb: dict[str, str]) -> None:
    response = _post(client, question="购买电动自行车后多少日内要办理登记？")
    assert response.status_code == 200
    page = response.text
    assert f'href="/knowledge/{kb["scripted"]}"' in page
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_refusal_shows_the_reason_and_a_way_forward(client: httpx.Client, kb: dict[str, str]) -> None:
    page = _post(client, question=REFUSED_Q).text
    assert "拉萨" in page
    assert "12345" in page  # the hotline hand-off
    assert "可以换个说法" in page  # the rephrasing hint, shown as advice…
    assert 'value="可以换个说法' not in page  # …not as a question to send
    assert "<blockquote" not in page

    english = _post(client, "/consult?lang=en", question="What medicine should I take for a fever?").text
    assert "medical advice" in english


@pytest.mark.parametrize(("question", "message"), [("", "请输入您的问题。"), ("问" * 501, "501")])
def test_bad_input_is_shown_on_the_page(client: httpx.Client, question: str, message: str) -> None:
    response = _post(client, question=question)
    assert response.status_code == 422
    page = response.text
    assert message in page
    assert 'id="question-error"' in page
    assert 'aria-describedby="question-hint question-error"' in page
    assert 'aria-invalid="true"' in page
    assert '<a href="#question">' in page  # the summary links to the field
    assert page.count("<title>错误：") == 1


def test_a_form_post_without_csrf_is_refused(client: httpx.Client) -> None:
    client.get("/consult")
    assert client.post("/consult", data={"question": DEFER_Q}).status_code == 403
    assert client.post("/consult/stream", data={"question": DEFER_Q}).status_code == 403


# --- streaming ---------------------------------------------------------------------------------------


def test_the_stream_sends_meta_pieces_and_the_whole_answer(client: httpx.Client, kb: dict[str, str]) -> None:
    response = _post(client, "/consult/stream", question=DEFER_Q)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response.text)
    names = [name for name, _ in events]
    assert names[0] == "meta"
    assert names[-1] == "done"
    assert names.count("delta") >= 1
    assert set(names[1:-1]) == {"delta"}
    meta, done = events[0][1], events[-1][1]
    assert meta["refused"] is False
    assert meta["conversation_id"] == done["conversation_id"]
    assert "".join(data for name, data in events if name == "delta") == done["answer"]
    assert "6个月" in done["answer"]
    assert done["citations"][0]["id"] == kb["defer"]


def test_the_stream_of_a_refusal_and_of_bad_input(client: httpx.Client, kb: dict[str, str]) -> None:
    events = _events(_post(client, "/consult/stream", question=REFUSED_Q).text)
    assert [name for name, _ in events] == ["meta", "done"]
    assert events[0][1]["refused"] is True
    assert "12345" in events[-1][1]["reason_text"]

    bad = _post(client, "/consult/stream", question="  ")
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"


def test_answer_pieces_are_clauses_that_join_to_the_answer() -> None:
    for text in (DEFER, "短。", "", "没有标点" * 20, "a, b. " * 30, "第一句。\n第二句，很短。"):
        pieces = answer_pieces(text)
        assert "".join(pieces) == text
        assert all(0 < len(p) <= 30 for p in pieces)
    assert len(answer_pieces(DEFER)) > 3
    rng = random.Random(7)
    for _ in range(300):
        text = "".join(rng.choice("政务服务，。、a ;\n") for _ in range(rng.randrange(120)))
        pieces = answer_pieces(text)
        assert "".join(pieces) == text
        assert all(0 < len(p) <= 30 for p in pieces)


def test_links_built_for_the_page() -> None:
    assert item_url("11/22") == "/catalog/items/11%2F22"
    assert safe_link("javascript:alert(1)") is None
    assert safe_link("//evil.example") is None
    assert safe_link("https://12345.example/?q=1") == "https://12345.example/?q=1"


# --- a real browser ----------------------------------------------------------------------------------


@pytest.mark.browser
def test_the_answer_streams_in_with_javascript(
    browser: Any, base_url: str, kb: dict[str, str], agents: None
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto(base_url + "/consult")
    page.get_by_label("您的问题", exact=True).fill(DEFER_Q)
    page.get_by_role("button", name="提问").click()
    live = page.locator("#consult-live")
    expect(live).to_contain_text("6个月")
    expect(live.locator("blockquote")).to_have_count(1)
    expect(live.get_by_role("link", name="人力资源社会保障部")).to_have_attribute(
        "href", f"/knowledge/{kb['defer']}"
    )
    assert page.url == base_url + "/consult"  # no page load: the answer came through the stream
    assert posts == [base_url + "/consult/stream"]
    conversation = page.locator("#consult-form input[name=conversation_id]").input_value()
    assert re.fullmatch(r"[0-9a-f]{32}", conversation)
    assert page.get_by_label("您的问题", exact=True).input_value() == ""

    # a second question in the same conversation, refused, with the hotline
    page.get_by_label("您的问题", exact=True).fill(REFUSED_Q)
    page.get_by_role("button", name="提问").click()
    expect(live.locator("article")).to_have_count(2)
    expect(live.locator("article").nth(1)).to_contain_text("12345")
    assert posts[-1] == base_url + "/consult/stream"

    # a suggested next question is asked with one click, streamed as well
    live.locator("article").first.get_by_role("button", name=NEXT_Q).click()
    expect(live.locator("article")).to_have_count(3)
    expect(live.locator("article").nth(2).locator("blockquote").first).to_be_visible()
    assert posts[-1] == base_url + "/consult/stream"
    assert page.url == base_url + "/consult"
    context.close()


@pytest.mark.browser
def test_the_answer_comes_by_form_post_without_javascript(
    browser: Any, base_url: str, kb: dict[str, str]
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(base_url + "/consult?lang=en")
    page.get_by_label("Your question", exact=True).fill(DEFER_Q)
    page.get_by_role("button", name="Ask", exact=True).click()
    expect(page.locator("#consult-live")).to_contain_text("6个月")
    expect(page.locator("#consult-live blockquote")).to_have_count(1)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    context.close()


def _violations(browser: Any, url: str, question: str | None, script: bool) -> list[str]:
    context = browser.new_context(bypass_csp=True)  # to inject axe
    if not script:  # the page as a browser without JavaScript gets it: answers come by form post
        context.route("**/static/consult.js", lambda route: route.abort())
    page = context.new_page()
    page.goto(url)
    if question is not None:
        page.locator("#question").evaluate("(el) => el.removeAttribute('required')")  # reach the 422
        page.locator("#question").fill(question)
        page.locator("#consult-form button[type=submit]").click()
        page.wait_for_function(
            "() => document.querySelector('#errors, #consult-live article .note, #consult-live blockquote')"
            " && !document.querySelector('#consult-form button[type=submit]').hasAttribute('aria-disabled')"
        )
    page.add_script_tag(content=AXE)
    result = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS
    )
    context.close()
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {json.dumps([n['target'] for n in v['nodes']][:3])}"
        for v in result["violations"]
    ]


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["zh-Hans", "en"])
@pytest.mark.parametrize(
    ("question", "script"),
    [(None, True), (DEFER_Q, True), (DEFER_Q, False), (REFUSED_Q, True), (REFUSED_Q, False), ("", False)],
    ids=["empty", "answer-js", "answer-form", "refusal-js", "refusal-form", "error"],
)
def test_the_chat_has_no_wcag_violations(
    browser: Any,
    base_url: str,
    kb: dict[str, str],
    agents: None,
    lang: str,
    question: str | None,
    script: bool,
) -> None:
    assert _violations(browser, f"{base_url}/consult?lang={lang}", question, script) == []
