"""Departments' own approval systems: registration with a generated signing secret, signed webhooks for
the steps in their lanes (through the outbox, retried while a system is down), signed callbacks that
report progress or complete the step, and precise refusals of anything unsigned, stale or misdirected."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import bearer, make_account
from tests.fakes.department import FakeDepartment
from tests.intake.helpers import CODE, ID, step, submit
from tongban.core import audit
from tongban.core.clock import FixedClock
from tongban.core.config import Settings
from tongban.core.models import IdempotencyRecord
from tongban.intake import departments, outbox, process, service
from tongban.intake.models import ApplicationEvent, DepartmentSystem, OutboxMessage

PARALLEL = process.example("parallel_departments")
XML = {"Content-Type": "application/xml"}


@pytest.fixture
def h(
    staff: dict[str, dict[str, str]], session: Session, clock: FixedClock, client: httpx.Client
) -> dict[str, dict[str, str]]:
    """Staff with an administrator and officers of the department lanes; the item runs the two-department
    process (the shipped example)."""
    make_account(session, clock, "admin.gao", ["admin"])
    make_account(session, clock, "market.zhao", ["intake_lane:dept_market"])
    session.commit()
    headers = {
        **staff,
        "admin.gao": bearer(client, "admin.gao"),
        "market.zhao": bearer(client, "market.zhao"),
    }
    saved = client.post(
        f"/api/v1/intake/items/{CODE}/processes", headers={**headers["editor.sun"], **XML}, content=PARALLEL
    )
    assert saved.status_code == 201, saved.text
    done = client.post(f"/api/v1/intake/items/{CODE}/processes/1/publish", headers=headers["publisher.qian"])
    assert done.status_code == 200, done.text
    return headers


@pytest.fixture
def fakes(clock: FixedClock) -> Iterator[dict[str, FakeDepartment]]:
    with FakeDepartment(clock=clock) as market, FakeDepartment(clock=clock) as tax:
        yield {"market": market, "tax": tax}


def _register(
    client: httpx.Client, h: dict[str, dict[str, str]], code: str, fake: FakeDepartment, name: str
) -> dict[str, Any]:
    created = client.put(
        f"/api/v1/intake/departments/{code}", headers=h["admin.gao"], json={"name": name, "url": fake.url}
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    fake.secret = body["secret"]
    return body


Deliver = Callable[..., outbox.DeliveryReport]


@pytest.fixture
def deliver(
    app: FastAPI, sessions: sessionmaker[Session], clock: FixedClock, base_url: str, tmp_path: Path
) -> Deliver:
    """One delivery pass with the real transports (files for email and SMS); keywords go to Settings."""

    def run(**kw: Any) -> outbox.DeliveryReport:
        settings = Settings(data_dir=tmp_path, public_url=base_url, **kw)
        sealer = app.state.runtime.sealer
        transports = service.outbox_transports(settings, sealer)
        try:
            return service.deliver_outbox(sessions, transports, settings=settings, sealer=sealer, clock=clock)
        finally:
            service.close_transports(transports)

    return run


@pytest.fixture
def market(
    client: httpx.Client, h: dict[str, dict[str, str]], fakes: dict[str, FakeDepartment]
) -> FakeDepartment:
    """The market regulator's system, registered (the fake knows its secret)."""
    _register(client, h, "market", fakes["market"], "市场监督管理局")
    return fakes["market"]


def _department_messages(session: Session) -> list[OutboxMessage]:
    session.expire_all()
    stmt = (
        select(OutboxMessage).where(OutboxMessage.channel == "department").order_by(OutboxMessage.created_at)
    )
    return list(session.scalars(stmt))


