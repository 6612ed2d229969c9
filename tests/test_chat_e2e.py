"""The writer's basic loop, end to end: real Application, fake Bot API over HTTP, real whisper."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import jiwer
import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from bot.db.models import Note
from bot.db.session import create_engine, create_session_factory
from bot.notes.lifecycle import NoteState
from tests.conftest import AUDIO, StartBot
from tests.fakes.telegram_server import FakeTelegram

WRITER = 1001
STRANGER = 6666


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(normalise(reference), normalise(hypothesis)))


@pytest.fixture
async def bot(telegram: FakeTelegram, start_bot: StartBot) -> AsyncIterator[FakeTelegram]:
    async with start_bot():
        yield telegram


async def notes_in_db(tmp_path: Path) -> list[Note]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'bot.db'}")
    try:
        async with create_session_factory(engine)() as session:
            query = select(Note).options(selectinload(Note.parts)).order_by(Note.id)
            return list((await session.scalars(query)).all())
    finally:
        await engine.dispose()


async def say(telegram: FakeTelegram, text: str, expect: str) -> str:
    before = len(telegram.sent_messages(WRITER))
    telegram.send_text(WRITER, text)

    def reply() -> str | None:
        new = telegram.sent_messages(WRITER)[before:]
        return next((m.text for m in new if expect in m.text), None)

    return await telegram.wait_for(reply)


async def test_writer_loop_voice_and_text_filed_under_chosen_section(
    bot: FakeTelegram, tmp_path: Path
) -> None:
    telegram = bot
    await say(telegram, "/start", "/new")
    created = await say(telegram, "/new Book club", "Book club")
    assert "active article" in created

    outline = await say(telegram, "/outline\nReading list\nMeeting times\nSnacks", "Outline of")
    assert "1. Reading list" in outline and "3. Snacks" in outline
    chosen = await say(telegram, "/section 2", "now go to")
    assert "2. Meeting times" in chosen

    audio = (AUDIO / "book_club.ogg").read_bytes()
    file_id = telegram.add_file(audio)
    sent_at = time.monotonic()
    voice = telegram.send_voice(WRITER, file_id, duration=5, file_size=len(audio))
    ack = await telegram.wait_for_text(WRITER, "Transcribing for")
    assert telegram.calls("sendMessage")[-1].time - sent_at < 1.0, "acknowledged within 1 s"
    assert "2. Meeting times" in ack.text
    assert ack.message_id  # the acknowledgement replies to the voice note
    reply_call = telegram.calls("sendMessage")[-1]
    assert reply_call.params.get("reply_to_message_id") == voice["message"]["message_id"] or (
        reply_call.params.get("reply_parameters", {}).get("message_id")
        == voice["message"]["message_id"]
    )

    done = await telegram.wait_for_text(WRITER, "Filed under", timeout=60)
    assert done.message_id == ack.message_id, "the acknowledgement is edited in place"
    transcript = done.text.split("\n\n", 1)[1]
    reference = (AUDIO / "book_club.txt").read_text()
    assert wer(reference, transcript) <= 0.3, transcript
    assert "2. Meeting times" in done.text

    filed = await say(telegram, "Bring name tags next time", "Filed under")
    assert "2. Meeting times" in filed

    sections = await say(telegram, "/sections", "Reading list")
    assert "1. Reading list — 0 notes" in sections
    assert "2. Meeting times — 2 notes" in sections
    assert "3. Snacks — 0 notes" in sections
    listing = telegram.sent_messages(WRITER)[-1]
    buttons = [row[0] for row in listing.reply_markup["inline_keyboard"]]  # type: ignore[index]
    assert len(buttons) == 3 and buttons[1]["text"].startswith("▶️")

    notes = await notes_in_db(tmp_path)
    assert [(n.kind.value, n.state) for n in notes] == [
        ("voice", NoteState.FILED),
        ("text", NoteState.FILED),
    ]
    assert notes[0].file_id == file_id and notes[0].size == len(audio)
    assert notes[0].language == "en" and notes[0].duration == 5
    assert not list((tmp_path / "data" / "audio").glob("*")), "audio removed once transcribed"


async def test_section_button_switches_active_section(bot: FakeTelegram) -> None:
    telegram = bot
    await say(telegram, "/new Garden", "Garden")
    await say(telegram, "/outline\nSoil\nSeeds", "Outline of")
    await say(telegram, "/sections", "Soil")
    listing = telegram.sent_messages(WRITER)[-1]
    seeds = listing.reply_markup["inline_keyboard"][1][0]  # type: ignore[index]
    telegram.send_callback(WRITER, seeds["callback_data"], message_id=listing.message_id)
    edited = await telegram.wait_for(
        lambda: next(
            (m for m in telegram.sent_messages(WRITER) if m.edits and "▶️ 2. Seeds" in m.text),
            None,
        )
    )
    assert edited.message_id == listing.message_id
    filed = await say(telegram, "Tomatoes want warmth", "Filed under")
    assert "2. Seeds" in filed
    assert telegram.calls("answerCallbackQuery")


async def test_audio_file_video_note_and_forwarded_voice_are_transcribed(
    bot: FakeTelegram, tmp_path: Path
) -> None:
    telegram = bot
    await say(telegram, "/new Data", "Data")
    pipelines = (AUDIO / "pipelines.ogg").read_bytes()
    book = (AUDIO / "book_club.ogg").read_bytes()
    telegram.send_audio(
        WRITER,
        telegram.add_file(pipelines),
        duration=6,
        mime_type="audio/ogg",
        file_name="pipelines.ogg",
    )
    telegram.send_video_note(WRITER, telegram.add_file(book), duration=5)
    telegram.send_voice(WRITER, telegram.add_file(book), duration=5, forward_from=4242)

    def finished() -> list[str] | None:
        texts = [m.text for m in telegram.sent_messages(WRITER) if "Filed under" in m.text]
        return texts if len(texts) == 3 else None

    texts = await telegram.wait_for(finished, timeout=90)
    # One chat's notes are transcribed in the order they came.
    assert wer((AUDIO / "pipelines.txt").read_text(), texts[0].split("\n\n", 1)[1]) <= 0.3
    assert all(
        wer((AUDIO / "book_club.txt").read_text(), t.split("\n\n", 1)[1]) <= 0.3 for t in texts[1:]
    )
    kinds = [n.kind.value for n in await notes_in_db(tmp_path)]
    assert kinds == ["audio", "video", "voice"]


async def test_first_note_without_article_starts_untitled_draft(bot: FakeTelegram) -> None:
    filed = await say(bot, "An idea before any article exists", "Filed under")
    assert "Untitled draft" in filed and "1. Notes" in filed


async def test_stranger_is_refused_and_nothing_of_theirs_is_downloaded_or_stored(
    bot: FakeTelegram, tmp_path: Path
) -> None:
    telegram = bot
    audio = (AUDIO / "book_club.ogg").read_bytes()
    file_id = telegram.add_file(audio)
    telegram.send_voice(STRANGER, file_id, duration=5, file_size=len(audio))
    telegram.send_text(STRANGER, "/new Sneaky")
    refusal = await telegram.wait_for_text(STRANGER, "private bot")
    assert refusal.chat_id == STRANGER
    # Let the second update be processed too, then check: one refusal, no download, no rows.
    await say(telegram, "/help", "/new")
    assert len(telegram.sent_messages(STRANGER)) == 1
    assert not [c for c in telegram.calls("getFile") if c.params.get("file_id") == file_id]
    assert await notes_in_db(tmp_path) == []


async def test_bad_commands_get_short_usage_messages(bot: FakeTelegram) -> None:
    assert "e.g." in await say(bot, "/new", "Give the article a title")
    assert "Which section" in await say(bot, "/section two", "Which section")
    await say(bot, "/new Solo", "Solo")
    assert "pick 1 to 1" in await say(bot, "/section 9", "There is no section 9")
    assert "don't know" in await say(bot, "/frobnicate", "don't know")
