"""Damaged, silent, huge or unsupported input: one clear message, nothing filed, bot keeps going."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.notes.lifecycle import NoteState
from tests.conftest import AUDIO, StartBot
from tests.fakes.telegram_server import FakeTelegram
from tests.test_chat_e2e import WRITER, notes_in_db, say


@pytest.fixture
async def bot(telegram: FakeTelegram, start_bot: StartBot) -> AsyncIterator[FakeTelegram]:
    async with start_bot():
        await say(telegram, "/new Robustness", "Robustness")
        yield telegram


async def voice_reply(telegram: FakeTelegram, data: bytes, duration: int) -> str:
    """What the note's card says once the recording is dealt with."""
    file_id = telegram.add_file(data)
    update = telegram.send_voice(WRITER, file_id, duration=duration, file_size=len(data))
    done = await telegram.wait_for_final_reply(WRITER, update["message"]["message_id"])
    return done.text


@pytest.mark.parametrize(
    ("name", "data", "duration", "expected"),
    [
        ("empty file", b"", 3, "couldn't read that recording"),
        ("random bytes", os.urandom(20_000), 3, "couldn't read that recording"),
        ("truncated ogg", (AUDIO / "truncated.ogg").read_bytes(), 4, "looks cut off"),
        ("silence", (AUDIO / "silence.ogg").read_bytes(), 3, "couldn't hear any speech"),
        ("noise", (AUDIO / "noise.ogg").read_bytes(), 3, "couldn't hear any speech"),
    ],
)
async def test_bad_audio_is_reported_and_never_filed(
    bot: FakeTelegram, tmp_path: Path, name: str, data: bytes, duration: int, expected: str
) -> None:
    text = await voice_reply(bot, data, duration)
    assert expected in text, name
    assert "Filed" not in text
    notes = await notes_in_db(tmp_path)
    assert [n.state for n in notes] == [NoteState.FAILED]
    assert notes[0].transcript is None and not notes[0].parts
    assert "— 0 notes" in await say(bot, "/sections", "Robustness")
    assert not list((tmp_path / "data" / "audio").glob("*")), "no audio left behind"
    # The bot keeps running: the next good note is transcribed and filed.
    good = (AUDIO / "book_club.ogg").read_bytes()
    assert "Filed under" in await voice_reply(bot, good, 5)


async def test_too_big_for_the_bot_api_is_refused_before_any_download(
    bot: FakeTelegram, tmp_path: Path
) -> None:
    file_id = bot.add_file(b"x" * 1000)
    bot.send_voice(WRITER, file_id, duration=1800, file_size=25 * 1024 * 1024)
    reply = await bot.wait_for_text(WRITER, "at most 20 MB")
    assert "25.0 MB" in reply.text
    assert not bot.calls("getFile")
    assert await notes_in_db(tmp_path) == []


async def test_unsupported_document_is_refused_and_audio_document_is_accepted(
    bot: FakeTelegram, tmp_path: Path
) -> None:
    # A PDF is a source now (tests/test_sources_e2e.py); an archive is nothing the bot reads.
    archive = bot.add_file(b"PK\x03\x04 not audio")
    bot.send_document(
        WRITER, archive, file_name="notes.zip", mime_type="application/zip", file_size=18
    )
    await bot.wait_for_text(WRITER, "can only file voice notes")
    assert not bot.calls("getFile")
    bot.enqueue_raw(
        {
            "message": {
                "message_id": 900,
                "date": 0,
                "chat": {"id": WRITER, "type": "private"},
                "from": {"id": WRITER, "is_bot": False, "first_name": "Writer"},
                "location": {"latitude": 52.5, "longitude": 13.4},
            }
        }
    )
    await bot.wait_for(
        lambda: len([m for m in bot.sent_messages(WRITER) if "can only file" in m.text]) == 2
    )
    data = (AUDIO / "pipelines.ogg").read_bytes()
    ogg = bot.add_file(data)
    bot.send_document(WRITER, ogg, file_name="memo.ogg", mime_type="audio/ogg", file_size=len(data))
    await bot.wait_for_text(WRITER, "Filed under", timeout=60)
    assert [n.kind.value for n in await notes_in_db(tmp_path)] == ["audio"]


async def test_download_errors_are_retried_with_backoff_then_reported(
    bot: FakeTelegram, tmp_path: Path
) -> None:
    data = (AUDIO / "book_club.ogg").read_bytes()
    # Two server errors, then success: the note is transcribed.
    bot.fail_next("getFile", error_code=502, description="Bad Gateway", times=2)
    assert "Filed under" in await voice_reply(bot, data, 5)
    assert len(bot.calls("getFile")) == 3
    # A permanent error (the file is gone) is not retried.
    file_id = bot.add_file(data)
    bot.fail_get_file(file_id, description="Bad Request: file is too big")
    before = len(bot.calls("getFile"))
    bot.send_voice(WRITER, file_id, duration=5, file_size=len(data))
    await bot.wait_for_text(WRITER, "couldn't download that recording")
    assert len(bot.calls("getFile")) - before == 1
