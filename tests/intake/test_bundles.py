"""Bundles (高效办成一件事) over real HTTP: situation questions choose the items, one merged form asks each
shared field once, one submission creates an application per item (each with its own files and process),
and the applicant follows one combined status."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.intake.bundle_support import (
    BIRTH_CERT,
    BUNDLE,
    DEFINITION,
    ITEMS,
    PARENT,
    import_items,
    publish_bundle,
    publish_forms,
)
from tests.intake.helpers import ID, known_citizen, step, upload
from tests.intake.pdfs import pdf
from tongban.core.clock import FixedClock
from tongban.core.errors import InvalidInput
from tongban.intake.bundles import BundleDefinition, _answers, combined_status
from tongban.intake.models import Application, BundleApplication, Upload

CODES = [i["code"] for i in ITEMS]


@pytest.fixture
def bundle(
    staff: dict[str, dict[str, str]], session: Session, clock: FixedClock, client: httpx.Client
) -> dict[str, dict[str, str]]:
    import_items(session, clock)
    session.commit()
    publish_forms(client, staff)
    publish_bundle(client, staff)
    known_citizen(client, staff)
    return staff


def _values(client: httpx.Client, citizen: dict[str, str], **extra: Any) -> dict[str, Any]:
    cert = upload(client, citizen, "birth.pdf", pdf(f"Birth certificate, mother ID {ID}")).json()["id"]
    photo = upload(client, citizen, "photo.pdf", pdf("Photo of Li Xiaoming")).json()["id"]
    return {  # the merged form's values, prefilled ones included (as the page sends them)
        "name": "李明",
        "id_number": ID,
        "household_address": "北京市东城区",
        "mobile": "13800138000",
        "baby_name": "李小明",
        "baby_birth_date": "2026-02-20",
        "birth_cert": [cert],
        "photo": [photo],
        **extra,
    }


def _submit(client: httpx.Client, citizen: dict[str, str], body: dict[str, Any], key: str) -> httpx.Response:
    return client.post(
        "/api/v1/intake/bundle-applications", headers={**citizen, "Idempotency-Key": key}, json=body
    )


def test_the_answers_choose_the_items_and_the_merged_form_asks_each_shared_field_once(
    client: httpx.Client, bundle: dict[str, dict[str, str]]
) -> None:
    citizen = bundle["citizen.li"]
    listed = client.get("/api/v1/intake/bundles").json()
    assert [b["code"] for b in listed] == [BUNDLE]

    form = client.post(
        f"/api/v1/intake/bundles/{BUNDLE}/application-form",
        headers=citizen,
        json={"answers": {"employed": False}},
    )
    assert form.status_code == 200, form.text
    body = form.json()
    assert [(p["item_code"], p["applies"]) for p in body["parts"]] == [(c, c != CODES[3]) for c in CODES]
    keys = [f["key"] for f in body["fields"]]
    assert len(keys) == len(set(keys))
    by_key = {f["key"]: f for f in body["fields"]}
    # Shared by all three items, asked once.
    assert by_key["baby_name"]["items"] == CODES[:3]
    assert by_key["birth_cert"]["items"] == CODES[:3]
    assert by_key["photo"]["items"] == [CODES[2]]
    assert "bank_account" not in by_key
    # Prefilled once, with its source; the ID number comes from verified shared data.
    prefilled = {p["field"]: p for p in body["prefilled"]}
    assert prefilled["id_number"]["value"] == ID
    assert prefilled["household_address"]["value"] == "北京市东城区"
    assert sorted(body["materials"]) == sorted(CODES[:3])

    employed = client.post(
        f"/api/v1/intake/bundles/{BUNDLE}/application-form",
        headers=citizen,
        json={"answers": {"employed": True}},
    ).json()
    assert [p["applies"] for p in employed["parts"]] == [True, True, True, True]
    assert "bank_account" in {f["key"] for f in employed["fields"]}


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({}, "answers.employed"),
        ({"employed": "yes"}, "true or false"),
        ({"employed": True, "x": 1}, "no question x"),
    ],
)
def test_answers_are_checked(
    client: httpx.Client, bundle: dict[str, dict[str, str]], answers: dict[str, Any], expected: str
) -> None:
    response = client.post(
        f"/api/v1/intake/bundles/{BUNDLE}/application-form",
        headers=bundle["citizen.li"],
        json={"answers": answers},
    )
    assert response.status_code == 422
    assert expected in response.json()["detail"]


def test_one_submission_creates_an_application_per_item_with_its_own_files(
    client: httpx.Client, bundle: dict[str, dict[str, str]], session: Session
) -> None:
    citizen = bundle["citizen.li"]
    body = {"bundle_code": BUNDLE, "answers": {"employed": False}, "values": _values(client, citizen)}
    first = _submit(client, citizen, body, "bundle-1")
    assert first.status_code == 201, first.text
    out = first.json()
    assert out["status"] == "submitted"
    assert [p["item_code"] for p in out["parts"]] == CODES[:3]
    receipts = {p["receipt_no"] for p in out["parts"]}
    assert len(receipts) == 3
    assert out["receipt_no"] not in receipts

    again = _submit(client, citizen, body, "bundle-1")
    assert again.status_code == 201
    assert again.json()["receipt_no"] == out["receipt_no"]
    other = _submit(client, citizen, {**body, "answers": {"employed": True}}, "bundle-1")
    assert other.status_code == 409
    assert session.scalar(select(func.count()).select_from(BundleApplication)) == 1

    # Each item's application has its values and its own copy of the shared birth certificate.
    certs = []
    for part in out["parts"]:
        app = client.get(f"/api/v1/me/applications/{part['receipt_no']}", headers=citizen).json()
        assert app["values"]["baby_name"] == "李小明"
        assert app["values"]["id_number"] == ID
        assert [w["step"] for w in app["waiting"]] == ["accept"]
        certs += [u for u in app["uploads"] if u["filename"] == "birth.pdf"]
    assert len(certs) == 3
    assert len({c["id"] for c in certs}) == 3
    assert len({c["sha256"] for c in certs}) == 1
    unattached = session.scalar(
        select(func.count()).select_from(Upload).where(Upload.application_id.is_(None))
    )
    assert unattached == 0

    mine = client.get(f"/api/v1/me/bundle-applications/{out['receipt_no']}", headers=citizen)
    assert mine.status_code == 200
    assert mine.json()["status"] == "submitted"
    assert (
        client.get(
            f"/api/v1/me/bundle-applications/{out['receipt_no']}", headers=bundle["officer.wang"]
        ).status_code
        == 404
    )


def test_a_problem_in_one_item_refuses_the_whole_bundle_and_stores_nothing(
    client: httpx.Client, bundle: dict[str, dict[str, str]], session: Session
) -> None:
    citizen = bundle["citizen.li"]
    values = _values(client, citizen, baby_name="")
    check = client.post(
        f"/api/v1/intake/bundles/{BUNDLE}/precheck",
        headers=citizen,
        json={"answers": {"employed": True}, "values": {**values, "bank_account": "12-34"}},
    )
    assert check.status_code == 200, check.text
    findings = check.json()["findings"]
    assert not check.json()["ok"]
    # The shared field's problem is reported once; the allowance's own field names its item.
    assert [f["field"] for f in findings if f["field"] == "baby_name"] == ["baby_name"]
    assert any(f["field"] == "bank_account" and f["item_code"] == CODES[3] for f in findings)

    refused = _submit(
        client,
        citizen,
        {"bundle_code": BUNDLE, "answers": {"employed": True}, "values": values},
        "bundle-bad",
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert {f["item_code"] for f in refused.json()["findings"]} >= {CODES[0]}
    assert session.scalar(select(func.count()).select_from(Application)) == 0
    assert session.scalar(select(func.count()).select_from(BundleApplication)) == 0


def test_the_combined_status_follows_the_parts(
    client: httpx.Client, bundle: dict[str, dict[str, str]]
) -> None:
    citizen, officer, reviewer, decider = (
        bundle[u] for u in ("citizen.li", "officer.wang", "reviewer.zhou", "decider.wu")
    )
    body = {"bundle_code": BUNDLE, "answers": {"employed": False}, "values": _values(client, citizen)}
    out = _submit(client, citizen, body, "bundle-2").json()
    url = f"/api/v1/me/bundle-applications/{out['receipt_no']}"

    def officer_app(receipt: str) -> dict[str, Any]:
        response = client.get(f"/api/v1/intake/applications/{receipt}", headers=officer)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    parts = [p["receipt_no"] for p in out["parts"]]
    assert step(client, officer, officer_app(parts[0]), "accept").status_code == 200
    assert client.get(url, headers=citizen).json()["status"] == "in_progress"
    asked = step(client, officer, officer_app(parts[1]), "supplement", "出生医学证明不清晰，请重新上传")
    assert asked.status_code == 200
    assert client.get(url, headers=citizen).json()["status"] == "supplement_requested"

    plan = {parts[0]: ((reviewer, "pass"), (decider, "approve"), (officer, None))}
    plan[parts[2]] = ((officer, "accept"), *plan[parts[0]])
    for receipt, steps in plan.items():
        app = officer_app(receipt)
        for who, decision in steps:
            response = step(client, who, app, decision)
            assert response.status_code == 200, response.text
            app = response.json()
        assert app["status"] == "approved"
    statuses = [p["status"] for p in client.get(url, headers=citizen).json()["parts"]]
    assert statuses.count("approved") == 2
    assert client.get(url, headers=citizen).json()["status"] == "supplement_requested"


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["submitted", "submitted"], "submitted"),
        (["submitted", "in_progress"], "in_progress"),
        (["approved", "in_progress"], "in_progress"),
        (["approved", "supplement_requested"], "supplement_requested"),
        (["approved", "approved"], "approved"),
        (["approved", "refused"], "partly_approved"),
        (["refused", "not_accepted"], "refused"),
    ],
)
def test_combined_status(statuses: list[str], expected: str) -> None:
    assert combined_status(statuses) == expected


def test_bad_bundle_definitions_are_refused(client: httpx.Client, bundle: dict[str, dict[str, str]]) -> None:
    editor = bundle["editor.sun"]
    url = "/api/v1/intake/bundles/other/versions"
    bad_when = {
        **DEFINITION,
        "items": [*DEFINITION["items"][:3], {"item_code": CODES[3], "when": {"var": "nope"}}],
    }
    twice = {**DEFINITION, "items": [DEFINITION["items"][0], DEFINITION["items"][0]]}
    evil = {
        **DEFINITION,
        "items": [*DEFINITION["items"][:3], {"item_code": CODES[3], "when": {"eval": ["x"]}}],
    }
    unknown_item = {**DEFINITION, "items": [*DEFINITION["items"][:3], {"item_code": "NOPE0001"}]}
    for definition, status, words in (
        (bad_when, 422, "names no question"),
        (twice, 422, "appears twice"),
        (evil, 422, "eval"),
        (unknown_item, 404, "NOPE0001"),
    ):
        response = client.post(url, headers=editor, json={"definition": definition})
        assert response.status_code == status, response.text
        assert words in response.json()["detail"]
    assert client.get(url, headers=editor).json() == []
    assert client.post(url, headers=bundle["citizen.li"], json={"definition": DEFINITION}).status_code == 403


def test_a_bundle_whose_items_lack_forms_cannot_be_published(
    client: httpx.Client, staff: dict[str, dict[str, str]], session: Session, clock: FixedClock
) -> None:
    import_items(session, clock)
    session.commit()
    saved = client.post(
        f"/api/v1/intake/bundles/{BUNDLE}/versions",
        headers=staff["editor.sun"],
        json={"definition": DEFINITION},
    )
    assert saved.status_code == 201, saved.text
    done = client.post(f"/api/v1/intake/bundles/{BUNDLE}/versions/1/publish", headers=staff["publisher.qian"])
    assert done.status_code == 409
    assert CODES[0] in done.json()["detail"]
    assert BIRTH_CERT  # the shared material of the bundle


def test_a_choice_answer_must_be_one_of_the_options() -> None:
    definition = BundleDefinition.model_validate(
        {
            **DEFINITION,
            "questions": [
                {
                    "key": "kind",
                    "type": "choice",
                    "label": {"zh": "类型", "en": "Kind"},
                    "options": [
                        {"value": "a", "label": {"zh": "甲", "en": "A"}},
                        {"value": "b", "label": {"zh": "乙", "en": "B"}},
                    ],
                }
            ],
            "items": [{"item_code": c} for c in CODES],
        }
    )
    assert _answers(definition, {"kind": "a"}) == {"kind": "a"}
    for bad in (["a"], {"a": 1}, "c", 1):
        with pytest.raises(InvalidInput, match="one of a, b"):
            _answers(definition, {"kind": bad})


def test_fields_are_asked_once_only_when_they_accept_the_same_values(
    client: httpx.Client, bundle: dict[str, dict[str, str]]
) -> None:
    """The social security card's form gets a second upload of the birth certificate (its back) and a baby's
    name limited to 10 characters: the back is its own upload, the stricter name its own field."""
    spec = ITEMS[2]
    fields = [{**f, "max_length": 10} if f["key"] == "baby_name" else f for f in PARENT + spec["extra"]]
    fields.append({**next(f for f in PARENT if f["key"] == "birth_cert"), "key": "birth_cert_back"})
    editor, publisher = bundle["editor.sun"], bundle["publisher.qian"]
    saved = client.post(
        f"/api/v1/intake/items/{spec['code']}/forms", headers=editor, json={"definition": {"fields": fields}}
    )
    assert saved.status_code == 201, saved.text
    version = saved.json()["version"]
    assert (
        client.post(
            f"/api/v1/intake/items/{spec['code']}/forms/{version}/publish", headers=publisher
        ).status_code
        == 200
    )
    form = client.post(
        f"/api/v1/intake/bundles/{BUNDLE}/application-form",
        headers=bundle["citizen.li"],
        json={"answers": {"employed": False}},
    ).json()
    by_key = {f["key"]: f["items"] for f in form["fields"]}
    assert by_key["birth_cert"] == CODES[:3]
    assert by_key["birth_cert_back"] == [CODES[2]]
    assert by_key["baby_name"] == CODES[:2]
    assert by_key[f"{CODES[2]}__baby_name"] == [CODES[2]]
