"""Situation guidance (情形引导) over real HTTP: the list of guided items, one question at a time as a GET
form (each step a bookmarkable address), changing an answer, the personal checklist, bad answers, the
link from the chat, and a real browser walking an item of the demo catalogue.

Item codes carry a random suffix so that no test depends on what another one left behind.
"""

from __future__ import annotations

import json
import re
import uuid
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.consult.test_guidance import _demo_rows
from tests.factories import item
from tests.web import conftest as web
from tongban.catalog import service as catalog
from tongban.catalog.importer import import_file
from tongban.core.clock import FixedClock
from tongban.demo import add_situations
from tongban.knowledge import service as knowledge

browser = web.browser  # the shared Chromium fixture (Debian's)

SITUATIONS = [
    {"key": "first", "name": "首次申领", "name_en": "First application"},
    {"key": "lost", "name": "遗失补领", "name_en": "Lost card"},
    {"key": "damaged", "name": "损坏换领", "name_en": "Damaged card"},
]
QUESTIONS = [
    {
        "key": "held",
        "text": "您以前领取过居住证吗？",
        "text_en": "Have you had a residence permit before?",
        "options": [
            {"key": "no", "label": "没有", "label_en": "No", "situations": ["first"]},
            {"key": "yes", "label": "领取过", "label_en": "Yes", "situations": ["lost", "damaged"]},
        ],
    },
    {
        "key": "state",
        "text": "原居住证现在是什么情况？",
        "text_en": "What happened to the permit?",
        "options": [
            {"key": "lost", "label": "遗失", "label_en": "Lost", "situations": ["lost"]},
            {"key": "damaged", "label": "损坏", "label_en": "Damaged", "situations": ["damaged"]},
        ],
    },
]
MATERIALS = [
    {"name": "居住证申领登记表", "form": "original", "copies": 1},
    {"name": "居民身份证", "source": "e_licence", "source_ref": "居民身份证"},
    {"name": "损坏的原居住证", "form": "original", "situations": ["damaged"]},
    {"name": "遗失声明", "situations": ["lost"]},
]


def _code() -> str:
    return f"GUIDE{uuid.uuid4().hex[:10].upper()}"


def publish_guided_item(session: Session, clock: FixedClock, code: str) -> None:
    """A published item with three situations told apart by two questions (through the catalogue)."""
    content = item(
        code=code,
        name="居住证签注与换领",
        name_en="Residence permit renewal",
        department="公安局",
        conditions="在本市居住满半年的非本市户籍人员。",
        materials=MATERIALS,
        situations=SITUATIONS,
        situation_questions=QUESTIONS,
        charges_fee=False,
        location="市民服务中心一楼",
        office_hours="工作日 9:00-17:00",
        consult_phone="020-12345678",
        online_url="https://example.gov.cn/apply",
    )
    catalog.import_item(session, content, actor="test", clock=clock, source="test")
    session.commit()


@pytest.fixture
def guided(session: Session, clock: FixedClock) -> str:
    code = _code()
    publish_guided_item(session, clock, code)
    return code


def _form(html: str) -> tuple[str, list[tuple[str, str]], str, list[str]]:
    """The question form: its action, hidden fields, the radio group's name and its option values."""
    form = re.search(r'<form method="get" action="([^"]+)" class="[^"]*guide">(.*?)</form>', html, re.S)
    assert form, "no question form"
    body = form.group(2)
    hidden = [
        (unescape(n), unescape(v))
        for n, v in re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', body)
    ]
    radios = re.findall(r'type="radio" id="[^"]+" name="([^"]+)" value="([^"]+)" required', body)
    assert radios, "no options"
    assert len({name for name, _ in radios}) == 1
    return form.group(1), hidden, radios[0][0], [value for _, value in radios]


def _answer(client: httpx.Client, html: str, option: str) -> httpx.Response:
    """Submit the question form (a GET form) as a browser would, choosing ``option``."""
    action, hidden, name, options = _form(html)
    assert option in options, options
    return client.get(action, params=[*hidden, (name, option)])


def test_the_list_of_guided_items(
    client: httpx.Client, guided: str, session: Session, clock: FixedClock
) -> None:
    plain = _code()
    catalog.import_item(session, item(code=plain, name="没有情形的事项"), actor="t", clock=clock, source="t")
    session.commit()
    page = client.get("/consult/guide")
    assert page.status_code == 200
    assert "<h1>办事情形引导</h1>" in page.text
    assert f'href="/consult/guide/{guided}"' in page.text
    assert "居住证签注与换领" in page.text
    assert plain not in page.text  # only items with situations
    english = client.get("/consult/guide", params={"lang": "en"})
    assert '<html lang="en">' in english.text
    assert "<h1>Guided checklists</h1>" in english.text
    assert f'href="/consult/guide/{guided}?lang=en"' in english.text


