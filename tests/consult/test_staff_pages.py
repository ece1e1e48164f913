"""The staff's pages for consultation agents over real HTTP: operators create and edit agents through
forms (no code), the rights they need, input errors, and a real browser from sign-in to a routed question.

Agent codes and knowledge ids carry a random suffix so that no test depends on what another left behind.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import PASSWORD, csrf, make_account, staff_login
from tests.web import conftest as web
from tongban.consult import service as consult_service
from tongban.consult.models import ConsultTurn
from tongban.consult.schemas import AgentIn
from tongban.core.clock import FixedClock
from tongban.knowledge import service as knowledge
from tongban.knowledge.schemas import EntryContent

browser = web.browser  # the shared Chromium fixture (Debian's)

AGENTS = "/staff/consult/agents"
#: A policy only the agent below is about; its keyword routes the question there.
SUBSIDY = (
    "关于发放农机购置补贴的通知。购买列入补贴范围的农业机械的农户，可以申请农机购置补贴，"
    "补贴标准为购机价格的百分之三十，单台补贴最高不超过5万元。申请时须提交购机发票和身份证复印件。"
)
SUBSIDY_Q = "农机购置补贴最高能补多少钱？"
NEXT_Q = "农机补贴要提交什么材料？"


def _uid() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def staff(session: Session, clock: FixedClock) -> dict[str, str]:
    """Usernames of a consultation operator and of a knowledge editor, who may not configure agents."""
    uid = _uid()
    names = {"operator": f"cop{uid}", "outsider": f"ked{uid}"}
    make_account(session, clock, names["operator"], ["consult_operator"])
    make_account(session, clock, names["outsider"], ["knowledge_editor"])
    session.commit()
    return names


def _fields(html: str, agent_code: str, **changes: str | list[str] | None) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "csrf_token": csrf(html),
        "code": agent_code,
        "name": "农机补贴",
        "name_en": "Farm machinery subsidies",
        "description": "农机购置补贴的咨询",
        "instructions": "只回答农机购置补贴的问题。",
        "examples": f"{NEXT_Q}\r\n\r\n农机补贴怎么申请？",
        "keywords": "农机\r\n购置补贴\r\n农机",  # a repeat is dropped
        "kinds": ["policy", "faq"],
        "departments": "",
        "regions": "",
        "enabled": "on",
    }
    for key, value in changes.items():
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    return fields


def test_an_operator_creates_and_edits_an_agent(
    base_url: str, session: Session, staff: dict[str, str]
) -> None:
    code = f"nongji-{_uid()}"
    with httpx.Client(base_url=base_url) as operator:
        staff_login(operator, staff["operator"])
        home = operator.get("/staff").text
        assert f'href="{AGENTS}"' in home  # the staff desk links to the agents
        listing = operator.get(AGENTS)
        assert listing.status_code == 200
        assert 'href="/staff/consult/agents/new"' in listing.text

        form = operator.get(f"{AGENTS}/new")
        assert form.status_code == 200
        assert '<label for="f-instructions">' in form.text
        assert "仅提供给大语言模型" in form.text  # the hint: instructions go to the language model only
        assert 'type="checkbox" name="enabled" id="f-enabled"' in form.text
        assert "checked" in form.text.split('id="f-enabled"')[1].split(">")[0]  # a new agent is enabled

        created = operator.post(f"{AGENTS}/new", data=_fields(form.text, code))
        assert created.status_code == 303, created.text
        assert created.headers["location"] == f"{AGENTS}?notice=created"
        listed = operator.get(created.headers["location"]).text
        assert "智能体已创建" in listed
        assert f'href="{AGENTS}/{code}/edit"' in listed
        row = listed.split(f"<code>{code}</code>")[1].split("</tr>")[0]
        assert "农机补贴" in row
        assert "<td>是</td><td>1</td>" in row
        assert staff["operator"] in row
        assert "政策文件, 问答" in row

        # creating the same code again does not silently replace the agent
        again = operator.post(f"{AGENTS}/new", data=_fields(listed, code))
        assert again.status_code == 409
        assert 'aria-invalid="true"' in again.text

        edit = operator.get(f"{AGENTS}/{code}/edit")
        assert edit.status_code == 200
        assert f'value="{code}" maxlength="64" readonly' in edit.text
        assert f"{NEXT_Q}\n农机补贴怎么申请？</textarea>" in edit.text
        assert "农机\n购置补贴</textarea>" in edit.text
        assert 'value="policy" id="f-kinds" checked' in edit.text
        assert 'value="guide" >' in edit.text
        assert 'name="expected_version" value="1"' in edit.text

        # the same values again make no new version
        same = operator.post(f"{AGENTS}/{code}/edit", data=_fields(edit.text, code, expected_version="1"))
        assert same.headers["location"] == f"{AGENTS}?notice=unchanged"

        change = _fields(
            edit.text,
            "some-other-code",  # ignored: the code cannot change
            expected_version="1",
            name="农机购置补贴",
            departments="农业农村局",
            kinds=["policy"],
            enabled=None,  # unticked
        )
        saved = operator.post(f"{AGENTS}/{code}/edit", data=change)
        assert saved.status_code == 303, saved.text
        assert saved.headers["location"] == f"{AGENTS}?notice=saved"
        row = operator.get(AGENTS).text.split(f"<code>{code}</code>")[1].split("</tr>")[0]
        assert "农机购置补贴" in row
        assert "<td>否</td><td>2</td>" in row
        assert "农业农村局" in row

        # an edit from a form opened before that save is shown again, based on the newer version
        stale = operator.post(f"{AGENTS}/{code}/edit", data=change | {"name": "再改"})
        assert stale.status_code == 412
        assert 'name="expected_version" value="2"' in stale.text

    agent = next(a for a in consult_service.list_agents(session) if a.code == code)
    assert agent.version == 2
    assert agent.name == "农机购置补贴"
    assert agent.enabled is False
    assert agent.keywords == ["农机", "购置补贴"]
    assert agent.examples == [NEXT_Q, "农机补贴怎么申请？"]
    assert agent.scope == {"kinds": ["policy"], "departments": ["农业农村局"]}
    assert agent.instructions == "只回答农机购置补贴的问题。"
    assert "some-other-code" not in {a.code for a in consult_service.list_agents(session)}


def test_the_agent_pages_need_sign_in_and_the_right(
    client: httpx.Client, base_url: str, session: Session, clock: FixedClock, staff: dict[str, str]
) -> None:
    code = f"shebao-{_uid()}"
    operator = make_account(session, clock, f"adm{_uid()}", ["admin"])
    consult_service.save_agent(session, operator, AgentIn(code=code, name="社保"), clock=clock)
    session.commit()
    pages = [AGENTS, f"{AGENTS}/new", f"{AGENTS}/{code}/edit"]
    for path in pages:
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == f"/staff/login?next={path}", path
    # a form post without the CSRF token is refused before anything else
    assert client.post(f"{AGENTS}/new", data={"code": "x"}).status_code == 403
    with httpx.Client(base_url=base_url) as outsider:
        staff_login(outsider, staff["outsider"])
        for path in pages:
            assert outsider.get(path).status_code == 403, path
        token = csrf(outsider.get("/staff").text)
        refused = outsider.post(f"{AGENTS}/new", data={"csrf_token": token, "code": "abc", "name": "x"})
        assert refused.status_code == 403
        assert "abc" not in {a.code for a in consult_service.list_agents(session)}
        assert AGENTS not in outsider.get("/staff").text  # no link to what they may not open


def test_an_unknown_agent_is_not_found(base_url: str, staff: dict[str, str]) -> None:
    with httpx.Client(base_url=base_url) as operator:
        staff_login(operator, staff["operator"])
        missing = operator.get(f"{AGENTS}/no-such-agent/edit")
        assert missing.status_code == 404
        assert "<h1>" in missing.text
        token = csrf(operator.get(AGENTS).text)
        post = operator.post(f"{AGENTS}/no-such-agent/edit", data={"csrf_token": token, "name": "x"})
        assert post.status_code == 404


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"code": "Bad Code!"}, "code", "以小写字母开头"),
        ({"code": "x"}, "code", "以小写字母开头"),
        ({"name": "  "}, "name", "请输入名称"),
        ({"examples": "\n".join(f"例题{i}怎么办" for i in range(51))}, "examples", "最多 50 行"),
        ({"keywords": "很长" * 30}, "keywords", "第 1 行太长"),
        ({"examples": "好\n问"}, "examples", "第 1 行太短"),
        ({"departments": "\n".join(f"部门{i}" for i in range(51))}, "departments", "最多 50 行"),
        ({"regions": "区" * 101}, "regions", "第 1 行太长"),
        ({"kinds": ["policy", "martian"]}, "kinds", "请从列表中选择"),
    ],
    ids=[
        "pattern",
        "short-code",
        "no-name",
        "examples",
        "keyword",
        "short-example",
        "departments",
        "region",
        "kind",
    ],
)
def test_bad_input_is_shown_on_the_form(
    base_url: str, session: Session, staff: dict[str, str], changes: dict[str, Any], field: str, message: str
) -> None:
    code = f"ok-{_uid()}"
    with httpx.Client(base_url=base_url) as operator:
        staff_login(operator, staff["operator"])
        form = operator.get(f"{AGENTS}/new").text
        response = operator.post(f"{AGENTS}/new", data=_fields(form, code, **changes))
        assert response.status_code == 422, response.text
        page = response.text
        assert page.count("<title>错误：") == 1
        assert "请更正以下内容" in page
        assert message in page
        assert f'<p class="error" id="e-{field}">' in page
        assert re.search(rf'aria-describedby="(h-{field} )?e-{field}"', page)
        assert f'<a href="#f-{field}">' in page  # the summary links to the field
        assert "农机补贴" in page  # what was typed is kept
    assert code not in {a.code for a in consult_service.list_agents(session)}


# --- a real browser ----------------------------------------------------------------------------------


@pytest.mark.browser
def test_an_operator_creates_an_agent_that_answers_on_the_portal(
    browser: Any, base_url: str, session: Session, clock: FixedClock, staff: dict[str, str]
) -> None:
    from playwright.sync_api import expect

    uid = _uid()
    code = f"nongji-{uid}"
    content = EntryContent.model_validate(
        {
            "title": "关于发放农机购置补贴的通知",
            "kind": "policy",
            "sections": [{"heading": [], "text": SUBSIDY}],
        }
    )
    knowledge.ingest_content(session, f"policy/nongji-{uid}", content, actor="test", clock=clock, source="t")
    session.commit()

    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    page.goto(base_url + "/staff/login")
    page.get_by_label("用户名").fill(staff["operator"])
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.get_by_role("link", name="咨询智能体").click()
    page.get_by_role("link", name="新建智能体").click()
    page.get_by_label("编码").fill(code)
    page.get_by_role("textbox", name="名称", exact=True).fill("农机补贴")
    page.get_by_label("英文名称").fill("Farm machinery subsidies")
    page.get_by_label("关键词", exact=True).fill("农机\n购置补贴")
    page.get_by_label("示例问题", exact=True).fill(NEXT_Q)
    page.get_by_role("checkbox", name="政策文件").check()
    page.get_by_role("button", name="保存智能体").click()
    expect(page.get_by_role("status")).to_contain_text("智能体已创建")
    expect(page.get_by_role("row", name=re.compile(code))).to_contain_text("农机补贴")

    page.goto(base_url + "/consult")
    expect(page.get_by_label("咨询主题")).to_contain_text("农机补贴")  # the topic choice offers it
    page.get_by_label("您的问题", exact=True).fill(SUBSIDY_Q)
    page.get_by_role("button", name="提问").click()
    live = page.locator("#consult-live")
    expect(live).to_contain_text("5万元")
    # the agent answered: its example question is offered next
    expect(live.get_by_role("button", name=NEXT_Q)).to_be_visible()
    context.close()

    turn = session.scalars(select(ConsultTurn).order_by(ConsultTurn.id.desc())).first()
    assert turn is not None
    assert turn.agent_code == code


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["zh-Hans", "en"])
def test_the_agent_pages_have_no_wcag_violations(
    browser: Any, base_url: str, session: Session, clock: FixedClock, staff: dict[str, str], lang: str
) -> None:
    from tests.web.test_accessibility import AXE, TAGS

    code = f"shebao-{_uid()}"
    admin = make_account(session, clock, f"adm{_uid()}", ["admin"])
    data = AgentIn(
        code=code, name="社保", name_en="Social insurance", keywords=["社保"], scope={"kinds": ["faq"]}
    )
    consult_service.save_agent(session, admin, data, clock=clock)
    session.commit()
    token = httpx.post(
        f"{base_url}/api/v1/auth/login", json={"username": staff["operator"], "password": PASSWORD}
    ).json()["token"]
    context = browser.new_context(bypass_csp=True)  # to inject axe
    context.add_cookies([{"name": "tongban_session", "value": token, "url": base_url}])
    page = context.new_page()

    def violations() -> list[str]:
        page.add_script_tag(content=AXE)
        result = page.evaluate(
            "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS
        )
        return [
            f"{v['id']}: {v['help']} — {[n['target'] for n in v['nodes']][:3]}" for v in result["violations"]
        ]

    page.goto(f"{base_url}{AGENTS}?lang={lang}&notice=saved")
    assert violations() == []
    page.goto(f"{base_url}{AGENTS}/{code}/edit?lang={lang}")
    assert violations() == []
    # the form with errors: the summary, the messages by the fields
    page.goto(f"{base_url}{AGENTS}/new?lang={lang}")
    page.locator("#f-code").evaluate(
        "(el) => { el.removeAttribute('required'); el.removeAttribute('maxlength') }"
    )
    page.locator("#f-name").evaluate("(el) => el.removeAttribute('required')")
    page.locator("#f-code").fill("Not A Code")
    page.locator("#f-regions").fill("\n".join(f"区{i}" for i in range(51)))
    page.locator("form.edit button[type=submit]").click()
    page.wait_for_selector("#errors")
    assert page.locator("#errors li").count() == 3  # code, name, regions
    assert violations() == []
    context.close()
