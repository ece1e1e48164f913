"""Notices to applicants: a portal notice for every change they should know of, and the same news by email
and SMS through the outbox (files by default, a mail server, an SMS gateway), with nothing personal beyond
the receipt, the item and the status."""

from __future__ import annotations

import email
import json
import ssl
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import bearer, make_account
from tests.fakes.sms_gateway import FakeSmsGateway
from tests.fakes.smtp_server import FakeSmtp, self_signed
from tests.intake.helpers import CODE, ID, step, submit, upload, values
from tests.intake.pdfs import pdf
from tongban.core.clock import FixedClock
from tongban.core.config import Settings
from tongban.core.notify import (
    FileEmailSender,
    FileSmsSender,
    HttpSmsSender,
    NotifyError,
    SmtpEmailSender,
    email_sender,
    sms_sender,
)
from tongban.intake import service
from tongban.intake.models import OutboxMessage

NOTE = "租赁合同缺少出租人签字页，请补充上传。"


def _read_eml(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=default)
    assert isinstance(message, EmailMessage)
    return message


# --- the adapters ----------------------------------------------------------------------------------


def test_the_local_senders_write_one_file_per_message(tmp_path: Path) -> None:
    mail = FileEmailSender(tmp_path / "email", "通办 <noreply@tongban.invalid>")
    mail.send_email(message_id="msg_1", to="li@example.cn", subject="【通办】已受理", body="您的申请已受理。")
    mail.send_email(message_id="msg_1", to="li@example.cn", subject="【通办】已受理", body="您的申请已受理。")
    (eml,) = (tmp_path / "email").glob("*.eml")
    assert eml.name == "msg_1.eml"
    message = _read_eml(eml)
    assert message["Subject"] == "【通办】已受理"
    assert message["To"] == "li@example.cn"
    assert "msg_1" in message["Message-ID"]
    assert message.get_content().strip() == "您的申请已受理。"

    sms = FileSmsSender(tmp_path / "sms")
    sms.send_sms(message_id="msg_2", to="13800138000", text="【通办】已受理")
    assert json.loads((tmp_path / "sms" / "msg_2.json").read_text()) == {
        "id": "msg_2",
        "to": "13800138000",
        "text": "【通办】已受理",
    }
    with pytest.raises(ValueError, match="message id"):
        sms.send_sms(message_id="../escape", to="1", text="x")


