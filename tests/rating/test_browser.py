"""A real Chromium: the applicant rates a closed application as very dissatisfied; the unit calls back and
rectifies through its pages; the applicant rates again; the analyst's dashboard shows the figures change
at each step. axe-core checks the pages on the way, in Chinese and in English."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import PASSWORD
from tests.rating.conftest import close_application
from tests.web import conftest as web
from tests.web.test_accessibility import AXE, TAGS

browser = web.browser  # the shared Chromium fixture (Debian's)
pytestmark = pytest.mark.browser

H = dict[str, dict[str, str]]


def _axe(page: Page) -> list[str]:
    page.add_script_tag(content=AXE)
    result = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS
    )
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])})" for v in result["violations"]]


def _sign_in(page: Page, base_url: str, username: str, then: str) -> None:
    page.goto(f"{base_url}/staff/login?next={then}")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.locator('form[action="/staff/login"] button[type=submit]').click()
    expect(page).to_have_url(re.compile(re.escape(then) + "$"))


def _figure(page: Page, code: str) -> str:
    """The value of one indicator on the dashboard as the page states it (``data-value``)."""
    return page.locator(f"#ind-{code} td.num").get_attribute("data-value") or ""


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_a_bad_review_is_rectified_and_rated_again_and_the_dashboard_follows(
    browser: Browser, base_url: str, client: httpx.Client, quality: H, locale: str
) -> None:
    receipt = close_application(client, quality)
    contexts = {
        who: browser.new_context(locale=locale, bypass_csp=True) for who in ("citizen", "unit", "analyst")
    }
    citizen, unit, analyst = (contexts[w].new_page() for w in ("citizen", "unit", "analyst"))
    try:
        # the analyst's dashboard before: one closed application, nothing rated
        _sign_in(analyst, base_url, "analyst.ma", "/quality")
        assert _figure(analyst, "rating_rate") == "0.0"
        assert _figure(analyst, "satisfaction_rate") == ""
        assert _figure(analyst, "bad_rate") == ""
        assert _axe(analyst) == []

        # the applicant opens the closed application and rates it: very dissatisfied
        _sign_in(citizen, base_url, "citizen.li", f"/me/applications/{receipt}")
        citizen.locator(f'a[href="/ratings/application/{receipt}"]').click()
        expect(citizen).to_have_url(re.compile(f"/ratings/application/{receipt}$"))
        assert _axe(citizen) == []
        citizen.locator("form.rating-form button[type=submit]").click()  # no level chosen: refused
        expect(citizen.locator("#level-1")).to_have_attribute("aria-invalid", "true")
        citizen.locator("#level-1").check()
        citizen.locator("#dim-attitude").select_option("1")
        citizen.locator("#text").fill("窗口人员态度差，材料让我反复补交了三次。")
        citizen.locator("form.rating-form button[type=submit]").click()
        expect(citizen).to_have_url(re.compile(r"rated=1"))
        expect(citizen.locator("form.rating-form")).to_have_count(0)  # rated once; no second form

        analyst.reload()
        assert _figure(analyst, "rating_rate") == "1.0"
        assert _figure(analyst, "bad_rate") == "1.0"
        assert _figure(analyst, "rectification_rate") == "0.0"

        # the unit finds the rectification, records the return call, then the rectification
        _sign_in(unit, base_url, "unit.zhao", "/quality/rectifications")
        unit.locator('a[href^="/quality/rectifications/"]').first.click()
        expect(unit).to_have_url(re.compile(r"/quality/rectifications/\d+"))
        assert _axe(unit) == []
        unit.locator("#note-contact").fill("已电话回访申请人，了解到补正要求未一次性告知。")
        unit.locator('form[action$="/contact"] button[type=submit]').click()
        expect(unit.locator("#note-rectify")).to_be_visible()
        unit.locator("#note-rectify").fill("已修订一次性告知清单，并对窗口人员进行服务规范培训。")
        unit.locator('form[action$="/rectify"] button[type=submit]').click()
        expect(unit.locator("#note-rectify")).to_have_count(0)

        analyst.reload()
        assert _figure(analyst, "rectification_rate") == "1.0"
        assert _figure(analyst, "rectified_on_time_rate") == "1.0"
        assert _figure(analyst, "satisfaction_rate") == "0.0"

        # the applicant sees what was done and rates again: satisfied
        citizen.goto(f"{base_url}/ratings")
        citizen.locator(f'a[href="/ratings/application/{receipt}"]').first.click()
        expect(citizen.locator("body")).to_contain_text("已修订一次性告知清单")
        citizen.locator("#level-4").check()
        citizen.locator("form.rating-form button[type=submit]").click()
        expect(citizen).to_have_url(re.compile(r"rated=1"))
        expect(citizen.locator("form.rating-form")).to_have_count(0)
        assert _axe(citizen) == []

        analyst.reload()
        assert _figure(analyst, "satisfaction_rate") == "1.0"
        assert _figure(analyst, "bad_rate") == "1.0"  # the first rating stays a bad review
        # drill down to the bad review behind the figure
        analyst.locator("#ind-bad_rate a").first.click()
        expect(analyst).to_have_url(re.compile(r"/quality/cases\?"))
        expect(analyst.locator("body")).to_contain_text(receipt)
        assert _axe(analyst) == []
    finally:
        for context in contexts.values():
            context.close()
