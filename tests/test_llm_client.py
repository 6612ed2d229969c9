"""StructuredLLM against the fake OpenAI-compatible server over real HTTP: negotiation and
its memory, bounds on every request, cut-off and looping answers, deadlines that close the
stream, and one request at a time where asked."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.llm.client import (
    TIMED_OUT,
    UNAVAILABLE,
    LLMError,
    OutputCutOff,
    StructuredLLM,
)
from bot.llm.modes import OutputMode
from bot.services.llm_endpoints import DatabaseEndpointMemory
from tests.fakes.openai_server import Call, FakeOpenAI


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    words: list[str]


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        fake.set_responder(lambda call: {"words": ["one", "two"]})
        yield fake


def make(server: FakeOpenAI, **options: object) -> StructuredLLM:
    values: dict[str, object] = {
        "base_url": server.base_url,
        "api_key": server.api_key,
        "model": "fake-model",
        "timeout": 5.0,
        "max_retries": 2,
        **options,
    }
    return StructuredLLM(**values)  # type: ignore[arg-type]


async def ask(llm: StructuredLLM, max_tokens: int = 100) -> Answer:
    return await llm.complete(
        "Reply in JSON.", "Two words.", Answer, purpose="drafting", max_tokens=max_tokens
    )


async def test_a_500_naming_response_format_means_unsupported_and_the_mode_is_remembered(
    server: FakeOpenAI, sessions: async_sessionmaker[AsyncSession]
) -> None:
    server.reject_json_schema(True)
    server.json_schema_refusal = "llama_cpp"  # HTTP 500 "Input should be 'text' or ..."
    memory = DatabaseEndpointMemory(sessions)
    llm = make(server, memory=memory)
    assert await ask(llm) == Answer(words=["one", "two"])
    await llm.close()
    kinds = [(c.response_format_type, c.status) for c in server.calls]
    # One refusal, not retried as an outage; then JSON mode with the schema attached.
    assert kinds == [("json_schema", 500), ("json_object", 200)]
    assert server.calls[1].body["response_format"]["schema"] == Answer.model_json_schema()
    assert '"words"' in server.calls[1].messages[0]["content"]  # and in the prompt
    remembered = await memory.recall(llm.endpoint, "fake-model")
    assert remembered is not None and remembered.output_mode is OutputMode.JSON_OBJECT_SCHEMA

    again = make(server, memory=memory)
    await ask(again)
    await again.close()
    assert [c.response_format_type for c in server.calls[2:]] == ["json_object"]


async def test_each_refusal_steps_down_to_the_schema_in_the_prompt(server: FakeOpenAI) -> None:
    server.reject_json_schema(True)
    server.accept_json_object_schema = False
    llm = make(server)
    await ask(llm)
    await llm.close()
    formats = [c.body.get("response_format") for c in server.calls]
    assert formats[0]["type"] == "json_schema"
    assert formats[1] == {"type": "json_object", "schema": Answer.model_json_schema()}
    assert formats[2] == {"type": "json_object"}
    assert llm.negotiated is not None and llm.negotiated.output_mode is OutputMode.JSON_OBJECT


async def test_a_real_outage_is_still_an_outage(server: FakeOpenAI) -> None:
    server.fail_next("server_error", times=3)
    llm = make(server)
    with pytest.raises(LLMError) as failure:
        await ask(llm)
    await llm.close()
    assert failure.value.message == UNAVAILABLE
    assert all(c.response_format_type == "json_schema" for c in server.calls)


async def test_every_request_carries_max_tokens_capped_by_the_setting(server: FakeOpenAI) -> None:
    llm = make(server, max_output_tokens=600)
    await ask(llm, max_tokens=50)
    await ask(llm, max_tokens=10_000)
    await llm.close()
    assert [c.max_tokens for c in server.calls] == [50, 600]


async def test_finish_reason_length_is_an_answer_cut_off_not_a_context_error(
    server: FakeOpenAI,
) -> None:
    server.set_responder(lambda call: {"words": [f"word{i}" for i in range(400)]})
    llm = make(server)
    with pytest.raises(OutputCutOff) as cut:
        await ask(llm, max_tokens=30)
    await llm.close()
    assert cut.value.reason == "length"
    assert cut.value.partial.startswith('{"words"')
    assert len(server.calls) == 1 and server.calls[0].finish_reason == "length"


async def test_a_looping_answer_is_cut_short_and_its_stream_closed(server: FakeOpenAI) -> None:
    block = {"kind": "paragraph", "text": "The same sentence, once more and again.", "cite": []}
    looping = '{"blocks": [' + ", ".join([json.dumps(block)] * 400) + "]}"
    server.set_responder(lambda call: looping)
    server.stream_delay = 0.002
    llm = make(server)
    with pytest.raises(OutputCutOff) as cut:
        await ask(llm, max_tokens=100_000)
    await llm.close()
    assert cut.value.reason == "repetition"
    call = server.calls[0]
    await _closed(call)
    total_chunks = len(looping) // server.stream_chunk_chars
    assert call.disconnected and call.chunks_sent < total_chunks // 10


async def test_a_request_past_its_deadline_is_closed_and_the_retry_starts_after_it(
    server: FakeOpenAI,
) -> None:
    server.set_responder(lambda call: {"words": [f"slow{i}" for i in range(200)]})
    server.stream_delay = 0.2  # about 40 characters every 0.2 s: far past the deadline
    llm = make(server, timeout=1.0, max_retries=1)
    with pytest.raises(LLMError) as failure:
        await ask(llm, max_tokens=5000)
    await llm.close()
    assert failure.value.message == TIMED_OUT.format(seconds=1.0)
    first, retry = server.calls
    await _closed(first)
    await _closed(retry)
    assert first.disconnected and retry.disconnected
    # The server was told to stop before the retry was sent: it never queues behind it.
    assert retry.started_at >= first.finished_at


async def test_an_endpoint_that_cannot_stream_is_asked_without_streaming(
    server: FakeOpenAI, sessions: async_sessionmaker[AsyncSession]
) -> None:
    server.streaming = False
    memory = DatabaseEndpointMemory(sessions)
    llm = make(server, memory=memory)
    assert await ask(llm) == Answer(words=["one", "two"])
    await llm.close()
    assert [(c.stream, c.status) for c in server.calls] == [(True, 400), (False, 200)]
    remembered = await memory.recall(llm.endpoint, "fake-model")
    assert remembered is not None and not remembered.streaming


async def test_parallel_requests_1_sends_one_request_at_a_time(server: FakeOpenAI) -> None:
    server.stream_delay = 0.05
    llm = make(server, parallel_requests=1)
    await asyncio.gather(*(ask(llm) for _ in range(3)))
    await llm.close()
    calls = sorted(server.calls, key=lambda c: c.started_at)
    assert all(
        later.started_at >= earlier.finished_at
        for earlier, later in itertools.pairwise(calls)
    )


async def _closed(call: Call) -> None:
    for _ in range(100):
        if call.finished_at:
            return
        await asyncio.sleep(0.02)


async def test_models_that_want_max_completion_tokens_still_get_a_bound(
    server: FakeOpenAI,
) -> None:
    server.reject_max_tokens = True
    llm = make(server)
    await ask(llm, max_tokens=70)
    await ask(llm, max_tokens=80)
    await llm.close()
    assert [c.status for c in server.calls] == [400, 200, 200]
    assert [c.max_tokens for c in server.calls[1:]] == [70, 80]
    assert all("max_tokens" not in c.body for c in server.calls[1:])


def test_check_config_shows_the_remembered_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main
    from bot.db.migrate import upgrade_to_head
    from bot.db.session import create_engine, create_session_factory
    from bot.llm.modes import Negotiated, endpoint_key

    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_MODEL", "local-model")
    assert main(["check-config"]) == 0
    assert "# LLM structured output: unknown" in capsys.readouterr().out  # not migrated yet

    upgrade_to_head(url)
    assert main(["check-config"]) == 0
    assert "not negotiated yet" in capsys.readouterr().out

    async def remember() -> None:
        engine = create_engine(url)
        memory = DatabaseEndpointMemory(create_session_factory(engine))
        key = endpoint_key("http://127.0.0.1:9/v1")
        await memory.remember(key, "local-model", Negotiated(OutputMode.JSON_OBJECT, False))
        await engine.dispose()

    asyncio.run(remember())
    assert main(["check-config"]) == 0
    assert "# LLM structured output: json_object, not streamed since" in capsys.readouterr().out
