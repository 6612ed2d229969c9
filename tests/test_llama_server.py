"""The bot's own LLM client and draft service against a real server: llama-cpp-python's, with
SmolLM2-135M (far too small to write well: behaviour is asserted, not quality).

Kept few and bounded (small max_tokens): each test is a handful of requests to a model that
answers a few tokens a second on a busy two-core machine.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.domain import UserError
from bot.drafting.citations import verified_quote
from bot.drafting.service import DraftService
from bot.llm.client import TIMED_OUT, UNAVAILABLE, LLMError, StructuredLLM
from bot.llm.modes import Negotiated, OutputMode
from bot.llm.writer import LLMDraftWriter
from bot.notes.intake import IntakeService
from bot.services.llm_endpoints import DatabaseEndpointMemory
from bot.services.outline import OutlineService
from bot.telegram import texts
from tests.llama_server import CONTEXT_TOKENS, LlamaServer, Recorder, llama_server

__all__ = ["llama_server"]  # the session fixture, used by the tests below

WRITER = 2002


class Fruits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fruits: list[str]


def client(
    server: LlamaServer,
    recorder: Recorder,
    *,
    timeout: float = 240.0,
    max_retries: int = 1,
    max_output_tokens: int = 4096,
    memory: DatabaseEndpointMemory | None = None,
) -> StructuredLLM:
    return StructuredLLM(
        base_url=server.base_url,
        api_key="",
        model=server.model,
        timeout=timeout,
        max_retries=max_retries,
        max_output_tokens=max_output_tokens,
        memory=memory,
        parallel_requests=1,
        http_client=recorder.client(timeout + 10),
    )


async def test_structured_output_is_negotiated_remembered_and_shown_by_check_config(
    llama_server: LlamaServer,
    sqlite_sessions: async_sessionmaker[AsyncSession],
    sqlite_url: str,
) -> None:
    memory = DatabaseEndpointMemory(sqlite_sessions)
    recorder = Recorder()
    llm = client(llama_server, recorder, memory=memory)
    try:
        answer = await llm.complete(
            "Reply in JSON.", "Name two fruits.", Fruits, purpose="drafting", max_tokens=40
        )
    finally:
        await llm.close()
    assert isinstance(answer, Fruits)
    # json_schema is refused with an HTTP 500 naming response_format: "unsupported", not
    # "down"; JSON mode with the schema attached is what this server holds output to.
    first, *rest = recorder.sent
    assert first.body["response_format"]["type"] == "json_schema" and first.status == 500
    assert rest and rest[0].body["response_format"] == {
        "type": "json_object",
        "schema": Fruits.model_json_schema(),
    }
    assert llm.negotiated is not None
    assert llm.negotiated.output_mode is OutputMode.JSON_OBJECT_SCHEMA
    assert all(0 < s.body["max_tokens"] <= 40 for s in recorder.sent)
    assert all(s.body["stream"] is True for s in recorder.sent)

    # A new process remembers it: no json_schema request any more.
    again = Recorder()
    llm = client(llama_server, again, memory=memory)
    try:
        await llm.complete(
            "Reply in JSON.", "Name a fruit.", Fruits, purpose="drafting", max_tokens=24
        )
    finally:
        await llm.close()
    assert [s.body["response_format"]["type"] for s in again.sent] == ["json_object"]

    from bot.cli import remembered_llm_mode

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=sqlite_url,
        openai_base_url=llama_server.base_url,
        openai_model=llama_server.model,
    )
    assert (await remembered_llm_mode(settings)).startswith("json_object+schema, streamed since")


class _Remembered:
    """An EndpointMemory that already knows the mode: here, no grammar at all."""

    def __init__(self, mode: OutputMode) -> None:
        self._negotiated = Negotiated(mode, True, datetime.now(UTC))

    async def recall(self, endpoint: str, model: str) -> Negotiated | None:
        return self._negotiated

    async def remember(self, endpoint: str, model: str, negotiated: Negotiated) -> None:
        self._negotiated = negotiated


async def test_a_request_given_up_on_is_closed_so_the_server_stops_and_is_free_again(
    llama_server: LlamaServer,
) -> None:
    # The server may not end the answer before 1500 tokens: far past a 2 s deadline.
    recorder = Recorder(extra_body={"min_tokens": 1500})
    slow = StructuredLLM(
        base_url=llama_server.base_url,
        api_key="",
        model=llama_server.model,
        timeout=2.0,
        max_retries=0,
        memory=_Remembered(OutputMode.PROMPT),
        http_client=recorder.client(30),
    )
    mark = llama_server.mark()
    try:
        with pytest.raises(LLMError) as failure:
            await slow.complete(
                "Reply in JSON.",
                "List every fruit you know, with a long description of each.",
                Fruits,
                purpose="drafting",
                max_tokens=2000,
            )
    finally:
        await slow.close()
    assert failure.value.message == TIMED_OUT.format(seconds=2.0)
    assert "OPENAI_TIMEOUT_SECONDS" in failure.value.message
    assert recorder.sent[0].body["max_tokens"] == 2000 and recorder.sent[0].body["stream"]
    # The server noticed the closed stream and stopped generating (it logs the hang-up)…
    log = await _eventually_logged(llama_server, mark, "Disconnected from client")
    assert "Disconnected from client" in log
    # …so the next request is served instead of queueing behind 1500 tokens nobody reads.
    fresh = client(llama_server, Recorder(), timeout=120.0, max_retries=0)
    try:
        answer = await fresh.complete(
            "Reply in JSON.", "Name one fruit.", Fruits, purpose="drafting", max_tokens=64
        )
    finally:
        await fresh.close()
    assert isinstance(answer, Fruits)


async def _eventually_logged(server: LlamaServer, mark: int, text: str) -> str:
    import asyncio

    for _ in range(100):
        log = server.log_since(mark)
        if text in log:
            return log
        await asyncio.sleep(0.1)
    return server.log_since(mark)


async def test_a_small_article_is_drafted_or_the_writer_is_told_accurately_why_not(
    llama_server: LlamaServer, sqlite_sessions: async_sessionmaker[AsyncSession]
) -> None:
    outline, intake = OutlineService(sqlite_sessions), IntakeService(sqlite_sessions)
    await outline.new_article(WRITER, WRITER, "Data to AI")
    await outline.set_outline(WRITER, WRITER, ["Where it ends", "Skill gaps"])
    await outline.choose_section_by_number(WRITER, 1)
    note = "A data engineer prepares data for analysts and for machine learning."
    await intake.receive_text(WRITER, WRITER, 1, note)

    recorder = Recorder()
    cap = 256
    llm = client(
        llama_server,
        recorder,
        max_output_tokens=cap,
        memory=DatabaseEndpointMemory(sqlite_sessions),
    )
    writer = LLMDraftWriter(llm, language="English", context_tokens=CONTEXT_TOKENS)
    try:
        result = await DraftService(sqlite_sessions, writer, check=True).draft(WRITER)
    except UserError as exc:
        message = exc.message
        markdown = None
    else:
        message = texts.draft_summary(result)
        markdown = result.markdown
    finally:
        await writer.close()

    # Every request carried a bound, within the cap, and none was sent twice for an outage.
    assert recorder.sent
    assert all(0 < s.body["max_tokens"] <= cap for s in recorder.sent)
    assert message != UNAVAILABLE and "went wrong" not in message
    if markdown is None:
        # The only honest failures for this tiny model: answers cut off, or unusable twice.
        assert "cut off" in message or "could not use" in message, message
        return
    assert message.startswith("✍️ Draft ready")
    assert re.findall(r"^## (.+)$", markdown, re.MULTILINE) == ["Where it ends", "Skill gaps"]
    # Whatever the model wrote, a quote shown in a footnote is really in the note.
    for quote in re.findall(r"^\[\^\d+\]: .*?: “(.+)”$", markdown, re.MULTILINE):
        assert verified_quote(quote, note), quote
    figures = result.figures
    assert figures.points_total <= len(note.split()) // 2  # only quoted, distinct points count


def test_the_model_file_is_found_by_path() -> None:
    from tests.llama_server import smollm2_path

    path: Path = smollm2_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
