"""Nothing lost, nobody else's data reached: redelivery, long notes, /cancel, locking, secrets."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import build_bot, running
from bot.config import Settings
from bot.db.migrate import upgrade_to_head
from bot.db.models import Note
from bot.logging_setup import configure_logging
from bot.notes.intake import IntakeService
from bot.services.outline import OutlineService
from bot.transcription.whisper import WhisperTranscriber
from tests.conftest import AUDIO, FAST, StartBot, bot_settings
from tests.fakes.telegram_server import FakeTelegram
from tests.test_chat_e2e import WRITER, notes_in_db, say

SECOND_WRITER = 2002
STRANGER_ID = 6666


@pytest.fixture
async def bot(telegram: FakeTelegram, start_bot: StartBot) -> AsyncIterator[FakeTelegram]:
    async with start_bot(allowed_user_ids="1001,2002"):
        yield telegram


async def test_redelivered_updates_create_nothing_and_send_nothing_twice(
    bot: FakeTelegram, tmp_path: Path
) -> None:
    data = (AUDIO / "book_club.ogg").read_bytes()
    voice = bot.send_voice(WRITER, bot.add_file(data), duration=5, file_size=len(data))
    await bot.wait_for_text(WRITER, "Filed under", timeout=60)
    text = bot.send_text(WRITER, "A typed thought")
    await bot.wait_for_text(WRITER, "📝 Filed under")
    sent = len(bot.sent_messages(WRITER))

    bot.redeliver(voice)
    bot.redeliver(text)
    await say(bot, "/help", "/new")  # processed after the redelivered updates
    assert len(bot.sent_messages(WRITER)) == sent + 1, "only the /help answer is new"
    assert len(await notes_in_db(tmp_path)) == 2
    assert len(bot.calls("getFile")) == 1


async def test_long_note_shows_progress_and_cancel_stops_it(
    bot: FakeTelegram, tmp_path: Path
) -> None:
    data = (AUDIO / "long_speech.ogg").read_bytes()
    bot.send_voice(WRITER, bot.add_file(data), duration=78, file_size=len(data))
    ack = await bot.wait_for_text(WRITER, "Transcribing for")
    done = await bot.wait_for_text(WRITER, "Filed under", timeout=120)
    assert done.message_id == ack.message_id, "progress and result edit the acknowledgement"
    progress = [text for text in done.edits if re.match(r"🎙 Transcribing… \d+%", text)]
    assert progress, done.edits

    # A short note gets no progress messages at all.
    short = (AUDIO / "book_club.ogg").read_bytes()
    bot.send_voice(WRITER, bot.add_file(short), duration=5, file_size=len(short))
    await bot.wait_for(
        lambda: len([m for m in bot.sent_messages(WRITER) if "Filed under" in m.text]) == 2,
        timeout=60,
    )
    assert not any("%" in e for e in bot.sent_messages(WRITER)[-1].edits)

    third = bot.send_voice(WRITER, bot.add_file(data), duration=78, file_size=len(data))
    await bot.wait_for(lambda: len(bot.calls("getFile")) == 3)  # the job has started
    second_ack = await bot.wait_for(lambda: bot.reply_to(WRITER, third["message"]["message_id"]))
    bot.send_text(WRITER, "/cancel")
    await bot.wait_for_text(WRITER, "Stopping the current transcription")
    await bot.wait_for(
        lambda: next(
            (
                m
                for m in bot.sent_messages(WRITER)
                if m.message_id == second_ack.message_id and "cancelled" in m.text
            ),
            None,
        ),
        timeout=60,
    )
    states = [n.state.value for n in await notes_in_db(tmp_path)]
    assert states == ["filed", "filed", "failed"]
    assert "Nothing is being transcribed" in await say(bot, "/cancel", "transcribed")


async def test_one_writer_cannot_reach_another_writers_sections_by_id(
    bot: FakeTelegram,
) -> None:
    await say(bot, "/new Private plans", "Private plans")
    await say(bot, "/outline\nSecret one\nSecret two", "Outline of")
    listing = bot.sent_messages(WRITER)[-1]
    foreign = listing.reply_markup["inline_keyboard"][1][0]["callback_data"]  # type: ignore[index]

    bot.send_text(SECOND_WRITER, "/new Mine")
    await bot.wait_for_text(SECOND_WRITER, "Mine")
    bot.send_callback(SECOND_WRITER, foreign, message_id=listing.message_id, chat_id=SECOND_WRITER)
    answer = await bot.wait_for(lambda: next((c for c in bot.calls("answerCallbackQuery")), None))
    assert "no longer exists" in answer.params.get("text", "")
    bot.send_text(SECOND_WRITER, "/sections")
    await bot.wait_for_text(SECOND_WRITER, "1. Notes")
    assert all("Secret" not in m.text for m in bot.sent_messages(SECOND_WRITER))
    # A forged callback payload is answered, not crashed on.
    bot.send_callback(
        SECOND_WRITER, "sec:not-a-number", message_id=listing.message_id, chat_id=SECOND_WRITER
    )
    await bot.wait_for(lambda: len(bot.calls("answerCallbackQuery")) == 2)


async def test_updates_without_a_user_are_ignored(bot: FakeTelegram) -> None:
    bot.enqueue_raw(
        {
            "channel_post": {
                "message_id": 1,
                "date": 0,
                "text": "/new Hijack",
                "chat": {"id": -100123, "type": "channel", "title": "News"},
            }
        }
    )
    await say(bot, "/help", "/new")
    assert not bot.sent_messages(-100123)


async def test_empty_allowlist_refuses_everybody(
    tmp_path: Path,
    telegram: FakeTelegram,
    whisper: WhisperTranscriber,
    tiny_model_path: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = bot_settings(tmp_path, telegram, tiny_model_path, allowed_user_ids="")
    assert settings.allowed_user_ids == frozenset()
    upgrade_to_head(settings.database_url)
    with caplog.at_level(logging.WARNING):
        async with running(build_bot(settings, whisper, timing=FAST)):
            telegram.send_text(WRITER, "/new Anything")
            await telegram.wait_for_text(WRITER, "private bot")
    assert "refuse everybody" in caplog.text
    assert await notes_in_db(tmp_path) == []


async def test_twenty_concurrent_writers_never_hit_database_is_locked(
    sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    intake, outline = IntakeService(sessions), OutlineService(sessions)

    async def writer(user: int) -> None:
        await outline.new_article(user, user, f"Article {user}")
        for message_id in range(5):
            await intake.receive_text(user, user, message_id, f"note {message_id} of {user}")
            await outline.outline(user)

    await asyncio.gather(*(writer(3000 + i) for i in range(20)))
    async with sessions() as session:
        assert await session.scalar(select(func.count(Note.id))) == 100
        if database_url.startswith("sqlite"):
            journal = (await session.connection()).exec_driver_sql("PRAGMA journal_mode")
            assert (await journal).scalar() == "wal"


def test_secrets_never_reach_the_log() -> None:
    token = "987654321:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_secret"
    key = "sk-proj-verysecretkey1234567890"
    stream = io.StringIO()
    configure_logging("INFO", [token, key])
    logging.getLogger().handlers[0].stream = stream  # type: ignore[attr-defined]
    log = logging.getLogger("bot.test")
    log.info("calling https://api.telegram.org/bot%s/getUpdates", token)
    log.warning("key is %s", key)
    try:
        raise RuntimeError(f"request to /bot{token}/getFile failed")
    except RuntimeError:
        log.exception("boom")
    logging.getLogger("httpx").info("HTTP Request: POST https://api.telegram.org/bot%s", token)
    output = stream.getvalue()
    assert token not in output and key not in output
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in output
    assert output.count("***") >= 3
    assert "HTTP Request" not in output, "httpx request logs stay at WARNING"
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING


def test_invalid_settings_name_the_setting_and_never_echo_secrets() -> None:
    from bot.config import ConfigError, load_settings

    with pytest.raises(ConfigError) as failure:
        load_settings(allowed_user_ids="12,abc", _env_file=None)
    assert "ALLOWED_USER_IDS" in str(failure.value)
    with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN"):
        load_settings(require_token=True, _env_file=None)
    with pytest.raises(ConfigError) as failure:
        load_settings(openai_api_key="sk-secret-value", openai_base_url="ftp://x", _env_file=None)
    assert "OPENAI_BASE_URL" in str(failure.value) and "sk-secret-value" not in str(failure.value)
    assert isinstance(load_settings(_env_file=None), Settings)


async def test_a_failed_acknowledgement_is_retried_and_never_stalls_the_note(
    bot: FakeTelegram,
) -> None:
    data = (AUDIO / "book_club.ogg").read_bytes()
    bot.fail_next("sendMessage", error_code=502, description="Bad Gateway")
    voice = bot.send_voice(WRITER, bot.add_file(data), duration=5, file_size=len(data))
    done = await bot.wait_for_final_reply(WRITER, voice["message"]["message_id"])
    assert "Filed under" in done.text
    replies = [m for m in bot.sent_messages(WRITER) if m.reply_to == voice["message"]["message_id"]]
    assert len(replies) == 1, "one message shows the note: the retried acknowledgement, edited"
    assert not any("went wrong" in m.text for m in bot.sent_messages(WRITER))


async def test_ids_of_deleted_notes_are_never_reused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from bot.notes.manage import NotesService

    intake, notes = IntakeService(sessions), NotesService(sessions)
    first = await intake.receive_text(WRITER, WRITER, 1, "A note I will undo")
    await notes.undo_last(WRITER)
    second = await intake.receive_text(WRITER, WRITER, 2, "The next note")
    assert second.note_id > first.note_id


async def test_group_messages_are_ignored_even_from_an_allowed_writer(
    bot: FakeTelegram, tmp_path: Path
) -> None:
    bot.send_text(WRITER, "A note posted in a group", chat_id=-100555)
    bot.send_text(STRANGER_ID, "/new Group hijack", chat_id=-100555)
    await say(bot, "/help", "/new")
    assert not bot.sent_messages(-100555)
    assert await notes_in_db(tmp_path) == []


async def test_undo_of_a_note_still_being_transcribed(bot: FakeTelegram, tmp_path: Path) -> None:
    data = (AUDIO / "long_speech.ogg").read_bytes()
    bot.send_voice(WRITER, bot.add_file(data), duration=78, file_size=len(data))
    ack = await bot.wait_for_text(WRITER, "Transcribing for")
    reply = await say(bot, "/undo", "Removed your last note")
    assert "still being transcribed" in reply
    await bot.wait_for(
        lambda: next(
            (
                m
                for m in bot.sent_messages(WRITER)
                if m.message_id == ack.message_id and "Removed before" in m.text
            ),
            None,
        )
    )
    # The next recording goes through the same worker, so it is done only after the first.
    short = (AUDIO / "book_club.ogg").read_bytes()
    bot.send_voice(WRITER, bot.add_file(short), duration=5, file_size=len(short))
    await bot.wait_for_text(WRITER, "book club meets", timeout=60)
    assert [n.kind.value for n in await notes_in_db(tmp_path)] == ["voice"]
    assert not any("libraries" in m.text for m in bot.sent_messages(WRITER))
    ack_now = next(m for m in bot.sent_messages(WRITER) if m.message_id == ack.message_id)
    assert ack_now.text.endswith("Removed before it was transcribed.")
    assert not list((tmp_path / "data" / "audio").glob("*"))


def test_check_config_masks_the_database_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://bot:s3cretpw@db.local/bot")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-abcdef123456")
    assert main(["check-config"]) == 0
    printed = capsys.readouterr().out
    assert "s3cretpw" not in printed and "sk-live-abcdef123456" not in printed
    assert "DATABASE_URL=postgresql+asyncpg://bot:***@db.local/bot" in printed
    monkeypatch.setenv("LOG_LEVEL", "verbose")
    assert main(["check-config"]) == 2
    assert "LOG_LEVEL" in capsys.readouterr().err
