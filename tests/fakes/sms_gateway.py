"""A fake HTTP SMS gateway, served by uvicorn in a thread on 127.0.0.1.

``POST /messages`` with JSON ``{"id", "to", "text"}`` and the key in ``X-API-Key``: a wrong key gets 401;
otherwise the message is recorded in ``messages`` (with its ``Idempotency-Key``) and answered 202. Set
``fail_with`` to answer that status instead (recorded in ``refused``).

    with FakeSmsGateway(api_key="k") as gateway:
        sender = HttpSmsSender(gateway.url, "k")
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class FakeSmsGateway:
    def __init__(self, *, api_key: str) -> None:
        self.api_key = api_key
        self.fail_with: int | None = None
        #: Accepted messages: the JSON body with ``idempotency_key`` added.
        self.messages: list[dict[str, Any]] = []
        #: Bodies of requests refused (wrong key or ``fail_with``).
        self.refused: list[dict[str, Any]] = []
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.app = Starlette(routes=[Route("/messages", self._receive, methods=["POST"])])

    def __enter__(self) -> FakeSmsGateway:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        self._sock = sock
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/messages"
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        )
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()

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
