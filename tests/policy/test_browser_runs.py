"""A real Chromium on the officers' and the person's pages of a 免申即享 run: the run's totals, the
person's benefit with its explanation and the appeal form, the appeals desk. axe-core checks each page,
in Chinese and in English."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import PASSWORD, bearer, make_account
from tests.policy.test_browser import _axe
from tests.web import conftest as web
from tongban.core.clock import FixedClock
from tongban.intake.models import Profile
from tongban.policy.models import PolicyGrant

browser = web.browser
pytestmark = pytest.mark.browser


def _sign_in(page: Page, base_url: str, username: str, then: str) -> None:
    page.goto(f"{base_url}/staff/login?next={then}")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.locator('form[action="/staff/login"] button[type=submit]').click()
    expect(page).to_have_url(re.compile(re.escape(then) + "$"))


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_a_run_its_benefit_and_an_appeal_in_the_browser(
    browser: Browser,
    base_url: str,
    client: httpx.Client,
    session: Session,
    clock: FixedClock,
    library: None,
    locale: str,
) -> None:
    make_account(session, clock, "pol.officer", ["policy_officer"])
    make_account(session, clock, "pol.approver", ["policy_approver"])
    person = make_account(session, clock, "old.sun", [])
    session.commit()
    officer, approver = bearer(client, "pol.officer"), bearer(client, "pol.approver")
    name = f"browser-{uuid.uuid4().hex[:8]}"
    body = {"name": name, "persons": 5000, "enterprises": 10, "as_of": "2026-03-01", "seed": 5}
    assert client.post("/api/v1/policy/snapshots/synthetic", json=body, headers=officer).status_code == 201
    run = client.post(
        "/api/v1/policy/runs",
        json={"entity": "person", "snapshot": name, "date": "2026-03-02"},
        headers=officer,
    ).json()
    grant = session.scalars(
        select(PolicyGrant).where(PolicyGrant.run_id == run["id"], PolicyGrant.result == "undetermined")
    ).first()
    assert grant is not None
    session.add(
        Profile(
            kind="person",
            subject_digest=grant.subject_id,
            owner_account_id=person.account_id,
            created_at=clock.now(),
        )
    )
    session.commit()
    english = locale.startswith("en")
    contexts = [browser.new_context(locale=locale, bypass_csp=True) for _ in range(2)]
    staff, citizen = (c.new_page() for c in contexts)
    try:
        _sign_in(staff, base_url, "pol.approver", f"/staff/policies/runs/{run['id']}")
        expect(staff.locator('tr[data-item="elderly-allowance"]')).to_be_visible()
        assert _axe(staff) == []
        staff.locator('button[name="approve"][value="yes"]').click()
        expect(staff.locator("#run-status")).to_have_text("Approved" if english else "已批准")

        _sign_in(citizen, base_url, "old.sun", "/policies/me")
        card = citizen.locator(f"#grant-{grant.id}")
        expect(card.locator(".verdict")).to_contain_text(
            "Apply through the fast application" if english else "请通过快速申请办理"
        )
        expect(card.locator("tr.outcome-unknown .needs").first).to_be_visible()
        assert _axe(citizen) == []
        card.locator("textarea").fill("我的户籍信息里有出生日期，请核实。")
        card.locator("form.appeal-form button[type=submit]").click()
        expect(citizen.locator(f"#grant-{grant.id} .appeal-state")).to_contain_text(
            "Appeal under review" if english else "申诉审核中"
        )

        staff.goto(f"{base_url}/staff/policies/appeals")
        expect(staff.locator("main")).to_contain_text("我的户籍信息里有出生日期")
        assert _axe(staff) == []

        # 推演 of the published allowance, then the drafter's desk, each checked by axe
        staff.goto(f"{base_url}/staff/policies/simulate?item=elderly-allowance")
        staff.select_option("#sim-snapshot", name)
        staff.fill("#sim-date", "2026-03-02")
        staff.locator("form.policy-form button[type=submit]").click()
        expect(staff.locator("#sim-draft")).to_be_visible()
        assert _axe(staff) == []
        drafter = contexts[0].new_page()
        contexts[0].clear_cookies()
        _sign_in(drafter, base_url, "policy.editor", "/staff/policies/draft")
        drafter.fill("#d-text", "第二条 本市户籍、年满80周岁的老年人可享受高龄津贴。每人每月100元。")
        drafter.locator("form.policy-form button[type=submit]").click()
        expect(drafter.locator('tr[data-kind="age_min"]')).to_be_visible()
        assert _axe(drafter) == []
        assert client.get("/api/v1/policy/appeals", headers=approver).json()[0]["status"] == "open"
    finally:
        for c in contexts:
            c.close()
