"""A real Chromium: a person and an enterprise use the policy calculator. Each benefit is decided on what
they enter — met, failed or unknown for every condition, with its legal source — and an undetermined one
names the data that would decide it and who holds them. A wrong entry is refused at its field. axe-core
checks the pages, in Chinese and in English."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.web import conftest as web
from tests.web.test_accessibility import AXE, TAGS

browser = web.browser  # the shared Chromium fixture (Debian's)
pytestmark = pytest.mark.browser


def _axe(page: Page) -> list[str]:
    page.add_script_tag(content=AXE)
    result = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS
    )
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])})" for v in result["violations"]]


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_the_calculator_explains_a_person_s_and_an_enterprise_s_benefits(
    browser: Browser, base_url: str, library: None, locale: str
) -> None:
    context = browser.new_context(locale=locale, bypass_csp=True)
    page = context.new_page()
    english = locale.startswith("en")
    try:
        page.goto(f"{base_url}/policies")
        expect(page.locator("h1")).to_have_text("Policy library" if english else "政策库")
        expect(page.locator(".policy-list li")).to_have_count(6)
        assert _axe(page) == []
        page.locator('a[href="/policies/calculator"]').first.click()
        expect(page).to_have_url(re.compile(r"/policies/calculator$"))

        # a person of 91 with a grade-1 disability certificate; whether on the allowance is not known
        page.fill("#f-hukou_region", "110105")
        page.fill("#f-birth_date", "1934-05-01")
        page.select_option("#f-disability_certified", "true")
        page.fill("#f-disability_grade", "1")
        page.locator("form.policy-form button[type=submit]").click()
        elderly = page.locator("#item-elderly-allowance")
        expect(elderly.locator(".verdict")).to_contain_text("You qualify" if english else "符合条件")
        expect(elderly.locator(".verdict")).to_contain_text("500.00")
        disability = page.locator("#item-disability-living-subsidy")
        expect(disability.locator(".verdict")).to_contain_text("Not decided yet" if english else "暂无法确定")
        poor = disability.locator('tr[data-condition="poor"]')
        expect(poor).to_have_class(re.compile("outcome-unknown"))
        expect(poor.locator(".needs")).to_contain_text("民政局·低保对象名单")
        expect(poor.locator(".needs")).to_contain_text(
            "Minimum-living-allowance recipient" if english else "最低生活保障对象"
        )
        expect(disability.locator('tr[data-condition="disabled"]')).to_have_class(re.compile("outcome-met"))
        expect(disability.locator('tr[data-condition="hukou"] td[lang]')).to_contain_text(
            "示范市残联发〔2026〕2号 第二条"
        )
        # what was entered stays in the form, nothing else is assumed
        expect(page.locator("#f-low_income")).to_have_value("")
        assert _axe(page) == []

        # an enterprise: a small software firm, high-tech, last year's revenue known, the year before not
        page.goto(f"{base_url}/policies/calculator?entity=enterprise")
        page.fill("#f-region_code", "110108")
        page.fill("#f-industry_code", "I6510")
        page.fill("#f-employees", "forty")
        page.locator("form.policy-form button[type=submit]").click()
        expect(page.locator(".error-summary")).to_be_visible()
        expect(page.locator("#f-employees")).to_have_attribute("aria-invalid", "true")
        page.fill("#f-employees", "40")
        page.fill("#f-revenue", "30000000")  # yuan, for the last complete year (2025)
        page.select_option("#f-high_tech", "true")
        page.fill("#f-tax_credit_grade", "B")
        page.locator("form.policy-form button[type=submit]").click()
        growth = page.locator("#item-growth-award")
        expect(growth.locator(".verdict")).to_contain_text("Not decided yet" if english else "暂无法确定")
        grew = growth.locator('tr[data-condition="grew_20"]')
        expect(grew).to_have_class(re.compile("outcome-unknown"))
        expect(grew.locator(".needs")).to_contain_text("2024")
        expect(grew.locator(".needs")).to_contain_text("税务局·纳税申报")
        rent = page.locator("#item-smb-rent-subsidy")
        expect(rent.locator('tr[data-condition="small_or_micro"]')).to_have_class(re.compile("outcome-met"))
        expect(rent.locator('tr[data-condition="rent_declared"] .needs')).to_contain_text(
            "you provide it" if english else "由您提供"
        )
        assert _axe(page) == []

        # a household of two, one member's income not known: undetermined, naming the members' income
        page.goto(f"{base_url}/policies/calculator?entity=household")
        page.fill("#f-household_region", "110105")
        page.fill("#f-m1-birth_date", "1940-02-01")
        page.fill("#f-m1-monthly_income", "1200")
        page.fill("#f-m2-birth_date", "1945-07-09")
        page.locator("form.policy-form button[type=submit]").click()
        grant = page.locator("#item-household-hardship-grant")
        expect(grant.locator(".verdict")).to_contain_text("Not decided yet" if english else "暂无法确定")
        expect(grant.locator('tr[data-condition="low_income"] .needs')).to_contain_text(
            "Members' income last month" if english else "家庭成员上月收入合计"
        )
        page.fill("#f-m2-monthly_income", "900")
        page.locator("form.policy-form button[type=submit]").click()
        expect(grant.locator(".verdict")).to_contain_text("900.00")  # 500 yuan + 200 for each member over 70
        assert _axe(page) == []
    finally:
        context.close()
