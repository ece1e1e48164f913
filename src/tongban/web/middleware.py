"""Pure-ASGI middleware: request ids, structured access logs, metrics, security headers, body limits."""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tongban.core.audit import request_context
from tongban.core.http import CSRF_COOKIE, problem_response

log = structlog.get_logger("tongban.http")

REQUESTS = Counter("tongban_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "tongban_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
)


#: Paths that receive files: their bodies may be up to ``max_upload_bytes``.
UPLOAD_PATHS = (
    "/api/v1/intake/uploads",
    # the intake pages' forms carry their files (apply, supplement)
    "/intake/items/",
    "/intake/bundles/",
    "/me/applications/",
)


class EdgeMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, https: bool, max_upload_bytes: int | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes or max_body_bytes
        self.https = https

    def _limit(self, scope: Scope) -> int:
        """File uploads may be larger than other bodies."""
        path = str(scope.get("path", ""))
        return self.max_upload_bytes if path.startswith(UPLOAD_PATHS) else self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        incoming = headers.get("x-request-id", "")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        client = scope.get("client")
        token = request_context.set({"request_id": request_id, "client_ip": client[0] if client else None})
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status_holder = {"status": 500}

        limit = self._limit(scope)
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await self._reject(scope, receive, send)
            self._finish(scope, 413, started, request_id)
            request_context.reset(token)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                extra = [
                    (b"x-request-id", request_id.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"strict-origin-when-cross-origin"),
                    (b"x-frame-options", b"DENY"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
                ]
                existing = {k.lower() for k, _ in message.get("headers", [])}
                if b"content-security-policy" not in existing:
                    extra.append((b"content-security-policy", CSP.encode()))
                if self.https:
                    extra.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
                state = scope.get("state", {})
                new_cookie = state.get("new_csrf_cookie")
                if new_cookie:
                    cookie = f"{CSRF_COOKIE}={new_cookie}; Path=/; HttpOnly; SameSite=Lax"
                    if self.https:
                        cookie += "; Secure"
                    extra.append((b"set-cookie", cookie.encode()))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        try:
            await self.app(scope, limited_receive, send_wrapper)
        except BodyTooLarge:
            await self._reject(scope, receive, send)
            status_holder["status"] = 413
        finally:
            self._finish(scope, status_holder["status"], started, request_id)
            request_context.reset(token)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the body exceeds {self._limit(scope)} bytes"
        await problem_response(413, "payload-too-large", "Payload too large", detail)(scope, receive, send)

    def _finish(self, scope: Scope, status: int, started: float, request_id: str) -> None:
        elapsed = time.perf_counter() - started
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        REQUESTS.labels(method, template, str(status)).inc()
        LATENCY.labels(method, template).observe(elapsed)
        principal = scope.get("state", {}).get("principal")
        log.info(
            "request",
            request_id=request_id,
            method=method,
            path=scope.get("path"),
            route=template,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
            actor=getattr(principal, "username", None),
        )


class BodyTooLarge(Exception):
    pass
