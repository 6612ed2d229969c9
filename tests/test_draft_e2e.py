"""/draft and /export in the chat: real Application, fake Bot API and fake LLM over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.conftest import StartBot
from tests.fakes.drafting_model import DraftingModel
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.telegram_server import FakeTelegram
from tests.test_chat_e2e import WRITER, say


@pytest.fixture
def llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        server.set_responder(DraftingModel())
        yield server


@pytest.fixture
async def bot(
    telegram: FakeTelegram, llm: FakeOpenAI, start_bot: StartBot
) -> AsyncIterator[FakeTelegram]:
    async with start_bot(
        openai_base_url=llm.base_url,
        openai_api_key=llm.api_key,
        openai_model="fake-model",
        openai_timeout_seconds=5,
    ):
        await say(telegram, "/new Book club", "Book club")
        await say(telegram, "/outline\nReading list\nMeeting times\nSnacks", "Outline of")
        await say(telegram, "This article is about our little book club.", "Filed under")
        await say(telegram, "/section 3", "now go to")
        await say(telegram, "Everyone brings something small to share.", "Filed under")
        yield telegram


def documents(telegram: FakeTelegram) -> list[tuple[str, str]]:
    return [
        (c.params["document_filename"], c.params["document"].decode())
        for c in telegram.sent_documents(WRITER)
    ]


async def draft(telegram: FakeTelegram, command: str = "/draft") -> str:
    before = len(telegram.sent_documents(WRITER))
    status_before = len(telegram.sent_messages(WRITER))
    telegram.send_text(WRITER, command)
    await telegram.wait_for(lambda: len(telegram.sent_documents(WRITER)) > before)
    status = next(
        m
        for m in telegram.sent_messages(WRITER)[status_before:]
        if m.text.startswith(("✍️ Draft", "Nothing new", "✍️ Section"))
    )
    return status.text


async def test_draft_is_sent_in_chat_and_as_markdown_file_and_cached(
    bot: FakeTelegram, llm: FakeOpenAI
) -> None:
    summary = await draft(bot)
    assert "2 of 2 sections with notes redrafted" in summary
    assert "Kept 2/2 verified points; citations checked." in summary
    filename, markdown = documents(bot)[-1]
    assert filename == "book-club.md"
    assert markdown.startswith("# Book club\n")
    for heading in ("## Reading list", "## Meeting times", "## Snacks"):
        assert heading in markdown
    chat_text = "\n".join(m.text for m in bot.sent_messages(WRITER))
    assert "<b>Meeting times</b>" in chat_text and "Drafted from N" in chat_text
    assert all(len(m.text) <= 4096 for m in bot.sent_messages(WRITER))
    calls = len(llm.calls)

    again = await draft(bot)
    assert again.startswith("Nothing new")
    assert len(llm.calls) == calls, "a /draft with nothing new makes no LLM call"
    assert documents(bot)[-1][1] == markdown

    bot.send_text(WRITER, "/export")
    await bot.wait_for(lambda: len(bot.sent_documents(WRITER)) == 3)
    assert documents(bot)[-1] == ("book-club.md", markdown)

    bot.send_text(WRITER, "/export notes")
    await bot.wait_for(lambda: len(bot.sent_documents(WRITER)) == 4)
    name, notes = documents(bot)[-1]
    assert name == "book-club-notes.md"
    assert "Everyone brings something small to share." in notes


async def test_draft_of_one_section(bot: FakeTelegram, llm: FakeOpenAI) -> None:
    summary = await draft(bot, "/draft 3")
    assert summary.startswith("✍️ Section 3: redrafted")
    filename, markdown = documents(bot)[-1]
    assert filename == "book-club-section-3.md"
    assert "## Snacks" in markdown and "## Reading list" not in markdown


async def test_llm_outage_gives_one_clear_message_and_loses_nothing(
    bot: FakeTelegram, llm: FakeOpenAI
) -> None:
    await draft(bot)
    good = documents(bot)[-1][1]
    await say(bot, "A new idea about snacks.", "Filed under")
    llm.fail_next("server_error", times=3)
    before = len(bot.sent_messages(WRITER))
    bot.send_text(WRITER, "/draft")
    failure = await bot.wait_for_text(WRITER, "not answering")
    assert "Your notes are safe" in failure.text
    new_messages = bot.sent_messages(WRITER)[before:]
    assert len(new_messages) == 1, "one message: the status, edited with the failure"
    assert "500" not in failure.text and "Error" not in failure.text
    bot.send_text(WRITER, "/export")
    await bot.wait_for(lambda: len(bot.sent_documents(WRITER)) == 2)
    assert documents(bot)[-1][1] == good
    notes = await say(bot, "/sections", "Snacks")
    assert "3. Snacks — 2 notes" in notes


async def test_export_before_any_draft_explains(bot: FakeTelegram) -> None:
    reply = await say(bot, "/export", "no draft yet")
    assert "/draft" in reply


async def test_draft_says_which_notes_are_still_being_transcribed(bot: FakeTelegram) -> None:
    from tests.conftest import AUDIO

    data = (AUDIO / "long_speech.ogg").read_bytes()
    bot.send_voice(WRITER, bot.add_file(data), duration=78, file_size=len(data))
    await bot.wait_for_text(WRITER, "Transcribing for")
    summary = await draft(bot)
    assert "⏳ 1 note is still being transcribed and not in it yet." in summary
