"""A real Chromium walks an applicant through a bundle (高效办成一件事), in Chinese and in English: from the
published bundles to the situation questions (not employed: three of the four items apply), the merged form
(prefilled, with sources), a pre-check finding, the fix, one upload of the shared birth certificate and the
photo, submission and the bundle's receipt with its three parts; a department asks for supplementary
material on one part, the combined status says so, the applicant supplements that part on its own page;
officers accept, review, decide and deliver every part, and the combined status is approved (已办结).
axe-core checks the pages on the way."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import PASSWORD
from tests.intake.bundle_support import BUNDLE, ITEMS
from tests.intake.helpers import ID, step
from tests.intake.pdfs import pdf
from tests.intake.test_browser import _axe, _context
from tests.intake.test_bundle_pages import bundle
from tests.web import conftest as web

browser = web.browser  # the shared Chromium fixture (Debian's)
__all__ = ["browser", "bundle"]  # fixtures used here
pytestmark = pytest.mark.browser

#: What the pages say, in each language.
WORDS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "bundle": "新生儿出生“一件事”",
        "sign_in": "登录",
        "no": "否",
        "next": "下一步",
        "source": "来自：共享数据（户籍信息）",
        "items": "、".join(i["name"] for i in ITEMS[:3]),
        "shared": "用于：" + "、".join(i["name"] for i in ITEMS[:3]),
        "check": "预检",
        "submit": "提交",
        "clean": "预检未发现需要修改的问题",
        "submitted": "申请已提交",
        "status": "已提交",
        "asked": "待补正",
        "send": "提交补正材料",
        "sent": "补正材料已提交",
        "approved": "已办结",
        "part_approved": "已批准",
    },
    "en-US": {
        "bundle": "A newborn's registrations, at once",
        "sign_in": "Sign in",
        "no": "No",
        "next": "Next step",
        "source": "From: shared data (户籍信息)",
        "items": ", ".join(i["name_en"] for i in ITEMS[:3]),
        "shared": "Used for: " + ", ".join(i["name_en"] for i in ITEMS[:3]),
        "check": "Check",
        "submit": "Submit",
        "clean": "The check found nothing to fix",
        "submitted": "Your application was submitted",
        "status": "Submitted",
        "asked": "Supplementary material requested",
        "send": "Send the supplementary material",
        "sent": "Your supplementary material was submitted",
        "approved": "Completed: all approved",
        "part_approved": "Approved",
    },
}


def _officer_steps(
    client: httpx.Client, h: dict[str, dict[str, str]], receipt: str, *steps: tuple[str, str | None, str]
) -> None:
    """Officers complete the waiting steps of a part through the API, each in their lane."""
    app: dict[str, Any] = client.get(
        f"/api/v1/intake/applications/{receipt}", headers=h["officer.wang"]
    ).json()
    for who, decision, note in steps:
        response = step(client, h[who], app, decision, note)
        assert response.status_code == 200, response.text
        app = response.json()


def _status(page: Page) -> Any:
    return page.locator("dl.facts").first


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_a_bundle_from_the_list_to_the_approved_result(
    browser: Browser, base_url: str, client: httpx.Client, bundle: dict[str, dict[str, str]], locale: str
) -> None:
    words = WORDS[locale]
    context = _context(browser, locale)
    page = context.new_page()

    # the published bundles; the questions; signing in comes first and leads back to them
    page.goto(f"{base_url}/intake/bundles")
    assert _axe(page) == []
    page.get_by_role("link", name=words["bundle"]).click()
    expect(page).to_have_url(re.compile(rf"/intake/bundles/{BUNDLE}$"))
    page.locator("form[method=get]").get_by_role("link", name=words["sign_in"], exact=True).click()
    page.fill("#username", "citizen.li")
    page.fill("#password", PASSWORD)
    page.locator('form[action="/staff/login"] button[type=submit]').click()
    expect(page).to_have_url(re.compile(rf"/intake/bundles/{BUNDLE}$"))
    assert _axe(page) == []
    page.get_by_role("radio", name=words["no"], exact=True).check()
    page.get_by_role("button", name=words["next"]).click()
    expect(page).to_have_url(re.compile(rf"/intake/bundles/{BUNDLE}/apply\?a\.employed=no$"))

    # three items apply, the fourth does not; one merged form, prefilled with the source shown
    expect(page.locator('tr[data-applies="true"]')).to_have_count(3)
    expect(page.locator('tr[data-applies="false"]')).to_have_count(1)
    expect(page.locator("#f-id_number")).to_have_value(ID)
    expect(page.locator("#s-id_number")).to_contain_text(words["source"])
    expect(page.locator("#f-name")).to_have_value("李明")
    shared = page.locator("fieldset.items-group", has=page.locator("#f-baby_name"))
    expect(shared.locator("legend")).to_have_text(words["shared"])
    expect(page.locator("#f-baby_name")).to_have_count(1)
    expect(page.locator('input[type=file][name="file.birth_cert"]')).to_have_count(1)

    # the pre-check: the baby's name left empty, reported once, the summary has the focus
    page.locator("#f-baby_birth_date").fill("2026-02-20")
    page.get_by_role("button", name=words["check"], exact=True).click()
    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(summary.locator('a[href="#f-baby_name"]')).to_have_count(1)
    expect(summary.locator("h3").first).to_have_text(words["items"])  # the items whose field it is
    assert _axe(page) == []
    summary.locator('a[href="#f-baby_name"]').click()
    baby = page.locator("#f-baby_name")
    expect(baby).to_be_focused()
    expect(baby).to_have_attribute("aria-invalid", "true")

    # the fix: the name, the birth certificate once for all three, the photo; checked, then submitted
    baby.fill("李小明")
    page.locator("#f-birth_cert").set_input_files(
        {
            "name": "birth.pdf",
            "mimeType": "application/pdf",
            "buffer": pdf(f"Birth certificate, mother ID {ID}"),
        }
    )
    page.locator("#f-photo").set_input_files(
        {"name": "photo.pdf", "mimeType": "application/pdf", "buffer": pdf("Photo of Li Xiaoming")}
    )
    page.get_by_role("button", name=words["check"], exact=True).click()
    expect(page.locator(".ok-summary")).to_contain_text(words["clean"])
    expect(page.locator("#w-birth_cert .uploads")).to_contain_text("birth.pdf")
    page.get_by_role("button", name=words["submit"], exact=True).click()
    expect(page).to_have_url(re.compile(r"/me/bundles/\d{14}\?submitted=1$"))
    expect(page.locator(".ok-summary")).to_contain_text(words["submitted"])
    expect(_status(page)).to_contain_text(words["status"])
    rows = page.locator("table.parts tbody tr")
    expect(rows).to_have_count(3)
    assert _axe(page) == []
    bundle_url = page.url.split("?")[0]
    parts = [rows.nth(i).locator("a").inner_text() for i in range(3)]
    assert all(re.fullmatch(r"\d{14}", p) for p in parts)

    # a department asks for supplementary material on one part: the combined status says so
    note = "出生医学证明不清晰，请重新上传。"
    _officer_steps(client, bundle, parts[1], ("officer.wang", "supplement", note))
    page.goto(bundle_url)
    expect(_status(page)).to_contain_text(words["asked"])
    assert _axe(page) == []
    page.locator(".warning-summary a").click()
    expect(page).to_have_url(re.compile(rf"/me/applications/{parts[1]}$"))
    expect(page.locator(".supplement")).to_contain_text(note)
    page.locator("#f-birth_cert").set_input_files(
        {
            "name": "birth-clear.pdf",
            "mimeType": "application/pdf",
            "buffer": pdf(f"Clear scan, mother ID {ID}"),
        }
    )
    page.get_by_role("button", name=words["send"]).click()
    expect(page.locator(".ok-summary")).to_contain_text(words["sent"])
    page.goto(bundle_url)
    expect(_status(page)).not_to_contain_text(words["asked"])

    # 受理 → 审查 → 决定 → 送达 for every part
    for receipt in parts:
        _officer_steps(
            client,
            bundle,
            receipt,
            ("officer.wang", "accept", ""),
            ("reviewer.zhou", "pass", ""),
            ("decider.wu", "approve", ""),
            ("officer.wang", None, ""),
        )
    page.reload()
    expect(_status(page)).to_contain_text(words["approved"])
    for i in range(3):
        expect(rows.nth(i)).to_contain_text(words["part_approved"])
    assert _axe(page) == []
    page.goto(f"{base_url}/me/bundles")
    expect(page.get_by_role("row").nth(1)).to_contain_text(words["approved"])
    assert _axe(page) == []
    context.close()
