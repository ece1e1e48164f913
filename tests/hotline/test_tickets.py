"""The ticket loop over real HTTP: receive, classify, dispatch, sign, return, re-dispatch, reply, return
visit, reopen; deadlines; the three rates; permissions and bad input."""

from __future__ import annotations

import datetime as dt

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.hotline.conftest import act, new_ticket
from tongban.core.clock import FixedClock
from tongban.core.models import AuditEvent
from tongban.hotline import service


def test_a_ticket_goes_round_the_whole_loop(
    client: httpx.Client, hl: dict[str, dict[str, str]], clock: FixedClock
) -> None:
    t = new_ticket(client, hl["citizen.chen"])
    ref = t["ref"]
    assert t["status"] == "received"
    assert t["region_code"] == "110105"  # from the district's name in the address
    assert t["contact_hint"] == "138****5678"
    assert "13812345678" not in str(t)

    # Dispatch before classification is refused.
    r = client.post(f"/api/v1/tickets/{ref}/dispatch", json={}, headers=hl["op.li"])
    assert r.status_code == 409
    assert r.json()["type"].endswith("ticket-unclassified")

    act(client, hl["op.li"], ref, "classify", {"category_path": "城乡建设/市政设施/道路维修"})
    t = act(client, hl["op.li"], ref, "dispatch", {})
    assert t["lead_unit"] == "roads"
    assert t["status"] == "dispatched"
    assert t["deadline_class"] == "ordinary"
    due = dt.datetime.fromisoformat(t["due_at"])
    assert due - dt.datetime.fromisoformat(t["dispatched_at"]) == dt.timedelta(days=7)

    # Another unit may not sign it; the roads unit returns it (wrong owner); the supervisor re-dispatches.
    r = client.post(f"/api/v1/tickets/{ref}/sign", headers=hl["u.water"])
    assert r.status_code == 404
    act(client, hl["u.roads"], ref, "sign")
    t = act(
        client,
        hl["u.roads"],
        ref,
        "return",
        {"reason": "属于街道管辖的小区内部道路", "suggested_unit": "cy-jsq"},
    )
    assert t["status"] == "return_requested"
    r = client.post(
        f"/api/v1/tickets/{ref}/return-decision", json={"decision": "accept"}, headers=hl["u.roads"]
    )
    assert r.status_code == 403
    t = act(client, hl["sup.wang"], ref, "return-decision", {"decision": "accept"})
    assert t["lead_unit"] == "cy-jsq"
    assert t["status"] == "dispatched"
    assert t["dispatch_count"] == 2

    # The street office (acting through the district's supervisor role here: handle_any) replies.
    clock.advance(dt.timedelta(hours=3))
    act(client, hl["sup.wang"], ref, "sign")
    t = act(client, hl["sup.wang"], ref, "reply", {"reply": "已组织施工队修复路面，现已恢复通行。"})
    assert t["status"] == "replied"
    assert t["responded_at"] is not None

    # The requester sees public steps only; the return visit closes it.
    detail = client.get(f"/api/v1/tickets/{ref}", headers=hl["citizen.chen"]).json()
    actions = [e["action"] for e in detail["events"]]
    assert "return_requested" not in actions
    assert "replied" in actions
    t = act(client, hl["op.li"], ref, "revisit", {"resolved": True, "satisfaction": 5})
    assert t["status"] == "closed"

    rates = client.get("/api/v1/hotline/rates", params={"by": "unit"}, headers=hl["sup.wang"]).json()
    row = next(r for r in rates["rows"] if r["key"] == "cy-jsq")
    assert row["response_rate"] == 1.0
    assert row["resolution_rate"] == 1.0
    assert row["satisfaction_rate"] == 1.0
    assert row["score"] == 100.0


