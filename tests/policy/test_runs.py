"""免申即享 / 直达快享 runs over real HTTP and a real DuckDB snapshot of a synthetic city: computed by one
officer and approved by another; every stored row agrees with the per-request engine on the same facts;
stacking and a budget pool hold; money totals agree to the fen on two paths; the run is reproduced from
its recorded rule versions and snapshot; a person sees the explanation of their benefit and appeals, and
an officer decides. Simulation (推演) of a changed item over the same data."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import yaml
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import bearer, make_account
from tests.policy.conftest import H
from tongban.core.clock import FixedClock
from tongban.intake.models import Profile
from tongban.policy import demo, engine, runs
from tongban.policy import service as policy
from tongban.policy.models import PolicyGrant

PROBLEM = "application/problem+json"
DATE = "2026-03-02"


@pytest.fixture
def officers(client: httpx.Client, session: Session, clock: FixedClock, library: None) -> dict[str, H]:
    make_account(session, clock, "policy.officer", ["policy_officer"])
    make_account(session, clock, "policy.approver", ["policy_approver"])
    session.commit()
    return {name: bearer(client, f"policy.{name}") for name in ("officer", "approver")}


@pytest.fixture
def city(client: httpx.Client, officers: dict[str, H], app: FastAPI) -> tuple[str, Path]:
    name = f"city-{uuid.uuid4().hex[:12]}"  # the files outlive each test's rolled-back database
    body = {"name": name, "persons": 20000, "enterprises": 2000, "as_of": "2026-03-01", "seed": 7}
    made = client.post("/api/v1/policy/snapshots/synthetic", json=body, headers=officers["officer"])
    assert made.status_code == 201, made.text
    data_dir = app.state.runtime.settings.data_dir
    return name, runs.snapshot_dir(data_dir) / f"{name}.duckdb"


def _bonus_item(total_fen: int) -> str:
    """A planted item: every disabled person of the city, 200 yuan, in the disability subsidy's stacking
    group (就高), from a small budget pool."""
    item = yaml.safe_load(next(s for s in demo.item_sources() if "disability-living-subsidy" in s))
    item.update(
        {
            "id": "disability-bonus",
            "title": {"zh": "残疾人一次性慰问金", "en": "One-off payment to disabled people"},
            "conditions": [
                *item["conditions"][:1],
                {
                    "id": "certified",
                    "text": {"zh": "持有残疾人证", "en": "Holds a disability certificate"},
                    "type": "flag",
                    "variable": "disability_certified",
                    "source": {"document": "示范市残联发〔2026〕2号", "article": "第二条"},
                },
            ],
            "amount": {"expr": "20000"},
            "budget": {"pool": "bonus-2026", "total_fen": total_fen},
            "tests": [
                {
                    "name": "certified",
                    "date": DATE,
                    "inputs": {"hukou_region": "110105", "disability_certified": True},
                    "expect": {"result": "eligible", "amount_fen": 20000},
                }
            ],
        }
    )
    return yaml.safe_dump(item, allow_unicode=True)


def _publish_bonus(client: httpx.Client, total_fen: int) -> None:
    editor, reviewer = bearer(client, "policy.editor"), bearer(client, "policy.reviewer")
    proposed = client.post("/api/v1/policy/items", json={"source": _bonus_item(total_fen)}, headers=editor)
    assert proposed.status_code == 201, proposed.text
    published = client.post(
        "/api/v1/policy/items/disability-bonus/versions/1/publish", json={}, headers=reviewer
    )
    assert published.status_code == 200, published.text


def _facts(path: Path, entity: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        cursor = con.execute(f"SELECT * FROM {entity} WHERE id IN ({', '.join('?' for _ in ids)})", ids)
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
        return {
            row[0]: {k: v for k, v in zip(names, row, strict=True) if k not in ("id", "household_id")}
            for row in rows
        }
    finally:
        con.close()


def _approved_run(client: httpx.Client, officers: dict[str, H], snapshot: str) -> dict[str, Any]:
    """A run of the person items over ``snapshot``, computed by one officer and approved by the other."""
    run: dict[str, Any] = client.post(
        "/api/v1/policy/runs",
        json={"entity": "person", "snapshot": snapshot, "date": DATE},
        headers=officers["officer"],
    ).json()
    approved = client.post(
        f"/api/v1/policy/runs/{run['id']}/decision", json={"approve": True}, headers=officers["approver"]
    )
    assert approved.status_code == 200, approved.text
    return run


def _link(session: Session, clock: FixedClock, username: str, subject_id: str) -> None:
    """A citizen account whose verified profile carries the keyed digest the snapshot's ids are."""
    person = make_account(session, clock, username, [])
    session.add(
        Profile(
            kind="person",
            subject_digest=subject_id,
            owner_account_id=person.account_id,
            created_at=clock.now(),
        )
    )
    session.commit()


