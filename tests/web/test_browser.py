"""Playwright drives Debian's Chromium from the home page to an item page, in both languages."""

import gzip
import re
from importlib import resources
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy.orm import Session

from tongban.catalog.importer import import_file
from tongban.core.clock import FixedClock

pytestmark = pytest.mark.browser


@pytest.fixture
def demo_catalogue(session: Session, clock: FixedClock, tmp_path: Path) -> None:
    """The first 150 guides the package ships, imported through the real importer."""
    source = resources.files("tongban.demo") / "guangdong_guides.jsonl.gz"
    with source.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as fh:
        lines = [next(fh) for _ in range(150)]
    path = tmp_path / "demo.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    report = import_file(session, path, actor="test", clock=clock)
    assert report.created == 150
    session.commit()


def test_home_to_item_page_in_chinese_and_english(
    browser: Browser, base_url: str, demo_catalogue: None
) -> None:
    page = browser.new_page(locale="zh-CN")
    page.goto(base_url + "/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    page.get_by_role("link", name=re.compile("^个人")).click()
    expect(page).to_have_url(re.compile(r"/catalog\?audience=natural_person"))
    first = page.locator("ol.results li a").first
    name = first.inner_text()
    first.click()
    expect(page).to_have_url(re.compile(r"/catalog/items/"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    expect(page.get_by_role("heading", name="申请材料")).to_be_visible()
    expect(page.get_by_role("heading", name="办理时限")).to_be_visible()
    item_url = page.url

    page.get_by_role("link", name="English").click()
    expect(page).to_have_url(item_url)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="Materials")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)

    page.get_by_role("link", name="Tongban").first.click()
    page.get_by_role("link", name=re.compile("^Businesses and organisations")).click()
    page.locator("ol.results li a").first.click()
    expect(page.get_by_role("heading", name="Time limits")).to_be_visible()
    page.close()


def test_filters_update_results_in_place(browser: Browser, base_url: str, demo_catalogue: None) -> None:
    page = browser.new_page()
    page.goto(base_url + "/catalog?lang=en")
    total_before = page.locator("#results p.muted").inner_text()
    page.select_option("#department", "广东省教育厅")
    expect(page).to_have_url(re.compile(r"department=%E5%B9%BF"))
    expect(page.locator("#results p.muted")).not_to_have_text(total_before)
    metas = page.locator("ol.results li .meta")
    assert metas.count() > 0
    for text in metas.all_inner_texts():
        assert text.startswith("广东省教育厅")
    page.close()
