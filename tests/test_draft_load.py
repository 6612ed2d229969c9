"""/draft over hundreds of notes must not stall other writers (issue 12, item 7): the real bot
(`python -m bot`, its own process, so a stalled event loop shows in the other writer's wait)
against the fake Bot API and the fake LLM, whose quotes are paraphrased, so the citation check
searches every note of the section for each quote. How long the other writer waits is a
benchmark figure (bench/citations.py); here: every reply comes while the draft runs, and the
matching runs off the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import bot.drafting.coverage as drafting_coverage
import bot.drafting.service as drafting_service
from bot.db.migrate import upgrade_to_head
from bot.db.session import create_engine, create_session_factory
from bot.drafting.service import DraftService
from bot.llm.client import StructuredLLM
from bot.llm.writer import LLMDraftWriter
from bot.notes.intake import IntakeService
from bot.services.outline import OutlineService
from tests.fakes.drafting_model import DraftingModel
from tests.fakes.openai_server import FakeOpenAI
from tests.processes import BotLauncher

WRITER, OTHER = 1001, 1002
NOTES = 300
STARTUP_S = 60.0


async def seed(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        sessions = create_session_factory(engine)
        outline, intake = OutlineService(sessions), IntakeService(sessions)
        await outline.new_article(WRITER, WRITER, "Three hundred notes")
        for i in range(NOTES):
            text = (
                f"Note {i}: we moved the reporting pipeline number {i} to the new warehouse, "
                f"because the old cluster {i % 17} was slow and far too expensive for analysts."
            )
            await intake.receive_text(WRITER, WRITER, 10 + i, text)
    finally:
        await engine.dispose()


def test_a_long_draft_with_paraphrased_quotes_never_stalls_another_writer(
    bots: BotLauncher,
) -> None:
    telegram = bots.server
    url = f"sqlite+aiosqlite:///{bots.db_path}"
    bots.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_to_head(url)
    asyncio.run(seed(url))
    with FakeOpenAI() as llm:
        llm.set_responder(DraftingModel(paraphrase_quotes=True))
        bot = bots.start(
            env={
                "ALLOWED_USER_IDS": f"{WRITER},{OTHER}",
                "OPENAI_BASE_URL": llm.base_url,
                "OPENAI_API_KEY": llm.api_key,
                "OPENAI_MODEL": "fake-model",
            }
        )
        telegram.send_text(OTHER, "/help")
        bots.wait_for(bot, lambda: telegram.sent_messages(OTHER), "the bot to answer", STARTUP_S)

        telegram.send_text(WRITER, "/draft")
        waits: list[float] = []
        deadline = time.monotonic() + 120
        while not telegram.sent_documents(WRITER) and time.monotonic() < deadline:
            before = len(telegram.sent_messages(OTHER))
            sent = time.monotonic()
            telegram.send_text(OTHER, "/help")
            bots.wait_for(
                bot, lambda before=before: len(telegram.sent_messages(OTHER)) > before, "/help", 30
            )
            waits.append(time.monotonic() - sent)
            time.sleep(0.05)
        assert telegram.sent_documents(WRITER), "the draft finished"
        drafted = telegram.sent_documents(WRITER)[-1].params["document"].decode()
        bot.stop()
    assert drafted.count("Drafted from N") == NOTES
    assert "ish”" not in drafted, "no paraphrase is shown as a quote"
    # Every /help during the draft was answered while it ran (each wait is bounded only as a
    # hang guard); how long a reply waits is measured by bench/citations.py, not asserted here.
    assert len(waits) >= 3, "the other writer asked several times while the draft ran"


async def test_the_citation_check_of_a_big_section_runs_off_the_event_loop(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What keeps other writers' replies flowing during /draft: the fuzzy matching of every
    quote against every note of a section happens in a worker thread, never on the loop."""
    outline, intake = OutlineService(sessions), IntakeService(sessions)
    await outline.new_article(WRITER, WRITER, "Forty notes")
    for i in range(40):
        await intake.receive_text(WRITER, WRITER, 10 + i, f"Note {i}: the cluster {i} was slow.")
    loop_thread = threading.get_ident()
    checked_in: list[int] = []

    def spy(module: Any) -> None:
        real = module.check_citations

        def recording(*args: Any, **kwargs: Any) -> Any:
            checked_in.append(threading.get_ident())
            return real(*args, **kwargs)

        monkeypatch.setattr(module, "check_citations", recording)

    spy(drafting_service)
    spy(drafting_coverage)
    with FakeOpenAI() as llm:
        llm.set_responder(DraftingModel(paraphrase_quotes=True))
        writer = LLMDraftWriter(
            StructuredLLM(
                base_url=llm.base_url,
                api_key=llm.api_key,
                model="fake-model",
                timeout=30.0,
                max_retries=1,
            ),
            language="English",
            context_tokens=12000,
        )
        try:
            result = await DraftService(sessions, writer).draft(WRITER)
        finally:
            await writer.close()
    assert result.markdown.count("Drafted from N") == 40
    assert checked_in, "citations were checked"
    assert loop_thread not in checked_in, "a citation check ran on the event loop"
