"""Tests for the fake OpenAI server, driven by the real openai.AsyncOpenAI client."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import openai
import pytest
from pydantic import BaseModel

from tests.fakes.openai_server import Call, FakeOpenAI, synthesize_from_schema


class Section(BaseModel):
    """A draft section."""

    heading: str
    paragraphs: list[str]


class Draft(BaseModel):
    """A small structured-output model."""

    title: str
    word_count: int
    score: float
    published: bool
    tone: Literal["formal", "casual"]
    subtitle: str | None
    sections: list[Section]
    tags: list[str] = []


class Summary(BaseModel):
    """Another structured-output model, for routing by schema name."""

    summary: str


MESSAGES: list[Any] = [
    {"role": "system", "content": "You write drafts."},
    {"role": "user", "content": "Transcript: hello world"},
]


def schema_format(model: type[BaseModel], name: str) -> Any:
    """Build a strict json_schema response_format for `model`."""
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": model.model_json_schema(), "strict": True},
    }


@pytest.fixture(scope="module")
def module_server() -> Iterator[FakeOpenAI]:
    """One fake server for the whole module (started in a background thread)."""
    with FakeOpenAI(api_key="sk-test-fake") as srv:
        yield srv


@pytest.fixture
def server(module_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The module server, reset before each test."""
    module_server.reset()
    module_server.hang_seconds = 5.0
    yield module_server
    module_server.reset()


def make_client(
    server: FakeOpenAI, *, max_retries: int = 0, timeout: float = 5.0, api_key: str | None = None
) -> openai.AsyncOpenAI:
    """Real SDK client pointed at the fake server."""
    return openai.AsyncOpenAI(
        base_url=server.base_url,
        api_key=api_key or server.api_key,
        max_retries=max_retries,
        timeout=timeout,
    )


