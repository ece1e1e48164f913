"""The knowledge hub's pages over real HTTP: the portal's search, public entries, the staff's desk.

Forms are posted as a browser without JavaScript would. External ids carry a random suffix so that no
test depends on what another one left behind.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.conftest import csrf, make_account, staff_login
from tongban.core import auth
from tongban.core.clock import FixedClock
from tongban.knowledge import service
from tongban.knowledge.pages import body_text, highlighted, parse_body
from tongban.knowledge.schemas import EntryContent, SectionIn


def _uid() -> str:
    return uuid.uuid4().hex[:10]


def ingest(
    session: Session,
    clock: FixedClock,
    external_id: str,
    title: str,
    text: str,
    *,
    kind: str = "faq",
    **extra: Any,
) -> None:
    content = EntryContent.model_validate(
        {"title": title, "kind": kind, "sections": [{"heading": [], "text": text}], **extra}
    )
    service.ingest_content(session, external_id, content, actor="test", clock=clock, source="test")
    session.commit()


@pytest.fixture
def staff(session: Session, clock: FixedClock) -> dict[str, str]:
    """Usernames of an editor, a reviewer and someone from the catalogue without knowledge rights."""
    uid = _uid()
    names = {"editor": f"ked{uid}", "reviewer": f"krv{uid}", "outsider": f"cat{uid}"}
    make_account(session, clock, names["editor"], ["knowledge_editor"])
    make_account(session, clock, names["reviewer"], ["knowledge_reviewer"])
    make_account(session, clock, names["outsider"], ["catalog_editor"])
    session.commit()
    return names


# --- the portal's search -----------------------------------------------------------------------------


def test_search_groups_results_and_explains_them(
    client: httpx.Client, session: Session, clock: FixedClock
) -> None:
    uid = _uid()
    ingest(
        session,
        clock,
        f"catalog:T{uid}",
        "社会保障卡申领",
        "申领社会保障卡，需携带居民身份证原件。",
        kind="service_item",
        department="人力资源和社会保障局",
        source="https://example.gov.cn/guide/1",
    )
    ingest(
        session,
        clock,
        f"policy/{uid}",
        "社会保障卡管理办法",
        "本办法规定社会保障卡的发放与管理。",
        kind="policy",
    )
    ingest(session, clock, f"faq/{uid}", "社会保障卡丢了怎么办", "社会保障卡遗失后，可以先挂失再补办。")

    html = client.get("/search", params={"q": "社保卡"}).text

    assert "也搜索了：社会保障卡" in html
    positions = [html.index(f'id="g-{key}"') for key in ("services", "policies", "knowledge")]
    assert positions == sorted(positions)
    services = html[positions[0] : positions[1]]
    assert f'href="/catalog/items/T{uid}"' in services
    assert "人力资源和社会保障局" in services
    assert 'href="https://example.gov.cn/guide/1"' in services  # the source, shown as its host
    assert f'href="/knowledge/policy/{uid}"' in html[positions[1] : positions[2]]
    assert f'href="/knowledge/faq/{uid}"' in html[positions[2] :]
    assert "<mark>社会保障卡</mark>" in html
    assert "<details>" in html
    assert "综合得分" in html  # the fused score, in the "why" line

    only_policies = client.get("/search", params={"q": "社保卡", "type": "policy", "department": ""}).text
    assert 'id="g-policies"' in only_policies
    assert 'id="g-services"' not in only_policies
    assert 'id="g-knowledge"' not in only_policies
    # an unknown type from a hand-made URL means "everything", not an error page
    assert client.get("/search", params={"q": "社保卡", "type": "martian"}).status_code == 200

    english = client.get("/search", params={"q": "社保卡", "lang": "en"}).text
    assert "Also searched for: 社会保障卡" in english
    assert "Service items" in english


def test_highlighted_snippets_escape_the_content(
    client: httpx.Client, session: Session, clock: FixedClock
) -> None:
    uid = _uid()
    ingest(
        session,
        clock,
        f"faq/{uid}",
        "防范<b>电信诈骗</b>提示",
        "注意<script>alert(1)</script>防范电信诈骗，不要轻信陌生来电。",
    )
    html = client.get("/search", params={"q": "电信诈骗"}).text
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "防范&lt;b&gt;电信诈骗&lt;/b&gt;提示" in html
    assert "<mark>电信诈骗</mark>" in html


def test_highlighting_is_built_from_escaped_parts() -> None:
    assert str(highlighted("a<b>c", [(1, 4)])) == "a<mark>&lt;b&gt;</mark>c"
    # overlapping, touching and out-of-range ranges make one mark, and no text is doubled or lost
    assert str(highlighted("社保卡补办了", [(0, 3), (1, 2), (3, 5)])) == "<mark>社保卡补办</mark>了"
    assert str(highlighted("社保卡", [(2, 99), (-1, 1)])) == "<mark>社</mark>保<mark>卡</mark>"
    assert str(highlighted("<>", [])) == "&lt;&gt;"


def test_empty_and_unanswered_queries(client: httpx.Client) -> None:
    empty = client.get("/search")
    assert empty.status_code == 200
    assert 'id="q"' in empty.text
    assert "results-title" not in empty.text
    blank = client.get("/search", params={"q": "   ", "type": "", "department": "", "region": ""})
    assert blank.status_code == 200
    assert "results-title" not in blank.text

    nothing = client.get("/search", params={"q": "qwxzvkj"}).text
    assert "没有找到与“qwxzvkj”相关的内容" in nothing
    assert 'href="/catalog"' in nothing
    assert 'id="g-' not in nothing


def test_the_header_links_and_searches(client: httpx.Client) -> None:
    home = client.get("/").text
    assert 'action="/search"' in home
    assert 'id="site-q"' in home
    assert '<a href="/search">搜索</a>' in home
    # the search page has its own form instead of the header's
    assert 'id="site-q"' not in client.get("/search").text


# --- public entries ----------------------------------------------------------------------------------


def test_public_entry_shows_the_published_version(
    client: httpx.Client, session: Session, clock: FixedClock
) -> None:
    uid = _uid()
    content = EntryContent(
        title="护照到期换发",
        kind="guide",  # type: ignore[arg-type]
        department="出入境管理局",
        source="公安部令第1号",
        effective_from="2026-01-01",  # type: ignore[arg-type]
        sections=[
            SectionIn(heading=["办理条件"], text="护照有效期不足六个月的，可以申请换发。"),
            SectionIn(heading=["办理时限"], text="承诺时限：7个工作日"),
        ],
        questions=["护照快过期了怎么办"],
    )
    service.ingest_content(session, f"guide/{uid}", content, actor="test", clock=clock, source="test")
    session.commit()
    html = client.get(f"/knowledge/guide/{uid}").text
    assert "第1版" in html
    assert '<h2 id="sec-1" lang="zh-Hans">办理条件</h2>' in html
    assert "出入境管理局" in html
    assert "公安部令第1号" in html
    assert "2026年1月1日" in html
    assert "护照快过期了怎么办" in html
    assert "version 1" in client.get(f"/knowledge/guide/{uid}", params={"lang": "en"}).text
    assert client.get(f"/knowledge/nope/{uid}").status_code == 404


def test_drafts_are_not_public(
    client: httpx.Client, session: Session, clock: FixedClock, staff: dict[str, str]
) -> None:
    uid = _uid()
    editor = auth.Principal(
        account_id=1,
        username=staff["editor"],
        display_name="e",
        permissions=frozenset({"knowledge:edit"}),
    )
    body = EntryContent(title="草稿", sections=[SectionIn(text="还没有审核。")])
    service.create_entry(session, editor, f"draft/{uid}", body, clock=clock)
    session.commit()
    assert client.get(f"/knowledge/draft/{uid}").status_code == 404


# --- staff: access -----------------------------------------------------------------------------------


STAFF_PAGES = [
    "/staff/knowledge",
    "/staff/knowledge/ops",
    "/staff/knowledge/lexicon",
    "/staff/knowledge/new",
    "/staff/knowledge/entries/faq/x",
    "/staff/knowledge/entries/faq/x/edit",
]


def test_staff_pages_need_sign_in_and_the_right(
    client: httpx.Client, base_url: str, staff: dict[str, str]
) -> None:
    for path in STAFF_PAGES:
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/staff/login"), path
    # a form post without the CSRF token is refused before anything else
    assert client.post("/staff/knowledge/new", data={"title": "x"}).status_code == 403
    with httpx.Client(base_url=base_url) as outsider:
        staff_login(outsider, staff["outsider"])
        for path in STAFF_PAGES[:4]:
            assert outsider.get(path).status_code == 403, path
        home = outsider.get("/staff").text
        assert "/staff/knowledge/ops" not in home  # no link to what they may not open


# --- staff: the workflow -----------------------------------------------------------------------------


def test_create_submit_publish_edit_and_diff_through_forms(
    base_url: str, session: Session, clock: FixedClock, staff: dict[str, str]
) -> None:
    uid = _uid()
    eid = f"guide/{uid}"
    page = f"/staff/knowledge/entries/{eid}"
    with httpx.Client(base_url=base_url) as editor, httpx.Client(base_url=base_url) as reviewer:
        staff_login(editor, staff["editor"])
        home = editor.get("/staff").text
        assert "/staff/knowledge/ops" in home
        form = editor.get("/staff/knowledge/new")
        assert form.status_code == 200
        fields = {
            "csrf_token": csrf(form.text),
            "external_id": eid,
            "title": "",  # missing: refused
            "kind": "guide",
            "department": "出入境管理局",
            "source": "https://example.gov.cn/passport",
            "region": "北京市",
            "audiences": "个人，外籍人士",
            "effective_from": "2026-03-01",
            "expires_on": "",
            "subject": "护照换发",
            "body": "# 办理条件\n护照有效期不足六个月的，可以申请换发。\n\n# 办理时限\n承诺时限：7个工作日",
            "tags": "出入境, 护照",
            "questions": "护照快过期了怎么办\n\n护照换发要多久",
            "note": "新建",
        }
        bad = editor.post("/staff/knowledge/new", data=fields)
        assert bad.status_code == 422
        assert "请更正以下内容" in bad.text
        assert "标题" in bad.text
        assert f'value="{eid}"' in bad.text  # what was typed is kept
        assert "承诺时限：7个工作日</textarea>" in bad.text
        fields |= {"title": "护照到期换发", "csrf_token": csrf(bad.text)}
        dates = editor.post("/staff/knowledge/new", data=fields | {"expires_on": "2025-01-01"})
        assert dates.status_code == 422  # expires before it takes effect
        assert "expires_on is before effective_from" in dates.text
        assert editor.post("/staff/knowledge/new", data=fields | {"body": " \n"}).status_code == 422

        created = editor.post("/staff/knowledge/new", data=fields)
        assert created.status_code == 303, created.text
        assert created.headers["location"] == f"{page}?notice=created"
        duplicate = editor.post("/staff/knowledge/new", data=fields)
        assert duplicate.status_code == 409
        assert "already exists" in duplicate.text

        draft = editor.get(created.headers["location"]).text
        assert "条目已创建为草稿" in draft
        assert f'action="{page}/submit"' in draft
        assert f'action="{page}/publish"' not in draft  # an editor cannot publish
        submitted = editor.post(f"{page}/submit", data={"csrf_token": csrf(draft)})
        assert submitted.status_code == 303
        assert f'action="{page}/submit"' not in editor.get(page).text

        staff_login(reviewer, staff["reviewer"])
        review = reviewer.get(page).text
        assert f'action="{page}/publish"' in review
        assert f'action="{page}/reject"' in review
        done = reviewer.post(f"{page}/publish", data={"csrf_token": csrf(review), "note": "同意"})
        assert done.status_code == 303
        published = reviewer.get(done.headers["location"]).text
        assert "已发布" in published
        assert f'action="{page}/withdraw"' in published

        found = httpx.get(f"{base_url}/search", params={"q": "护照换发"}).text
        assert f'href="/knowledge/{eid}"' in found
        public = httpx.get(f"{base_url}/knowledge/{eid}").text
        assert "第1版" in public
        assert "承诺时限：7个工作日" in public
        assert 'href="https://example.gov.cn/passport"' in public

        edit = editor.get(f"{page}/edit").text
        assert 'name="expected_version" value="1"' in edit
        assert "# 办理条件" in edit
        assert 'value="个人, 外籍人士"' in edit
        change = fields | {
            "csrf_token": csrf(edit),
            "expected_version": "1",
            "body": fields["body"].replace("7个工作日", "5个工作日"),
            "note": "缩短时限",
        }
        del change["external_id"]
        saved = editor.post(f"{page}/edit", data=change)
        assert saved.status_code == 303, saved.text
        assert saved.headers["location"] == f"{page}?notice=saved"
        # the same text again, with a browser's CRLF line breaks: no empty version is made
        crlf = {k: v.replace("\n", "\r\n") for k, v in change.items()}
        same = editor.post(f"{page}/edit", data=crlf | {"expected_version": "2"})
        assert same.headers["location"] == f"{page}?notice=unchanged"
        stale = editor.post(f"{page}/edit", data=change | {"title": "再改"})
        assert stale.status_code == 412  # edited from version 1, which is no longer the latest

        detail = editor.get(page).text
        assert "?diff=1-2" in detail
        diff = editor.get(page, params={"diff": "1-2"}).text
        assert "<del>-承诺时限：7个工作日</del>" in diff
        assert "<ins>+承诺时限：5个工作日</ins>" in diff
        assert editor.get(page, params={"diff": "1-9"}).status_code == 200  # a missing version is said
        assert editor.get(page, params={"diff": "nonsense"}).status_code == 200

    # the public still reads version 1 until the change is reviewed
    assert "承诺时限：7个工作日" in httpx.get(f"{base_url}/knowledge/{eid}").text


def test_reject_withdraw_and_confirm_through_forms(
    base_url: str, session: Session, clock: FixedClock, staff: dict[str, str]
) -> None:
    uid = _uid()
    ingest(session, clock, f"faq/{uid}", "居住证签注", "居住证每年签注一次。")
    page = f"/staff/knowledge/entries/faq/{uid}"
    with httpx.Client(base_url=base_url) as editor, httpx.Client(base_url=base_url) as reviewer:
        staff_login(editor, staff["editor"])
        staff_login(reviewer, staff["reviewer"])
        edit = editor.get(f"{page}/edit").text
        values = {
            "csrf_token": csrf(edit),
            "expected_version": "1",
            "title": "居住证签注",
            "kind": "faq",
            "body": "居住证每两年签注一次。",
        }
        assert editor.post(f"{page}/edit", data=values).status_code == 303
        editor.post(f"{page}/submit", data={"csrf_token": csrf(edit)})
        review = reviewer.get(page).text
        returned = reviewer.post(f"{page}/reject", data={"csrf_token": csrf(review), "note": "依据不足"})
        assert returned.status_code == 303
        after = reviewer.get(returned.headers["location"]).text
        assert "修改已退回编辑人" in after
        assert "<td>已退回</td>" in after
        assert f'action="{page}/submit"' not in after  # a returned change is edited, not resubmitted

        confirmed = editor.post(f"{page}/confirm", data={"csrf_token": csrf(edit)})
        assert confirmed.status_code == 303
        withdrawn = reviewer.post(f"{page}/withdraw", data={"csrf_token": csrf(after), "note": "政策调整"})
        assert withdrawn.status_code == 303
        assert "已撤回" in reviewer.get(page).text
    assert httpx.get(f"{base_url}/knowledge/faq/{uid}").status_code == 404


def test_staff_list_filters(
    base_url: str, session: Session, clock: FixedClock, staff: dict[str, str]
) -> None:
    uid = _uid()
    ingest(
        session, clock, f"policy/{uid}", f"养老保险缴费办法{uid}", "缴费基数按上年度工资确定。", kind="policy"
    )
    ingest(session, clock, f"faq/{uid}", f"养老保险怎么查{uid}", "可在网上查询缴费记录。")
    with httpx.Client(base_url=base_url) as editor:
        staff_login(editor, staff["editor"])
        html = editor.get("/staff/knowledge", params={"q": uid, "kind": "policy", "status": ""}).text
        assert f"养老保险缴费办法{uid}" in html
        assert f"养老保险怎么查{uid}" not in html
        both = editor.get("/staff/knowledge", params={"q": uid, "status": "published", "kind": "x"}).text
        assert f"养老保险怎么查{uid}" in both


# --- staff: operations and lexicon -------------------------------------------------------------------


def test_ops_page_lists_conflicts_and_misses(
    base_url: str, session: Session, clock: FixedClock, staff: dict[str, str]
) -> None:
    uid = _uid()
    ingest(session, clock, f"faq/a{uid}", "同一事项的办理时限", "承诺时限：5个工作日", subject="同一事项")
    ingest(session, clock, f"faq/b{uid}", "同一事项怎么办", "承诺时限：10个工作日", subject="同一事项")
    httpx.get(f"{base_url}/search", params={"q": "zqxjvw"})
    httpx.get(f"{base_url}/search", params={"q": "zqxjvw"})
    with httpx.Client(base_url=base_url) as editor:
        staff_login(editor, staff["editor"])
        html = editor.get("/staff/knowledge/ops").text
    conflicts = html[html.index('id="s-conflicts"') : html.index('id="s-misses"')]
    assert "同一事项" in conflicts
    assert "办理时限" in conflicts  # the attribute, named
    assert f"faq/a{uid}" in conflicts
    assert f"faq/b{uid}" in conflicts
    assert re.search(r"5\s*个?工作日", conflicts)
    assert re.search(r"10\s*个?工作日", conflicts)
    misses = html[html.index('id="s-misses"') : html.index('id="s-expiring"')]
    assert re.search(r"zqxjvw</th><td>2</td>", misses)
    index = html[html.index('id="s-index"') :]
    assert "已发布" in index


def test_lexicon_propose_approve_and_search(
    base_url: str, session: Session, clock: FixedClock, staff: dict[str, str]
) -> None:
    uid = _uid()
    ingest(session, clock, f"faq/{uid}", "机动车驾驶证换证", "机动车驾驶证有效期满前九十日内换证。")
    with httpx.Client(base_url=base_url) as editor, httpx.Client(base_url=base_url) as reviewer:
        staff_login(editor, staff["editor"])
        page = editor.get("/staff/knowledge/lexicon").text
        bad = editor.post(
            "/staff/knowledge/lexicon",
            data={"csrf_token": csrf(page), "kind": "synonym", "term": "车本", "canonical": ""},
        )
        assert bad.status_code == 422
        assert "a synonym needs the canonical" in bad.text
        assert 'value="车本"' in bad.text
        proposed = editor.post(
            "/staff/knowledge/lexicon",
            data={
                "csrf_token": csrf(page),
                "kind": "synonym",
                "term": "车本",
                "canonical": "机动车驾驶证",
            },
        )
        assert proposed.status_code == 303
        listed = editor.get(proposed.headers["location"]).text
        assert "车本" in listed
        assert "/approve" not in listed  # editors propose; reviewers decide
        again = editor.post(
            "/staff/knowledge/lexicon",
            data={
                "csrf_token": csrf(page),
                "kind": "synonym",
                "term": "车本",
                "canonical": "机动车驾驶证",
            },
        )
        assert again.status_code == 409

        staff_login(reviewer, staff["reviewer"])
        review = reviewer.get("/staff/knowledge/lexicon").text
        match = re.search(r'action="(/staff/knowledge/lexicon/\d+/approve)"', review)
        assert match
        approved = reviewer.post(match.group(1), data={"csrf_token": csrf(review)})
        assert approved.status_code == 303
        assert "已批准" in reviewer.get(approved.headers["location"]).text

    html = httpx.get(f"{base_url}/search", params={"q": "车本"}).text
    assert "也搜索了：机动车驾驶证" in html
    assert f'href="/knowledge/faq/{uid}"' in html


# --- the body text format ----------------------------------------------------------------------------


def test_body_text_round_trips_sections() -> None:
    sections = [
        SectionIn(heading=[], text="引言。"),
        SectionIn(heading=["第一章", "第一条"], text="第一行\n\n第二行"),
        SectionIn(heading=["附则"], text="本办法自发布之日起施行。"),
    ]
    text = body_text(sections)
    assert text.splitlines()[2] == "# 第一章 / 第一条"
    parsed = [SectionIn.model_validate(s) for s in parse_body(text)]
    assert parsed == sections
    assert parse_body("no heading\r\n# \r\n") == [{"heading": [], "text": "no heading"}]