def test_reopen_after_an_unsatisfied_visit_and_rates_fall(
    client: httpx.Client, hl: dict[str, dict[str, str]], clock: FixedClock
) -> None:
    t = new_ticket(
        client, hl["citizen.chen"], subject="停水三天", body="小区停水三天了没有通知，什么时候恢复供水？"
    )
    ref = t["ref"]
    act(client, hl["op.li"], ref, "classify", {"category_path": "城乡建设/供水/停水"})
    t = act(client, hl["op.li"], ref, "dispatch", {})
    assert t["lead_unit"] == "water"
    assert t["deadline_class"] == "utility"
    assert dt.datetime.fromisoformat(t["due_at"]) - dt.datetime.fromisoformat(
        t["dispatched_at"]
    ) == dt.timedelta(hours=24)
    act(client, hl["u.water"], ref, "sign")
    clock.advance(dt.timedelta(hours=3))  # the response limit for utilities is 2 hours
    act(client, hl["u.water"], ref, "reply", {"reply": "管道抢修中，预计明天恢复。"})
    t = act(client, hl["op.li"], ref, "revisit", {"resolved": False, "satisfaction": 2, "reopen": True})
    assert t["status"] == "dispatched"
    assert t["lead_unit"] == "water"
    assert t["reopen_count"] == 1
    rates = client.get("/api/v1/hotline/rates", params={"by": "unit"}, headers=hl["sup.wang"]).json()
    row = next(r for r in rates["rows"] if r["key"] == "water")
    assert row["response_rate"] == 0.0
    assert row["resolution_rate"] == 0.0
    assert row["satisfaction_rate"] == 0.0
    # A unit sees only its own rates.
    own = client.get("/api/v1/hotline/rates", params={"by": "unit"}, headers=hl["u.roads"]).json()
    assert [r["key"] for r in own["rows"]] in ([], ["roads"])


def test_catalogue_region_lines_and_district_fallback(
    session: Session, hl: dict[str, dict[str, str]]
) -> None:
    assert service.plan_dispatch(session, "劳动和社会保障/工资福利/拖欠工资", "110105").lead_unit == "cy"
    assert service.plan_dispatch(session, "劳动和社会保障/工资福利/拖欠工资", "110108").lead_unit == "labour"
    env = service.plan_dispatch(session, "环境保护/噪声污染/施工噪音", None)
    assert env.lead_unit == "env"
    assert env.helper_units == ["cy"]
    # No line for 交通运输: the smallest area containing the region (a street office) takes it.
    assert service.plan_dispatch(session, "交通运输/公交/线路调整", "110105001").lead_unit == "cy-jsq"
    assert service.plan_dispatch(session, "交通运输/公交/线路调整", "110108").lead_unit == "hd"
    assert service.plan_dispatch(session, "交通运输/公交/线路调整", None).lead_unit is None


def test_deadline_warnings_and_escalation_once(
    client: httpx.Client, hl: dict[str, dict[str, str]], clock: FixedClock, session: Session
) -> None:
    t = new_ticket(client, hl["op.li"], channel="phone", urgency="emergency")
    ref = t["ref"]
    act(
        client,
        hl["op.li"],
        ref,
        "classify",
        {"category_path": "城乡建设/市政设施/道路维修", "urgency": "emergency"},
    )
    t = act(client, hl["op.li"], ref, "dispatch", {})
    assert dt.datetime.fromisoformat(t["due_at"]) - dt.datetime.fromisoformat(
        t["dispatched_at"]
    ) == dt.timedelta(hours=2)

    def check() -> dict[str, list[str]]:
        return dict(client.post("/api/v1/hotline/deadlines/check", headers=hl["sup.wang"]).json())

    assert check() == {"warned": [], "escalated": []}
    clock.advance(dt.timedelta(minutes=95))
    assert check() == {"warned": [ref], "escalated": []}
    assert check() == {"warned": [], "escalated": []}
    clock.advance(dt.timedelta(minutes=30))
    assert check() == {"warned": [], "escalated": [ref]}
    assert check() == {"warned": [], "escalated": []}
    listed = client.get("/api/v1/tickets", params={"escalated": "true"}, headers=hl["sup.wang"]).json()
    assert [i["ref"] for i in listed["items"]] == [ref]