@pytest.fixture
async def client(server: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    """Client with retries disabled."""
    async with make_client(server) as c:
        yield c


async def test_json_schema_default_responder_validates(
    server: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    resp = await client.chat.completions.create(
        model="gpt-test", messages=MESSAGES, response_format=schema_format(Draft, "draft")
    )
    content = resp.choices[0].message.content
    assert content is not None
    draft = Draft.model_validate_json(content)
    assert len(draft.sections) == 1
    assert resp.model == "gpt-test"
    assert resp.object == "chat.completion"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    call = server.calls[-1]
    assert call.path == "/v1/chat/completions"
    assert call.schema_name == "draft"
    assert call.headers["authorization"] == f"Bearer {server.api_key}"
    assert resp.usage.prompt_tokens == len(call.prompt_text) // 4
    assert call.prompt_text == "You write drafts.\nTranscript: hello world"
    assert server.completions() == [call]


async def test_json_object_and_plain_text_defaults(client: openai.AsyncOpenAI) -> None:
    resp = await client.chat.completions.create(
        model="m", messages=MESSAGES, response_format={"type": "json_object"}
    )
    assert resp.choices[0].message.content == "{}"
    resp = await client.chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.content == "ok"


async def test_on_schema_routes_by_name(server: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    seen: list[Call] = []

    def summary_responder(call: Call) -> dict[str, Any]:
        seen.append(call)
        return {"summary": f"summary of {len(call.messages)} messages"}

    server.on_schema("summary", summary_responder)
    server.set_responder(lambda call: "fallback")
    resp = await client.chat.completions.create(
        model="m", messages=MESSAGES, response_format=schema_format(Summary, "summary")
    )
    summary = Summary.model_validate_json(resp.choices[0].message.content or "")
    assert summary.summary == "summary of 2 messages"
    assert [c.schema_name for c in seen] == ["summary"]

    resp = await client.chat.completions.create(
        model="m", messages=MESSAGES, response_format=schema_format(Draft, "draft")
    )
    assert resp.choices[0].message.content == "fallback"


async def test_rate_limit_then_success_with_retries(server: FakeOpenAI) -> None:
    server.fail_next("rate_limit")
    async with make_client(server, max_retries=2) as c:
        started = time.monotonic()
        resp = await c.chat.completions.create(model="m", messages=MESSAGES)
        elapsed = time.monotonic() - started
    assert resp.choices[0].message.content == "ok"
    assert [call.status for call in server.calls] == [429, 200]
    assert server.calls[0].failure == "rate_limit"
    assert len(server.completions()) == 1
    assert elapsed < 0.4  # retry-after-ms hint makes the SDK retry almost immediately


async def test_rate_limit_exhausts_retries(server: FakeOpenAI) -> None:
    server.fail_next("rate_limit", times=3)
    async with make_client(server, max_retries=2) as c:
        with pytest.raises(openai.RateLimitError) as info:
            await c.chat.completions.create(model="m", messages=MESSAGES)
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.type == "requests"
    assert len(server.calls) == 3


async def test_quota_raises_rate_limit_error_without_retry(server: FakeOpenAI) -> None:
    server.fail_next("quota")
    async with make_client(server, max_retries=2) as c:
        with pytest.raises(openai.RateLimitError) as info:
            await c.chat.completions.create(model="m", messages=MESSAGES)
    exc = info.value
    assert exc.status_code == 429
    assert exc.code == "insufficient_quota"
    assert exc.type == "insufficient_quota"
    assert isinstance(exc.body, dict)
    assert exc.body["code"] == "insufficient_quota"  # body is the inner "error" object
    assert len(server.calls) == 1  # x-should-retry: false stops the SDK retrying


async def test_server_error_without_retries(server: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    server.fail_next("server_error")
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="m", messages=MESSAGES)
    assert info.value.status_code == 500
    assert info.value.type == "server_error"
    assert "The server had an error" in str(info.value)
    assert len(server.calls) == 1


async def test_unavailable_is_retried(server: FakeOpenAI) -> None:
    server.fail_next("unavailable")
    async with make_client(server, max_retries=1) as c:
        resp = await c.chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.content == "ok"
    assert [call.status for call in server.calls] == [503, 200]


async def test_timeout_raises_api_timeout_error() -> None:
    # Own server: stop() releases the still-hanging handler instead of leaking it.
    with FakeOpenAI() as server:
        server.hang_seconds = 2
        server.fail_next("timeout")
        async with make_client(server, timeout=0.5) as c:
            started = time.monotonic()
            with pytest.raises(openai.APITimeoutError):
                await c.chat.completions.create(model="m", messages=MESSAGES)
            assert time.monotonic() - started < 1.5
    assert len(server.calls) == 1
    assert server.calls[0].failure == "timeout"
    assert server.calls[0].status == 499  # the client hung up before the answer
    assert server.completions() == []


async def test_timeout_then_normal_answer_when_client_waits(server: FakeOpenAI) -> None:
    server.hang_seconds = 0.3
    server.fail_next("timeout")
    async with make_client(server, timeout=5) as c:
        resp = await c.chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.content == "ok"
    assert [call.status for call in server.calls] == [200]


async def test_context_length(server: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    server.fail_next("context_length")
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="m", messages=MESSAGES)
    assert info.value.code == "context_length_exceeded"
    assert "maximum context length is 8192 tokens" in info.value.message

    server.max_context_tokens = 10
    long_messages: Any = [{"role": "user", "content": "x" * 44}]
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="m", messages=long_messages)
    assert info.value.code == "context_length_exceeded"
    short_messages: Any = [{"role": "user", "content": "x" * 40}]
    resp = await client.chat.completions.create(model="m", messages=short_messages)
    assert resp.choices[0].message.content == "ok"


async def test_refusal(client: openai.AsyncOpenAI, server: FakeOpenAI) -> None:
    server.fail_next("refusal")
    resp = await client.chat.completions.create(
        model="m", messages=MESSAGES, response_format=schema_format(Draft, "draft")
    )
    assert resp.choices[0].message.content is None
    assert resp.choices[0].message.refusal == "I can't help with that."


async def test_invalid_json_and_schema_mismatch(
    client: openai.AsyncOpenAI, server: FakeOpenAI
) -> None:
    server.fail_next("invalid_json")
    server.fail_next("schema_mismatch")
    fmt = schema_format(Draft, "draft")
    first = await client.chat.completions.create(model="m", messages=MESSAGES, response_format=fmt)
    assert first.choices[0].message.content == "this is not json {"
    second = await client.chat.completions.create(model="m", messages=MESSAGES, response_format=fmt)
    assert json.loads(second.choices[0].message.content or "") == {"unexpected": True}
    third = await client.chat.completions.create(model="m", messages=MESSAGES, response_format=fmt)
    Draft.model_validate_json(third.choices[0].message.content or "")


async def test_no_json_schema_once_allows_json_object_fallback(
    client: openai.AsyncOpenAI, server: FakeOpenAI
) -> None:
    server.fail_next("no_json_schema")
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="m", messages=MESSAGES, response_format=schema_format(Draft, "draft")
        )
    assert info.value.param == "response_format"
    assert info.value.code is None
    resp = await client.chat.completions.create(
        model="m", messages=MESSAGES, response_format={"type": "json_object"}
    )
    assert resp.choices[0].message.content == "{}"


async def test_reject_json_schema_mode(client: openai.AsyncOpenAI, server: FakeOpenAI) -> None:
    server.reject_json_schema(True)
    for _ in range(2):
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(
                model="m", messages=MESSAGES, response_format=schema_format(Draft, "draft")
            )
        assert "json_schema is not supported" in info.value.message
        assert info.value.type == "invalid_request_error"
    resp = await client.chat.completions.create(
        model="m", messages=MESSAGES, response_format={"type": "json_object"}
    )
    assert resp.choices[0].message.content == "{}"
    server.reject_json_schema(False)
    resp = await client.chat.completions.create(
        model="m", messages=MESSAGES, response_format=schema_format(Draft, "draft")
    )
    Draft.model_validate_json(resp.choices[0].message.content or "")


async def test_wrong_api_key(server: FakeOpenAI) -> None:
    async with make_client(server, api_key="sk-wrong", max_retries=2) as c:
        with pytest.raises(openai.AuthenticationError) as info:
            await c.chat.completions.create(model="m", messages=MESSAGES)
    assert info.value.code == "invalid_api_key"
    assert len(server.calls) == 1
    assert server.completions() == []


async def test_missing_model_is_400(server: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.post("/chat/completions", body={"messages": MESSAGES}, cast_to=object)
    assert info.value.param == "model"
    with pytest.raises(openai.BadRequestError) as info:
        await client.post("/chat/completions", body={"model": "m"}, cast_to=object)
    assert info.value.param == "messages"


async def test_unknown_failure_kind_rejected(server: FakeOpenAI) -> None:
    with pytest.raises(ValueError, match="unknown failure kind"):
        server.fail_next("nope")


def test_synthesize_handles_refs_nullable_enums_and_recursion() -> None:
    class Node(BaseModel):
        """Self-referencing model."""

        name: str
        children: list[Node]
        parent: Node | None = None

    value = synthesize_from_schema(Node.model_json_schema())
    Node.model_validate(value)
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 3},
            "x": {"type": ["number", "null"], "exclusiveMaximum": -1},
            "e": {"enum": ["b", "a"]},
            "s": {"type": "string", "minLength": 12},
            "t": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}]},
        },
    }
    value = synthesize_from_schema(schema)
    assert value["n"] == 3 and value["x"] < -1 and value["e"] == "b"
    assert len(value["s"]) >= 12 and value["t"] == ["lorem", True]
