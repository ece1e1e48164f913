"""A fake HTTP SMS gateway, served by uvicorn in a thread on 127.0.0.1.

``POST /messages`` with JSON ``{"id", "to", "text"}`` and the key in ``X-API-Key``: a wrong key gets 401;
otherwise the message is recorded in ``messages`` (with its ``Idempotency-Key``) and answered 202. Set
``fail_with`` to answer that status instead (recorded in ``refused``).

    with FakeSmsGateway(api_key="k") as gateway:
        sender = HttpSmsSender(gateway.url, "k")
"""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes._server import ServerThread


class FakeSmsGateway:
    def __init__(self, *, api_key: str) -> None:
        self.api_key = api_key
        self.fail_with: int | None = None
        #: Accepted messages: the JSON body with ``idempotency_key`` added.
        self.messages: list[dict[str, Any]] = []
        #: Bodies of requests refused (wrong key or ``fail_with``).
        self.refused: list[dict[str, Any]] = []
        self.url = ""
        self.app = Starlette(routes=[Route("/messages", self._receive, methods=["POST"])])
        self._serving = ServerThread(self.app)

    def __enter__(self) -> FakeSmsGateway:
        self.url = f"{self._serving.start()}/messages"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._serving.stop()

    async def _receive(self, request: Request) -> Response:
        body = json.loads(await request.body())
        if request.headers.get("x-api-key") != self.api_key:
            self.refused.append(body)
            return JSONResponse({"error": "bad key"}, status_code=401)
        if self.fail_with is not None:
            self.refused.append(body)
            return JSONResponse({"error": "unavailable"}, status_code=self.fail_with)
        self.messages.append({**body, "idempotency_key": request.headers.get("idempotency-key")})
        return JSONResponse({"accepted": body.get("id")}, status_code=202)
