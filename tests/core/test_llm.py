"""The OpenAI-compatible chat adapter, over real HTTP against the fake endpoint in ``tests.fakes``."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.llm_server import FakeLLM
from tongban.core.config import Settings
from tongban.core.llm import (
    ChatMessage,
    LLMError,
    OpenAICompatible,
    close_chat_models,
    get_chat_model,
)

KEY = "sk-test-0123456789abcdef"
QUESTION = [
    ChatMessage("system", "Answer from the passages only."),
    ChatMessage("user", "办理居住证需要哪些材料？"),
]


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def _ask(model: OpenAICompatible, *, stream: bool) -> str:
    return "".join(model.stream(QUESTION)) if stream else model.complete(QUESTION)


@pytest.fixture
def model(fake: FakeLLM) -> Iterator[OpenAICompatible]:
    with OpenAICompatible(fake.base_url, fake.model, timeout_s=10) as m:
        yield m


def test_complete_sends_the_protocol_body_and_returns_the_reply(
    fake: FakeLLM, model: OpenAICompatible
) -> None:
    fake.responder = lambda messages: f"{len(messages)} messages, last: {messages[-1]['content']}"

    reply = model.complete(QUESTION, max_tokens=64, temperature=0.3)

    assert reply == "2 messages, last: 办理居住证需要哪些材料？"
    assert fake.requests == [
        {
            "model": "fake-model",
            "messages": [
                {"role": "system", "content": "Answer from the passages only."},
                {"role": "user", "content": "办理居住证需要哪些材料？"},
            ],
            "max_tokens": 64,
            "temperature": 0.3,
            "stream": False,
        }
    ]
    assert "authorization" not in fake.headers[0]


def test_defaults_come_from_the_constructor(fake: FakeLLM) -> None:
    with OpenAICompatible(fake.base_url + "/", fake.model, max_tokens=99) as m:
        assert m.name == "fake-model"
        # The default responder echoes the first 200 characters of the last user message.
        assert m.complete([ChatMessage("user", "x" * 300)]) == "x" * 200
    assert fake.requests[0]["max_tokens"] == 99
    assert fake.requests[0]["temperature"] == 0.0


def test_stream_pieces_join_to_the_full_reply(fake: FakeLLM, model: OpenAICompatible) -> None:
    full = "请携带身份证、户口簿和近期一寸照片，到所在街道办事处办理。"
    fake.responder = lambda messages: full

    pieces = list(model.stream(QUESTION, max_tokens=32))

    assert "".join(pieces) == full
    assert len(pieces) > 1
    assert all(pieces)  # the role-only and finish chunks yield nothing
    assert fake.requests[0]["stream"] is True
    assert fake.requests[0]["max_tokens"] == 32
    assert model.complete(QUESTION) == full  # the same reply in one piece


def test_stream_abandoned_early_releases_the_connection(fake: FakeLLM, model: OpenAICompatible) -> None:
    fake.responder = lambda messages: "abcdefghijklmnop"
    pieces = model.stream(QUESTION)
    assert next(pieces) == "abc"
    pieces.close()  # type: ignore[attr-defined]
    assert model.complete(QUESTION) == "abcdefghijklmnop"


def test_stream_tolerates_comments_blank_lines_and_chunks_without_content(
    fake: FakeLLM, model: OpenAICompatible
) -> None:
    fake.raw_body = (
        ": OPENROUTER PROCESSING\n\n"
        "\n\n"
        'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n'
        "event: message\n"
        'data:{"choices":[{"delta":{"content":"Hel"}}]}\n\n'
        'data: {"choices":[{"delta":{"content":null}}]}\n\n'
        'data: {"choices":[{"delta":{"content":"lo"}}]}\n\n'
        'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
        "data: [DONE]\n\n"
    )
    assert list(model.stream(QUESTION)) == ["Hel", "lo"]


def test_bearer_header_is_sent_only_with_a_key() -> None:
    with FakeLLM(api_key=KEY) as fake:
        with OpenAICompatible(fake.base_url, fake.model, KEY) as keyed:
            assert keyed.complete(QUESTION) == "办理居住证需要哪些材料？"
            assert "".join(keyed.stream(QUESTION)) == "办理居住证需要哪些材料？"
        with OpenAICompatible(fake.base_url, fake.model) as anonymous, pytest.raises(LLMError, match="401"):
            anonymous.complete(QUESTION)
    assert [h.get("authorization") for h in fake.headers] == [f"Bearer {KEY}", f"Bearer {KEY}", None]


def test_rejected_key_is_not_repeated_in_the_error() -> None:
    with (
        FakeLLM(api_key="the-right-key") as fake,
        OpenAICompatible(fake.base_url, fake.model, KEY) as m,
        pytest.raises(LLMError) as info,
    ):
        m.complete(QUESTION)
    message = str(info.value)
    assert "HTTP 401" in message
    assert "Incorrect API key provided" in message  # the body excerpt, whose echoed key is masked
    assert KEY not in message
    assert KEY[:12] in fake.headers[0]["authorization"]  # the key did reach the server


@pytest.mark.parametrize("stream", [False, True])
def test_non_2xx_is_an_error_with_status_and_body_excerpt(fake: FakeLLM, stream: bool) -> None:
    fake.fail_with = 503
    with OpenAICompatible(fake.base_url, fake.model, KEY) as m, pytest.raises(LLMError) as info:
        _ask(m, stream=stream)
    assert "HTTP 503" in str(info.value)
    assert "the fake was told to fail" in str(info.value)
    assert KEY not in str(info.value)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("<html>Bad gateway</html>", "not JSON"),
        ('{"id": "chatcmpl-1", "object": "chat.completion"}', "no choices"),
        ('{"choices": []}', "no choices"),
        ('{"choices": [{"message": {"role": "assistant", "content": null}}]}', "no choices"),
        ('["not", "an", "object"]', "no choices"),
    ],
)
def test_unusable_answer_is_an_error(fake: FakeLLM, model: OpenAICompatible, body: str, reason: str) -> None:
    fake.raw_body = body
    with pytest.raises(LLMError, match=reason):
        model.complete(QUESTION)


def test_malformed_stream_chunk_is_an_error(fake: FakeLLM, model: OpenAICompatible) -> None:
    fake.raw_body = 'data: {"choices":[{"delta":{"content":"ok"}}]}\n\ndata: {not json\n\n'
    pieces: list[str] = []
    with pytest.raises(LLMError, match="stream chunk is not JSON"):
        pieces.extend(model.stream(QUESTION))
    assert pieces == ["ok"]


def test_error_event_in_stream_is_an_error(fake: FakeLLM, model: OpenAICompatible) -> None:
    fake.raw_body = 'data: {"error": {"message": "out of memory"}}\n\n'
    with pytest.raises(LLMError, match="out of memory"):
        list(model.stream(QUESTION))


def test_stream_without_done_is_an_error(fake: FakeLLM, model: OpenAICompatible) -> None:
    fake.raw_body = 'data: {"choices":[{"delta":{"content":"half an ans"}}]}\n\n'
    pieces: list[str] = []
    with pytest.raises(LLMError, match=r"\[DONE\]"):
        pieces.extend(model.stream(QUESTION))
    assert pieces == ["half an ans"]


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # bound, then released without ever listening


@pytest.mark.parametrize("stream", [False, True])
def test_connection_refused_is_an_error(stream: bool) -> None:
    with (
        OpenAICompatible(f"http://127.0.0.1:{_closed_port()}/v1", "m", KEY) as m,
        pytest.raises(LLMError, match="ConnectError") as info,
    ):
        _ask(m, stream=stream)
    assert KEY not in str(info.value)


def test_timeout_is_an_error(fake: FakeLLM) -> None:
    release = threading.Event()
    fake.hang = release
    try:
        with (
            OpenAICompatible(fake.base_url, fake.model, timeout_s=0.2) as m,
            pytest.raises(LLMError, match="timed out"),
        ):
            m.complete(QUESTION)
    finally:
        release.set()
    assert len(fake.requests) == 1  # the request arrived; the answer did not come in time


@pytest.mark.parametrize(
    ("url", "model_name"), [("ftp://host/v1", "m"), ("not a url", "m"), ("http://h/v1", "")]
)
def test_bad_configuration_is_refused_at_construction(url: str, model_name: str) -> None:
    with pytest.raises(ValueError, match=r"URL|model"):
        OpenAICompatible(url, model_name)


@pytest.fixture
def cached_models() -> Iterator[None]:
    yield
    close_chat_models()


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.mark.usefixtures("cached_models")
def test_get_chat_model(fake: FakeLLM) -> None:
    assert get_chat_model(_settings(llm_base_url="", llm_model="m")) is None

    settings = _settings(llm_base_url=fake.base_url, llm_model=fake.model, llm_api_key=KEY, llm_max_tokens=77)
    model = get_chat_model(settings)
    assert isinstance(model, OpenAICompatible)
    assert model.name == "fake-model"
    assert get_chat_model(settings) is model  # one client per configuration
    assert get_chat_model(settings.model_copy(update={"llm_model": "other"})) is not model

    assert model.complete(QUESTION) == "办理居住证需要哪些材料？"
    assert fake.requests[-1]["max_tokens"] == 77
    assert fake.headers[-1]["authorization"] == f"Bearer {KEY}"

    model.close()
    replacement = get_chat_model(settings)
    assert replacement is not model
    assert replacement is not None
    assert replacement.complete(QUESTION) == "办理居住证需要哪些材料？"
