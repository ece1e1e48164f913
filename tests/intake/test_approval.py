"""The back office over real HTTP: work lists by lane, steps with decisions, 补正 and resubmission,
approval and refusal, every status change recorded."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.intake.helpers import ID, step, submit, upload
from tests.intake.pdfs import pdf
from tongban.core import audit


def test_an_application_goes_from_submission_through_supplement_to_approval(
    client: httpx.Client, staff: dict[str, dict[str, str]], session: Session
) -> None:
    app = submit(client, staff)
    receipt = app["receipt_no"]
    assert app["status"] == "submitted"
    assert [(w["step"], w["role"]) for w in app["waiting"]] == [("accept", "window")]

    officer, reviewer, decider, citizen = (
        staff[u] for u in ("officer.wang", "reviewer.zhou", "decider.wu", "citizen.li")
    )
    listed_r = client.get("/api/v1/intake/worklist", headers=officer)
    assert listed_r.status_code == 200, listed_r.text
    listed = listed_r.json()
    assert [(w["receipt_no"], w["step"], w["decisions"]) for w in listed] == [
        (receipt, "accept", ["accept", "supplement", "reject"])
    ]
    assert client.get("/api/v1/intake/worklist", headers=reviewer).json() == []
    assert step(client, reviewer, app, "accept").status_code == 403  # not the reviewer's lane

    # 补正: the window asks for a clearer lease
    assert step(client, officer, app, "approve").status_code == 422  # not a decision of this step
    assert step(client, officer, app, "supplement").status_code == 422  # says what is missing
    asked = step(client, officer, app, "supplement", "租赁合同缺少出租人签字页，请补充上传。")
    assert asked.status_code == 200, asked.text
    app = asked.json()
    assert app["status"] == "supplement_requested"
    assert [(w["step"], w["role"]) for w in app["waiting"]] == [("supplement_accept", "applicant")]
    assert step(client, officer, app, None).status_code == 403  # the applicant answers this one
    mine = client.get(f"/api/v1/me/applications/{receipt}", headers=citizen).json()
    assert mine["events"][-1]["note"] == "租赁合同缺少出租人签字页，请补充上传。"

    # the applicant resubmits: a new lease and a corrected term
    new_lease = upload(client, citizen, "lease-signed.pdf", pdf(f"Signed lease, lessee ID {ID}")).json()["id"]
    bad = client.post(
        f"/api/v1/me/applications/{receipt}/supplement", headers=citizen, json={"values": {"months": 0}}
    )
    assert bad.status_code == 422
    assert (
        client.get(f"/api/v1/me/applications/{receipt}", headers=citizen).json()["status"]
        == "supplement_requested"
    )
    done = client.post(
        f"/api/v1/me/applications/{receipt}/supplement",
        headers=citizen,
        json={"values": {"months": 24, "lease": [new_lease]}},
    )
    assert done.status_code == 200, done.text
    app = done.json()
    assert app["status"] == "submitted"
    assert app["values"]["months"] == 24
    assert app["values"]["total_rent"] == 350050 * 24
    assert app["values"]["lease"] == [new_lease]
    assert (
        client.post(
            f"/api/v1/me/applications/{receipt}/supplement", headers=citizen, json={"values": {}}
        ).status_code
        == 409
    )

    # 受理 → 审查 → 决定 → 送达
    app = step(client, officer, app, "accept").json()
    assert app["status"] == "in_progress"
    assert [w["step"] for w in client.get("/api/v1/intake/worklist", headers=reviewer).json()] == ["review"]
    app = step(client, reviewer, app, "pass").json()
    app = step(client, decider, app, "approve").json()
    assert [w["step"] for w in app["waiting"]] == ["deliver"]
    app = step(client, officer, app, "done").json()
    assert app["status"] == "approved"
    assert app["waiting"] == []

    mine = client.get(f"/api/v1/me/applications/{receipt}", headers=citizen).json()
    assert mine["status"] == "approved"
    assert [e["action"] for e in mine["events"]] == [
        "submit",
        "accept:supplement",
        "supplement",
        "accept:accept",
        "review:pass",
        "decide:approve",
        "deliver:done",
    ]
    assert [e["to_status"] for e in mine["events"]][-1] == "approved"
    steps = [
        e
        for e in audit.list_events(session, target_type="intake_application", target_id=receipt)
        if e.action == "intake.application.step"
    ]
    assert {e.actor for e in steps} == {"officer.wang", "reviewer.zhou", "decider.wu"}


def test_a_step_is_completed_once(client: httpx.Client, staff: dict[str, dict[str, str]]) -> None:
    app = submit(client, staff)
    officer = staff["officer.wang"]
    assert step(client, officer, app, "accept").status_code == 200
    again = step(client, officer, app, "accept")  # the same task id, already done
    assert again.status_code == 409


def test_refusal_at_the_window_ends_the_application(
    client: httpx.Client, staff: dict[str, dict[str, str]], session: Session
) -> None:
    app = submit(client, staff)
    refused = step(
        client, staff["officer.wang"], app, "reject", "申请事项不属于本机关职权范围，请向户籍所在区申请。"
    )
    assert refused.status_code == 200
    assert refused.json()["status"] == "not_accepted"
    assert session.execute(text("SELECT count(*) FROM intake_work_item")).scalar_one() == 0
    assert client.get("/api/v1/intake/worklist", headers=staff["officer.wang"]).json() == []


def test_officers_see_the_findings_and_masked_identity_numbers(
    client: httpx.Client, staff: dict[str, dict[str, str]], session: Session
) -> None:
    app = submit(client, staff)
    seen = client.get(
        f"/api/v1/intake/applications/{app['receipt_no']}", headers=staff["reviewer.zhou"]
    ).json()
    assert seen["values"]["id_number"] != ID
    assert seen["values"]["id_number"][:6] == ID[:6]
    assert seen["findings"] == app["findings"]
    assert (
        client.get(
            f"/api/v1/intake/applications/{app['receipt_no']}", headers=staff["citizen.li"]
        ).status_code
        == 403
    )
    views = audit.list_events(session, target_type="intake_application", target_id=app["receipt_no"])
    assert any(e.action == "intake.application.view" and e.actor == "reviewer.zhou" for e in views)


def test_officer_responses_mask_identifiers_and_officers_never_handle_their_own(
    client: httpx.Client, staff: dict[str, dict[str, str]], session: Session
) -> None:
    from tongban.core import auth
    from tongban.core.clock import FixedClock
    from tongban.core.crypto import Sealer, new_key
    from tongban.core.errors import Forbidden
    from tongban.intake import service

    app = submit(client, staff)
    accepted = step(client, staff["officer.wang"], app, "accept").json()
    assert accepted["values"]["id_number"] != ID  # the act response is masked too, not only the detail view
    # an officer who is also the applicant (same account) may not act on the application
    account = auth.account_by_username(session, "citizen.li")
    assert account is not None
    same = auth.Principal(
        account_id=account.id,
        username="citizen.li",
        display_name="",
        roles=("intake_reviewer",),
        permissions=auth.permissions_for(["intake_reviewer"]),
    )
    task = accepted["waiting"][0]["task_id"]
    with pytest.raises(Forbidden, match="their own"):
        service.act(
            session,
            same,
            accepted["receipt_no"],
            task,
            decision="pass",
            note="",
            clock=FixedClock(dt.datetime(2026, 3, 2, 10, tzinfo=dt.UTC)),
            sealer=Sealer(new_key()),
        )
