"""Subscriptions and push over real HTTP: people subscribe by tags (and, with consent, their facts); an
amended item reaches those it matches — once, with the reason — in the inbox and by SMS through the outbox;
items published before a subscription and items a subscriber's facts fail reach nobody."""

from __future__ import annotations

import datetime as dt

import httpx
import yaml
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import bearer, make_account
from tests.policy.conftest import H
from tongban.core.clock import FixedClock
from tongban.intake.models import OutboxMessage
from tongban.policy import demo, tasks

PROBLEM = "application/problem+json"


def _subscribe(client: httpx.Client, who: H, **body: object) -> httpx.Response:
    return client.post("/api/v1/policy/me/subscriptions", json={"entity": "person", **body}, headers=who)


def test_an_amended_item_reaches_matching_subscribers_once_with_the_reason(
    client: httpx.Client,
    app: FastAPI,
    session: Session,
    clock: FixedClock,
    library: None,
    editor: H,
    reviewer: H,
) -> None:
    sealer = app.state.runtime.sealer
    for name in ("a.li", "b.zhang", "c.wang"):
        make_account(session, clock, name, [])
    session.commit()
    a, b, c = (bearer(client, n) for n in ("a.li", "b.zhang", "c.wang"))
    clock.advance(dt.timedelta(hours=1))
    # refused: facts without consent, SMS without a number, facts the calculator does not take
    for body in (
        {"tags": {"topic": ["养老"]}, "facts": {"hukou_region": "110105"}},
        {"tags": {"topic": ["养老"]}, "channel": "sms"},
        {"tags": {"topic": ["养老"]}, "facts": {"shoe_size": 42}, "consent": True},
    ):
        refused = _subscribe(client, a, **body)
        assert refused.status_code == 422, body
        assert refused.headers["content-type"] == PROBLEM
    made = _subscribe(
        client,
        a,
        tags={"topic": ["养老"]},
        facts={"hukou_region": "110105", "birth_date": "1948-06-01"},  # 77 at the time
        consent=True,
        channel="sms",
        contact="13800138000",
    )
    assert made.status_code == 201, made.text
    assert made.json()["contact"] == "138****8000"
    assert (
        _subscribe(
            client, b, tags={"topic": ["养老"]}, facts={"hukou_region": "310101"}, consent=True
        ).status_code
        == 201
    )  # lives in another city: the rules fail her
    assert (
        _subscribe(client, c, tags={"region": ["110105"]}).status_code == 201
    )  # a district: the city's items

    # items published before the subscriptions reach nobody
    assert tasks.push(session, sealer=sealer, clock=clock) == 0
    session.commit()

    # the allowance is amended: from 75 years on (a day later: sign in again)
    clock.advance(dt.timedelta(days=1))
    editor, reviewer = bearer(client, "policy.editor"), bearer(client, "policy.reviewer")
    a, b, c = (bearer(client, n) for n in ("a.li", "b.zhang", "c.wang"))
    item = yaml.safe_load(next(s for s in demo.item_sources() if "elderly-allowance" in s))
    item["version"] = 2
    item["conditions"][1]["min"] = 75
    item["conditions"][1]["text"] = {"zh": "年满75周岁", "en": "Aged 75 or over"}
    item["tests"][1]["expect"] = {"result": "eligible", "amount_fen": 10000}  # turns eighty tomorrow: now in
    proposed = client.post(
        "/api/v1/policy/items", json={"source": yaml.safe_dump(item, allow_unicode=True)}, headers=editor
    )
    assert proposed.status_code == 201, proposed.text
    published = client.post(
        "/api/v1/policy/items/elderly-allowance/versions/2/publish", json={}, headers=reviewer
    )
    assert published.status_code == 200, published.text

    assert tasks.push(session, sealer=sealer, clock=clock) == 2
    session.commit()
    assert tasks.push(session, sealer=sealer, clock=clock) == 0  # once

    inbox_a = client.get("/api/v1/policy/me/inbox", headers=a).json()
    assert [(p["item_key"], p["version"], p["kind"], p["result"]) for p in inbox_a] == [
        ("elderly-allowance", 2, "amended", "eligible")
    ]
    assert "养老" in inbox_a[0]["reason"]
    assert "符合条件" in inbox_a[0]["reason"]
    assert client.get("/api/v1/policy/me/inbox", headers=b).json() == []
    inbox_c = client.get("/api/v1/policy/me/inbox", headers=c).json()
    assert [(p["item_key"], p["result"]) for p in inbox_c] == [("elderly-allowance", "")]
    assert "region" in inbox_c[0]["reason"]
    sms = session.scalars(select(OutboxMessage).where(OutboxMessage.event == "policy.push")).all()
    assert [m.channel for m in sms] == ["sms"]
    assert sealer.open(sms[0].target, f"intake_outbox:{sms[0].id}:target") == "13800138000"

    assert client.post(f"/api/v1/policy/me/inbox/{inbox_a[0]['id']}/read", headers=c).status_code == 404
    assert client.post(f"/api/v1/policy/me/inbox/{inbox_a[0]['id']}/read", headers=a).status_code == 204
    assert client.get("/api/v1/policy/me/inbox", headers=a).json()[0]["read_at"] is not None

    subs = client.get("/api/v1/policy/me/subscriptions", headers=a).json()
    cancelled = client.delete(f"/api/v1/policy/me/subscriptions/{subs[0]['id']}", headers=a)
    assert cancelled.status_code == 200
    assert cancelled.json()["active"] is False
    assert cancelled.json()["has_facts"] is False
    assert client.get("/api/v1/policy/me/subscriptions", headers=c).json()[0]["active"] is True
