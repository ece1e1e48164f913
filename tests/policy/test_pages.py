"""The policy pages over real HTTP with the session cookie and CSRF: an officer computes a run on its page,
another approves it there; a person sees the benefit decided for them with its explanation and appeals on
their page; the approver decides the appeal; subscriptions from the page."""

from __future__ import annotations

import html
import re
import uuid
from urllib.parse import quote

import httpx
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import csrf, make_account, staff_login
from tongban.core.clock import FixedClock
from tongban.intake.models import Profile
from tongban.policy import demo
from tongban.policy.models import PolicyGrant

DATE = "2026-03-02"


def _client(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=30, follow_redirects=False)


def test_a_run_an_appeal_and_a_subscription_through_the_pages(
    base_url: str, session: Session, clock: FixedClock, library: None
) -> None:
    make_account(session, clock, "pol.officer", ["policy_officer"])
    make_account(session, clock, "pol.approver", ["policy_approver"])
    zhao = make_account(session, clock, "old.zhao", [])
    session.commit()
    with _client(base_url) as officer, _client(base_url) as approver, _client(base_url) as citizen:
        assert citizen.get("/policies/me").status_code == 303  # sign in first
        staff_login(officer, "pol.officer")
        staff_login(approver, "pol.approver")
        staff_login(citizen, "old.zhao")
        page = officer.get("/staff/policies")
        assert page.status_code == 200
        token = csrf(page.text)
        name = f"pages-{uuid.uuid4().hex[:8]}"
        made = officer.post(
            "/api/v1/policy/snapshots/synthetic",
            json={"name": name, "persons": 5000, "enterprises": 10, "as_of": "2026-03-01", "seed": 3},
            headers={"X-CSRF-Token": token},
        )
        assert made.status_code == 201, made.text
        bad = officer.post(
            "/staff/policies/runs", data={"csrf_token": token, "entity": "person", "snapshot": "nope"}
        )
        assert bad.status_code == 404
        assert "nope" in bad.text
        computed = officer.post(
            "/staff/policies/runs",
            data={"csrf_token": token, "entity": "person", "snapshot": name, "date": DATE},
        )
        assert computed.status_code == 303, computed.text
        run_path = computed.headers["location"]
        run_page = officer.get(run_path)
        assert 'data-item="elderly-allowance"' in run_page.text
        assert "/decision" not in run_page.text  # the officer who computed it cannot decide it
        decide_page = approver.get(run_path)
        approved = approver.post(
            run_path + "/decision", data={"csrf_token": csrf(decide_page.text), "approve": "yes", "note": ""}
        )
        assert approved.status_code == 303
        assert "/decision" not in approver.get(run_path).text  # decided: no form any more

        run_id = int(run_path.rsplit("/", 1)[1])
        grant = session.scalars(
            select(PolicyGrant).where(PolicyGrant.run_id == run_id, PolicyGrant.status == "granted")
        ).first()
        assert grant is not None
        # the person's verified profile carries the keyed digest the snapshot's ids are
        session.add(
            Profile(
                kind="person",
                subject_digest=grant.subject_id,
                owner_account_id=zhao.account_id,
                created_at=clock.now(),
            )
        )
        session.commit()
        mine = citizen.get("/policies/me")
        assert mine.status_code == 200
        assert f'id="grant-{grant.id}"' in mine.text
        assert 'data-condition="aged_80"' in mine.text or 'data-condition="hukou"' in mine.text
        token = csrf(mine.text)
        short = citizen.post(
            f"/policies/me/grants/{grant.id}/appeal", data={"csrf_token": token, "reason": "错"}
        )
        assert short.status_code == 422
        filed = citizen.post(
            f"/policies/me/grants/{grant.id}/appeal",
            data={"csrf_token": token, "reason": "金额应按九十周岁以上标准发放，我已年满九十。"},
        )
        assert filed.status_code == 303
        assert (
            "appeal-form"
            not in citizen.get("/policies/me").text.split(f'id="grant-{grant.id}"')[1].split("</article>")[0]
        )

        appeals = approver.get("/staff/policies/appeals")
        assert "金额应按九十周岁以上标准发放" in appeals.text
        appeal_id = re.search(r"/staff/policies/appeals/(\d+)/decision", appeals.text)
        assert appeal_id is not None
        wrong = approver.post(
            appeal_id.group(0),
            data={
                "csrf_token": csrf(appeals.text),
                "uphold": "yes",
                "decision": "核实后符合",
                "amount": "5.001",
            },
        )
        assert wrong.status_code == 422
        upheld = approver.post(
            appeal_id.group(0),
            data={
                "csrf_token": csrf(appeals.text),
                "uphold": "yes",
                "decision": "核实后符合九十周岁标准",
                "amount": "500",
            },
        )
        assert upheld.status_code == 303
        session.expire_all()
        assert session.get(PolicyGrant, grant.id).amount_fen == 50000  # type: ignore[union-attr]
        assert "500.00" in citizen.get("/policies/me").text

        mine = citizen.get("/policies/me")
        bad_sub = citizen.post(
            "/policies/me/subscriptions",
            data={
                "csrf_token": csrf(mine.text),
                "entity": "person",
                "topic": "养老",
                "channel": "sms",
                "contact": "",
            },
        )
        assert bad_sub.status_code == 422
        sub = citizen.post(
            "/policies/me/subscriptions",
            data={
                "csrf_token": csrf(mine.text),
                "entity": "person",
                "topic": "养老, 助残",
                "channel": "inbox",
            },
        )
        assert sub.status_code == 303
        listed = citizen.get("/api/v1/policy/me/subscriptions").json()
        assert listed[0]["tags"] == {"topic": sorted(["养老", "助残"])}


