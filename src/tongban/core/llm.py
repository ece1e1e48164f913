"""Optional chat model behind an OpenAI-compatible ``/chat/completions`` endpoint.

The platform works offline without one. When ``TONGBAN_LLM_BASE_URL`` is set (vLLM, Ollama, a Qwen or
DeepSeek deployment), :func:`get_chat_model` returns a :class:`ChatModel` that answers a conversation in
one piece (:meth:`~ChatModel.complete`) or as it is generated (:meth:`~ChatModel.stream`). Every failure
of the endpoint (unreachable, timed out, non-2xx, unusable answer) is an :class:`LLMError`; nothing is
retried here, the caller decides. The API key never appears in logs or error messages.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx
import structlog

from tongban.core.config import Settings

log = structlog.get_logger(__name__)

#: How much of an unusable response body an error message quotes.
_EXCERPT_CHARS = 200


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


class LLMError(Exception):
    """The endpoint failed, timed out or answered something unusable.

    The message says which (status code and a short excerpt of the body where there is one), never the key.
    """


class ChatModel(Protocol):
    #: Model name, for logs and records.
    name: str

    def complete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None, temperature: float = 0.0
    ) -> str:
        """The whole reply."""
        ...

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None, temperature: float = 0.0
    ) -> Iterator[str]:
        """The reply in pieces as they are generated; joined, they are the whole reply."""
        ...


class OpenAICompatible:
    """A :class:`ChatModel` speaking the OpenAI chat-completions protocol over one pooled ``httpx.Client``.

    Thread-safe. ``timeout_s`` bounds connecting, sending and each wait for the next bytes of an answer
    (not the whole answer, so a long stream that keeps producing is not cut off).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        *,
        timeout_s: float = 30.0,
        max_tokens: int = 512,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url = httpx.URL(base_url.strip())
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"LLM base URL must be an http(s) URL, got {base_url!r}")
        if not model:
            raise ValueError("an LLM model name is required")
        self.name = model
        self.max_tokens = max_tokens
        self._url = str(url).rstrip("/") + "/chat/completions"
        self._key = api_key
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s), transport=transport)

    @property
    def closed(self) -> bool:
        return self._client.is_closed

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAICompatible:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenAICompatible(url={self._url!r}, model={self.name!r})"

    def complete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None, temperature: float = 0.0
    ) -> str:
        started = time.perf_counter()
        body = self._payload(messages, max_tokens, temperature, stream=False)
        try:
            response = self._client.post(self._url, json=body)
        except httpx.HTTPError as exc:
            raise self._failed(self._transport_reason(exc)) from exc
        if not response.is_success:
            raise self._failed(self._status_reason(response.status_code, response.text))
        try:
            data = response.json()
        except ValueError as exc:
            raise self._failed(f"answer is not JSON: {self._excerpt(response.text)!r}") from exc
        content = _message_content(data)
        if content is None:
            raise self._failed(f"answer has no choices[0].message.content: {self._excerpt(response.text)!r}")
        usage = data.get("usage") if isinstance(data, dict) else None
        usage = usage if isinstance(usage, dict) else {}
        log.info(
            "llm_completed",
            model=self.name,
            latency_ms=round((time.perf_counter() - started) * 1000),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )
        return content

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None, temperature: float = 0.0
    ) -> Iterator[str]:
        # Built eagerly so that bad arguments fail at the call, not at the first ``next()``.
        body = self._payload(messages, max_tokens, temperature, stream=True)
        return self._stream(body)

    def _stream(self, body: dict[str, Any]) -> Iterator[str]:
        started = time.perf_counter()
        pieces = chars = 0
        try:
            with self._client.stream("POST", self._url, json=body) as response:
                if not response.is_success:
                    response.read()
                    raise self._failed(self._status_reason(response.status_code, response.text))
                for data in _sse_data(response.iter_lines()):
                    if data == "[DONE]":
                        log.info(
                            "llm_streamed",
                            model=self.name,
                            latency_ms=round((time.perf_counter() - started) * 1000),
                            pieces=pieces,
                            chars=chars,
                        )
                        return
                    piece = self._delta_content(data)
                    if piece:
                        pieces += 1
                        chars += len(piece)
                        yield piece
        except httpx.HTTPError as exc:
            raise self._failed(self._transport_reason(exc)) from exc
        raise self._failed("stream ended without data: [DONE]; the answer may be incomplete")

    def _delta_content(self, data: str) -> str | None:
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise self._failed(f"stream chunk is not JSON: {self._excerpt(data)!r}") from exc
        if not isinstance(chunk, dict):
            raise self._failed(f"stream chunk is not an object: {self._excerpt(data)!r}")
        if "error" in chunk:
            raise self._failed(f"error in stream: {self._excerpt(json.dumps(chunk['error']))!r}")
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return None  # e.g. a final usage-only chunk
        delta = choices[0].get("delta")
        content = delta.get("content") if isinstance(delta, dict) else None
        return content if isinstance(content, str) else None

    def _payload(
        self, messages: Sequence[ChatMessage], max_tokens: int | None, temperature: float, *, stream: bool
    ) -> dict[str, Any]:
        return {
            "model": self.name,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": self.max_tokens if max_tokens is None else max_tokens,
            "temperature": temperature,
            "stream": stream,
        }

    def _failed(self, reason: str) -> LLMError:
        message = self._redact(f"LLM {self.name} at {self._url}: {reason}")
        log.warning("llm_failed", model=self.name, error=message)
        return LLMError(message)

    def _transport_reason(self, exc: httpx.HTTPError) -> str:
        kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "request failed"
        return f"{kind} ({type(exc).__name__}: {exc})"

    def _status_reason(self, status: int, text: str) -> str:
        return f"HTTP {status}: {self._excerpt(text)!r}"

    def _excerpt(self, text: str) -> str:
        flat = " ".join(self._redact(text).split())
        return flat if len(flat) <= _EXCERPT_CHARS else flat[:_EXCERPT_CHARS] + "…"

    def _redact(self, text: str) -> str:
        # An endpoint may echo the key it rejected ("Incorrect API key provided: ...").
        return text.replace(self._key, "***") if self._key else text


