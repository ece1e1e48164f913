"""A fake OpenAI-compatible chat endpoint, served by uvicorn in a thread on 127.0.0.1.

``POST /v1/chat/completions`` answers as vLLM or Ollama would, as one JSON object (with ``usage``) or, with
``"stream": true``, as Server-Sent Events of a few characters each ending with ``data: [DONE]``. The reply
text is ``responder(messages)``; the default responder echoes the first 200 characters of the last user
message, and tests set their own. "Tokens" in ``usage`` are characters.

    with FakeLLM(api_key="k") as fake:
        fake.responder = lambda messages: "你好"
        model = OpenAICompatible(fake.base_url, fake.model, "k")

Knobs, all settable while it runs: ``fail_with`` (answer that HTTP status with an OpenAI-style error
body), ``raw_body`` (answer 200 with exactly this text, JSON or SSE by the request's ``stream``), and
``hang`` (an Event the handler waits for before answering, for timeout tests; set on exit at the latest).
With ``api_key`` a request without ``Authorization: Bearer <api_key>`` gets 401, whose message quotes the
presented key the way some real servers do.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes._server import ServerThread

Responder = Callable[[list[dict[str, Any]]], str]

#: Characters per streamed chunk.
CHUNK_CHARS = 3
#: Upper bound on a ``hang`` so a forgotten Event cannot block the server's shutdown forever.
HANG_LIMIT_S = 30.0


def echo_last_user(messages: list[dict[str, Any]]) -> str:
    """The default responder: the first 200 characters of the last user message."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content", ""))[:200]
    return ""


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)


class FakeLLM:
    """The fake endpoint; a context manager that starts and stops its server."""

    def __init__(self, *, api_key: str = "", model: str = "fake-model", responder: Responder | None = None):
        self.api_key = api_key
        self.model = model
        self.responder: Responder = responder or echo_last_user
        self.fail_with: int | None = None
        self.raw_body: str | None = None
        self.hang: threading.Event | None = None
        #: Every JSON body received, in order (also those then refused).
        self.requests: list[dict[str, Any]] = []
        #: The headers of every request received, lower-case names.
        self.headers: list[dict[str, str]] = []
        self.base_url = ""
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._completions, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )
        self._serving = ServerThread(self.app, backlog=128)

    def __enter__(self) -> FakeLLM:
        self.base_url = f"{self._serving.start()}/v1"
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.hang is not None:
            self.hang.set()
        self._serving.stop()

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    async def _completions(self, request: Request) -> Response:
        raw = await request.body()
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "request body is not JSON", "invalid_request_error")
        if not isinstance(body, dict):
            return _error(400, "request body is not an object", "invalid_request_error")
        self.requests.append(body)
        if self.hang is not None:
            await asyncio.to_thread(self.hang.wait, HANG_LIMIT_S)
        if self.api_key:
            presented = request.headers.get("authorization", "")
            if presented != f"Bearer {self.api_key}":
                given = presented.removeprefix("Bearer ")
                return _error(401, f"Incorrect API key provided: {given}", "invalid_request_error")
        if self.fail_with is not None:
            return _error(self.fail_with, "the fake was told to fail", "server_error")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "messages must be a non-empty list", "invalid_request_error")
        stream = body.get("stream") is True
        if self.raw_body is not None:
            media = "text/event-stream" if stream else "application/json"
            return PlainTextResponse(self.raw_body, media_type=media)
        reply = self.responder(messages)
        model = str(body.get("model", self.model))
        if stream:
            return StreamingResponse(self._chunks(model, reply), media_type="text/event-stream")
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in messages if isinstance(m, dict))
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(reply),
                    "total_tokens": prompt_tokens + len(reply),
                },
            }
        )

    async def _chunks(self, model: str, reply: str) -> AsyncIterator[str]:
        def event(delta: dict[str, str], finish: str | None = None) -> str:
            chunk = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

        yield ": fake keep-alive comment\n\n"
        yield event({"role": "assistant", "content": ""})
        for start in range(0, len(reply), CHUNK_CHARS):
            yield event({"content": reply[start : start + CHUNK_CHARS]})
        yield event({}, finish="stop")
        yield "data: [DONE]\n\n"
