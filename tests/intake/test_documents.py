"""Result documents: the decision as a PDF (准予许可决定书, 不予许可决定书, 不予受理通知书) written when an
application ends, sealed in the file store, listed with the application and downloaded by the applicant
and (audited) by officers."""

from __future__ import annotations

import datetime as dt
import io

import httpx
from fastapi import FastAPI
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.intake.helpers import step, submit
from tongban.core import audit
from tongban.core.clock import FixedClock
from tongban.core.files import FileStore, new_file_key
from tongban.intake import documents, service
from tongban.intake.models import Application, ResultDocument

ITEM = "租房提取住房公积金"


def _text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_an_approval_issues_the_decision_for_the_applicant_and_the_officers(
    app: FastAPI, client: httpx.Client, staff: dict[str, dict[str, str]], session: Session
) -> None:
    app_out = submit(client, staff)
    receipt = app_out["receipt_no"]
    assert app_out["documents"] == []
    accepted = step(client, staff["officer.wang"], app_out, "accept").json()
    reviewed = step(client, staff["reviewer.zhou"], accepted, "pass", "材料齐全").json()
    decided = step(
        client, staff["decider.wu"], reviewed, "approve", "申请人连续足额缴存，租赁关系真实。"
    ).json()
    assert decided["documents"] == []  # 送达 is still to come
    delivered = step(client, staff["officer.wang"], decided, "done").json()
    assert delivered["status"] == "approved"
    (officer_doc,) = delivered["documents"]
    assert officer_doc["kind"] == "approval"
    assert officer_doc["title"] == "准予许可决定书"
    assert (
        officer_doc["download_url"] == f"/api/v1/intake/applications/{receipt}/documents/{officer_doc['id']}"
    )

    citizen = staff["citizen.li"]
    mine = client.get(f"/api/v1/me/applications/{receipt}", headers=citizen).json()
    (doc,) = mine["documents"]
    assert doc["download_url"] == f"/api/v1/me/applications/{receipt}/documents/{doc['id']}"
    got = client.get(doc["download_url"], headers=citizen)
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/pdf"
    assert f'filename="{receipt}-approval.pdf"' in got.headers["content-disposition"]
    assert got.content.startswith(b"%PDF")
    assert len(got.content) == doc["size"]
    text = _text(got.content)
    for expected in (
        "准予许可决定书",
        "Decision to Grant the Licence",
        receipt,
        ITEM,
        "李明",
        "申请人连续足额缴存，租赁关系真实。",
        "2026年3月2日",
        "行政复议",
        "行政诉讼",
    ):
        assert expected in text, expected

    # Stored sealed: the file on disk is not the PDF.
    row = session.scalars(select(ResultDocument).where(ResultDocument.id == doc["id"])).one()
    files: FileStore = app.state.runtime.files
    on_disk = (files.root / row.file_key[:2] / row.file_key).read_bytes()
    assert not on_disk.startswith(b"%PDF")
    assert receipt.encode() not in on_disk

    # Officers download it too, audited; nobody else does.
    officer = client.get(officer_doc["download_url"], headers=staff["reviewer.zhou"])
    assert officer.status_code == 200
    assert officer.content == got.content
    downloads = [
        e
        for e in audit.list_events(session, target_type="intake_application", target_id=receipt)
        if e.action == "intake.document.download"
    ]
    assert [(e.actor, e.detail["document_id"]) for e in downloads] == [("reviewer.zhou", doc["id"])]
    assert client.get(doc["download_url"], headers=staff["officer.wang"]).status_code == 404
    assert client.get(officer_doc["download_url"], headers=citizen).status_code == 403
    assert (
        client.get(f"/api/v1/me/applications/{receipt}/documents/999999", headers=citizen).status_code == 404
    )


def test_a_refusal_at_the_window_issues_a_notice_of_non_acceptance(
    client: httpx.Client, staff: dict[str, dict[str, str]]
) -> None:
    app_out = submit(client, staff)
    refused = step(client, staff["officer.wang"], app_out, "reject", "申请事项不属于本机关职权范围。").json()
    assert refused["status"] == "not_accepted"
    (doc,) = refused["documents"]
    assert (doc["kind"], doc["title"], doc["title_en"]) == (
        "non_acceptance",
        "不予受理通知书",
        "Notice of Non-acceptance",
    )
    got = client.get(
        f"/api/v1/me/applications/{app_out['receipt_no']}/documents/{doc['id']}", headers=staff["citizen.li"]
    )
    text = _text(got.content)
    assert "不予受理通知书" in text
    assert "申请事项不属于本机关职权范围。" in text
    assert app_out["receipt_no"] in text


def test_the_pdf_keeps_long_and_markup_like_reasons_as_text(session: Session, clock: FixedClock) -> None:
    application = Application(
        receipt_no="20260302000042",
        item_code="X1",
        item_name="食品经营许可",
        department="北京市东城区市场监督管理局",
        submitted_at=clock.now(),
        status="refused",
    )
    reasons = "经现场核查，<经营场所>与申请材料不符 & 未设置 “更衣室”。" * 12
    data = documents.render(
        application, kind=documents.KINDS["refused"], applicant="王芳", reasons=reasons, issued_at=clock.now()
    )
    text = _text(data).replace("\n", "")
    assert "不予许可决定书" in text
    assert "<经营场所>与申请材料不符 & 未设置" in text
    assert text.count("未设置") == 12  # all of it, wrapped over lines
    assert data == documents.render(
        application, kind=documents.KINDS["refused"], applicant="王芳", reasons=reasons, issued_at=clock.now()
    )
    late = clock.now().replace(hour=17)  # 01:00 the next day in Beijing
    assert "2026年3月3日" in _text(
        documents.render(
            application, kind=documents.KINDS["refused"], applicant="王芳", reasons="", issued_at=late
        )
    )


def test_the_file_sweep_keeps_documents_and_removes_orphans(
    app: FastAPI, client: httpx.Client, staff: dict[str, dict[str, str]], session: Session, clock: FixedClock
) -> None:
    app_out = submit(client, staff)
    refused = step(client, staff["officer.wang"], app_out, "reject", "不属于受理范围。").json()
    (doc,) = refused["documents"]
    files: FileStore = app.state.runtime.files
    orphan = new_file_key()  # as a decision whose transaction rolled back would leave it
    files.put(orphan, b"%PDF-1.4 rolled back")
    # The sweep compares files' modification times with the clock: move past the grace period.
    clock.advance(dt.datetime.now(dt.UTC) - clock.now() + dt.timedelta(days=2))
    service.sweep_uploads(session, files, clock=clock)
    session.commit()
    assert not files.exists(orphan)
    row = session.get(ResultDocument, doc["id"])
    assert row is not None
    assert files.exists(row.file_key)
    assert files.get(row.file_key).startswith(b"%PDF")
