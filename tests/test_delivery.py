"""Chats side by side, each in order, and one delivery path that retries: a 500 on the
transcript's edit, a long flood wait in one chat, while other writers are answered at once.

The real bot against the fake Bot API over real HTTP.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import AUDIO, StartBot
from tests.fakes.telegram_server import FakeTelegram
from tests.test_chat_e2e import WRITER, notes_in_db, say

OTHER = 2002
FLOOD_WAIT_S = 15


@pytest.fixture
async def bot(telegram: FakeTelegram, start_bot: StartBot) -> AsyncIterator[FakeTelegram]:
    async with start_bot(allowed_user_ids=f"{WRITER},{OTHER}"):
        yield telegram


async def test_a_500_on_the_transcripts_edit_and_the_transcript_still_arrives(
    bot: FakeTelegram,
) -> None:
    data = (AUDIO / "long_speech.ogg").read_bytes()
    voice = bot.send_voice(WRITER, bot.add_file(data), duration=78, file_size=len(data))
    voice_id = voice["message"]["message_id"]
    ack = await bot.wait_for(lambda: bot.reply_to(WRITER, voice_id))
    assert "Transcribing" in ack.text
    # Every edit from now on fails once: progress edits, and the one with the transcript.
    bot.fail_next("editMessageText", error_code=500, description="Internal Server Error", times=8)
    done = await bot.wait_for_final_reply(WRITER, voice_id, timeout=120)
    assert "Filed under" in done.text and "librar" in done.text.lower()
    assert done.message_id == ack.message_id, "the acknowledgement itself shows the transcript"
    failed = [c for c in bot.calls("editMessageText") if c.error_code == 500]
    assert failed, "the failures really happened"
    replies = [m for m in bot.sent_messages(WRITER) if m.reply_to == voice_id]
    assert len(replies) == 1


async def test_a_flood_wait_in_one_chat_never_delays_another(
    bot: FakeTelegram, tmp_path: Path
) -> None:
    await say(bot, "/new Waiting", "Waiting")
    await say(bot, "/help", "/new")
    # Telegram tells the bot to wait 15 s before it writes to this chat again.
    bot.fail_next(
        "sendMessage",
        error_code=429,
        description=f"Too Many Requests: retry after {FLOOD_WAIT_S}",
        retry_after=FLOOD_WAIT_S,
        times=1,
        chat_id=WRITER,
    )
    text = bot.send_text(WRITER, "A note whose reply meets flood control")
    limited_at = time.monotonic()
    await bot.wait_for(lambda: any(c.error_code == 429 for c in bot.calls("sendMessage")))

    # Meanwhile another writer's command and voice note are answered at once.
    started = time.monotonic()
    bot.send_text(OTHER, "/help")
    await bot.wait_for_text(OTHER, "/new", timeout=5)
    answered = time.monotonic() - started
    data = (AUDIO / "book_club.ogg").read_bytes()
    voice = bot.send_voice(OTHER, bot.add_file(data), duration=5, file_size=len(data))
    filed = await bot.wait_for_final_reply(OTHER, voice["message"]["message_id"], timeout=30)
    other_done = time.monotonic() - started
    assert "Filed under" in filed.text
    print(f"other writer: /help in {answered:.2f} s, voice note filed in {other_done:.2f} s")
    assert answered < 1.0, f"/help took {answered:.1f} s during another chat's flood wait"
    assert other_done < FLOOD_WAIT_S, "the other writer's note did not wait for the flood"

    # The waiting chat gets its reply once the wait is over, and only then.
    reply = await bot.wait_for(
        lambda: bot.reply_to(WRITER, text["message"]["message_id"]), timeout=FLOOD_WAIT_S + 20
    )
    assert "Filed under" in reply.text
    sent_ok = [
        c
        for c in bot.calls("sendMessage")
        if c.params.get("chat_id") == WRITER and c.error_code is None
    ]
    assert sent_ok[-1].time - limited_at >= FLOOD_WAIT_S - 1, "the flood wait was respected"
    assert [n.transcript for n in await notes_in_db(tmp_path) if n.chat_id == WRITER] == [
        "A note whose reply meets flood control"
    ]


async def test_a_stored_note_whose_reply_failed_is_never_asked_for_again(
    bot: FakeTelegram, tmp_path: Path
) -> None:
    bot.fail_next("sendMessage", error_code=502, description="Bad Gateway", times=2)
    update = bot.send_text(WRITER, "A note Telegram answers badly at first")
    reply = await bot.wait_for(
        lambda: bot.reply_to(WRITER, update["message"]["message_id"]), timeout=30
    )
    assert "Filed under" in reply.text
    texts = bot.sent_texts(WRITER)
    assert not [t for t in texts if "try again" in t.lower() or "went wrong" in t.lower()]
    assert len(await notes_in_db(tmp_path)) == 1


async def test_a_card_delivered_twice_with_the_same_content_is_edited_once(
    telegram: FakeTelegram,
) -> None:
    """A subject's rows can be delivered one after another with the same card (the note was
    filed between reading one row and loading the card): the second edit is never sent, as
    Telegram would refuse it ("message is not modified") and count it against the chat."""
    from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup

    from bot.telegram.io import TelegramChat

    buttons = InlineKeyboardMarkup([[InlineKeyboardButton("↪️ Move", callback_data="mv:1")]])
    async with Bot(
        telegram.token, base_url=telegram.base_url, base_file_url=telegram.file_base_url
    ) as bot:
        chat = TelegramChat(bot)
        sent = await chat.send_one(WRITER, "🎙 Got it. Transcribing…")
        assert await chat.edit_one(WRITER, sent.message_id, "✅ Filed under 1.", markup=buttons)
        assert await chat.edit_one(WRITER, sent.message_id, "✅ Filed under 1.", markup=buttons)
        assert len(telegram.calls("editMessageText")) == 1
        # Other buttons are other content; and whatever edited the message last counts.
        assert await chat.edit_one(WRITER, sent.message_id, "✅ Filed under 1.")
        await chat.edit(WRITER, sent.message_id, "Move it to which section?")
        assert await chat.edit_one(WRITER, sent.message_id, "✅ Filed under 1.", markup=buttons)
    edits = [c.params["text"] for c in telegram.calls("editMessageText")]
    assert edits == [
        "✅ Filed under 1.",
        "✅ Filed under 1.",
        "Move it to which section?",
        "✅ Filed under 1.",
    ]
    assert telegram.sent_texts(WRITER) == ["✅ Filed under 1."]