def test_an_administrator_registers_a_system_and_gets_its_secret_once(
    client: httpx.Client, h: dict[str, dict[str, str]], session: Session, fakes: dict[str, FakeDepartment]
) -> None:
    admin = h["admin.gao"]
    body = _register(client, h, "market", fakes["market"], "市场监督管理局")
    secret = body["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert body["lane"] == "dept_market"
    assert body["active"] is True

    listed = client.get("/api/v1/intake/departments", headers=admin)
    assert listed.status_code == 200
    assert [(d["code"], d["secret"]) for d in listed.json()] == [("market", None)]
    assert secret not in listed.text

    changed = client.put(
        "/api/v1/intake/departments/market",
        headers=admin,
        json={"name": "市场监管局", "url": fakes["market"].url, "active": False},
    )
    assert changed.status_code == 200
    assert changed.json()["secret"] is None
    assert changed.json()["active"] is False
    rotated = client.put(
        "/api/v1/intake/departments/market?rotate=true",
        headers=admin,
        json={"name": "市场监管局", "url": fakes["market"].url},
    )
    assert rotated.status_code == 200
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != secret
    assert rotated.headers["cache-control"] == "no-store"

    row = session.get(DepartmentSystem, "market")
    assert row is not None
    assert secret not in row.secret_sealed
    assert rotated.json()["secret"] not in row.secret_sealed
    trail = audit.list_events(session, target_type="intake_department_system", target_id="market")
    assert [e.detail["rotated"] for e in reversed(trail)] == [False, False, True]
    assert all(secret not in str(e.detail) for e in trail)

    assert client.get("/api/v1/intake/departments", headers=h["officer.wang"]).status_code == 403
    bad_code = client.put(
        "/api/v1/intake/departments/Market!", headers=admin, json={"name": "x", "url": "http://a.b/"}
    )
    assert bad_code.status_code == 422
    bad_url = client.put(
        "/api/v1/intake/departments/tax", headers=admin, json={"name": "税务", "url": "ftp://tax.example/in"}
    )
    assert bad_url.status_code == 422
    assert "http(s)" in bad_url.json()["detail"]


def test_two_departments_systems_decide_in_parallel_through_webhooks_and_callbacks(
    client: httpx.Client,
    base_url: str,
    h: dict[str, dict[str, str]],
    session: Session,
    fakes: dict[str, FakeDepartment],
    deliver: Deliver,
) -> None:
    market, tax = fakes["market"], fakes["tax"]
    _register(client, h, "market", market, "市场监督管理局")
    _register(client, h, "tax", tax, "税务局")
    app_out = submit(client, h)
    receipt = app_out["receipt_no"]
    assert _department_messages(session) == []  # 受理 first, at the window

    accepted = step(client, h["officer.wang"], app_out, "accept").json()
    waiting = {w["step"]: w["task_id"] for w in accepted["waiting"]}
    assert set(waiting) == {"market_review", "tax_review"}
    queued = _department_messages(session)
    assert sorted((m.target, m.event, m.state) for m in queued) == [
        ("market", "task.ready", "pending"),
        ("tax", "task.ready", "pending"),
    ]
    assert ID not in queued[0].payload_sealed  # the payload is sealed at rest

    report = deliver()
    assert report.dead == 0
    assert report.retrying == 0
    assert len(market.accepted) == len(tax.accepted) == 1
    ready = market.accepted[0]
    assert ready["type"] == "task.ready"
    data = ready["data"]
    assert (data["receipt_no"], data["task_id"], data["step"], data["department"]) == (
        receipt,
        waiting["market_review"],
        "market_review",
        "market",
    )
    assert data["values"]["id_number"] == ID  # unmasked: the department decides on it
    assert data["item_name"] == "租房提取住房公积金"
    assert [u["filename"] for u in data["uploads"]] == ["lease.pdf"]
    assert {m["name"] for m in data["materials"]} >= {"房屋租赁合同"}
    assert data["callback_url"] == f"{base_url}/api/v1/intake/departments/market/callbacks"
    assert market.requests[0].id == queued[[m.target for m in queued].index("market")].id
    assert tax.accepted[0]["data"]["step"] == "tax_review"
    assert {m.state for m in _department_messages(session)} == {"sent"}

    # The market department received it and works on it: events, and the applicant is told.
    got = market.callback(
        base_url, "market", {"type": "task.status", "task_id": waiting["market_review"], "status": "received"}
    )
    assert got.status_code == 200, got.text
    first_id = got.request.headers["webhook-id"]
    replay = market.callback(
        base_url,
        "market",
        {"type": "task.status", "task_id": waiting["market_review"], "status": "received"},
        message_id=first_id,
    )
    assert replay.status_code == 200
    assert replay.json() == got.json()
    assert replay.headers["idempotent-replayed"] == "true"
    working = market.callback(
        base_url,
        "market",
        {
            "type": "task.status",
            "task_id": waiting["market_review"],
            "status": "in_progress",
            "note": "核查中",
        },
    )
    assert working.status_code == 200, working.text
    citizen = h["citizen.li"]
    mine = client.get(f"/api/v1/me/applications/{receipt}", headers=citizen).json()
    assert [(e["actor"], e["action"], e["note"]) for e in mine["events"][-2:]] == [
        ("dept:market", "department:received", ""),
        ("dept:market", "department:in_progress", "核查中"),
    ]
    notices = client.get("/api/v1/me/notices", headers=citizen).json()
    assert [n["status"] for n in notices][:2] == ["department_in_progress", "department_received"]
    assert notices[0]["note"] == "核查中"

    # The market completes its step: the decision still waits for the tax department.
    done = market.callback(
        base_url,
        "market",
        {
            "type": "task.completed",
            "task_id": waiting["market_review"],
            "decision": "done",
            "note": "经营范围符合",
        },
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "in_progress"
    officer_view = client.get(f"/api/v1/intake/applications/{receipt}", headers=h["officer.wang"]).json()
    assert [w["step"] for w in officer_view["waiting"]] == ["tax_review"]
    assert client.get("/api/v1/intake/worklist", headers=h["decider.wu"]).json() == []

    done_tax = tax.callback(
        base_url,
        "tax",
        {"type": "task.completed", "task_id": waiting["tax_review"], "decision": "done", "note": "无欠税"},
    )
    assert done_tax.status_code == 200, done_tax.text
    after = client.get(f"/api/v1/intake/applications/{receipt}", headers=h["officer.wang"]).json()
    assert [w["step"] for w in after["waiting"]] == ["decide"]
    decided = step(client, h["decider.wu"], after, "approve", "符合条件")
    assert decided.status_code == 200, decided.text
    final = step(client, h["officer.wang"], decided.json(), None).json()
    assert final["status"] == "approved"
    steps = [(e["actor"], e["action"]) for e in final["events"] if e["action"].endswith(":done")]
    assert steps[:2] == [("dept:market", "market_review:done"), ("dept:tax", "tax_review:done")]
    trail = audit.list_events(session, target_type="intake_application", target_id=receipt)
    assert {(e.actor, e.action) for e in trail} >= {
        ("dept:market", "intake.application.step"),
        ("dept:tax", "intake.application.step"),
        ("dept:market", "intake.application.department_status"),
        ("system", "intake.department.task_sent"),
    }
    # Each webhook was delivered once: the deliveries were not repeated.
    assert market.duplicates == tax.duplicates == []
    assert len(market.requests) == len(tax.requests) == 1


def test_callbacks_that_are_unsigned_stale_or_misdirected_are_refused_and_store_nothing(
    client: httpx.Client,
    base_url: str,
    h: dict[str, dict[str, str]],
    session: Session,
    clock: FixedClock,
    fakes: dict[str, FakeDepartment],
) -> None:
    market = fakes["market"]
    _register(client, h, "market", market, "市场监督管理局")
    _register(client, h, "tax", fakes["tax"], "税务局")
    app_out = step(client, h["officer.wang"], submit(client, h), "accept").json()
    tasks = {w["step"]: w["task_id"] for w in app_out["waiting"]}
    status = {"type": "task.status", "task_id": tasks["market_review"], "status": "received"}
    events_before = session.scalar(select(func.count()).select_from(ApplicationEvent)) or 0

    def refused(response: httpx.Response, code: int, slug: str) -> None:
        assert response.status_code == code, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"] == f"/problems/{slug}"

    refused(
        market.callback(base_url, "market", status, secret=fakes["tax"].secret),
        401,
        "webhook-signature-invalid",
    )
    five_minutes = dt.timedelta(minutes=5, seconds=1)
    refused(
        market.callback(base_url, "market", status, at=clock.now() - five_minutes),
        401,
        "webhook-timestamp-rejected",
    )
    refused(
        market.callback(base_url, "market", status, at=clock.now() + five_minutes),
        401,
        "webhook-timestamp-rejected",
    )
    within = market.callback(base_url, "market", status, at=clock.now() - dt.timedelta(minutes=4))
    assert within.status_code == 200  # our clock decides, not the wall clock
    unsigned = httpx.post(f"{base_url}/api/v1/intake/departments/market/callbacks", json=status)
    refused(unsigned, 401, "unauthenticated")
    tampered = market.callback(
        base_url, "market", status, headers={"webhook-signature": "v1,AAAA v2,whatever"}
    )
    refused(tampered, 401, "webhook-signature-invalid")
    refused(market.callback(base_url, "nosuch", status), 404, "not-found")
    refused(
        market.callback(base_url, "market", {**status, "task_id": "00000000-0000-0000-0000-000000000000"}),
        404,
        "not-found",
    )
    other_lane = market.callback(base_url, "market", {**status, "task_id": tasks["tax_review"]})
    refused(other_lane, 403, "forbidden")
    refused(market.callback(base_url, "market", {**status, "status": "lost"}), 422, "invalid-input")
    refused(
        market.callback(
            base_url,
            "market",
            {"type": "task.completed", "task_id": tasks["market_review"], "decision": "approve"},
        ),
        422,
        "invalid-input",
    )
    client.put(
        "/api/v1/intake/departments/market",
        headers=h["admin.gao"],
        json={"name": "市场监督管理局", "url": market.url, "active": False},
    )
    refused(market.callback(base_url, "market", status), 403, "forbidden")

    session.expire_all()
    assert session.scalar(select(func.count()).select_from(ApplicationEvent)) == events_before + 1  # `within`
    kept = session.scalars(select(IdempotencyRecord).where(IdempotencyRecord.actor == "dept:market")).all()
    assert [r.key for r in kept] == [within.request.headers["webhook-id"]]


def test_a_department_that_is_down_gets_the_webhook_once_it_recovers(
    client: httpx.Client,
    h: dict[str, dict[str, str]],
    session: Session,
    clock: FixedClock,
    market: FakeDepartment,
    deliver: Deliver,
) -> None:
    market.fail_with, market.fail_times = 500, 2
    step(client, h["officer.wang"], submit(client, h), "accept")
    (message,) = _department_messages(session)

    first = deliver()
    assert (first.retrying, first.dead) == (1, 0)  # the department's webhook; the notice's SMS went out
    row = _department_messages(session)[0]
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.last_error == "the department system answered HTTP 500"
    assert row.next_attempt_at == clock.now() + dt.timedelta(seconds=30)
    assert deliver().attempted == 0  # not due yet

    clock.advance(dt.timedelta(seconds=30))
    deliver()
    row = _department_messages(session)[0]
    assert (row.state, row.attempts) == ("pending", 2)
    assert row.next_attempt_at == clock.now() + dt.timedelta(seconds=60)

    clock.advance(dt.timedelta(seconds=60))
    deliver()
    row = _department_messages(session)[0]
    assert (row.state, row.attempts, row.sent_at) == ("sent", 3, clock.now())
    assert [r.status for r in market.requests] == [500, 500, 200]
    assert {r.id for r in market.requests} == {message.id}  # the same message id every time
    assert market.accepted_ids == [message.id]
    clock.advance(dt.timedelta(hours=2))
    deliver()
    assert len(market.requests) == 3  # never sent again


def test_after_the_last_attempt_the_message_is_dead_and_officers_of_the_lane_take_the_step(
    client: httpx.Client,
    h: dict[str, dict[str, str]],
    session: Session,
    clock: FixedClock,
    market: FakeDepartment,
    deliver: Deliver,
) -> None:
    market.fail_with = 503
    app_out = step(client, h["officer.wang"], submit(client, h), "accept").json()
    for _ in range(3):
        deliver(outbox_max_attempts=3)
        clock.advance(dt.timedelta(hours=1))
    (row,) = _department_messages(session)
    assert (row.state, row.attempts) == ("dead", 3)
    assert [r.status for r in market.requests] == [503, 503, 503]
    assert market.accepted == []
    dead = audit.list_events(session, target_type="intake_outbox", target_id=row.id)
    assert [e.action for e in dead] == ["intake.outbox.dead"]

    market_officer = bearer(client, "market.zhao")  # signed in again: the clock moved on
    listed = client.get("/api/v1/intake/worklist", headers=market_officer).json()
    assert [(w["receipt_no"], w["step"]) for w in listed] == [(app_out["receipt_no"], "market_review")]
    task = next(w["task_id"] for w in app_out["waiting"] if w["step"] == "market_review")
    done = client.post(
        f"/api/v1/intake/applications/{app_out['receipt_no']}/steps/{task}",
        headers=market_officer,
        json={"decision": "done", "note": "窗口核验"},
    )
    assert done.status_code == 200, done.text


def test_without_an_active_system_the_step_stays_with_officers_of_the_lane(
    client: httpx.Client, h: dict[str, dict[str, str]], session: Session
) -> None:
    app_out = step(client, h["officer.wang"], submit(client, h), "accept").json()
    assert _department_messages(session) == []
    listed = client.get("/api/v1/intake/worklist", headers=h["market.zhao"]).json()
    assert [(w["receipt_no"], w["step"], w["role"]) for w in listed] == [
        (app_out["receipt_no"], "market_review", "dept_market")
    ]


def test_a_rotated_secret_replaces_the_old_one_for_webhooks_and_callbacks(
    client: httpx.Client,
    base_url: str,
    h: dict[str, dict[str, str]],
    market: FakeDepartment,
    deliver: Deliver,
) -> None:
    old = market.secret
    rotated = client.put(
        "/api/v1/intake/departments/market?rotate=true",
        headers=h["admin.gao"],
        json={"name": "市场监督管理局", "url": market.url},
    ).json()["secret"]
    market.secret = rotated
    app_out = step(client, h["officer.wang"], submit(client, h), "accept").json()
    deliver()
    assert len(market.accepted) == 1  # signed with the new secret
    task = market.accepted[0]["data"]["task_id"]
    stale = market.callback(
        base_url, "market", {"type": "task.status", "task_id": task, "status": "received"}, secret=old
    )
    assert stale.status_code == 401
    fresh = market.callback(
        base_url, "market", {"type": "task.status", "task_id": task, "status": "received"}
    )
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["receipt_no"] == app_out["receipt_no"]


@pytest.mark.parametrize("timestamp", ["999999999999", "²", "-1", "1e9", ""])
def test_malformed_webhook_timestamps_are_refused_not_crashed(timestamp: str) -> None:
    headers = {"webhook-id": "msg_1", "webhook-timestamp": timestamp, "webhook-signature": "v1,AAAA"}
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    with pytest.raises(departments.WebhookSignatureInvalid):
        departments.verify(secret, b"{}", headers, now=dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