def _message_content(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, str) else None


def _sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The data of each Server-Sent Event: ``data:`` lines joined, events ended by a blank line.

    Comments (``:`` lines) and other fields (``event:``, ``id:``) are skipped.
    """
    buffer: list[str] = []
    for line in lines:
        if not line:
            if buffer:
                yield "\n".join(buffer)
                buffer = []
        elif line.startswith("data:"):
            value = line[5:]
            buffer.append(value[1:] if value.startswith(" ") else value)
    if buffer:
        yield "\n".join(buffer)


_models: dict[tuple[str, str, str, float, int], OpenAICompatible] = {}
_models_lock = threading.Lock()


def get_chat_model(settings: Settings) -> ChatModel | None:
    """The configured chat model, or ``None`` when ``llm_base_url`` is empty (offline).

    One client (one connection pool) is kept per endpoint, model, key and limits; a closed one is replaced.
    Raises ``ValueError`` for a base URL that is not http(s) or a missing model name.
    """
    if not settings.llm_base_url.strip():
        return None
    key = (
        settings.llm_base_url.strip().rstrip("/"),
        settings.llm_model,
        settings.llm_api_key.get_secret_value(),
        settings.llm_timeout_s,
        settings.llm_max_tokens,
    )
    with _models_lock:
        model = _models.get(key)
        if model is None or model.closed:
            model = _models[key] = OpenAICompatible(
                key[0], key[1], key[2], timeout_s=key[3], max_tokens=key[4]
            )
        return model


def close_chat_models() -> None:
    """Close every client :func:`get_chat_model` made (at shutdown, and in tests)."""
    with _models_lock:
        for model in _models.values():
            model.close()
        _models.clear()
