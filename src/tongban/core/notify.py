"""Sending email and SMS: adapters behind two small protocols, with local defaults that write files.

The platform works without a mail server or an SMS gateway: by default an email is written to
``<data_dir>/outbox/email/<message id>.eml`` and an SMS to ``<data_dir>/outbox/sms/<message id>.json``
(an operator or a test reads them there). ``TONGBAN_SMTP_URL`` (``smtp://user:password@host:587``, STARTTLS
unless ``TONGBAN_SMTP_STARTTLS=false``; ``smtps://`` for implicit TLS) sends email through a mail server
with the standard library's :mod:`smtplib`; ``TONGBAN_SMS_GATEWAY_URL`` with ``TONGBAN_SMS_API_KEY`` posts
each SMS as JSON to an HTTP gateway.

Every message carries the id its sender gave it (the outbox message id), so a receiver can drop a
message delivered twice; writing the same id again to a file replaces the file. A failure is a
:class:`NotifyError` whose text names what failed (status, exception type), never the address, the
content or a credential.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import httpx

from tongban.core.config import Settings

_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class NotifyError(Exception):
    """Sending failed. The message says why without personal data or credentials."""


class EmailSender(Protocol):
    def send_email(self, *, message_id: str, to: str, subject: str, body: str) -> None:
        """Send one plain-text email; raise :class:`NotifyError` when it could not be handed over."""
        ...


class SmsSender(Protocol):
    def send_sms(self, *, message_id: str, to: str, text: str) -> None:
        """Send one SMS; raise :class:`NotifyError` when the gateway did not accept it."""
        ...


def _safe_id(message_id: str) -> str:
    if not _ID.match(message_id):
        raise ValueError("a message id is 1–64 letters, digits, '_', '.' or '-'")
    return message_id


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a reader never sees half a message)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _email(message_id: str, sender: str, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(idstring=message_id, domain=domain)
    message["X-Tongban-Message-Id"] = message_id
    message.set_content(body, cte="base64")  # 7-bit safe on any server, whatever the language
    return message


class FileEmailSender:
    """The local default: each email is written as ``<root>/<message id>.eml`` (RFC 5322, UTF-8)."""

    def __init__(self, root: Path, sender: str) -> None:
        self.root = root
        self.sender = sender

    def send_email(self, *, message_id: str, to: str, subject: str, body: str) -> None:
        message = _email(_safe_id(message_id), self.sender, to, subject, body)
        try:
            _write(self.root / f"{message_id}.eml", bytes(message))
        except OSError as exc:
            raise NotifyError(f"could not write the email file ({type(exc).__name__})") from exc


class FileSmsSender:
    """The local default: each SMS is written as ``<root>/<message id>.json`` (``id``, ``to``, ``text``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def send_sms(self, *, message_id: str, to: str, text: str) -> None:
        body = json.dumps({"id": _safe_id(message_id), "to": to, "text": text}, ensure_ascii=False)
        try:
            _write(self.root / f"{message_id}.json", body.encode())
        except OSError as exc:
            raise NotifyError(f"could not write the SMS file ({type(exc).__name__})") from exc


class SmtpEmailSender:
    """Email through a mail server: ``smtp://[user:password@]host[:port]`` (STARTTLS unless told not to)
    or ``smtps://...`` (TLS from the start). Certificates are verified against the system's store, or
    against ``ssl_context`` when one is given."""

    def __init__(
        self,
        url: str,
        sender: str,
        *,
        starttls: bool = True,
        timeout_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("the SMTP URL must look like smtp://user:password@host:port or smtps://...")
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.implicit_tls else 587)
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else ""
        self.starttls = starttls and not self.implicit_tls
        self.sender = sender
        self.timeout_s = timeout_s
        self._context = ssl_context

    def __repr__(self) -> str:  # never the password
        return f"SmtpEmailSender(host={self.host!r}, port={self.port}, starttls={self.starttls})"

    def _context_or_default(self) -> ssl.SSLContext:
        return self._context or ssl.create_default_context()

    def send_email(self, *, message_id: str, to: str, subject: str, body: str) -> None:
        message = _email(_safe_id(message_id), self.sender, to, subject, body)
        try:
            client: smtplib.SMTP
            if self.implicit_tls:
                client = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout_s, context=self._context_or_default()
                )
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with client:
                if self.starttls:
                    client.starttls(context=self._context_or_default())
                if self._user:
                    client.login(self._user, self._password)
                client.send_message(message)
        except smtplib.SMTPResponseException as exc:
            raise NotifyError(f"the mail server refused the message (SMTP {exc.smtp_code})") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise NotifyError(f"could not reach the mail server ({type(exc).__name__})") from None


class HttpSmsSender:
    """SMS through an HTTP gateway: ``POST <url>`` with JSON ``{"id", "to", "text"}``, the key in the
    ``X-API-Key`` header and the message id as ``Idempotency-Key``; any 2xx answer means accepted."""

    def __init__(
        self, url: str, api_key: str, *, timeout_s: float = 10.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        parsed = httpx.URL(url.strip())
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError("the SMS gateway URL must be an http(s) URL")
        self.url = str(parsed)
        self._client = httpx.Client(
            headers={"X-API-Key": api_key, "Accept": "application/json"},
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
        )

    def __repr__(self) -> str:  # never the key
        return f"HttpSmsSender(url={self.url!r})"

    def close(self) -> None:
        self._client.close()

    def send_sms(self, *, message_id: str, to: str, text: str) -> None:
        body = {"id": _safe_id(message_id), "to": to, "text": text}
        try:
            response = self._client.post(self.url, json=body, headers={"Idempotency-Key": message_id})
        except httpx.HTTPError as exc:
            raise NotifyError(f"could not reach the SMS gateway ({type(exc).__name__})") from None
        if not response.is_success:
            raise NotifyError(f"the SMS gateway answered HTTP {response.status_code}")


def email_sender(settings: Settings) -> EmailSender:
    """The configured email sender: SMTP when ``TONGBAN_SMTP_URL`` is set, else files under the data dir."""
    url = settings.smtp_url.get_secret_value().strip()
    if url:
        return SmtpEmailSender(
            url, settings.mail_from, starttls=settings.smtp_starttls, timeout_s=settings.notify_timeout_s
        )
    return FileEmailSender(settings.data_dir / "outbox" / "email", settings.mail_from)


def sms_sender(settings: Settings) -> SmsSender:
    """The configured SMS sender: the HTTP gateway when ``TONGBAN_SMS_GATEWAY_URL`` is set, else files."""
    url = settings.sms_gateway_url.strip()
    if url:
        return HttpSmsSender(
            url, settings.sms_api_key.get_secret_value(), timeout_s=settings.notify_timeout_s
        )
    return FileSmsSender(settings.data_dir / "outbox" / "sms")
