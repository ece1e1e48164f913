"""The applicant's e-material library: documents submitted and received, reused in a new application."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy.orm import Session

from tests.intake.helpers import CODE, step, submit, values
from tongban.core.files import FileStore


def test_submitted_and_received_documents_are_listed_and_reused(
    client: httpx.Client, staff: dict[str, dict[str, str]], session: Session, app: FastAPI
) -> None:
    files: FileStore = app.state.runtime.files
    citizen = staff["citizen.li"]
    submitted_app = submit(client, staff)
    current = submitted_app
    for who, decision in (("officer.wang", "accept"), ("reviewer.zhou", "pass"), ("decider.wu", "approve")):
        response = step(client, staff[who], current, decision)
        assert response.status_code == 200, response.text
        current = response.json()
    done = step(client, staff["officer.wang"], current, None)
    assert done.json()["status"] == "approved"

    library = client.get("/api/v1/me/materials", headers=citizen)
    assert library.status_code == 200, library.text
    entries = library.json()
    received = [e for e in entries if e["kind"] == "received"]
    submitted = [e for e in entries if e["kind"] == "submitted"]
    assert len(received) == 1
    assert received[0]["receipt_no"] == submitted_app["receipt_no"]
    assert [(e["material"], e["filename"]) for e in submitted] == [("房屋租赁合同", "lease.pdf")]

    # Reusing the lease gives a fresh upload that a new application takes like any other.
    again = client.post(f"/api/v1/me/materials/{submitted[0]['id']}/reuse", headers=citizen)
    assert again.status_code == 201, again.text
    fresh = again.json()
    assert fresh["id"] != submitted[0]["id"].split(":", 1)[1]
    assert fresh["sha256"] == submitted[0]["sha256"]
    second = client.post(
        "/api/v1/intake/applications",
        headers=citizen,
        json={"item_code": CODE, "values": values(fresh["id"])},
    )
    assert second.status_code == 201, second.text
    assert [u["sha256"] for u in second.json()["uploads"]] == [fresh["sha256"]]
    assert files.exists(fresh["id"])

    decision = client.post(f"/api/v1/me/materials/{received[0]['id']}/reuse", headers=citizen)
    assert decision.status_code == 201, decision.text
    assert decision.json()["content_type"] == "application/pdf"


def test_nobody_reuses_someone_elses_documents(
    client: httpx.Client, staff: dict[str, dict[str, str]]
) -> None:
    app = submit(client, staff)
    upload_id = app["uploads"][0]["id"]
    other = staff["officer.wang"]
    assert client.get("/api/v1/me/materials", headers=other).json() == []
    assert client.post(f"/api/v1/me/materials/upload:{upload_id}/reuse", headers=other).status_code == 404
    assert client.post("/api/v1/me/materials/document:999/reuse", headers=other).status_code == 404
    assert client.post("/api/v1/me/materials/whatever/reuse", headers=other).status_code == 422
    assert client.get("/api/v1/me/materials").status_code == 401
