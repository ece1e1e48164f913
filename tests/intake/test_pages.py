"""The intake pages over real HTTP, posted as a browser without JavaScript would: the application form
(prefill with sources, every field type, the pre-check, uploads, idempotent submission), the applicant's
applications and 补正, the officers' work list and steps, special procedures, the monitoring page, and who
may see what."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from html import unescape
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session
from stdnum.cn import ric

from tests.conftest import csrf, make_account, staff_login
from tests.factories import item
from tests.intake.helpers import CODE, ID, field, known_citizen, step, submit
from tests.intake.pdfs import PNG, pdf
from tongban.catalog import service as catalog
from tongban.core.clock import FixedClock

#: An item whose form has every field type, a condition, a computed value and a table.
ALL_CODE = "11110000INTK0099"
SPOUSE_ID = "11010519920815242" + ric.calc_check_digit("11010519920815242" + "0")
#: The same number with a wrong check character.
WRONG_SPOUSE_ID = SPOUSE_ID[:-1] + ("1" if SPOUSE_ID[-1] == "0" else "0")
ALL_TYPES: dict[str, Any] = {
    "fields": [
        field("name"),
        field("id_number"),
        field("mobile"),
        {"key": "email", "label": "电子邮箱", "label_en": "Email", "type": "email"},
        {
            "key": "credit_code",
            "label": "单位统一社会信用代码",
            "label_en": "Employer's credit code",
            "type": "credit_code",
        },
        {"key": "address", "label": "现住址", "label_en": "Current address", "type": "address"},
        {
            "key": "reason",
            "label": "申请事由",
            "label_en": "Reason",
            "type": "textarea",
            "max_length": 500,
            "help": "请简要说明",
            "help_en": "Say briefly why",
        },
        {"key": "start", "label": "起租日期", "label_en": "Lease start", "type": "date", "min": "2020-01-01"},
        field("monthly_rent"),
        field("months"),
        {"key": "area", "label": "面积（平方米）", "label_en": "Area (m²)", "type": "decimal"},
        field("total_rent"),
        {
            "key": "housing",
            "label": "住房类型",
            "label_en": "Housing",
            "type": "choice",
            "required": True,
            "options": [
                {"value": "private", "label": "商品房", "label_en": "Private"},
                {"value": "public", "label": "公租房", "label_en": "Public rental"},
            ],
        },
        {
            "key": "uses",
            "label": "提取用途",
            "label_en": "Uses",
            "type": "multi_choice",
            "options": [
                {"value": "rent", "label": "房租", "label_en": "Rent"},
                {"value": "deposit", "label": "押金", "label_en": "Deposit"},
            ],
        },
        {"key": "married", "label": "已婚", "label_en": "Married", "type": "boolean"},
        {
            "key": "spouse_id",
            "label": "配偶公民身份号码",
            "label_en": "Spouse's ID number",
            "type": "id_number",
            "required": True,
            "show_if": {"==": [{"var": "married"}, True]},
        },
        {
            "key": "members",
            "label": "共同居住人",
            "label_en": "Household members",
            "type": "table",
            "max_rows": 5,
            "columns": [
                {"key": "name", "label": "姓名", "label_en": "Name", "type": "text", "required": True},
                {"key": "id_number", "label": "身份号码", "label_en": "ID number", "type": "id_number"},
            ],
        },
        field("lease"),
    ]
}


class _Form(HTMLParser):
    """The fields a browser without JavaScript would send from the form whose action is ``action``."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action, self.inside = action, False
        self.pairs: list[tuple[str, str]] = []
        self.select: str | None = None
        self.textarea: str | None = None
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = unescape(a.get("action", "")) == self.action
        if not self.inside:
            return
        kind = a.get("type", "text")
        if tag == "input" and "name" in a and kind not in ("file", "submit", "button"):
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.pairs.append((a["name"], a.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select":
            self.select = a.get("name")
        elif tag == "option" and self.select and "selected" in a:
            self.pairs.append((self.select, a.get("value", "")))
        elif tag == "textarea":
            self.textarea, self.text = a.get("name"), ""

    def handle_data(self, data: str) -> None:
        if self.textarea:
            self.text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self.select = None
        elif tag == "textarea" and self.textarea:
            self.pairs.append((self.textarea, self.text))
            self.textarea = None


def fields_of(html: str, action: str) -> dict[str, list[str]]:
    parser = _Form(action)
    parser.feed(html)
    out: dict[str, list[str]] = {}
    for name, value in parser.pairs:
        out.setdefault(name, []).append(value)
    assert out, f"no form posting to {action}"
    return out


def post_form(
    client: httpx.Client,
    html: str,
    action: str,
    changes: Mapping[str, str | Sequence[str]] | None = None,
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
    params: dict[str, str] | None = None,
    **extra: str,
) -> httpx.Response:
    """Fill in the form as shown (``changes`` replace fields) and post it, with files as multipart."""
    data = fields_of(html, action)
    for name, value in (changes or {}).items():
        data[name] = [value] if isinstance(value, str) else list(value)
    data.update({k: [v] for k, v in extra.items()})
    empty = [("_none", ("", b"", "application/octet-stream"))]  # multipart, as the browser sends it
    return client.post(action, params=params, data=data, files=files or empty)


def text_of(html: str) -> str:
    """The page's text, tags removed and whitespace collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


@contextmanager
def signed_in(base_url: str, username: str) -> Iterator[httpx.Client]:
    """A client signed in as ``username`` through the sign-in form (it keeps the session cookie)."""
    with httpx.Client(base_url=base_url, timeout=30) as c:
        staff_login(c, username)
        yield c


def publish_all_types(client: httpx.Client, session: Session, clock: FixedClock, h: dict[str, Any]) -> None:
    catalog.import_item(
        session,
        item(
            code=ALL_CODE,
            name="提取住房公积金（全部字段）",
            name_en="Housing fund withdrawal (all fields)",
            audiences=["natural_person"],
            materials=[{"name": "房屋租赁合同", "source": "applicant"}],
        ),
        actor="test",
        clock=clock,
        source="test",
    )
    session.commit()
    saved = client.post(
        f"/api/v1/intake/items/{ALL_CODE}/forms", headers=h["editor.sun"], json={"definition": ALL_TYPES}
    )
    assert saved.status_code == 201, saved.text
    done = client.post(f"/api/v1/intake/items/{ALL_CODE}/forms/1/publish", headers=h["publisher.qian"])
    assert done.status_code == 200, done.text


APPLY = f"/intake/items/{CODE}/apply"


@pytest.fixture
def citizen(
    client: httpx.Client, base_url: str, published: dict[str, dict[str, str]]
) -> Iterator[httpx.Client]:
    known_citizen(client, published)
    with signed_in(base_url, "citizen.li") as c:
        yield c


def test_the_form_is_prefilled_with_sources_in_chinese_and_english(citizen: httpx.Client) -> None:
    page = citizen.get(APPLY)
    assert page.status_code == 200, page.text
    html = page.text
    assert '<html lang="zh-Hans">' in html
    # prefilled values say where they come from; the verified ID number cannot be changed here
    assert re.search(r'id="f-name" name="v.name"[^>]*value="李明"', html)
    assert re.search(r'id="f-id_number" name="v.id_number"[^>]*value="' + ID + '"[^>]*readonly', html)
    assert re.search(r'id="f-name"[^>]*aria-describedby="s-name"', html)
    text = text_of(html)
    assert "来自：共享数据（户籍信息） — 已核验，不可在此修改" in text
    assert "来自：个人档案" in text
    # what the platform holds is not asked again: no upload for the ID card or the household register
    assert 'name="file.id_card"' not in html
    assert 'name="file.household"' not in html
    assert 'name="file.lease"' in html
    assert "免于提交：使用您的电子证照（居民身份证）" in text
    assert "免于提交：使用共享数据（户籍信息）" in text
    assert "4 项必要材料中有 3 项无需您提交" in text
    assert "预检" in text
    assert "提交" in text
    assert 'name="_idem" value="' in html

    en = citizen.get(APPLY, params={"lang": "en"}).text
    assert '<html lang="en">' in en
    text = text_of(en)
    assert "From: shared data (户籍信息) — verified, so it cannot be changed here" in text
    assert "From: your profile" in text
    assert "Monthly rent (required)" in text
    assert "Not needed from you: your e-licence is used (居民身份证)" in text
    assert "Check" in text
    assert "Submit" in text


def test_signing_in_is_asked_first(client: httpx.Client, published: dict[str, dict[str, str]]) -> None:
    response = client.get(APPLY)
    assert response.status_code == 303
    assert response.headers["location"] == f"/staff/login?next={APPLY}"
    assert client.get("/me/applications").status_code == 303


def test_the_precheck_lists_problems_linked_to_their_fields(citizen: httpx.Client) -> None:
    html = citizen.get(APPLY).text
    checked = post_form(citizen, html, APPLY, {"v.mobile": "1380013800"}, _action="check")
    assert checked.status_code == 200
    page = checked.text
    assert "<title>错误：" in page
    summary = re.search(r'<div class="error-summary"(.*?)</div>', page, re.S)
    assert summary, "no error summary"
    links = re.findall(r'<a href="#([^"]+)">', summary.group(1))
    assert {"f-mobile", "f-monthly_rent", "f-months", "f-lease"} <= set(links)
    # each field says what is wrong beside it, and is marked invalid for assistive technology
    assert re.search(r'id="f-monthly_rent"[^>]*aria-describedby="h-monthly_rent m-monthly_rent-1"', page)
    assert re.search(r'id="f-monthly_rent"[^>]*aria-invalid="true"', page)
    assert 'id="m-lease-1"' in page
    assert "错误：" in text_of(page)
    # what was typed is kept
    assert re.search(r'id="f-mobile"[^>]*value="1380013800"', page)

    en = post_form(citizen, html, APPLY, {"v.mobile": "1380013800"}, params={"lang": "en"}, _action="check")
    assert "Problems to fix:" in text_of(en.text)


def test_submission_without_javascript_is_idempotent(
    citizen: httpx.Client, client: httpx.Client, published: dict[str, dict[str, str]]
) -> None:
    html = citizen.get(APPLY).text
    lease = ("file.lease", ("lease.pdf", pdf(f"Lessee ID {ID}"), "application/pdf"))
    filled = {"v.monthly_rent": "3500.50", "v.months": "12"}
    # without the lease the pre-check refuses it: the form again, nothing stored, the same form key
    refused = post_form(citizen, html, APPLY, filled, _action="submit")
    assert refused.status_code == 422
    assert '<a href="#f-lease">' in refused.text
    assert client.get("/api/v1/me/applications", headers=published["citizen.li"]).json() == []
    html = refused.text
    first = post_form(citizen, html, APPLY, filled, files=[lease], _action="submit")
    assert first.status_code == 303, first.text
    receipt_url = first.headers["location"]
    assert re.fullmatch(r"/me/applications/\d{14}\?submitted=1", receipt_url)
    # a retry of the same form (the browser sends it again) gives the same application
    again = post_form(citizen, html, APPLY, filled, files=[lease], _action="submit")
    assert again.status_code == 303
    assert again.headers["location"] == receipt_url
    mine = client.get("/api/v1/me/applications", headers=published["citizen.li"]).json()
    assert len(mine) == 1
    receipt = mine[0]["receipt_no"]
    assert mine[0]["status"] == "submitted"
    stored = client.get(f"/api/v1/me/applications/{receipt}", headers=published["citizen.li"]).json()
    assert stored["values"]["monthly_rent"] == 350050  # yuan on the page, fen when stored
    assert [u["filename"] for u in stored["uploads"]] == ["lease.pdf"]

    page = citizen.get(receipt_url).text
    text = text_of(page)
    assert f"您的受理编号是 {receipt}" in text
    assert "已提交，待受理" in text
    assert "3,500.50 元" in text
    assert "lease.pdf" in text
    listed = text_of(citizen.get("/me/applications").text)
    assert receipt in listed
    assert "租房提取住房公积金" in listed


def test_files_uploaded_by_a_check_are_kept_for_the_submission(citizen: httpx.Client) -> None:
    html = citizen.get(APPLY).text
    filled = {"v.monthly_rent": "2000", "v.months": "6"}
    blank = ("file.lease", ("scan.png", PNG, "image/png"))
    refused = post_form(citizen, html, APPLY, filled, files=[blank], _action="check")
    assert refused.status_code == 200
    assert re.search(r'<a href="#f-lease">scan.png：文件是空白的。</a>', refused.text)
    assert 'name="u.lease"' not in refused.text
    other = ("file.lease", ("other.pdf", pdf("An unrelated letter"), "application/pdf"))
    checked = post_form(citizen, refused.text, APPLY, files=[other], _action="check")
    kept = re.search(r'name="u.lease" value="([^"]+)"', checked.text)
    assert kept
    assert "other.pdf" in checked.text
    # remove it and upload the lease; the computed total is shown after the check
    lease = ("file.lease", ("lease.pdf", pdf(f"Lessee ID {ID}"), "application/pdf"))
    fixed = post_form(
        citizen, checked.text, APPLY, {"_remove": kept.group(1)}, files=[lease], _action="check"
    )
    assert fixed.status_code == 200
    assert "other.pdf" not in fixed.text
    assert "lease.pdf" in fixed.text
    assert "预检未发现需要修改的问题" in text_of(fixed.text)
    assert re.search(r'<output id="f-total_rent"[^>]*>12,000.00 元</output>', fixed.text)
    done = post_form(citizen, fixed.text, APPLY, _action="submit")
    assert done.status_code == 303, done.text


def test_every_field_type_renders_and_tables_grow_without_javascript(
    citizen: httpx.Client,
    client: httpx.Client,
    session: Session,
    clock: FixedClock,
    published: dict[str, dict[str, str]],
) -> None:
    publish_all_types(client, session, clock, published)
    url = f"/intake/items/{ALL_CODE}/apply"
    html = citizen.get(url).text
    for pattern in (
        r'<input type="email" id="f-email"[^>]*autocomplete="email"',
        r'<input type="tel" id="f-mobile"',
        r'<input type="text" id="f-credit_code"',
        r'<input type="text" id="f-address"[^>]*maxlength="300"',
        r'<textarea id="f-reason" name="v.reason"[^>]*aria-describedby="h-reason"',
        r'<input type="date" id="f-start"[^>]*min="2020-01-01"',
        r'id="f-monthly_rent"[^>]*inputmode="decimal"',
        r'id="f-months"[^>]*inputmode="numeric"',
        r'id="f-area"[^>]*inputmode="decimal"',
        r'<output id="f-total_rent"',
        r'type="radio" id="f-housing" name="v.housing" value="private"',
        r'type="checkbox" id="f-uses" name="v.uses" value="rent"',
        r'<input type="checkbox" id="f-married" name="v.married"',
        r'<input type="file" id="f-lease" name="file.lease" multiple accept="application/pdf"',
        r'name="n.members" value="1"',
        r'id="f-members-0-name" name="v.members.0.name" aria-labelledby="c-members-name r-members-0"',
        r'value="add_row:members"',
    ):
        assert re.search(pattern, html), pattern
    # the spouse's ID shows only for the married: hidden, with its condition for the live script
    assert re.search(r'<div class="field" id="w-spouse_id"[^>]*data-show-if=\'\{"==":[^\']*\' hidden>', html)

    grown = post_form(citizen, html, url, {"v.members.0.name": "王芳"}, _action="add_row:members")
    assert grown.status_code == 200
    assert 'name="n.members" value="2"' in grown.text
    assert re.search(r'id="f-members-1-name"[^>]*autofocus', grown.text)
    assert re.search(r'id="f-members-0-name"[^>]*value="王芳"', grown.text)

    answers = {
        "v.married": "true",
        "v.spouse_id": WRONG_SPOUSE_ID,
        "v.members.1.name": "",
        "v.members.1.id_number": "123",
        "v.monthly_rent": "1500",
        "v.months": "3",
        "v.housing": "public",
        "v.uses": ["rent", "deposit"],
    }
    checked = post_form(citizen, grown.text, url, answers, _action="check")
    page = checked.text
    assert re.search(r'<div class="field" id="w-spouse_id"[^>]*data-show-if=\'[^\']*\'>', page)  # now shown
    assert '<a href="#f-spouse_id">' in page
    assert '<a href="#f-members-1-name">' in page  # a row with an ID number needs a name too
    assert '<a href="#f-members-1-id_number">' in page
    assert re.search(r'type="radio" id="f-housing--1" name="v.housing" value="public" checked', page)
    assert re.search(r'value="deposit" checked', page)
    assert re.search(r'<output id="f-total_rent"[^>]*>4,500.00 元</output>', page)


def test_others_cannot_see_my_application(
    client: httpx.Client,
    base_url: str,
    session: Session,
    clock: FixedClock,
    published: dict[str, dict[str, str]],
) -> None:
    receipt = submit(client, published)["receipt_no"]
    make_account(session, clock, "citizen.zhao", [])
    session.commit()
    with signed_in(base_url, "citizen.zhao") as other:
        assert other.get(f"/me/applications/{receipt}").status_code == 404
        page = other.get("/me/applications")
        assert receipt not in page.text
        token = csrf(page.text)
        posted = other.post(f"/me/applications/{receipt}/supplement", data={"csrf_token": token})
        assert posted.status_code == 404
        # and a citizen is no officer
        assert other.get("/staff/intake/worklist").status_code == 403
        assert other.get(f"/staff/intake/applications/{receipt}").status_code == 403
        assert other.get("/staff/intake/monitor").status_code == 403
        refused = other.post(
            f"/staff/intake/applications/{receipt}/steps/x", data={"csrf_token": token, "decision": "accept"}
        )
        assert refused.status_code == 403
    assert client.get("/staff/intake/worklist").status_code == 303  # anonymous: sign in first


def _officer_form(html: str, receipt: str) -> str:
    match = re.search(rf'action="(/staff/intake/applications/{receipt}/steps/[^"]+)"', html)
    assert match, "no step form"
    return match.group(1)


def test_officers_work_the_steps_and_the_applicant_supplements_without_javascript(
    client: httpx.Client, base_url: str, staff: dict[str, dict[str, str]]
) -> None:
    receipt = submit(client, staff)["receipt_no"]
    with signed_in(base_url, "officer.wang") as officer, signed_in(base_url, "citizen.li") as citizen:
        listed = officer.get("/staff/intake/worklist")
        assert listed.status_code == 200
        assert receipt in listed.text
        assert "受理" in text_of(listed.text)
        page = officer.get(f"/staff/intake/applications/{receipt}").text
        assert ID not in page  # ID numbers masked for a window officer
        assert "1101" in page
        action = _officer_form(page, receipt)
        # 补正 needs a note for the applicant: the service says so, the page links to the note
        short = post_form(officer, page, action, {"decision": "supplement", "note": ""})
        assert short.status_code == 422
        assert re.search(r'<a href="#note-[^"]+">请填写说明', short.text)
        asked = post_form(
            officer,
            short.text,
            action,
            {"decision": "supplement", "note": "租赁合同缺少签字页，请补充上传。"},
        )
        assert asked.status_code == 303
        assert "已记录" in text_of(officer.get(asked.headers["location"]).text)

        mine = citizen.get(f"/me/applications/{receipt}").text
        text = text_of(mine)
        assert "待补正" in text
        assert "租赁合同缺少签字页，请补充上传。" in text
        supplement = f"/me/applications/{receipt}/supplement"
        assert 'name="u.lease"' in mine  # the files sent before are listed, and kept unless removed
        bad = post_form(citizen, mine, supplement, {"v.months": "0"})
        assert bad.status_code == 422
        assert '<a href="#f-months">' in bad.text
        signed = ("file.lease", ("lease-signed.pdf", pdf(f"Signed lease, lessee ID {ID}"), "application/pdf"))
        sent = post_form(citizen, bad.text, supplement, {"v.months": "24"}, files=[signed])
        assert sent.status_code == 303, sent.text
        after = text_of(citizen.get(sent.headers["location"]).text)
        assert "补正材料已提交" in after
        assert "已提交，待受理" in after
        assert "lease-signed.pdf" in after

        page = officer.get(f"/staff/intake/applications/{receipt}").text
        assert (
            post_form(officer, page, _officer_form(page, receipt), {"decision": "accept"}).status_code == 303
        )
    for username, decision in (
        ("reviewer.zhou", "pass"),
        ("decider.wu", "approve"),
        ("officer.wang", "done"),
    ):
        with signed_in(base_url, username) as officer:
            page = officer.get(f"/staff/intake/applications/{receipt}").text
            done = post_form(officer, page, _officer_form(page, receipt), {"decision": decision})
            assert done.status_code == 303, (username, done.text)
    with signed_in(base_url, "citizen.li") as citizen:
        page = citizen.get(f"/me/applications/{receipt}", params={"lang": "en"}).text
        final = text_of(page)
        assert "Status Approved" in final
        assert "Result delivered" in final
        assert "Supplementary material requested" in final
        # the decision as a document, and the notices of each change
        link = re.search(rf'<a href="(/api/v1/me/applications/{receipt}/documents/\d+)">', page)
        assert link, "no result document"
        document = citizen.get(link.group(1))
        assert document.status_code == 200
        assert document.content.startswith(b"%PDF")
        assert "Notices" in final


def test_the_staff_desk_links_to_the_work_list_and_the_item_page_to_the_form(
    client: httpx.Client,
    base_url: str,
    session: Session,
    clock: FixedClock,
    published: dict[str, dict[str, str]],
) -> None:
    make_account(session, clock, "boss.he", ["intake_supervisor"])
    session.commit()
    with signed_in(base_url, "officer.wang") as officer:
        desk = officer.get("/staff").text
        assert 'href="/staff/intake/worklist"' in desk
        assert 'href="/staff/intake/monitor"' not in desk
    with signed_in(base_url, "boss.he") as boss:
        desk = boss.get("/staff").text
        assert 'href="/staff/intake/monitor"' in desk
        assert 'href="/staff/intake/worklist"' not in desk
    item_page = client.get(f"/catalog/items/{CODE}").text
    assert f'<a class="button" href="/intake/items/{CODE}/apply">在线办理</a>' in item_page
    assert "Apply online now" in client.get(f"/catalog/items/{CODE}", params={"lang": "en"}).text
    catalog.import_item(session, item(code="11110000NOFORM01"), actor="t", clock=clock, source="t")
    session.commit()
    assert "/apply" not in client.get("/catalog/items/11110000NOFORM01").text


def test_special_procedures_pause_the_limit_and_the_monitor_shows_levels(
    client: httpx.Client,
    base_url: str,
    session: Session,
    clock: FixedClock,
    staff: dict[str, dict[str, str]],
) -> None:
    app = submit(client, staff)
    receipt = app["receipt_no"]
    assert step(client, staff["officer.wang"], app, "accept").status_code == 200
    make_account(session, clock, "boss.he", ["intake_supervisor"])
    session.commit()

    with signed_in(base_url, "reviewer.zhou") as reviewer:
        page = reviewer.get(f"/staff/intake/applications/{receipt}").text
        assert "剩余 5 个工作日" in text_of(page)
        action = f"/staff/intake/applications/{receipt}/suspensions"
        short = post_form(reviewer, page, action, {"kind": "听证", "note": ""})
        assert short.status_code == 422
        started = post_form(reviewer, page, action, {"kind": "听证", "note": "申请人要求听证"})
        assert started.status_code == 303, started.text
        paused = reviewer.get(f"/staff/intake/applications/{receipt}").text
        assert "暂停计时" in text_of(paused)
        end = re.search(rf'action="(/staff/intake/applications/{receipt}/suspensions/\d+/end)"', paused)
        assert end
        assert post_form(reviewer, paused, end.group(1), {"note": "听证结束"}).status_code == 303
        assert "特别程序结束：听证" in text_of(reviewer.get(f"/staff/intake/applications/{receipt}").text)

    clock.advance(dt.timedelta(days=8))  # past the promised 5 working days
    with signed_in(base_url, "boss.he") as boss:
        monitor = boss.get("/staff/intake/monitor")
        assert monitor.status_code == 200
        text = text_of(monitor.text)
        assert re.search(r"已超时限（红灯）\s*:\s*1", text), text
        assert receipt in monitor.text
        assert "超出时限" in text
        en = text_of(boss.get("/staff/intake/monitor", params={"lang": "en"}).text)
        assert re.search(r"Overdue \(red\)\s*:\s*1", en)
        assert "working days over the limit" in en
        other = boss.get("/staff/intake/monitor", params={"department": "别的部门"}).text
        assert receipt not in other
        assert boss.get("/staff/intake/monitor", params={"level": "green"}).text.count(receipt) == 0
