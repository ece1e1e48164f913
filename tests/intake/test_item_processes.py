"""Items' own approval processes: versioned BPMN definitions over the API, checked before they are saved,
published by a second person, and run by new applications — here the shipped example with two
departments reviewing in parallel."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tests.conftest import bearer, make_account
from tests.intake.helpers import CODE, step, submit
from tongban.core.auth import Principal
from tongban.core.clock import FixedClock
from tongban.core.errors import Conflict
from tongban.intake import process, service
from tongban.intake.models import IntakeForm

PARALLEL = process.example("parallel_departments")
XML = {"Content-Type": "application/xml"}


def _publish(client: httpx.Client, h: dict[str, dict[str, str]], xml: str) -> dict[str, Any]:
    saved = client.post(
        f"/api/v1/intake/items/{CODE}/processes", headers={**h["editor.sun"], **XML}, content=xml
    )
    assert saved.status_code == 201, saved.text
    version = saved.json()["version"]
    done = client.post(
        f"/api/v1/intake/items/{CODE}/processes/{version}/publish", headers=h["publisher.qian"]
    )
    assert done.status_code == 200, done.text
    body: dict[str, Any] = done.json()
    return body


@pytest.fixture
def departments(
    staff: dict[str, dict[str, str]], session: Session, clock: FixedClock, client: httpx.Client
) -> dict[str, dict[str, str]]:
    make_account(session, clock, "market.zhao", ["intake_lane:dept_market"])
    make_account(session, clock, "tax.chen", ["intake_lane:dept_tax"])
    session.commit()
    return {**staff, "market.zhao": bearer(client, "market.zhao"), "tax.chen": bearer(client, "tax.chen")}


def test_a_definition_is_saved_as_xml_or_json_and_described(
    client: httpx.Client, published: dict[str, dict[str, str]]
) -> None:
    editor = published["editor.sun"]
    saved = client.post(f"/api/v1/intake/items/{CODE}/processes", headers={**editor, **XML}, content=PARALLEL)
    assert saved.status_code == 201, saved.text
    body = saved.json()
    assert (body["version"], body["state"], body["process_id"]) == (1, "draft", "parallel_departments")
    steps = {s["id"]: (s["role"], s["decisions"]) for s in body["steps"]}
    assert steps["accept"] == ("window", ["accept", "supplement", "reject"])
    assert steps["market_review"] == ("dept_market", ["done"])
    assert steps["decide"] == ("decider", ["approve", "reject"])
    assert set(body["ends"]) == {"approved", "refused", "not_accepted"}

    again = client.post(f"/api/v1/intake/items/{CODE}/processes", headers=editor, json={"xml": PARALLEL})
    assert again.status_code == 201, again.text
    assert again.json()["version"] == 2
    listed = client.get(f"/api/v1/intake/items/{CODE}/processes", headers=editor).json()
    assert [p["version"] for p in listed] == [2, 1]
    xml = client.get(f"/api/v1/intake/items/{CODE}/processes/1", headers=editor)
    assert xml.headers["content-type"].startswith("application/xml")
    assert process.load_definition(xml.content).process_id == "parallel_departments"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda x: x.replace('<bpmn:userTask id="decide" name="决定"/>', '<bpmn:scriptTask id="decide"/>'),
            "scriptTask",
        ),
        (lambda x: x.replace('lane id="dept_tax"', 'lane id="Dept-Tax"'), "lane ids are lower-case"),
        (
            lambda x: x.replace('endEvent id="refused"', 'endEvent id="gave_up"').replace(
                'targetRef="refused"', 'targetRef="gave_up"'
            ),
            "end events are one of",
        ),
        (lambda x: x.replace('decision == "reject"', "__import__('os')"), "not allowed"),
        (lambda x: x[:200], "not well-formed"),
        (
            lambda x: '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + x.split("?>", 1)[1],
            "process definition",
        ),
    ],
)
def test_unusable_definitions_are_refused_with_the_reason(
    client: httpx.Client, published: dict[str, dict[str, str]], change: Any, expected: str
) -> None:
    response = client.post(
        f"/api/v1/intake/items/{CODE}/processes",
        headers={**published["editor.sun"], **XML},
        content=change(PARALLEL).encode(),
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert expected in response.json()["detail"]
    listed = client.get(f"/api/v1/intake/items/{CODE}/processes", headers=published["editor.sun"])
    assert listed.json() == []


def test_bodies_other_than_xml_or_json_and_bad_text_are_refused(
    client: httpx.Client, published: dict[str, dict[str, str]]
) -> None:
    editor = published["editor.sun"]
    url = f"/api/v1/intake/items/{CODE}/processes"
    assert client.post(url, headers={**editor, **XML}, content=b"\xff\xfe<x/>").status_code == 422
    assert client.post(url, headers=editor, json={"xml": ""}).status_code == 422
    assert client.post(url, headers=editor, json={"bpmn": PARALLEL}).status_code == 422
    assert (
        client.post(url, headers={**editor, "Content-Type": "text/plain"}, content=PARALLEL).status_code
        == 422
    )
    # A citizen may not write processes; the author may not publish their own draft.
    assert client.post(url, headers={**published["citizen.li"], **XML}, content=PARALLEL).status_code == 403
    assert client.post(url, headers={**editor, **XML}, content=PARALLEL).status_code == 201
    own = client.post(f"{url}/1/publish", headers=editor)
    assert own.status_code == 403
    assert client.post(f"{url}/9/publish", headers=published["publisher.qian"]).status_code == 404


def test_two_departments_review_in_parallel_and_the_decision_waits_for_both(
    client: httpx.Client, departments: dict[str, dict[str, str]]
) -> None:
    h = departments
    _publish(client, h, PARALLEL)
    app = submit(client, h)
    receipt = app["receipt_no"]
    assert [w["step"] for w in app["waiting"]] == ["accept"]
    accepted = step(client, h["officer.wang"], app, "accept")
    assert accepted.status_code == 200, accepted.text
    waiting = {w["step"]: w for w in accepted.json()["waiting"]}
    assert set(waiting) == {"market_review", "tax_review"}
    assert accepted.json()["status"] == "in_progress"

    # Each department sees only its own step in its work list and may not act in the other's lane.
    market_list = client.get("/api/v1/intake/worklist", headers=h["market.zhao"]).json()
    assert [(w["step"], w["decisions"]) for w in market_list] == [("market_review", ["done"])]
    wrong = client.post(
        f"/api/v1/intake/applications/{receipt}/steps/{waiting['tax_review']['task_id']}",
        headers=h["market.zhao"],
        json={"decision": "done", "note": "无异议"},
    )
    assert wrong.status_code == 403

    market = client.post(
        f"/api/v1/intake/applications/{receipt}/steps/{waiting['market_review']['task_id']}",
        headers=h["market.zhao"],
        json={"decision": None, "note": "经营范围符合规定"},
    )
    assert market.status_code == 200, market.text
    assert [w["step"] for w in market.json()["waiting"]] == ["tax_review"]
    assert client.get("/api/v1/intake/worklist", headers=h["decider.wu"]).json() == []

    tax = client.post(
        f"/api/v1/intake/applications/{receipt}/steps/{waiting['tax_review']['task_id']}",
        headers=h["tax.chen"],
        json={"decision": "done", "note": "无欠税"},
    )
    assert tax.status_code == 200, tax.text
    assert [w["step"] for w in tax.json()["waiting"]] == ["decide"]
    bad = step(client, h["decider.wu"], tax.json(), "pass")
    assert bad.status_code == 422
    assert "approve, reject" in bad.json()["detail"]
    decided = step(client, h["decider.wu"], tax.json(), "approve")
    assert decided.status_code == 200, decided.text
    delivered = step(client, h["officer.wang"], decided.json(), None)
    assert delivered.status_code == 200, delivered.text
    assert delivered.json()["status"] == "approved"
    actions = [e["action"] for e in delivered.json()["events"]]
    assert actions[-5:] == [
        "accept:accept",
        "market_review:done",
        "tax_review:done",
        "decide:approve",
        "deliver:done",
    ]


def test_running_applications_keep_their_version_and_retiring_brings_back_the_standard(
    client: httpx.Client, departments: dict[str, dict[str, str]]
) -> None:
    h = departments
    first = _publish(client, h, PARALLEL)
    running = submit(client, h)
    # Version 2 drops the tax department; the running application still waits for both.
    _publish(client, h, PARALLEL.replace('targetRef="tax_review"', 'targetRef="join"'))
    accepted = step(client, h["officer.wang"], running, "accept").json()
    assert {w["step"] for w in accepted["waiting"]} == {"market_review", "tax_review"}

    retired = client.post(f"/api/v1/intake/items/{CODE}/processes/2/retire", headers=h["publisher.qian"])
    assert retired.status_code == 200, retired.text
    assert first["version"] == 1
    later = submit(client, h)
    after = step(client, h["officer.wang"], later, "accept").json()
    assert [w["step"] for w in after["waiting"]] == ["review"]


def test_the_first_step_is_the_one_the_start_leads_to_whatever_its_id_or_place(
    client: httpx.Client, departments: dict[str, dict[str, str]]
) -> None:
    """受理 renamed and written last in the XML: the application still waits as ``submitted`` there, and
    the time limit starts when it leaves it."""
    h = departments
    task = '<bpmn:userTask id="accept" name="受理"/>'
    renamed = (
        PARALLEL.replace(task, "")
        .replace("</bpmn:process>", task.replace('"accept"', '"intake_check"') + "\n  </bpmn:process>")
        .replace('sourceRef="accept"', 'sourceRef="intake_check"')
        .replace('targetRef="accept"', 'targetRef="intake_check"')
        .replace("<bpmn:flowNodeRef>accept<", "<bpmn:flowNodeRef>intake_check<")
    )
    definition = _publish(client, h, renamed)
    assert definition["steps"][-1]["id"] == "intake_check"
    app = submit(client, h)
    assert app["status"] == "submitted"
    assert app["deadline"] is None
    accepted = step(client, h["officer.wang"], app, "accept")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "in_progress"
    assert accepted.json()["deadline"]["accepted_on"] == "2026-03-02"


def test_one_published_version_per_item_even_for_publishers_acting_at_once(
    client: httpx.Client, published: dict[str, dict[str, str]], session: Session, clock: FixedClock
) -> None:
    current = service.repo.published_form(session, CODE)
    assert current is not None

    def twin(version: int) -> IntakeForm:
        return IntakeForm(
            item_code=CODE,
            version=version,
            definition=current.definition,
            state="published",
            author="someone",
            created_at=clock.now(),
        )

    with session.begin_nested():
        session.add(twin(99))
        with pytest.raises(IntegrityError):
            session.flush()
        session.rollback()
    with session.begin_nested():
        draft = twin(98)
        draft.state = "draft"
        session.add(draft)
        session.flush()
        # Publishing it without retiring the published version (as a second publisher racing the first
        # would): the index refuses it and the publisher gets a 409.
        publisher = Principal(account_id=1, username="publisher.qian", display_name="Qian")
        with pytest.raises(Conflict, match="at the same moment"):
            service.publish_version(session, publisher, draft, [], what="the form", clock=clock)
        session.rollback()