def test_walking_two_questions_to_the_checklist(client: httpx.Client, guided: str) -> None:
    first = client.get(f"/consult/guide/{guided}")
    assert first.status_code == 200
    assert "<legend><h2>您以前领取过居住证吗？</h2></legend>" in first.text
    assert "s-checklist" not in first.text
    action, hidden, name, options = _form(first.text)
    assert (action, hidden, name, options) == (f"/consult/guide/{guided}", [], "a.held", ["no", "yes"])

    second = _answer(client, first.text, "yes")
    assert second.status_code == 200
    assert str(second.url).endswith(f"/consult/guide/{guided}?a.held=yes")  # each step is an address
    assert "原居住证现在是什么情况？" in second.text
    assert _form(second.text)[1] == [("a.held", "yes")]  # the answers so far travel with the form
    assert "<dt>您以前领取过居住证吗？</dt>" in second.text
    assert f'href="/consult/guide/{guided}">修改</a>' in re.sub(r' aria-label="[^"]*"', "", second.text)

    done = _answer(client, second.text, "damaged")
    assert done.status_code == 200
    page = done.text
    assert dict(parse_qsl(urlsplit(str(done.url)).query)) == {"a.held": "yes", "a.state": "damaged"}
    assert '<h2 id="s-checklist">您的清单</h2>' in page
    assert "<strong>损坏换领</strong>" in page
    assert 'type="radio"' not in page
    assert f'<a class="button" href="/catalog/items/{guided}">开始申请</a>' in page
    assert 'href="https://example.gov.cn/apply"' in page
    assert "在本市居住满半年的非本市户籍人员。" in page
    assert "损坏的原居住证" in page
    assert "遗失声明" not in page  # only for a lost permit
    supplied = page.split("居民身份证</span>")[1].split("</th>")[0]
    assert "平台可提供，无需自带" in supplied  # fetched from the e-licence library
    assert "平台可提供" not in page.split("居住证申领登记表</span>")[1].split("</th>")[0]
    for fact in ("市民服务中心一楼", "工作日 9:00-17:00", "020-12345678", "免费", "承诺 5 个工作日"):
        assert fact in page, fact
    # "change" on the first answer drops it and the one after it
    change = re.search(r'<dd>领取过 · <a href="([^"]+)"', page)
    assert change
    assert unescape(change.group(1)) == f"/consult/guide/{guided}"
    changed = re.search(r'<dd>损坏 · <a href="([^"]+)"', page)
    assert changed
    assert unescape(changed.group(1)) == f"/consult/guide/{guided}?a.held=yes"

    # one answer can be enough: the second question no longer tells anything apart
    short = _answer(client, first.text, "no")
    assert "<strong>首次申领</strong>" in short.text
    assert "损坏的原居住证" not in short.text
    assert "原居住证现在是什么情况？" not in short.text


def test_the_guide_in_english(client: httpx.Client, guided: str) -> None:
    first = client.get(f"/consult/guide/{guided}", params={"lang": "en"})
    assert "<legend><h2>Have you had a residence permit before?</h2></legend>" in first.text
    assert ("lang", "en") in _form(first.text)[1]  # the next step stays in English
    done = client.get(f"/consult/guide/{guided}", params={"a.held": "yes", "a.state": "lost", "lang": "en"})
    page = done.text
    assert '<html lang="en">' in page
    assert "Your checklist" in page
    assert "<strong>Lost card</strong>" in page
    assert "Start the application" in page
    assert "The platform can provide this" in page
    assert "Free of charge" in page
    assert "遗失声明" in page


@pytest.mark.parametrize(
    "params",
    [{"a.held": "maybe"}, {"a.held": "yes", "a.state": "stolen"}, {"a.nonsense": "1"}, {"a.held": "<b>"}],
    ids=["option", "second-option", "question", "markup"],
)
def test_a_bad_answer_is_shown_with_the_question_again(
    client: httpx.Client, guided: str, params: dict[str, str]
) -> None:
    response = client.get(f"/consult/guide/{guided}", params=params)
    assert response.status_code == 422
    page = response.text
    assert page.count("<title>错误：") == 1
    assert "请更正以下内容" in page
    assert 'id="q-error"' in page
    assert 'aria-describedby="q-error"' in page
    assert "<b>" not in page.split("<main")[1]
    if "a.state" in params:  # the good first answer is kept
        assert "原居住证现在是什么情况？" in page
        assert _form(page)[1] == [("a.held", "yes")]
    else:
        assert "您以前领取过居住证吗？</h2>" in page
        assert _form(page)[1] == []


def test_an_unknown_item_is_not_found(client: httpx.Client) -> None:
    response = client.get("/consult/guide/NOSUCHITEM0001")
    assert response.status_code == 404
    assert "<h1>" in response.text


