"""Odd input a writer (or anybody) can send: a caption under a voice note, forged button
data, a section full of long URLs. The real bot against the fake Bot API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.render import SAFE_MESSAGE_LIMIT, utf16_len
from tests.conftest import AUDIO, StartBot
from tests.fakes.telegram_server import FakeTelegram
from tests.test_chat_e2e import WRITER, notes_in_db, say


@pytest.fixture
async def bot(telegram: FakeTelegram, start_bot: StartBot) -> AsyncIterator[FakeTelegram]:
    async with start_bot():
        await say(telegram, "/new Edges", "Edges")
        yield telegram


async def test_a_voice_notes_caption_is_kept_and_filed_with_it(
    bot: FakeTelegram, tmp_path: Path
) -> None:
    data = (AUDIO / "book_club.ogg").read_bytes()
    caption = "For the part about evenings"
    voice = bot.send_voice(
        WRITER, bot.add_file(data), duration=5, file_size=len(data), caption=caption
    )
    card = await bot.wait_for_final_reply(WRITER, voice["message"]["message_id"])
    assert caption in card.text and "book club" in card.text.lower()
    [note] = await notes_in_db(tmp_path)
    assert note.caption == caption
    assert note.parts[0].text.startswith(caption), "drafted and exported with the recording"
    assert "book club" in note.parts[0].text.lower()


@pytest.mark.parametrize(
    "data",
    ["mv:99999999999999999999999", "del:-1", "sec:1:2:3:4e5", "pg:3:0x10", "mvto:1:" + "9" * 40],
)
async def test_forged_button_data_is_answered_never_crashed_on(
    bot: FakeTelegram, data: str
) -> None:
    listing = bot.sent_messages(WRITER)[-1]
    bot.send_callback(WRITER, data, message_id=listing.message_id)
    answer = await bot.wait_for(lambda: next(iter(bot.calls("answerCallbackQuery")), None))
    assert "expired" in str(answer.params.get("text", ""))
    assert "went wrong" not in " ".join(bot.sent_texts(WRITER))
    await say(bot, "/sections", "Edges")  # and the bot goes on


async def test_notes_of_long_urls_list_in_one_short_message(bot: FakeTelegram) -> None:
    for n in range(21):
        # Each link is a source whose page the bot tries to read: a loopback address, which
        # it refuses by default, so nothing leaves the machine.
        url = f"http://127.0.0.1:9/{'very-long-path-segment-' * 20}{n}"
        await say(bot, url, "kept as a source under")
    before = len(bot.sent_messages(WRITER))
    bot.send_text(WRITER, "/notes")
    listing = await bot.wait_for_text(WRITER, "21 notes")
    new = bot.sent_messages(WRITER)[before:]
    assert len(new) == 1, "one message, with the arrows for the rest"
    assert utf16_len(listing.text) <= SAFE_MESSAGE_LIMIT
    longest = max(len(line) for line in listing.text.splitlines())
    assert longest < 160, "each preview is cut short"
