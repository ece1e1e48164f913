"""A fake department approval system: receives the platform's signed webhooks and calls back, signed.

Served by uvicorn in a thread on 127.0.0.1 at ``url`` (``POST /webhooks``). Each request's Standard
Webhooks signature is checked with the department's secret and its timestamp against ``clock`` (the
test's clock, 5 minutes either way): a bad one is answered 401. Knobs, settable while it runs:
``fail_with`` (answer that status instead of accepting) for the next ``fail_times`` requests (``None``:
every request until it is cleared). Every request is recorded in ``requests`` with the status it got;
``accepted`` holds the bodies of the deliveries answered 2xx, and a delivery repeating an id already
accepted is answered 200 but counted in ``duplicates`` (receivers deduplicate on ``webhook-id``).

    with FakeDepartment(clock=clock) as market:
        market.secret = created["secret"]
        ...
        market.callback(base_url, "market", {"type": "task.completed", "task_id": t, "decision": "done"})
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes._server import ServerThread
from tongban.core.clock import Clock

TOLERANCE_S = 300


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int
    problem: str = ""

    @property
    def id(self) -> str:
        return self.headers.get("webhook-id", "")

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class _State:
    requests: list[Received] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    accepted_ids: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


def sign(secret: str, message_id: str, at: dt.datetime, body: str) -> dict[str, str]:
    """Standard Webhooks headers for ``body`` (what a department system sends)."""
    at = dt.datetime.fromtimestamp(int(at.timestamp()), dt.UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, at, body),
    }


class FakeDepartment:
    def __init__(self, *, clock: Clock, secret: str = "") -> None:
        self.clock = clock
        self.secret = secret
        self.fail_with: int | None = None
        self.fail_times: int | None = None
        self._state = _State()
        self._lock = threading.Lock()
        self.url = ""
        self.app = Starlette(routes=[Route("/webhooks", self._receive, methods=["POST"])])
        self._serving = ServerThread(self.app)

    @property
    def requests(self) -> list[Received]:
        return list(self._state.requests)

    @property
    def accepted(self) -> list[dict[str, Any]]:
        return list(self._state.accepted)

    @property
    def accepted_ids(self) -> list[str]:
        return list(self._state.accepted_ids)

    @property
    def duplicates(self) -> list[str]:
        return list(self._state.duplicates)

    def __enter__(self) -> FakeDepartment:
        self.url = f"{self._serving.start()}/webhooks"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._serving.stop()

    def _verify(self, headers: dict[str, str], body: bytes) -> str:
        """The problem with a request's signature, or "" when it is good."""
        message_id = headers.get("webhook-id", "")
        stamp = headers.get("webhook-timestamp", "")
        given = headers.get("webhook-signature", "")
        if not (message_id and stamp.isdigit() and given):
            return "missing signature headers"
        at = dt.datetime.fromtimestamp(int(stamp), dt.UTC)
        if abs((self.clock.now() - at).total_seconds()) > TOLERANCE_S:
            return "stale timestamp"
        expected = Webhook(self.secret).sign(message_id, at, body.decode())
        if not any(secrets.compare_digest(expected, s) for s in given.split()):
            return "bad signature"
        return ""

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        problem = self._verify(headers, body)
        with self._lock:
            state = self._state
            if problem:
                state.requests.append(Received(headers, body, 401, problem))
                return JSONResponse({"error": problem}, status_code=401)
            if self.fail_with is not None and (self.fail_times is None or self.fail_times > 0):
                if self.fail_times is not None:
                    self.fail_times -= 1
                state.requests.append(Received(headers, body, self.fail_with, "told to fail"))
                return JSONResponse({"error": "down"}, status_code=self.fail_with)
            message_id = headers["webhook-id"]
            if message_id in state.accepted_ids:
                state.duplicates.append(message_id)
            else:
                state.accepted_ids.append(message_id)
                state.accepted.append(json.loads(body))
            state.requests.append(Received(headers, body, 200))
        return JSONResponse({"ok": True})

    def callback(
        self,
        base_url: str,
        code: str,
        payload: dict[str, Any],
        *,
        message_id: str | None = None,
        at: dt.datetime | None = None,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Post a signed callback to the platform, as the department's system would."""
        body = json.dumps(payload, ensure_ascii=False)
        signed = sign(
            secret if secret is not None else self.secret,
            message_id or "msg_" + secrets.token_hex(12),
            at or self.clock.now(),
            body,
        )
        return httpx.post(
            f"{base_url}/api/v1/intake/departments/{code}/callbacks",
            content=body.encode(),
            headers={**signed, "Content-Type": "application/json", **(headers or {})},
            timeout=30,
        )