def test_the_chat_links_suggested_items_to_their_guide(
    client: httpx.Client, guided: str, session: Session, clock: FixedClock
) -> None:
    knowledge.sync_catalog_item(session, clock=clock, code=guided)
    plain = _code()
    catalog.import_item(
        session, item(code=plain, name="居住证签注业务办理"), actor="t", clock=clock, source="t"
    )
    knowledge.sync_catalog_item(session, clock=clock, code=plain)
    session.commit()
    form = client.get("/consult").text
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form)
    assert token
    page = client.post(
        "/consult", data={"csrf_token": token.group(1), "question": "居住证签注怎么办理？"}
    ).text
    items = page.split("<h3>")[-1]
    assert f'href="/catalog/items/{guided}"' in items
    assert f'<a href="/consult/guide/{guided}">办事情形引导</a>' in items
    assert f'href="/consult/guide/{plain}"' not in page  # an item without situations gets no guide link

    stream = client.post(
        "/consult/stream", data={"csrf_token": token.group(1), "question": "居住证签注怎么办理？"}
    ).text
    assert f'"guides": {{"{guided}": "/consult/guide/{guided}"}}' in stream


# --- a real browser, on the demo catalogue -----------------------------------------------------------

#: 企业职工养老保险待遇重核申请: two questions (the reason, then who applies) in the demo's supplement.
DEMO_ITEM = "11440000553612461J2442111559001"


@pytest.fixture
def demo_item(session: Session, clock: FixedClock, tmp_path: Path) -> str:
    """The demo catalogue's item imported as the demo does: the portal's row, amended with its situations."""
    path = tmp_path / "guides.jsonl"
    path.write_text(json.dumps(_demo_rows()[DEMO_ITEM], ensure_ascii=False) + "\n", encoding="utf-8")
    report = import_file(session, path, actor="demo", clock=clock, fmt="guangdong", amend=add_situations)
    assert (report.created, report.errors) == (1, [])
    session.commit()
    return DEMO_ITEM


@pytest.mark.browser
def test_a_citizen_walks_the_guide_to_the_checklist(browser: Any, base_url: str, demo_item: str) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(locale="zh-CN")  # JavaScript on
    page = context.new_page()
    page.goto(base_url + "/consult/guide")
    page.get_by_role("link", name="企业职工养老保险待遇重核申请").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("企业职工养老保险待遇重核申请")

    first = page.get_by_role("group", name="您申请重核待遇的原因是？")
    expect(first).to_be_visible()
    page.get_by_role("button", name="下一步").click()  # nothing chosen: the browser asks for a choice
    expect(first).to_be_visible()
    first.get_by_label("申请补发基本养老金").check()
    page.get_by_role("button", name="下一步").click()
    assert "a.reason=reissue" in page.url  # the step is an address

    second = page.get_by_role("group", name="本人申请还是委托他人办理？")
    expect(second).to_be_visible()
    answers = page.get_by_role("region", name="您的回答")
    expect(answers).to_contain_text("申请补发基本养老金")
    # change the first answer: its question comes back, without the answers after it
    answers.get_by_role("link", name="修改对“您申请重核待遇的原因是？”的回答").click()
    expect(page.get_by_role("group", name="您申请重核待遇的原因是？")).to_be_visible()
    page.get_by_label("申请养老保险补缴").check()
    page.get_by_role("button", name="下一步").click()
    page.get_by_role("group", name="本人申请还是委托他人办理？").get_by_label("委托他人办理").check()
    page.get_by_role("button", name="下一步").click()

    checklist = page.get_by_role("region", name="您的清单")
    expect(checklist).to_be_visible()
    expect(page.get_by_role("radio")).to_have_count(0)
    start = checklist.get_by_role("link", name="开始申请")
    expect(start).to_have_attribute("href", f"/catalog/items/{demo_item}")
    expect(checklist.get_by_role("row")).not_to_have_count(0)
    expect(page.get_by_role("region", name="您的回答")).to_contain_text("申请养老保险补缴")
    expect(page.get_by_role("region", name="您的回答")).to_contain_text("委托他人办理")
    assert "a.reason=arrears" in page.url
    assert "a.who=agent" in page.url
    context.close()


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["zh-Hans", "en"])
@pytest.mark.parametrize(
    "query",
    ["", "a.reason=reissue", "a.reason=reissue&a.who=agent", "a.reason=nonsense"],
    ids=["first", "second", "checklist", "error"],
)
def test_the_guide_has_no_wcag_violations(
    browser: Any, base_url: str, demo_item: str, lang: str, query: str
) -> None:
    from tests.web.test_accessibility import AXE, TAGS

    context = browser.new_context(bypass_csp=True)  # to inject axe
    page = context.new_page()
    for url in (f"/consult/guide?lang={lang}", f"/consult/guide/{demo_item}?{query}&lang={lang}"):
        page.goto(base_url + url)
        page.add_script_tag(content=AXE)
        result = page.evaluate(
            "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS
        )
        found = [
            f"{v['id']}: {v['help']} — {[n['target'] for n in v['nodes']][:3]}" for v in result["violations"]
        ]
        assert found == [], url
    context.close()