def test_a_simulation_from_the_page(
    base_url: str, session: Session, clock: FixedClock, library: None
) -> None:
    make_account(session, clock, "pol.sim", ["policy_officer"])
    session.commit()
    with _client(base_url) as officer:
        staff_login(officer, "pol.sim")
        form = officer.get("/staff/policies/simulate", params={"item": "elderly-allowance"})
        assert form.status_code == 200
        assert "aged_80" in form.text  # the published rules, to change
        token = csrf(form.text)
        name = f"sim-{uuid.uuid4().hex[:8]}"
        made = officer.post(
            "/api/v1/policy/snapshots/synthetic",
            json={"name": name, "persons": 5000, "enterprises": 10, "as_of": "2026-03-01"},
            headers={"X-CSRF-Token": token},
        )
        assert made.status_code == 201
        source = re.search(r'<textarea id="sim-source"[^>]*>(.*?)</textarea>', form.text, re.S)
        assert source is not None
        changed = html.unescape(source.group(1)).replace("min: 80", "min: 90")
        done = officer.post(
            "/staff/policies/simulate",
            data={"csrf_token": token, "source": changed, "snapshot": name, "date": DATE},
        )
        assert done.status_code == 200, done.text
        draft = re.search(r'id="sim-draft"><th scope="row">[^<]*</th><td class="num">(\d+)</td>', done.text)
        published = re.search(
            r'id="sim-published"><th scope="row">[^<]*</th><td class="num">(\d+)</td>', done.text
        )
        assert draft is not None
        assert published is not None
        assert int(draft.group(1)) < int(published.group(1))
        bad = officer.post(
            "/staff/policies/simulate",
            data={"csrf_token": token, "source": "id: [", "snapshot": name, "date": DATE},
        )
        assert bad.status_code == 422


def test_the_drafters_desk_finds_a_repeated_text_and_an_overlapping_item(
    base_url: str, session: Session, clock: FixedClock, library: None
) -> None:
    with _client(base_url) as anonymous:
        assert anonymous.get("/staff/policies/draft").status_code == 303  # sign in first
    with _client(base_url) as editor:
        staff_login(editor, "policy.editor")
        form = editor.get("/staff/policies/draft")
        assert form.status_code == 200
        doc = editor.get("/api/v1/policy/documents/" + quote("示范市民发〔2026〕7号", safe="")).json()
        planted = yaml.safe_load(next(s for s in demo.item_sources() if "elderly-allowance" in s))
        planted["id"] = "longevity-bonus"
        done = editor.post(
            "/staff/policies/draft",
            data={
                "csrf_token": csrf(form.text),
                "text": "（征求意见稿）" + doc["body"],
                "item": yaml.safe_dump(planted, allow_unicode=True),
            },
        )
        assert done.status_code == 200, done.text
        assert 'data-code="示范市民发〔2026〕7号"' in done.text
        assert 'data-overlap="elderly-allowance"' in done.text
        assert 'data-kind="age_min"' in done.text
        empty = editor.post(
            "/staff/policies/draft", data={"csrf_token": csrf(form.text), "text": " ", "item": ""}
        )
        assert empty.status_code == 422