def test_a_run_is_computed_approved_by_another_officer_and_reproduced(
    client: httpx.Client, officers: dict[str, H], city: tuple[str, Path], session: Session, clock: FixedClock
) -> None:
    name, path = city
    _publish_bonus(client, total_fen=100_000)
    made = client.post(
        "/api/v1/policy/runs",
        json={"entity": "person", "snapshot": name, "date": DATE},
        headers=officers["officer"],
    )
    assert made.status_code == 201, made.text
    run = made.json()
    assert run["status"] == "computed"
    assert {i["key"] for i in run["rules"]["items"]} == {
        "elderly-allowance",
        "disability-living-subsidy",
        "disability-bonus",
    }
    assert run["snapshot"]["digest"] == runs.file_digest(path)
    summary = run["summary"]["items"]
    assert summary["elderly-allowance"]["eligible"] > 100

    # every stored row is what the per-request engine decides on the same facts
    page = client.get(
        f"/api/v1/policy/runs/{run['id']}/grants", params={"per_page": 500}, headers=officers["officer"]
    ).json()
    rows = page["grants"]
    facts = _facts(path, "person", sorted({g["subject_id"] for g in rows}))
    _, rules = policy.current_rules(session)
    matcher = engine.Matcher(rules, dt.date.fromisoformat(DATE))
    for g in rows:
        decided = {d.item_id: d for d in matcher.evaluate("person", facts[g["subject_id"]])}[g["item_key"]]
        assert (decided.result, decided.amount_fen) == (g["result"], g["amount_fen"]), g
        outcomes = {c.id: c.value for c in decided.conditions}
        for c in g["conditions"]:
            assert c["outcome"] == {True: "met", False: "failed", None: "unknown"}[outcomes[c["id"]]]
            if c["outcome"] == "unknown":
                assert c["needs"], c

    # stacking (就高) within the group, and the budget pool of the bonus (5 × 200 yuan)
    all_rows = session.scalars(select(PolicyGrant).where(PolicyGrant.run_id == run["id"])).all()
    by_subject: dict[str, list[PolicyGrant]] = {}
    for g in all_rows:
        if g.item_key in ("disability-living-subsidy", "disability-bonus") and g.result == "eligible":
            by_subject.setdefault(g.subject_id, []).append(g)
    both = [gs for gs in by_subject.values() if len(gs) == 2]
    assert both, "the synthetic city has people eligible for both"
    for gs in both:
        standing = [g for g in gs if g.status != "stacked"]
        assert len(standing) == 1
        assert standing[0].amount_fen == max(g.amount_fen or 0 for g in gs)
    bonus = [
        g
        for g in all_rows
        if g.item_key == "disability-bonus" and g.status == "proposed" and g.result == "eligible"
    ]
    assert len(bonus) == 5
    assert sum(g.amount_fen or 0 for g in bonus) == 100_000
    over = [g for g in all_rows if g.item_key == "disability-bonus" and g.status == "over_budget"]
    assert len(over) == summary["disability-bonus"]["over_budget"] > 0

    # four eyes; then approval grants the data-bound ones and notices the rest
    refused = client.post(
        f"/api/v1/policy/runs/{run['id']}/decision", json={"approve": True}, headers=officers["officer"]
    )
    assert refused.status_code == 403
    approved = client.post(
        f"/api/v1/policy/runs/{run['id']}/decision", json={"approve": True}, headers=officers["approver"]
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    session.expire_all()
    statuses = dict(
        session.execute(
            select(PolicyGrant.status, func.count())
            .where(PolicyGrant.run_id == run["id"])
            .group_by(PolicyGrant.status)
        ).all()
    )
    assert statuses["granted"] > 0
    assert statuses["noticed"] > 0
    assert "proposed" not in statuses
    # money to the fen on two paths: the rows stored in the database and DuckDB's summary
    granted_fen = session.scalar(
        select(func.sum(PolicyGrant.amount_fen)).where(
            PolicyGrant.run_id == run["id"], PolicyGrant.status == "granted"
        )
    )
    assert granted_fen == sum(s["granted_fen"] for s in summary.values())
    again = client.post(
        f"/api/v1/policy/runs/{run['id']}/decision", json={"approve": True}, headers=officers["approver"]
    )
    assert again.status_code == 409

    verified = client.post(f"/api/v1/policy/runs/{run['id']}/verify", headers=officers["officer"]).json()
    assert verified["reproduced"] is True

    # a second run: the bonus pool is spent, and the stacking group holds across runs
    second = client.post(
        "/api/v1/policy/runs",
        json={"entity": "person", "snapshot": name, "date": DATE},
        headers=officers["officer"],
    ).json()
    assert second["rules"]["budget_left_fen"]["bonus-2026"] == 0
    assert second["summary"]["items"]["disability-bonus"]["to_grant"] == 0


def test_a_person_sees_the_explanation_of_their_benefit_and_appeals(
    client: httpx.Client,
    officers: dict[str, H],
    city: tuple[str, Path],
    session: Session,
    clock: FixedClock,
) -> None:
    name, _ = city
    run = _approved_run(client, officers, name)
    noticed = session.scalars(
        select(PolicyGrant).where(
            PolicyGrant.run_id == run["id"],
            PolicyGrant.item_key == "elderly-allowance",
            PolicyGrant.result == "undetermined",
        )
    ).first()
    assert noticed is not None
    _link(session, clock, "old.wang", noticed.subject_id)
    make_account(session, clock, "someone.else", [])
    session.commit()
    me = bearer(client, "old.wang")
    mine = client.get("/api/v1/policy/me/grants", headers=me).json()
    grant = next(g for g in mine if g["id"] == noticed.id)
    assert grant["status"] == "noticed"
    assert grant["result"] == "undetermined"
    assert [n["variable"] for n in grant["needs"]] == ["birth_date"]
    assert grant["needs"][0]["proof"] == "公安局·户籍信息"
    other = bearer(client, "someone.else")
    assert (
        client.post(
            f"/api/v1/policy/me/grants/{noticed.id}/appeal", json={"reason": "我已满八十岁"}, headers=other
        ).status_code
        == 404
    )
    filed = client.post(
        f"/api/v1/policy/me/grants/{noticed.id}/appeal",
        json={"reason": "我1940年出生，户籍信息里有出生日期。"},
        headers=me,
    )
    assert filed.status_code == 201, filed.text
    assert (
        client.post(
            f"/api/v1/policy/me/grants/{noticed.id}/appeal", json={"reason": "再次申诉一下"}, headers=me
        ).status_code
        == 409
    )
    listed = client.get(
        "/api/v1/policy/appeals", params={"status": "open"}, headers=officers["approver"]
    ).json()
    assert [a["grant_id"] for a in listed] == [noticed.id]
    assert client.get("/api/v1/policy/appeals", headers=officers["officer"]).status_code == 403
    no_amount = client.post(
        f"/api/v1/policy/appeals/{filed.json()['id']}/decision",
        json={"uphold": True, "decision": "核实出生日期后符合条件"},
        headers=officers["approver"],
    )
    assert no_amount.status_code == 422
    assert no_amount.headers["content-type"] == PROBLEM
    decided = client.post(
        f"/api/v1/policy/appeals/{filed.json()['id']}/decision",
        json={"uphold": True, "decision": "核实出生日期后符合条件", "amount_fen": 10000},
        headers=officers["approver"],
    )
    assert decided.status_code == 200, decided.text
    mine = {g["id"]: g for g in client.get("/api/v1/policy/me/grants", headers=me).json()}
    assert mine[noticed.id]["status"] == "granted"
    assert mine[noticed.id]["amount_fen"] == 10000
    assert mine[noticed.id]["appeal"] == "upheld"


def test_simulation_shows_who_qualifies_and_the_cost_before_publishing(
    client: httpx.Client, officers: dict[str, H], city: tuple[str, Path]
) -> None:
    name, _ = city
    item = yaml.safe_load(next(s for s in demo.item_sources() if "elderly-allowance" in s))
    item["conditions"][1]["min"] = 90
    item["budget"] = {"pool": "elderly", "total_fen": 10_000_000}
    sim = client.post(
        "/api/v1/policy/simulations",
        json={"source": yaml.safe_dump(item, allow_unicode=True), "snapshot": name, "date": DATE},
        headers=officers["officer"],
    )
    assert sim.status_code == 200, sim.text
    out = sim.json()
    assert out["published"] is not None
    assert 0 < out["draft"]["eligible"] < out["published"]["eligible"]
    assert out["draft"]["cost_fen"] == sum(row[2] for row in out["draft"]["districts"])
    assert sum(row[1] for row in out["draft"]["districts"]) == out["draft"]["eligible"]
    assert out["budget_share"] == round(out["draft"]["cost_fen"] / 10_000_000, 4)
    # bad input
    bad = client.post(
        "/api/v1/policy/simulations",
        json={"source": "id: x", "snapshot": name},
        headers=officers["officer"],
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"] == PROBLEM
    missing = client.post(
        "/api/v1/policy/runs",
        json={"entity": "person", "snapshot": "no-such-city"},
        headers=officers["officer"],
    )
    assert missing.status_code == 404
    unknown = client.post(
        "/api/v1/policy/runs",
        json={"entity": "person", "snapshot": name, "items": ["smb-rent-subsidy"]},
        headers=officers["officer"],
    )
    assert unknown.status_code == 422
    assert (
        client.post(
            "/api/v1/policy/snapshots/synthetic",
            json={"name": "Bad Name", "persons": 1, "enterprises": 1, "as_of": DATE},
            headers=officers["officer"],
        ).status_code
        == 422
    )


def test_a_household_run_reads_the_members(
    client: httpx.Client, officers: dict[str, H], city: tuple[str, Path], session: Session, clock: FixedClock
) -> None:
    name, path = city
    made = client.post(
        "/api/v1/policy/runs",
        json={"entity": "household", "snapshot": name, "date": DATE},
        headers=officers["officer"],
    )
    assert made.status_code == 201, made.text
    run = made.json()
    summary = run["summary"]["items"]["household-hardship-grant"]
    stored = session.scalars(select(PolicyGrant).where(PolicyGrant.run_id == run["id"])).all()
    assert len(stored) == summary["eligible"] + summary["undetermined"] > 0
    # each stored household decided as the per-request engine decides it on its members' facts
    con = duckdb.connect(str(path), read_only=True)
    try:
        _, rules = policy.current_rules(session)
        matcher = engine.Matcher(rules, dt.date.fromisoformat(DATE))
        for g in stored[:40]:
            region = con.execute(
                "SELECT household_region FROM household WHERE id = ?", [g.subject_id]
            ).fetchone()
            cursor = con.execute("SELECT * FROM person WHERE household_id = ?", [g.subject_id])
            names = [d[0] for d in cursor.description]
            members = [
                {k: v for k, v in zip(names, row, strict=True) if k not in ("id", "household_id")}
                for row in cursor.fetchall()
            ]
            decided = matcher.evaluate(
                "household", {"household_region": region[0] if region else None, "members": members}
            )[0]
            assert (decided.result, decided.amount_fen, decided.marks) == (g.result, g.amount_fen, g.marks)
        member = con.execute(
            "SELECT id FROM person WHERE household_id = ? LIMIT 1", [stored[0].subject_id]
        ).fetchone()
    finally:
        con.close()
    # approved, a member of a household sees its benefit (found through the snapshot's membership)
    approved = client.post(
        f"/api/v1/policy/runs/{run['id']}/decision", json={"approve": True}, headers=officers["approver"]
    )
    assert approved.status_code == 200
    assert member is not None
    _link(session, clock, "member.zhou", member[0])
    me = bearer(client, "member.zhou")
    mine = client.get("/api/v1/policy/me/grants", headers=me).json()
    assert stored[0].id in [g["id"] for g in mine]
    assert next(g for g in mine if g["id"] == stored[0].id)["item_key"] == "household-hardship-grant"


def test_a_fast_application_supplies_only_what_the_shared_data_lack(
    client: httpx.Client,
    officers: dict[str, H],
    city: tuple[str, Path],
    session: Session,
    clock: FixedClock,
) -> None:
    name, _ = city
    run = _approved_run(client, officers, name)
    noticed = session.scalars(
        select(PolicyGrant).where(
            PolicyGrant.run_id == run["id"],
            PolicyGrant.item_key == "elderly-allowance",
            PolicyGrant.result == "undetermined",
            PolicyGrant.marks == "TU",  # registered in the city; the birth date is what is missing
        )
    ).first()
    assert noticed is not None
    _link(session, clock, "old.qian", noticed.subject_id)
    me = bearer(client, "old.qian")
    grant = next(
        g for g in client.get("/api/v1/policy/me/grants", headers=me).json() if g["id"] == noticed.id
    )
    assert [a["column"] for a in grant["asks"]] == ["birth_date"]
    assert grant["asks"][0]["kind"] == "date"
    apply = f"/api/v1/policy/me/grants/{noticed.id}/apply"
    not_asked = client.post(apply, json={"facts": {"hukou_region": "110105"}}, headers=me)
    assert not_asked.status_code == 422
    assert "not asked for" in not_asked.json()["detail"]
    too_young = client.post(apply, json={"facts": {"birth_date": "1960-01-01"}}, headers=me)
    assert too_young.status_code == 422
    assert "aged_80" in too_young.json()["detail"]
    made = client.post(apply, json={"facts": {"birth_date": "1940-01-01"}}, headers=me)
    assert made.status_code == 201, made.text
    assert made.json()["amount_fen"] == 10000  # 86 on the run's date: 100 yuan
    assert client.post(apply, json={"facts": {"birth_date": "1940-01-01"}}, headers=me).status_code == 409
    waiting = client.get(
        "/api/v1/policy/applications", params={"status": "submitted"}, headers=officers["approver"]
    )
    assert [(a["grant_id"], a["facts"]) for a in waiting.json()] == [
        (noticed.id, {"birth_date": "1940-01-01"})
    ]
    decided = client.post(
        f"/api/v1/policy/applications/{made.json()['id']}/decision",
        json={"approve": True, "decision": "户籍信息已补录出生日期"},
        headers=officers["approver"],
    )
    assert decided.status_code == 200, decided.text
    mine = {g["id"]: g for g in client.get("/api/v1/policy/me/grants", headers=me).json()}
    assert mine[noticed.id]["status"] == "granted"
    assert mine[noticed.id]["amount_fen"] == 10000
    assert mine[noticed.id]["application"] == "approved"
