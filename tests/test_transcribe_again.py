"""A note that came out in the wrong language (issue 11, item 3): its card names the language,
and when that is not a language the writer speaks, buttons transcribe it again in one they do,
with the audio fetched again by its file_id. The real bot against the fake Bot API, with an
in-process transcriber that answers in the language it is asked for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bot.telegram import keyboards
from bot.transcription.base import Transcript
from tests.conftest import FAST, bot_settings
from tests.fakes.telegram_server import BotMessage, FakeTelegram
from tests.fakes.transcriber import FakeTranscriber

WRITER = 1001
LATIN_GUESS = Transcript("Eto zametka pro bazu dannyh.", "la", 6.0, 5.0, language_unsure=True)
RUSSIAN = Transcript("Это заметка про базу данных.", "ru", 6.0, 5.0)
ENGLISH = Transcript("This is a note about the database.", "en", 6.0, 5.0)


@asynccontextmanager
async def bot(
    telegram: FakeTelegram, tmp_path: Path, transcriber: FakeTranscriber, **extra: object
) -> AsyncIterator[Any]:
    from bot.app import build_bot, running
    from bot.db.migrate import upgrade_to_head

    settings = bot_settings(tmp_path, telegram, "unused", **extra)
    upgrade_to_head(settings.database_url)
    async with running(build_bot(settings, transcriber, timing=FAST)) as runtime:
        yield runtime


def buttons(message: BotMessage) -> dict[str, str]:
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    return {b["text"]: b["callback_data"] for row in rows for b in row}


async def send_voice(telegram: FakeTelegram) -> None:
    telegram.send_voice(WRITER, telegram.add_file(b"OggS-voice"), duration=6, file_size=10)


async def test_a_note_in_an_unexpected_language_is_transcribed_again_in_the_writers(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    transcriber = FakeTranscriber()
    transcriber.answer(LATIN_GUESS, RUSSIAN)
    async with bot(telegram, tmp_path, transcriber, whisper_languages="ru,en"):
        await send_voice(telegram)
        card = await telegram.wait_for_text(WRITER, "Filed under", timeout=20)
        assert "(Latin)" in card.text, "the card names the language it heard"
        offered = buttons(card)
        assert {"🔁 Russian", "🔁 English"} <= set(offered)
        downloads = len(telegram.calls("getFile"))

        telegram.send_callback(WRITER, offered["🔁 Russian"], message_id=card.message_id)
        again = await telegram.wait_for(
            lambda: next(
                (m for m in telegram.sent_messages(WRITER) if "про базу" in m.text), None
            ),
            timeout=20,
        )
        assert again.message_id == card.message_id, "the same card shows the new transcript"
        assert "(Russian)" in again.text and "Eto zametka" not in again.text
        assert not any(t.startswith("🔁") for t in buttons(again)), "Russian is expected"
        assert transcriber.history[-1].language == "ru", "whisper was told the language"
        assert len(telegram.calls("getFile")) > downloads, "the audio was fetched again"

        # Filed once: the Latin guess's part is gone, the Russian one is in its place.
        listing = await say(telegram, "/notes", "про базу")
        assert "Eto zametka" not in listing


async def test_a_note_in_a_language_the_writer_speaks_has_no_such_buttons(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    transcriber = FakeTranscriber()
    transcriber.answer(ENGLISH)
    async with bot(telegram, tmp_path, transcriber, whisper_languages="ru,en"):
        await send_voice(telegram)
        card = await telegram.wait_for_text(WRITER, "Filed under", timeout=20)
        assert "(English)" in card.text
        assert not any(t.startswith("🔁") for t in buttons(card))


async def test_a_stale_language_button_changes_nothing(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    transcriber = FakeTranscriber()
    transcriber.answer(LATIN_GUESS)
    async with bot(telegram, tmp_path, transcriber, whisper_languages="ru,en"):
        await send_voice(telegram)
        card = await telegram.wait_for_text(WRITER, "Filed under", timeout=20)
        russian = buttons(card)["🔁 Russian"]
        note_id = russian.split(":")[1]
        await say(telegram, "/undo", "")
        calls = len(transcriber.history)
        telegram.send_callback(WRITER, russian, message_id=card.message_id)
        telegram.send_callback(WRITER, f"again:{note_id}:99999", message_id=card.message_id)
        answers = await telegram.wait_for(
            lambda: (a := telegram.calls("answerCallbackQuery")) and len(a) >= 2 and a,
            timeout=10,
        )
        assert all("Transcribing it again" not in str(a.params) for a in answers)
        assert len(transcriber.history) == calls, "nothing was transcribed again"
        assert keyboards.LANGUAGE_CODES.index("ru") == int(russian.split(":")[2])


async def say(telegram: FakeTelegram, text: str, expect: str) -> str:
    before = len(telegram.sent_messages(WRITER))
    telegram.send_text(WRITER, text)

    def reply() -> str | None:
        new = telegram.sent_messages(WRITER)[before:]
        return next((m.text for m in new if expect in m.text), None)

    return await telegram.wait_for(reply, timeout=20)


def test_every_language_whisper_can_detect_has_a_name_and_a_button() -> None:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    from bot.notes.vocabulary import LANGUAGES

    assert set(LANGUAGES) == set(_LANGUAGE_CODES)
    assert keyboards.LANGUAGE_CODES[:2] == ("en", "ru"), "positions in old buttons stay valid"
