"""Forms per item, the applicant's form (prefill, exemption), uploads, pre-check and idempotent submission,
over real HTTP against the real database and files."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.conftest import bearer, make_account
from tests.factories import item
from tests.intake.helpers import CODE, DEFINITION, ID, known_citizen, upload, values
from tests.intake.pdfs import PNG, pdf
from tongban.catalog import service as catalog
from tongban.core.clock import FixedClock
from tongban.intake import service

# --- forms -------------------------------------------------------------------------------------------


def test_form_versions_need_a_valid_definition_and_a_second_person(
    client: httpx.Client, published: dict[str, dict[str, str]]
) -> None:
    editor, publisher = published["editor.sun"], published["publisher.qian"]
    bad = {
        "fields": [
            {
                "key": "a",
                "label": "甲",
                "label_en": "A",
                "type": "text",
                "show_if": {"==": [{"var": "nope"}, 1]},
            }
        ]
    }
    refused = client.post(f"/api/v1/intake/items/{CODE}/forms", headers=editor, json={"definition": bad})
    assert refused.status_code == 422
    assert "nope" in refused.json()["detail"]
    strange = {
        "fields": [{"key": "f", "label": "文件", "label_en": "File", "type": "file", "material": "结婚证"}]
    }
    refused = client.post(f"/api/v1/intake/items/{CODE}/forms", headers=editor, json={"definition": strange})
    assert refused.status_code == 422
    assert "结婚证" in refused.json()["detail"]
    loose = {"fields": [{"key": "f", "label": "文件", "label_en": "File", "type": "file"}]}
    refused = client.post(f"/api/v1/intake/items/{CODE}/forms", headers=editor, json={"definition": loose})
    assert refused.status_code == 422
    assert "must name the catalogue material" in refused.json()["detail"]
    v2 = client.post(f"/api/v1/intake/items/{CODE}/forms", headers=publisher, json={"definition": DEFINITION})
    assert v2.json()["version"] == 2
    assert v2.json()["state"] == "draft"
    own = client.post(f"/api/v1/intake/items/{CODE}/forms/2/publish", headers=publisher)
    assert own.status_code == 403  # four eyes
    assert client.post(f"/api/v1/intake/items/{CODE}/forms/2/publish", headers=editor).status_code == 403
    states = {
        f["version"]: f["state"]
        for f in client.get(f"/api/v1/intake/items/{CODE}/forms", headers=editor).json()
    }
    assert states == {1: "published", 2: "draft"}
    assert client.post(f"/api/v1/intake/items/{CODE}/forms/1/publish", headers=publisher).status_code == 409
    assert (
        client.get(f"/api/v1/intake/items/{CODE}/forms", headers=published["citizen.li"]).status_code == 403
    )


# --- the applicant's form ----------------------------------------------------------------------------


def test_nothing_the_platform_knows_is_asked_again(
    client: httpx.Client, published: dict[str, dict[str, str]]
) -> None:
    """WCAG 2.2 SC 3.3.7 (redundant entry): known values come prefilled with their source, and materials the
    platform holds are not asked for."""
    known_citizen(client, published)
    form = client.get(f"/api/v1/intake/items/{CODE}/application-form", headers=published["citizen.li"]).json()
    fields = {f["key"]: f for f in form["definition"]["fields"]}
    prefilled = {p["field"]: p for p in form["prefilled"]}
    assert "id_card" not in fields  # the ID card licence supplies it
    assert "household" not in fields  # shared household data supply it
    assert "lease" in fields
    for key, f in fields.items():
        if f.get("profile_key"):
            assert key in prefilled, f"{key} is known but not prefilled"
    assert prefilled["id_number"]["value"] == ID
    assert prefilled["id_number"]["source"] == "shared_data"
    assert prefilled["id_number"]["verified"] is True
    assert prefilled["name"]["source"] == "applicant"
    statuses = {m["name"]: m["status"] for m in form["materials"]}
    assert statuses == {
        "居民身份证": "exempt",
        "户口簿": "exempt",
        "房屋租赁合同": "upload",
        "告知承诺书": "not_needed",
    }
    assert form["exempted_share"] == pytest.approx(3 / 4)


def test_without_consent_nothing_is_prefilled_or_exempted(
    client: httpx.Client, published: dict[str, dict[str, str]]
) -> None:
    known_citizen(client, published, exempt=False)
    client.delete("/api/v1/me/consents/prefill", headers=published["citizen.li"])
    form = client.get(f"/api/v1/intake/items/{CODE}/application-form", headers=published["citizen.li"]).json()
    assert form["prefilled"] == []
    assert {f["key"] for f in form["definition"]["fields"]} >= {"id_card", "household", "lease"}
    assert form["exempted_share"] == pytest.approx(1 / 4)


def test_an_item_without_a_published_form_cannot_be_applied_for(
    client: httpx.Client, published: dict[str, dict[str, str]], session: Session, clock: FixedClock
) -> None:
    catalog.import_item(session, item(code="11110000INTK0002"), actor="test", clock=clock, source="test")
    session.commit()
    response = client.get(
        "/api/v1/intake/items/11110000INTK0002/application-form", headers=published["citizen.li"]
    )
    assert response.status_code == 404
    assert "no published form" in response.json()["detail"]


# --- uploads -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "ctype", "code"),
    [
        ("contract.pdf", b"MZ\x90\x00 this is a program", "application/pdf", "file.type"),
        ("contract.pdf", PNG + b"\x00" * 400, "application/pdf", "file.type_mismatch"),
        ("contract.pdf", pdf(None), "application/pdf", "file.blank"),
        ("contract.pdf", b"%PDF-1.4\n garbage that is not a pdf", "application/pdf", "file.unreadable"),
        ("empty.pdf", b"", "application/pdf", None),
    ],
)
def test_unusable_files_are_refused_with_a_reason(
    client: httpx.Client,
    published: dict[str, dict[str, str]],
    app: FastAPI,
    name: str,
    data: bytes,
    ctype: str,
    code: str | None,
) -> None:
    before = {k for k, _ in app.state.runtime.files.stored()}
    response = upload(client, published["citizen.li"], name, data, ctype)
    assert response.status_code == 422, response.text
    if code:
        assert response.json()["code"] == code
    assert {k for k, _ in app.state.runtime.files.stored()} == before  # nothing was written


def test_uploads_are_sealed_on_disk(
    client: httpx.Client, published: dict[str, dict[str, str]], app: FastAPI
) -> None:
    body = pdf(f"Lease of {ID}")
    response = upload(client, published["citizen.li"], "lease.pdf", body)
    assert response.status_code == 201, response.text
    key = response.json()["id"]
    store = app.state.runtime.files
    assert store.get(key) == body
    raw = (store.root / key[:2] / key).read_bytes()
    assert ID.encode() not in raw
    assert response.json()["pages"] == 1


# --- pre-check and submission ------------------------------------------------------------------------


def test_precheck_tells_the_applicant_what_to_fix(
    client: httpx.Client, published: dict[str, dict[str, str]]
) -> None:
    known_citizen(client, published)
    citizen = published["citizen.li"]
    wrong = ID[:17] + ("0" if ID[17] != "0" else "1")
    result = client.post(
        f"/api/v1/intake/items/{CODE}/precheck",
        headers=citizen,
        json={"values": {**values("x"), "id_number": wrong, "lease": []}},
    ).json()
    codes = {(f["code"], f["field"]) for f in result["findings"]}
    assert result["ok"] is False
    assert ("id.check_char", "id_number") in codes
    assert any(field == "lease" for _, field in codes)  # the lease is missing
    lease = upload(client, citizen, "lease.pdf", pdf(f"Lessee ID {ID}")).json()["id"]
    good = client.post(
        f"/api/v1/intake/items/{CODE}/precheck", headers=citizen, json={"values": values(lease)}
    ).json()
    assert good["ok"] is True, good["findings"]
    assert good["values"]["monthly_rent"] == 350050
    assert good["values"]["total_rent"] == 350050 * 12
    # the uploaded lease does not mention the applicant: a warning, not a block
    other = upload(client, citizen, "lease2.pdf", pdf("Lessee somebody else")).json()["id"]
    warned = client.post(
        f"/api/v1/intake/items/{CODE}/precheck", headers=citizen, json={"values": values(other)}
    ).json()
    assert warned["ok"] is True
    assert [f["code"] for f in warned["findings"]] == ["file.no_mention"]


def test_submission_is_idempotent_and_complete(
    client: httpx.Client, published: dict[str, dict[str, str]], session: Session
) -> None:
    known_citizen(client, published)
    citizen = published["citizen.li"]
    lease = upload(client, citizen, "lease.pdf", pdf(f"Lessee ID {ID}")).json()["id"]
    filled = values(lease)
    body: dict[str, Any] = {"item_code": CODE, "values": filled}
    key = {**citizen, "Idempotency-Key": "submit-0001-abcdef"}
    first = client.post("/api/v1/intake/applications", headers=key, json=body)
    assert first.status_code == 201, first.text
    again = client.post("/api/v1/intake/applications", headers=key, json=body)
    assert again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["receipt_no"] == first.json()["receipt_no"]
    changed = client.post(
        "/api/v1/intake/applications", headers=key, json={**body, "values": {**filled, "months": 6}}
    )
    assert changed.status_code == 409
    assert session.execute(text("SELECT count(*) FROM intake_application")).scalar_one() == 1
    receipt = first.json()["receipt_no"]
    assert receipt.startswith("20260302")  # the day in Beijing
    mine = client.get(f"/api/v1/me/applications/{receipt}", headers=citizen).json()
    assert mine["status"] == "submitted"
    assert mine["values"]["lease"] == [lease]
    assert mine["values"]["total_rent"] == 350050 * 12
    assert [u["id"] for u in mine["uploads"]] == [lease]
    assert [(e["action"], e["to_status"]) for e in mine["events"]] == [("submit", "submitted")]
    assert {m["name"]: m["status"] for m in mine["materials"]}["居民身份证"] == "exempt"
    replay = session.execute(text("SELECT body FROM core_idempotency")).scalar_one()
    assert replay.startswith("v1.")  # the stored response is sealed: it holds personal data
    assert ID not in replay
    sealed = session.execute(text("SELECT values_sealed FROM intake_application")).scalar_one()
    assert ID not in sealed
    assert "李明" not in sealed
    # the upload belongs to that application now
    reuse = client.post("/api/v1/intake/applications", headers=citizen, json=body)
    assert reuse.status_code == 409
    assert [a["receipt_no"] for a in client.get("/api/v1/me/applications", headers=citizen).json()] == [
        receipt
    ]


def test_a_refused_submission_stores_nothing(
    client: httpx.Client, published: dict[str, dict[str, str]], session: Session
) -> None:
    known_citizen(client, published)
    citizen = published["citizen.li"]
    lease = upload(client, citizen, "lease.pdf", pdf(f"Lessee ID {ID}")).json()["id"]
    bad = {"item_code": CODE, "values": {**values(lease), "months": 0}}
    response = client.post(
        "/api/v1/intake/applications", headers={**citizen, "Idempotency-Key": "submit-bad-0001"}, json=bad
    )
    assert response.status_code == 422
    assert response.json()["type"] == "/problems/precheck-failed"
    assert [f["field"] for f in response.json()["findings"] if f["severity"] == "error"] == ["months"]
    assert session.execute(text("SELECT count(*) FROM intake_application")).scalar_one() == 0
    assert (
        session.execute(
            text("SELECT count(*) FROM intake_upload WHERE application_id IS NOT NULL")
        ).scalar_one()
        == 0
    )
    # the key was not used up by the refusal: the corrected request goes through under it
    fixed = client.post(
        "/api/v1/intake/applications",
        headers={**citizen, "Idempotency-Key": "submit-bad-0001"},
        json={"item_code": CODE, "values": values(lease)},
    )
    assert fixed.status_code == 201, fixed.text


def test_others_cannot_use_or_see_an_applicants_things(
    client: httpx.Client, published: dict[str, dict[str, str]], session: Session, clock: FixedClock
) -> None:
    known_citizen(client, published)
    citizen = published["citizen.li"]
    make_account(session, clock, "citizen.zhou", [])
    session.commit()
    other = bearer(client, "citizen.zhou")
    lease = upload(client, citizen, "lease.pdf", pdf(f"Lessee ID {ID}")).json()["id"]
    stolen = client.post(
        f"/api/v1/intake/items/{CODE}/precheck", headers=other, json={"values": values(lease)}
    )
    assert stolen.status_code == 422
    assert "no upload" in stolen.json()["detail"]
    receipt = client.post(
        "/api/v1/intake/applications", headers=citizen, json={"item_code": CODE, "values": values(lease)}
    ).json()["receipt_no"]
    assert client.get(f"/api/v1/me/applications/{receipt}", headers=other).status_code == 404
    assert (
        client.post("/api/v1/intake/applications", json={"item_code": CODE, "values": {}}).status_code == 401
    )


def test_stale_uploads_and_orphan_files_are_swept(
    client: httpx.Client,
    published: dict[str, dict[str, str]],
    session: Session,
    clock: FixedClock,
    app: FastAPI,
) -> None:
    known_citizen(client, published)
    citizen = published["citizen.li"]
    store = app.state.runtime.files
    kept = upload(client, citizen, "lease.pdf", pdf(f"Lessee ID {ID}")).json()["id"]
    client.post(
        "/api/v1/intake/applications", headers=citizen, json={"item_code": CODE, "values": values(kept)}
    )
    dropped = upload(client, citizen, "draft.pdf", pdf("a draft never submitted")).json()["id"]
    store.put("ab" * 16, b"a file whose row never committed")
    assert service.sweep_uploads(session, store, clock=clock) == 0  # nothing is old enough yet
    clock.advance(dt.timedelta(days=2))
    # file times are the wall clock's: sweep with a cut-off in the future of the files
    removed = service.sweep_uploads(session, store, clock=clock, hours=-24 * 365)
    assert removed >= 2  # the store is shared by this test session: earlier tests' rolled-back files go too
    assert store.exists(kept)
    assert not store.exists(dropped)
    assert not store.exists("ab" * 16)
    assert session.execute(text("SELECT count(*) FROM intake_upload")).scalar_one() == 1


def test_receipt_numbers_are_sequential_per_day(session: Session, clock: FixedClock) -> None:
    from tongban.intake import repository as repo

    assert [repo.next_receipt(session, "20260302") for _ in range(3)] == [1, 2, 3]
    assert repo.next_receipt(session, "20260303") == 1


def test_one_upload_cannot_serve_twice(client: httpx.Client, published: dict[str, dict[str, str]]) -> None:
    known_citizen(client, published)
    citizen = published["citizen.li"]
    lease = upload(client, citizen, "lease.pdf", pdf(f"Lessee ID {ID}")).json()["id"]
    twice = client.post(
        f"/api/v1/intake/items/{CODE}/precheck",
        headers=citizen,
        json={"values": {**values(lease), "lease": [lease, lease]}},
    )
    assert twice.status_code == 422
    assert "named twice" in twice.json()["detail"]