def test_the_smtp_sender_upgrades_with_starttls_and_signs_in(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    with FakeSmtp(user="tongban", password="s3cret pass", tls=server_tls) as smtp:
        url = f"smtp://tongban:s3cret%20pass@127.0.0.1:{smtp.port}"
        sender = SmtpEmailSender(url, "通办 <noreply@tongban.invalid>", ssl_context=client_tls)
        assert "s3cret" not in repr(sender)
        sender.send_email(message_id="msg_abc", to="li@example.cn", subject="【通办】已受理", body="已受理。")
        (mail,) = smtp.mails
        assert (mail.tls, mail.user, mail.mail_from, mail.rcpt_to) == (
            True,
            "tongban",
            "noreply@tongban.invalid",
            ["li@example.cn"],
        )
        parsed = email.message_from_bytes(mail.data, policy=default)
        assert parsed["Subject"] == "【通办】已受理"
        assert parsed["X-Tongban-Message-Id"] == "msg_abc"

        wrong = SmtpEmailSender(
            url.replace("s3cret", "guess"), "noreply@tongban.invalid", ssl_context=client_tls
        )
        with pytest.raises(NotifyError) as failed:
            wrong.send_email(message_id="msg_x", to="li@example.cn", subject="s", body="b")
        assert str(failed.value) == "the mail server refused the message (SMTP 535)"
        assert "li@example.cn" not in str(failed.value)

        untrusted = SmtpEmailSender(url, "noreply@tongban.invalid")  # the system store does not know the cert
        with pytest.raises(NotifyError, match="could not reach the mail server"):
            untrusted.send_email(message_id="msg_y", to="li@example.cn", subject="s", body="b")
    assert len(smtp.mails) == 1
    with pytest.raises(ValueError, match="SMTP URL"):
        SmtpEmailSender("mail.example.cn:25", "a@b.cn")


def test_the_http_sms_sender_posts_with_its_key_and_the_message_id() -> None:
    with FakeSmsGateway(api_key="gateway-key") as gateway:
        sender = HttpSmsSender(gateway.url, "gateway-key")
        sender.send_sms(message_id="msg_1", to="13800138000", text="【通办】已受理")
        assert gateway.messages == [
            {"id": "msg_1", "to": "13800138000", "text": "【通办】已受理", "idempotency_key": "msg_1"}
        ]
        gateway.fail_with = 503
        with pytest.raises(NotifyError) as failed:
            sender.send_sms(message_id="msg_2", to="13800138000", text="x")
        assert str(failed.value) == "the SMS gateway answered HTTP 503"
        sender.close()
        wrong_key = HttpSmsSender(gateway.url, "guess")
        gateway.fail_with = None
        with pytest.raises(NotifyError, match="HTTP 401"):
            wrong_key.send_sms(message_id="msg_3", to="13800138000", text="x")
        wrong_key.close()
    assert "gateway-key" not in repr(sender)


def test_settings_choose_the_senders(tmp_path: Path) -> None:
    local = Settings(data_dir=tmp_path)
    assert isinstance(email_sender(local), FileEmailSender)
    assert isinstance(sms_sender(local), FileSmsSender)
    configured = Settings(
        data_dir=tmp_path,
        smtp_url="smtps://u:p@mail.example.cn",
        sms_gateway_url="https://sms.example.cn/v1/messages",
        sms_api_key="k",
    )
    smtp = email_sender(configured)
    assert isinstance(smtp, SmtpEmailSender)
    assert (smtp.host, smtp.port, smtp.implicit_tls, smtp.starttls) == ("mail.example.cn", 465, True, False)
    gateway = sms_sender(configured)
    assert isinstance(gateway, HttpSmsSender)
    gateway.close()


# --- notices of an application -------------------------------------------------------------------


def _deliver(app: FastAPI, sessions: sessionmaker[Session], clock: FixedClock, settings: Settings) -> None:
    sealer = app.state.runtime.sealer
    transports = service.outbox_transports(settings, sealer)
    try:
        report = service.deliver_outbox(sessions, transports, settings=settings, sealer=sealer, clock=clock)
    finally:
        service.close_transports(transports)
    assert (report.retrying, report.dead) == (0, 0)


def test_every_change_reaches_the_applicant_in_the_portal_by_email_and_by_sms(
    app: FastAPI,
    client: httpx.Client,
    staff: dict[str, dict[str, str]],
    session: Session,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    citizen = staff["citizen.li"]
    client.get("/api/v1/me/profile", headers=citizen)
    stated = client.patch(
        "/api/v1/me/profile", headers=citizen, json={"data": {"person.email": "li.ming@example.cn"}}
    )
    assert stated.status_code == 200, stated.text
    app_out = submit(client, staff)
    receipt = app_out["receipt_no"]
    first = client.get("/api/v1/me/notices", headers=citizen).json()
    assert [(n["status"], n["channels"], n["read_at"]) for n in first] == [
        ("submitted", ["email", "sms"], None)
    ]
    assert first[0]["title"] == "已收到申请"
    assert receipt in first[0]["text"]
    assert "租房提取住房公积金" in first[0]["text"]
    assert receipt in first[0]["text_en"]

    # 补正 with the officer's note, the applicant's resubmission, 受理, 审查 and a refusal
    step(client, staff["officer.wang"], app_out, "supplement", NOTE)
    lease = upload(client, citizen, "lease-signed.pdf", pdf(f"Signed lease, lessee ID {ID}")).json()["id"]
    resubmitted = client.post(
        f"/api/v1/me/applications/{receipt}/supplement", headers=citizen, json={"values": {"lease": [lease]}}
    ).json()
    accepted = step(client, staff["officer.wang"], resubmitted, "accept").json()
    reviewed = step(client, staff["reviewer.zhou"], accepted, "pass").json()
    refused = step(client, staff["decider.wu"], reviewed, "reject", "租赁关系不真实，不符合提取条件。")
    assert refused.json()["status"] == "refused"

    listed = client.get("/api/v1/me/notices", headers=citizen).json()
    # the rating domain invites the applicant to rate the closed application (its own notice, checked in
    # tests/rating); the application's own notices follow
    assert listed[0]["status"] == "rating_invite"
    listed = listed[1:]
    assert [n["status"] for n in listed] == [
        "refused",
        "in_progress",
        "submitted",
        "supplement_requested",
        "submitted",
    ]
    assert listed[3]["note"] == NOTE  # shown in the portal after signing in
    assert listed[0]["note"] == "租赁关系不真实，不符合提取条件。"
    assert listed[0]["title_en"] == "Refused"

    # Read notices go after the unread ones.
    read = client.post(f"/api/v1/me/notices/{listed[0]['id']}/read", headers=citizen)
    assert read.status_code == 200
    assert read.json()["read_at"] is not None
    again = client.post(f"/api/v1/me/notices/{listed[0]['id']}/read", headers=citizen)
    assert again.json()["read_at"] == read.json()["read_at"]
    reordered = client.get("/api/v1/me/notices", headers=citizen).json()[1:]
    assert [n["id"] for n in reordered] == [n["id"] for n in listed[1:]] + [listed[0]["id"]]
    assert (
        client.post(f"/api/v1/me/notices/{listed[0]['id']}/read", headers=staff["officer.wang"]).status_code
        == 404
    )
    assert client.get("/api/v1/me/notices", headers=staff["officer.wang"]).json() == []

    # Email and SMS: delivered by the outbox, addresses sealed at rest, no personal data in the text.
    rows = list(session.scalars(select(OutboxMessage).where(OutboxMessage.channel.in_(("email", "sms")))))
    assert len(rows) == 12  # five changes and the invitation to rate, each by email and SMS
    assert all("13800138000" not in r.target and "li.ming" not in r.target for r in rows)
    with FakeSmsGateway(api_key="k") as gateway:
        settings = Settings(data_dir=tmp_path, sms_gateway_url=gateway.url, sms_api_key="k")
        _deliver(app, sessions, clock, settings)
        texts = [m["text"] for m in gateway.messages]
        assert {m["to"] for m in gateway.messages} == {"13800138000"}
        assert len(texts) == 6
    emails = [_read_eml(p) for p in sorted((tmp_path / "outbox" / "email").glob("*.eml"))]
    assert len(emails) == 6
    assert {m["To"] for m in emails} == {"li.ming@example.cn"}
    bodies = [m.get_content() for m in emails] + texts + [str(m["Subject"]) for m in emails]
    for text in bodies:
        assert receipt in text
        for secret in (NOTE, "租赁关系不真实", ID, "李明", "13800138000"):
            assert secret not in text
    assert any("不予许可" in t and "Refused" in t for t in texts)
    assert any("租房提取住房公积金" in b and "Sign in to Tongban" in b for b in bodies)


def test_without_a_contact_the_notice_stays_in_the_portal(
    client: httpx.Client, published: dict[str, dict[str, str]], session: Session, clock: FixedClock
) -> None:
    make_account(session, clock, "citizen.zhang", [])
    session.commit()
    citizen = bearer(client, "citizen.zhang")  # no profile data: no mobile, no email
    files = {
        key: upload(client, citizen, f"{key}.pdf", pdf(f"{key} of ID {ID}")).json()["id"]
        for key in ("lease", "id_card", "household")
    }
    submitted = client.post(
        "/api/v1/intake/applications",
        headers=citizen,
        json={
            "item_code": CODE,
            "values": {
                **values(files["lease"]),
                "id_card": [files["id_card"]],
                "household": [files["household"]],
            },
        },
    )
    assert submitted.status_code == 201, submitted.text
    listed = client.get("/api/v1/me/notices", headers=citizen).json()
    assert [(n["status"], n["channels"]) for n in listed] == [("submitted", [])]
    assert list(session.scalars(select(OutboxMessage))) == []
