"""A small fake SMTP server (RFC 5321 subset) in a thread on 127.0.0.1, for the SMTP adapter's tests.

It speaks EHLO/HELO, STARTTLS (when given a TLS context), AUTH PLAIN (when given credentials, required
before MAIL then), MAIL, RCPT, DATA, RSET, NOOP and QUIT, and records each message's envelope, bytes,
whether it came over TLS and who was signed in. :func:`self_signed` makes a certificate for 127.0.0.1.

    with FakeSmtp(user="u", password="p", tls=server_context) as smtp:
        SmtpEmailSender(f"smtp://u:p@127.0.0.1:{smtp.port}", "a@b.c", ssl_context=client_context)
"""

from __future__ import annotations

import base64
import datetime as dt
import socketserver
import ssl
import threading
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Mail:
    mail_from: str
    rcpt_to: list[str]
    data: bytes
    tls: bool
    user: str | None


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A key and a certificate for 127.0.0.1 (written to ``folder``): (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def _send(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def _readline(self) -> str | None:
        raw = self.rfile.readline(65536)
        return raw.rstrip(b"\r\n").decode("utf-8", "replace") if raw else None

    def handle(self) -> None:
        self._tls: ssl.SSLSocket | None = None
        try:
            self._session()
        finally:
            if self._tls is not None:
                for f in (self.rfile, self.wfile):
                    f.close()
                self._tls.close()

    def _session(self) -> None:
        fake = self.server.fake
        tls, user, mail_from = False, None, ""
        rcpt: list[str] = []
        self._send("220 fake.smtp ESMTP ready")
        while (line := self._readline()) is not None:
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if verb in ("EHLO", "HELO"):
                caps = ["fake.smtp", "8BITMIME", "AUTH PLAIN"]
                if fake.tls is not None and not tls:
                    caps.append("STARTTLS")
                for cap in caps[:-1]:
                    self._send(f"250-{cap}")
                self._send(f"250 {caps[-1]}")
            elif verb == "STARTTLS" and fake.tls is not None and not tls:
                self._send("220 go ahead")
                try:
                    self._tls = fake.tls.wrap_socket(self.connection, server_side=True)
                except (ssl.SSLError, OSError):
                    return  # the client did not trust us (or went away)
                self.rfile = self._tls.makefile("rb")
                self.wfile = self._tls.makefile("wb")
                tls, user, mail_from, rcpt = True, None, "", []  # the session starts anew (RFC 3207)
            elif verb == "AUTH":
                user = self._auth(arg)
            elif verb == "MAIL":
                if fake.user and not user:
                    self._send("530 authentication required")
                    continue
                mail_from, rcpt = _address(arg), []
                self._send("250 ok")
            elif verb == "RCPT":
                rcpt.append(_address(arg))
                self._send("250 ok")
            elif verb == "DATA":
                self._send("354 end with <CRLF>.<CRLF>")
                chunks = []
                while True:
                    raw = self.rfile.readline(1 << 20)
                    if not raw:
                        return
                    if raw in (b".\r\n", b".\n"):
                        break
                    chunks.append(raw[1:] if raw.startswith(b"..") else raw)
                fake.mails.append(Mail(mail_from, list(rcpt), b"".join(chunks), tls, user))
                mail_from, rcpt = "", []
                self._send("250 queued")
            elif verb in ("RSET", "NOOP"):
                self._send("250 ok")
            elif verb == "QUIT":
                self._send("221 bye")
                return
            else:
                self._send("502 not implemented")

    def _auth(self, arg: str) -> str | None:
        fake = self.server.fake
        mechanism, _, initial = arg.partition(" ")
        if mechanism.upper() != "PLAIN":
            self._send("504 only PLAIN")
            return None
        try:
            _, name, secret = base64.b64decode(initial).decode().split("\0")
        except ValueError:
            self._send("501 malformed")
            return None
        if name == fake.user and secret == fake.password:
            self._send("235 authenticated")
            return name
        self._send("535 authentication failed")
        return None


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeSmtp


class FakeSmtp:
    def __init__(self, *, user: str | None = None, password: str = "", tls: ssl.SSLContext | None = None):
        self.user = user
        self.password = password
        self.tls = tls
        self.mails: list[Mail] = []
        self.port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeSmtp:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _address(arg: str) -> str:
    return arg.partition(":")[2].split()[0].strip("<>") if ":" in arg else arg
