"""A real Chromium walks an application through the intake pages, in Chinese and in English: from the
catalogue item page to the form (prefilled, with sources), the pre-check's findings, a fix, submission and
the receipt; an officer asks for supplementary material (补正), the applicant supplements, officers accept,
review, decide and deliver, and the applicant sees the approved result. axe-core checks the pages on the way.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy.orm import Session

from tests.conftest import PASSWORD
from tests.intake.helpers import CODE, DEFINITION, ID, known_citizen
from tests.intake.pdfs import pdf
from tests.intake.test_pages import ALL_CODE, SPOUSE_ID, WRONG_SPOUSE_ID, publish_all_types
from tests.web import conftest as web
from tests.web.test_accessibility import AXE, TAGS
from tongban.core.clock import FixedClock

browser = web.browser  # the shared Chromium fixture (Debian's)
pytestmark = pytest.mark.browser

#: The published form again (version 2) with a condition: the spouse's ID number only for the married.
WITH_SPOUSE: dict[str, Any] = {
    "fields": [
        *DEFINITION["fields"][:5],
        {"key": "married", "label": "已婚", "label_en": "Married", "type": "boolean"},
        {
            "key": "spouse_id",
            "label": "配偶公民身份号码",
            "label_en": "Spouse's ID number",
            "type": "id_number",
            "required": True,
            "show_if": {"==": [{"var": "married"}, True]},
        },
        *DEFINITION["fields"][5:],
    ]
}

#: What the pages say, in each language.
WORDS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "apply": "在线办理",
        "source": "来自：共享数据（户籍信息）",
        "married": "已婚",
        "check": "预检",
        "submit": "提交",
        "clean": "预检未发现需要修改的问题",
        "submitted": "申请已提交",
        "worklist": "我的待办",
        "supplement": "补正",
        "note": "给申请人的说明",
        "record": "提交办理意见",
        "recorded": "已记录",
        "asked": "待补正",
        "send": "提交补正材料",
        "sent": "补正材料已提交",
        "accept": "受理",
        "pass": "审查通过",
        "approve": "批准",
        "done": "已送达",
        "approved": "已批准",
        "document": "准予",
    },
    "en-US": {
        "apply": "Apply online now",
        "source": "From: shared data (户籍信息)",
        "married": "Married",
        "check": "Check",
        "submit": "Submit",
        "clean": "The check found nothing to fix",
        "submitted": "Your application was submitted",
        "worklist": "My work list",
        "supplement": "Request supplementary material",
        "note": "Note for the applicant",
        "record": "Record the decision",
        "recorded": "Recorded.",
        "asked": "Supplementary material requested",
        "send": "Send the supplementary material",
        "sent": "Your supplementary material was submitted",
        "accept": "Accept",
        "pass": "Pass the review",
        "approve": "Approve",
        "done": "Result delivered",
        "approved": "Approved",
        "document": "Decision to Grant the Licence",
    },
}


@pytest.fixture
def with_spouse(
    client: httpx.Client, session: Session, clock: FixedClock, staff: dict[str, dict[str, str]]
) -> dict[str, dict[str, str]]:
    known_citizen(client, staff)
    saved = client.post(
        f"/api/v1/intake/items/{CODE}/forms", headers=staff["editor.sun"], json={"definition": WITH_SPOUSE}
    )
    assert saved.status_code == 201, saved.text
    done = client.post(f"/api/v1/intake/items/{CODE}/forms/2/publish", headers=staff["publisher.qian"])
    assert done.status_code == 200, done.text
    return staff


def _axe(page: Page) -> list[str]:
    """WCAG 2.2 A/AA violations of the page as it is now (the context bypasses CSP to inject axe)."""
    page.add_script_tag(content=AXE)
    result = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {json.dumps([n['target'] for n in v['nodes']][:3])}"
        for v in result["violations"]
    ]


def _context(browser: Browser, locale: str) -> BrowserContext:
    return browser.new_context(locale=locale, bypass_csp=True)  # the pages run no inline script themselves


def _sign_in(page: Page, base_url: str, username: str, then: str) -> None:
    page.goto(f"{base_url}/staff/login?next={then}")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.locator('form[action="/staff/login"] button[type=submit]').click()
    expect(page).to_have_url(re.compile(re.escape(then) + "$"))


def _decide(page: Page, words: dict[str, str], decision: str, note: str = "") -> None:
    page.get_by_role("radio", name=words[decision], exact=True).check()
    if note:
        page.get_by_label(words["note"]).fill(note)
    page.get_by_role("button", name=words["record"]).click()
    expect(page.get_by_role("status")).to_contain_text(words["recorded"])


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_an_application_from_the_catalogue_to_the_approved_result(
    browser: Browser, base_url: str, with_spouse: dict[str, dict[str, str]], locale: str
) -> None:
    words = WORDS[locale]
    citizen_context = _context(browser, locale)
    citizen = citizen_context.new_page()

    # the item page links to the form; signing in comes first and leads back to it
    citizen.goto(f"{base_url}/catalog/items/{CODE}")
    citizen.get_by_role("link", name=words["apply"]).click()
    expect(citizen).to_have_url(re.compile(r"/staff/login\?next=/intake/items/"))
    citizen.fill("#username", "citizen.li")
    citizen.fill("#password", PASSWORD)
    citizen.locator('form[action="/staff/login"] button[type=submit]').click()
    expect(citizen).to_have_url(re.compile(rf"/intake/items/{CODE}/apply$"))

    # prefilled from the profile, with the source; the verified ID number is read-only
    id_field = citizen.locator("#f-id_number")
    expect(id_field).to_have_value(ID)
    expect(id_field).to_have_attribute("readonly", "")
    expect(citizen.locator("#s-id_number")).to_contain_text(words["source"])
    expect(citizen.locator("#f-name")).to_have_value("李明")

    # the spouse's ID number appears only once "married" is ticked (no round trip)
    spouse = citizen.locator("#f-spouse_id")
    expect(spouse).to_be_hidden()
    citizen.get_by_label(words["married"]).check()
    expect(spouse).to_be_visible()
    spouse.fill(WRONG_SPOUSE_ID)
    citizen.locator("#f-monthly_rent").fill("3500.50")
    citizen.locator("#f-months").fill("12")
    citizen.get_by_role("button", name=words["check"], exact=True).click()

    # the pre-check: a summary that has the focus, each problem linking to its field
    summary = citizen.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(summary.locator('a[href="#f-spouse_id"]')).to_be_visible()
    expect(summary.locator('a[href="#f-lease"]')).to_be_visible()
    assert _axe(citizen) == []
    summary.locator('a[href="#f-spouse_id"]').click()
    expect(spouse).to_be_focused()
    expect(spouse).to_have_attribute("aria-invalid", "true")
    expect(spouse).to_have_value(WRONG_SPOUSE_ID)  # what was typed is kept

    # fix: the right number and the lease, checked again, then submitted
    spouse.fill(SPOUSE_ID)
    citizen.locator("#f-lease").set_input_files(
        {"name": "lease.pdf", "mimeType": "application/pdf", "buffer": pdf(f"Lessee ID {ID}")}
    )
    citizen.get_by_role("button", name=words["check"], exact=True).click()
    expect(citizen.locator(".ok-summary")).to_contain_text(words["clean"])
    expect(citizen.locator(".uploads")).to_contain_text("lease.pdf")
    citizen.get_by_role("button", name=words["submit"], exact=True).click()
    expect(citizen).to_have_url(re.compile(r"/me/applications/\d{14}\?submitted=1$"))
    expect(citizen.locator(".ok-summary")).to_contain_text(words["submitted"])
    receipt = re.search(r"/me/applications/(\d{14})", citizen.url)
    assert receipt
    receipt_no = receipt.group(1)
    assert _axe(citizen) == []

    # the window officer asks for supplementary material (补正) with a note
    officer_context = _context(browser, locale)
    officer = officer_context.new_page()
    _sign_in(officer, base_url, "officer.wang", "/staff")
    officer.get_by_role("link", name=words["worklist"]).click()
    assert _axe(officer) == []
    officer.get_by_role("link", name=receipt_no).click()
    expect(officer.get_by_role("heading", level=1)).to_contain_text(receipt_no)
    assert _axe(officer) == []
    _decide(officer, words, "supplement", "租赁合同缺少出租人签字页，请补充上传。")

    # the applicant sees the request and the note, uploads the signed lease and resubmits
    citizen.goto(f"{base_url}/me/applications/{receipt_no}")
    expect(citizen.locator(".supplement")).to_contain_text("租赁合同缺少出租人签字页，请补充上传。")
    expect(citizen.locator("dl.facts").first).to_contain_text(words["asked"])
    assert _axe(citizen) == []
    citizen.locator("#f-lease").set_input_files(
        {"name": "lease-signed.pdf", "mimeType": "application/pdf", "buffer": pdf(f"Signed, lessee ID {ID}")}
    )
    citizen.get_by_role("button", name=words["send"]).click()
    expect(citizen.locator(".ok-summary")).to_contain_text(words["sent"])
    expect(citizen.locator("main")).to_contain_text("lease-signed.pdf")

    # 受理 → 审查 → 决定 → 送达, each in its officer's lane
    officer.reload()
    _decide(officer, words, "accept")
    for username, decision in (("reviewer.zhou", "pass"), ("decider.wu", "approve")):
        context = _context(browser, locale)
        page = context.new_page()
        _sign_in(page, base_url, username, f"/staff/intake/applications/{receipt_no}")
        _decide(page, words, decision)
        context.close()
    officer.reload()
    _decide(officer, words, "done")
    officer_context.close()

    # the applicant sees the approval and its document in the portal
    citizen.goto(f"{base_url}/me/applications/{receipt_no}")
    expect(citizen.locator("dl.facts").first).to_contain_text(words["approved"])
    documents = citizen.locator('section[aria-labelledby="h-documents"] a')
    expect(documents).to_have_count(1)
    expect(documents.first).to_contain_text(words["document"])
    citizen.goto(f"{base_url}/me/applications")
    expect(citizen.get_by_role("link", name=receipt_no)).to_be_visible()
    assert _axe(citizen) == []
    citizen_context.close()


def test_rows_are_added_and_conditions_applied_in_place(
    browser: Browser,
    base_url: str,
    client: httpx.Client,
    session: Session,
    clock: FixedClock,
    published: dict[str, dict[str, str]],
) -> None:
    known_citizen(client, published)
    publish_all_types(client, session, clock, published)
    context = _context(browser, "zh-CN")
    page = context.new_page()
    _sign_in(page, base_url, "citizen.li", f"/intake/items/{ALL_CODE}/apply")
    assert _axe(page) == []
    page.evaluate("window.stillHere = true")  # gone if the page were loaded again

    rows = page.locator('table[data-table="members"] tbody tr')
    expect(rows).to_have_count(1)
    page.get_by_role("button", name="增加一行").click()
    expect(rows).to_have_count(2)
    added = page.locator("#f-members-1-name")
    expect(added).to_be_focused()
    expect(added).to_have_attribute("name", "v.members.1.name")
    expect(added).to_have_attribute("aria-labelledby", "c-members-name r-members-1")
    expect(page.locator('input[name="n.members"]')).to_have_value("2")
    page.locator("#f-members-1-id_number").fill("123")
    expect(page.locator("#w-spouse_id")).to_be_hidden()
    page.get_by_label("已婚").check()
    expect(page.locator("#w-spouse_id")).to_be_visible()
    assert page.evaluate("window.stillHere") is True

    page.get_by_role("button", name="预检", exact=True).click()
    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    summary.locator('a[href="#f-members-1-name"]').click()
    expect(page.locator("#f-members-1-name")).to_be_focused()
    expect(page.locator("#f-members-1-id_number")).to_have_value("123")
    expect(page.locator("#w-spouse_id")).to_be_visible()  # the server shows it too now
    assert _axe(page) == []
    context.close()
