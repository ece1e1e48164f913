"""A real Chromium takes a ticket from web intake through dispatch, a return by the unit, the re-dispatch,
the reply, and the requester's return visit and rating, and the supervisor sees the three rates change on
the way. Each role has a browser context of its own (requester, operator, two units, supervisor); axe-core
checks WCAG 2.2 AA on every page, in Chinese and in English."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import Session

from tests.conftest import PASSWORD, make_account
from tests.web import conftest as web
from tests.web.test_accessibility import AXE, TAGS
from tongban.core.clock import FixedClock

browser = web.browser  # the shared Chromium fixture (Debian's)
pytestmark = pytest.mark.browser

H = dict[str, dict[str, str]]
ROAD = "城乡建设/市政设施/道路维修"


def _axe(page: Page) -> list[str]:
    page.add_script_tag(content=AXE)
    result = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS
    )
    return [f"{v['id']}: {v['help']} {[n['target'] for n in v['nodes']][:3]}" for v in result["violations"]]


def _sign_in(page: Page, base_url: str, username: str, then: str) -> None:
    page.goto(f"{base_url}/staff/login?next={then}")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.locator('form[action="/staff/login"] button[type=submit]').click()
    expect(page).to_have_url(re.compile(re.escape(then) + "$"))
    page.wait_for_load_state()  # the URL changes when the navigation commits, before the new page is parsed


def _rates(page: Page, row: str) -> dict[str, str]:
    """The figures of one row of the rates table as the page states them (``data-value``)."""
    expect(page.locator(f'tr[id="{row}"]')).to_be_visible()
    cells = page.locator(f'tr[id="{row}"] td[data-rate]')
    out = {}
    for i in range(cells.count()):
        cell = cells.nth(i)
        out[cell.get_attribute("data-rate") or ""] = cell.get_attribute("data-value") or ""
    return out


def _submit(page: Page, action_end: str) -> None:
    page.locator(f'form[action$="{action_end}"] button[type=submit]').first.click()


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_a_ticket_from_web_intake_to_the_three_rates(
    browser: Browser,
    base_url: str,
    client: httpx.Client,
    hl: H,
    session: Session,
    clock: FixedClock,
    locale: str,
) -> None:
    make_account(session, clock, "u.jsq", ["hotline_unit:cy-jsq"])
    session.commit()
    english = locale.startswith("en")
    roles = ("citizen", "operator", "roads", "street", "supervisor")
    contexts = {who: browser.new_context(locale=locale, bypass_csp=True) for who in roles}
    citizen, operator, roads, street, supervisor = (contexts[w].new_page() for w in roles)
    try:
        # The supervisor's rates before: nothing dispatched, no rate.
        _sign_in(supervisor, base_url, "sup.wang", "/hotline/rates")
        assert _rates(supervisor, "rates-total") == {
            "dispatched": "0",
            "response": "",
            "resolution": "",
            "satisfaction": "",
            "score": "",
        }
        assert _axe(supervisor) == []

        # The requester files the request on the web form; a missing description is caught first.
        _sign_in(citizen, base_url, "citizen.chen", "/hotline/new")
        expect(citizen.locator("html")).to_have_attribute("lang", "en" if english else "zh-Hans")
        assert _axe(citizen) == []
        citizen.fill("#t-subject", "建国路路面塌陷")
        _submit(citizen, "/hotline/new")
        expect(citizen.locator("#t-body")).to_have_attribute("aria-invalid", "true")
        expect(citizen.locator("#t-subject")).to_have_value("建国路路面塌陷")  # the input is kept
        assert _axe(citizen) == []
        citizen.fill("#t-body", "朝阳区建国路88号小区门口路面塌陷一个大坑，晚上很危险，请尽快修复。")
        citizen.fill("#t-address", "北京市朝阳区建国路88号")
        _submit(citizen, "/hotline/new")
        expect(citizen).to_have_url(re.compile(r"/hotline/new/received\?"))
        ref = citizen.locator("#ticket-ref").inner_text().strip()
        assert re.fullmatch(r"\d{15}", ref)
        assert _axe(citizen) == []

        # The operator finds it at the desk, confirms the category and dispatches it to the catalogue's unit.
        _sign_in(operator, base_url, "op.li", "/hotline/desk")
        assert _axe(operator) == []
        operator.locator(f'a[href="/hotline/desk/{ref}"]').first.click()
        expect(operator.locator("#h-assistant")).to_be_visible()
        assert _axe(operator) == []
        operator.select_option("#c-category", ROAD)
        _submit(operator, "/classify")
        expect(operator.locator("#d-plan")).to_contain_text("市交通委员会")
        _submit(operator, "/dispatch")
        expect(operator.locator(".ok-summary")).to_be_visible()
        assert _axe(operator) == []

        supervisor.reload()
        dispatched = _rates(supervisor, "rates-total")
        assert dispatched["dispatched"] == "1"
        assert dispatched["response"] == "0.0"  # nobody contacted the requester yet
        assert dispatched["resolution"] == ""

        # The roads unit signs, then returns it: the street office owns the road inside the estate.
        _sign_in(roads, base_url, "u.roads", "/hotline/inbox")
        assert _axe(roads) == []
        roads.locator(f'a[href="/hotline/inbox/{ref}"]').click()
        assert _axe(roads) == []
        _submit(roads, "/sign")
        expect(roads.locator("#b-reason")).to_be_visible()
        roads.fill("#b-reason", "属于小区内部道路，由街道负责维修。")
        roads.select_option("#b-unit", "cy-jsq")
        _submit(roads, "/return")
        expect(roads.locator("#b-reason")).to_have_count(0)
        assert _axe(roads) == []

        # The supervisor accepts the return and re-dispatches to the unit the roads unit suggested.
        supervisor.goto(f"{base_url}/hotline/supervise")
        expect(supervisor.locator(f"#h-ret-{ref}")).to_be_visible()
        expect(supervisor.locator(f"#accept-lead-{ref}")).to_have_value("cy-jsq")
        assert _axe(supervisor) == []
        supervisor.locator(
            f'form[action="/hotline/supervise/returns/{ref}"]:has(input[name=decision][value=accept]) '
            "button[type=submit]"
        ).click()
        expect(supervisor.locator(f"#h-ret-{ref}")).to_have_count(0)
        expect(supervisor.locator(".ok-summary")).to_contain_text(ref)
        assert _axe(supervisor) == []

        # The street office signs, records the call to the requester and replies.
        _sign_in(street, base_url, "u.jsq", "/hotline/inbox")
        street.locator(f'a[href="/hotline/inbox/{ref}"]').click()
        _submit(street, "/sign")
        street.fill("#k-note", "已电话联系诉求人，约定明天现场查看。")
        _submit(street, "/contact")
        expect(street.locator("#r-reply")).to_be_visible()
        assert _axe(street) == []
        street.fill("#r-reply", "已组织施工队修复小区门口路面，现已恢复通行。")
        _submit(street, "/reply")
        expect(street.locator("#r-reply")).to_have_count(0)
        assert _axe(street) == []

        supervisor.goto(f"{base_url}/hotline/rates")
        replied = _rates(supervisor, "rate-cy-jsq")
        assert replied == {
            "dispatched": "1",
            "response": "1.0",
            "resolution": "",
            "satisfaction": "",
            "score": "100.0",
        }
        assert _rates(supervisor, "rates-total")["response"] == "1.0"

        # The requester reads the reply and answers the return visit: solved, very satisfied.
        citizen.goto(f"{base_url}/hotline/tickets")
        assert _axe(citizen) == []
        citizen.locator(f'a[href="/hotline/tickets/{ref}"]').click()
        expect(citizen.locator("#h-reply")).to_be_visible()
        expect(citizen.locator("body")).to_contain_text("已组织施工队修复小区门口路面")
        assert _axe(citizen) == []
        _submit(citizen, "/revisit")  # nothing chosen: refused, with the problems linked
        expect(citizen.locator("#v-resolved-yes")).to_have_attribute("aria-invalid", "true")
        assert _axe(citizen) == []
        citizen.locator("#v-resolved-yes").check()
        citizen.locator("#v-satisfaction-5").check()
        citizen.fill("#v-comment", "修得很快，谢谢。")
        _submit(citizen, "/revisit")
        expect(citizen).to_have_url(re.compile(r"done=revisit$"))
        expect(citizen.locator('form[action$="/revisit"]')).to_have_count(0)
        assert _axe(citizen) == []

        # The three rates have changed: the response, resolution and satisfaction rates are all met.
        supervisor.reload()
        after = _rates(supervisor, "rate-cy-jsq")
        assert after == {
            "dispatched": "1",
            "response": "1.0",
            "resolution": "1.0",
            "satisfaction": "1.0",
            "score": "100.0",
        }
        assert after != replied
        total = _rates(supervisor, "rates-total")
        assert (total["response"], total["resolution"], total["satisfaction"]) == ("1.0", "1.0", "1.0")
        expect(supervisor.locator("svg[role=img]")).to_have_count(1)
        assert _axe(supervisor) == []
    finally:
        for context in contexts.values():
            context.close()