def test_duplicates_are_proposed_and_merged_requesters_hear_the_reply(
    client: httpx.Client, hl: dict[str, dict[str, str]], session: Session
) -> None:
    first = new_ticket(client, hl["citizen.chen"])
    second = new_ticket(
        client,
        hl["citizen.zhao"],
        body="建国路88号门口路面塌陷出现大坑，夜里很危险，希望尽快修复。",
        contact={"name": "赵女士", "phone": "13900001111"},
    )
    other = new_ticket(
        client, hl["citizen.zhao"], subject="噪音", body="工地夜间施工噪音扰民，凌晨两点还在打桩。"
    )
    dups = client.get("/api/v1/hotline/duplicates", headers=hl["op.li"]).json()["items"]
    pairs = {(d["ticket"], d["original"]) for d in dups}
    assert (second["ref"], first["ref"]) in pairs
    assert all(other["ref"] not in p for p in pairs)
    merged = act(client, hl["op.li"], second["ref"], "merge", {"into": first["ref"]})
    assert merged["status"] == "merged"
    assert merged["merged_into"] == first["ref"]
    ref = first["ref"]
    act(client, hl["op.li"], ref, "classify", {"category_path": "城乡建设/市政设施/道路维修"})
    act(client, hl["op.li"], ref, "dispatch", {})
    act(client, hl["u.roads"], ref, "sign")
    act(client, hl["u.roads"], ref, "reply", {"reply": "路面已修复。"})
    child = client.get(f"/api/v1/tickets/{second['ref']}", headers=hl["citizen.zhao"]).json()
    assert child["reply"] == "路面已修复。"
    assert any(e["action"] == "original_replied" for e in child["events"])


def test_contact_is_unmasked_only_for_staff_and_audited(
    client: httpx.Client, hl: dict[str, dict[str, str]], session: Session
) -> None:
    ref = new_ticket(client, hl["citizen.chen"])["ref"]
    r = client.get(f"/api/v1/tickets/{ref}/contact", headers=hl["ana.zhou"])
    assert r.status_code == 404
    r = client.get(f"/api/v1/tickets/{ref}/contact", headers=hl["op.li"])
    assert r.status_code == 200
    assert r.json()["phone"] == "13812345678"
    events = session.scalars(select(AuditEvent).where(AuditEvent.action == "hotline.contact_viewed")).all()
    assert [e.target_id for e in events] == [ref]
    # Someone else's ticket is not found, not forbidden.
    assert client.get(f"/api/v1/tickets/{ref}", headers=hl["citizen.zhao"]).status_code == 404
    assert client.get(f"/api/v1/tickets/{ref}").status_code == 404


