"""WCAG 2.2 AA checks with axe-core (vendored in tests/vendor, MPL-2.0) in a real Chromium, both languages."""

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser
from sqlalchemy.orm import Session

from tests.conftest import PASSWORD, make_account
from tests.factories import item
from tongban.catalog import service
from tongban.core.clock import FixedClock

AXE = (Path(__file__).parents[1] / "vendor" / "axe-4.14.1.min.js").read_text(encoding="utf-8")
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
pytestmark = pytest.mark.browser


@pytest.fixture
def catalogue(session: Session, clock: FixedClock) -> None:
    service.import_item(
        session, item(situations=[{"key": "branch", "name": "分支机构"}]), actor="t", clock=clock, source="t"
    )
    service.import_item(
        session,
        item(code="12120000TEST0001", region="天津市", department="天津市市场监督管理局", visits=2),
        actor="t",
        clock=clock,
        source="t",
    )
    make_account(session, clock, "admin1", ["admin"])
    session.commit()


def _violations(browser: Any, url: str, cookies: list[dict[str, str]] | None = None) -> list[str]:
    context = browser.new_context(bypass_csp=True)  # to inject axe; the pages themselves run no inline script
    if cookies:
        context.add_cookies(cookies)
    page = context.new_page()
    page.goto(url)
    page.add_script_tag(content=AXE)
    result = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS
    )
    context.close()
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {json.dumps([n['target'] for n in v['nodes']][:3])}"
        for v in result["violations"]
    ]


@pytest.mark.parametrize("lang", ["zh-Hans", "en"])
@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/catalog",
        "/catalog?theme=准营准办",
        "/catalog/items/11110000TEST0001",
        "/search",
        "/search?q=食品经营许可",
        "/search?q=qwxzvkj",
        "/consult/guide",
        "/intake/bundles",
        "/knowledge/catalog:11110000TEST0001",
        "/staff/login",
        "/no/such/page",
    ],
)
def test_public_pages_have_no_wcag_violations(
    browser: Browser, base_url: str, catalogue: None, path: str, lang: str
) -> None:
    separator = "&" if "?" in path else "?"
    assert _violations(browser, f"{base_url}{path}{separator}lang={lang}") == []


@pytest.mark.parametrize(
    "path",
    [
        "/staff",
        "/staff/catalog",
        "/staff/catalog/new",
        "/staff/catalog/items/11110000TEST0001",
        "/staff/catalog/items/11110000TEST0001/edit",
        "/staff/catalog/check",
        "/staff/audit",
        "/staff/knowledge",
        "/staff/knowledge/ops",
        "/staff/knowledge/lexicon",
        "/staff/knowledge/new",
        "/staff/knowledge/entries/catalog:11110000TEST0001",
        "/staff/knowledge/entries/catalog:11110000TEST0001/edit",
        "/staff/consult/agents",
        "/staff/consult/agents/new",
        "/staff/intake/worklist",
        "/staff/intake/monitor",
    ],
)
def test_staff_pages_have_no_wcag_violations(
    browser: Browser, base_url: str, catalogue: None, path: str
) -> None:
    token = httpx.post(
        f"{base_url}/api/v1/auth/login", json={"username": "admin1", "password": PASSWORD}
    ).json()
    cookie = {"name": "tongban_session", "value": token["token"], "url": base_url}
    assert _violations(browser, base_url + path, [cookie]) == []


def test_the_checker_finds_a_real_violation(browser: Browser) -> None:
    """The check above can fail: a form field without a label is reported."""
    context = browser.new_context()
    page = context.new_page()
    page.set_content('<!doctype html><html lang="en"><title>t</title><main><input id="x"></main></html>')
    page.add_script_tag(content=AXE)
    result = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS
    )
    context.close()
    assert "label" in {v["id"] for v in result["violations"]}