def test_bad_input_is_a_problem_not_a_500(client: httpx.Client, hl: dict[str, dict[str, str]]) -> None:
    cases = [
        {"body": "x"},
        {"body": "路灯坏了", "lat": 39.9},
        {"body": "路灯坏了", "category_path": "不存在/的/分类"},
        {"body": "路灯坏了", "enterprise": True},
        {"body": "路灯坏了", "service_code": "nope"},
        {"body": "路灯坏了\x00"},
    ]
    for body in cases:
        r = client.post("/api/v1/tickets", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    r = client.post("/api/v1/tickets", json={"body": "路灯坏了", "channel": "phone"})
    assert r.status_code in (401, 403)
    ref = new_ticket(client)["ref"]
    r = client.post(
        f"/api/v1/tickets/{ref}/classify",
        json={"category_path": "城乡建设"},
        headers={**hl["op.li"], "If-Match": '"99"'},
    )
    assert r.status_code == 412
    r = client.post(
        f"/api/v1/tickets/{ref}/revisit", json={"resolved": True, "satisfaction": 9}, headers=hl["op.li"]
    )
    assert r.status_code == 422
    r = client.post(
        f"/api/v1/tickets/{ref}/revisit", json={"resolved": True, "satisfaction": 5}, headers=hl["op.li"]
    )
    assert r.status_code == 409
    assert client.get("/api/v1/tickets/../etc", headers=hl["op.li"]).status_code == 404


def test_a_retried_submission_is_one_ticket(client: httpx.Client, hl: dict[str, dict[str, str]]) -> None:
    body = {"subject": "路灯不亮", "body": "建国路东段路灯不亮已经三天了。", "address": "北京市朝阳区建国路"}
    headers = {**hl["citizen.chen"], "Idempotency-Key": "ticket-retry-0001"}
    first = client.post("/api/v1/tickets", json=body, headers=headers)
    again = client.post("/api/v1/tickets", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["ref"] == again.json()["ref"]
    mine = client.get("/api/v1/me/tickets", headers=hl["citizen.chen"]).json()
    assert [t["ref"] for t in mine["items"]] == [first.json()["ref"]]
    other = client.post("/api/v1/tickets", json={**body, "subject": "别的"}, headers=headers)
    assert other.status_code == 422 or other.status_code == 409


def test_enterprise_requests_have_their_own_queue_and_faster_limits(
    client: httpx.Client, hl: dict[str, dict[str, str]]
) -> None:
    citizen = new_ticket(client, hl["citizen.chen"], subject="拖欠工资", body="公司拖欠我两个月工资。")
    firm = new_ticket(
        client,
        hl["citizen.zhao"],
        subject="稳岗补贴未到账",
        body="我公司申请的补贴三个月未到账，影响发放工资。",
        enterprise=True,
        enterprise_name="北京某某科技有限公司",
    )
    for t in (citizen, firm):
        act(client, hl["op.li"], t["ref"], "classify", {"category_path": "劳动和社会保障/工资福利/拖欠工资"})
        act(client, hl["op.li"], t["ref"], "dispatch", {"lead_unit": "labour"})
    queue = client.get("/api/v1/tickets", params={"queue": "enterprise"}, headers=hl["u.labour"]).json()
    assert [t["ref"] for t in queue["items"]] == [firm["ref"]]
    both = client.get("/api/v1/tickets", headers=hl["u.labour"]).json()
    assert {t["ref"] for t in both["items"]} == {citizen["ref"], firm["ref"]}
    spans = {
        t["ref"]: dt.datetime.fromisoformat(t["due_at"]) - dt.datetime.fromisoformat(t["dispatched_at"])
        for t in both["items"]
    }
    assert spans[citizen["ref"]] == dt.timedelta(days=7)
    assert spans[firm["ref"]] == dt.timedelta(days=3)
    # Settings change the limits of later dispatches (audited, admins only).
    r = client.put(
        "/api/v1/hotline/settings", json={"enterprise_reply_hours": {"ordinary": 48}}, headers=hl["op.li"]
    )
    assert r.status_code == 403
    r = client.put(
        "/api/v1/hotline/settings", json={"enterprise_reply_hours": {"ordinary": 48}}, headers=hl["hl.admin"]
    )
    assert r.status_code == 200
    assert r.json()["enterprise_reply_hours"]["ordinary"] == 48
    assert r.json()["enterprise_reply_hours"]["utility"] == 12


def test_helpers_add_notes_only_the_lead_replies_and_requesters_visit_their_own(
    client: httpx.Client, hl: dict[str, dict[str, str]]
) -> None:
    t = new_ticket(
        client, hl["citizen.chen"], subject="夜间施工", body="工地夜间施工噪音很大，凌晨还在作业。"
    )
    ref = t["ref"]
    act(client, hl["op.li"], ref, "classify", {"category_path": "环境保护/噪声污染/施工噪音"})
    t = act(client, hl["op.li"], ref, "dispatch", {})
    assert (t["lead_unit"], t["helper_units"]) == ("env", ["cy"])
    act(client, hl["u.env"], ref, "sign")
    act(client, hl["u.cy"], ref, "notes", {"note": "街道已到现场核查，工地有夜间施工许可。"})
    r = client.post(f"/api/v1/tickets/{ref}/reply", json={"reply": "已处理"}, headers=hl["u.cy"])
    assert r.status_code == 403
    act(client, hl["u.env"], ref, "contact-made", {"note": "已电话联系诉求人"})
    act(client, hl["u.env"], ref, "reply", {"reply": "已责令工地夜间停止高噪声作业。"})
    r = client.post(
        f"/api/v1/tickets/{ref}/revisit",
        json={"resolved": True, "satisfaction": 4},
        headers=hl["citizen.zhao"],
    )
    assert r.status_code == 404
    t = act(client, hl["citizen.chen"], ref, "revisit", {"resolved": True, "satisfaction": 4})
    assert t["status"] == "closed"
    detail = client.get(f"/api/v1/tickets/{ref}", headers=hl["op.li"]).json()
    visit = next(e for e in detail["events"] if e["action"] == "revisited")
    assert visit["data"]["by"] == "requester"
