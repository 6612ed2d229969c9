"""One recording, several sections; managing notes from the chat (move, delete, undo, edit)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.notes.lifecycle import NoteState
from tests.conftest import AUDIO, StartBot
from tests.fakes.telegram_server import BotMessage, FakeTelegram
from tests.test_chat_e2e import WRITER, notes_in_db, say


@pytest.fixture
async def bot(telegram: FakeTelegram, start_bot: StartBot) -> AsyncIterator[FakeTelegram]:
    async with start_bot():
        await say(telegram, "/new Book club", "Book club")
        await say(telegram, "/outline\nReading list\nMeeting times\nFood and drinks", "Outline")
        await say(telegram, "/section 2", "now go to")
        yield telegram


def buttons(message: BotMessage) -> list[tuple[str, str]]:
    assert message.reply_markup is not None
    return [
        (b["text"], b["callback_data"])
        for row in message.reply_markup["inline_keyboard"]
        for b in row
    ]


async def press(telegram: FakeTelegram, message: BotMessage, text: str) -> None:
    data = next(d for label, d in buttons(message) if text in label)
    telegram.send_callback(WRITER, data, message_id=message.message_id)


async def test_a_note_speaking_two_titles_is_filed_in_two_parts(
    bot: FakeTelegram, tmp_path: Path
) -> None:
    data = (AUDIO / "two_sections.ogg").read_bytes()
    bot.send_voice(WRITER, bot.add_file(data), duration=10, file_size=len(data))
    ack = await bot.wait_for_text(WRITER, "Transcribing for")
    assert "2. Meeting times" in ack.text  # where it would go without spoken titles
    done = await bot.wait_for_text(WRITER, "in 2 parts", timeout=60)
    assert done.message_id == ack.message_id
    part1, part2 = done.text.split("<b>Part 1")[1].split("<b>Part 2")
    assert "1. Reading list" in part1 and "two short novels" in part1
    assert "3. Food and drinks" in part2 and "brings something small" in part2
    assert "Reading list." not in part1.split("</b>", 1)[1], "the spoken title is not content"
    assert [label for label, _ in buttons(done)] == ["↪️ Move part 1", "↪️ Move part 2"]

    sections = await say(bot, "/sections", "Reading list")
    assert "1. Reading list — 1 note" in sections
    assert "2. Meeting times — 0 notes" in sections
    assert "3. Food and drinks — 1 note" in sections
    notes = await notes_in_db(tmp_path)
    assert len(notes) == 1 and len(notes[0].parts) == 2

    # Move part 2 to "Meeting times" with the buttons under the transcript.
    await press(bot, done, "Move part 2")
    prompt = await bot.wait_for_text(WRITER, "to which section?")
    assert [label for label, _ in buttons(prompt)] == ["1. Reading list", "2. Meeting times"]
    await press(bot, prompt, "2. Meeting times")
    await bot.wait_for_text(WRITER, "Moved")
    sections = await say(bot, "/sections", "Reading list")
    assert "2. Meeting times — 1 note" in sections and "3. Food and drinks — 0 notes" in sections


async def test_notes_lists_a_section_with_move_and_delete_buttons(bot: FakeTelegram) -> None:
    await say(bot, "We meet on Thursdays.", "Filed under")
    await say(bot, "Bring name tags.", "Filed under")
    listing_text = await say(bot, "/notes", "2. Meeting times")
    assert "— 2 notes" in listing_text
    assert "1. 📝" in listing_text and "We meet on Thursdays." in listing_text
    listing = bot.sent_messages(WRITER)[-1]
    assert [label for label, _ in buttons(listing)] == ["↪️ 1", "🗑 1", "↪️ 2", "🗑 2"]

    await press(bot, listing, "🗑 2")
    await bot.wait_for_text(WRITER, "Deleted “Bring name tags.”")
    assert "2. Meeting times — 1 note" in await say(bot, "/sections", "Reading list")

    await press(bot, listing, "↪️ 1")
    prompt = await bot.wait_for_text(WRITER, "to which section?")
    await press(bot, prompt, "3. Food and drinks")
    await bot.wait_for_text(WRITER, "Moved “We meet on Thursdays.”")
    assert "— 1 note" in await say(bot, "/notes 3", "3. Food and drinks")
    assert "Nothing filed here yet" in await say(bot, "/notes 2", "2. Meeting times")
    assert "There is no section 9" in await say(bot, "/notes 9", "no section")


async def test_undo_removes_the_last_note(bot: FakeTelegram, tmp_path: Path) -> None:
    await say(bot, "Keep this one.", "Filed under")
    await say(bot, "Oops, not this one.", "Filed under")
    assert "Oops, not this one." in await say(bot, "/undo", "Removed your last note")
    notes = await notes_in_db(tmp_path)
    assert [n.transcript for n in notes] == ["Keep this one."]
    await say(bot, "/undo", "Removed your last note")
    assert "no note to undo" in await say(bot, "/undo", "no note")


async def test_edited_text_message_updates_its_note(bot: FakeTelegram, tmp_path: Path) -> None:
    update = bot.send_text(WRITER, "We meet on Tuesdays.")
    await bot.wait_for_text(WRITER, "Filed under")
    bot.edit_text(WRITER, update["message"]["message_id"], "We meet on Thursdays.")
    await bot.wait_for_text(WRITER, "Updated your note")
    notes = await notes_in_db(tmp_path)
    assert len(notes) == 1 and notes[0].state == NoteState.FILED
    assert notes[0].transcript == "We meet on Thursdays."
    assert [p.text for p in notes[0].parts] == ["We meet on Thursdays."]


async def test_archived_transcript_sent_as_a_file_is_imported_and_split(
    bot: FakeTelegram, tmp_path: Path
) -> None:
    raw = (
        "---\nsource: telegram_voice\ndate: 2026-02-17T08:28:07+00:00\n"
        "audio_file: x.ogg\n---\n\nТак, reading list. Начнём с двух коротких романов. "
        "Дальше. Food and drinks. Каждый приносит что-то небольшое.\n"
    ).encode()
    file_id = bot.add_file(raw)
    bot.send_document(
        WRITER, file_id, file_name="msg1.txt", mime_type="text/plain", file_size=len(raw)
    )
    reply = await bot.wait_for_text(WRITER, "Imported the transcript")
    assert "2026-02-17 08:28 UTC" in reply.text
    assert "1. Reading list" in reply.text and "3. Food and drinks" in reply.text
    bot.send_document(
        WRITER, file_id, file_name="msg1.txt", mime_type="text/plain", file_size=len(raw)
    )
    await bot.wait_for_text(WRITER, "already have that transcript")
    notes = await notes_in_db(tmp_path)
    assert len(notes) == 1 and [p.text for p in notes[0].parts] == [
        "Начнём с двух коротких романов.",
        "Каждый приносит что-то небольшое.",
    ]


async def test_moving_in_a_one_section_article_explains_instead_of_offering_nothing(
    bot: FakeTelegram,
) -> None:
    await say(bot, "/new Solo", "Solo")
    await say(bot, "Only one section here.", "Filed under")
    await say(bot, "/notes", "1. Notes")
    await press(bot, bot.sent_messages(WRITER)[-1], "↪️ 1")
    answer = await bot.wait_for(lambda: next(iter(bot.calls("answerCallbackQuery")), None))
    assert "only one section" in answer.params["text"]
    assert not any("to which section?" in m.text for m in bot.sent_messages(WRITER))


async def test_notes_pages_through_a_long_section(bot: FakeTelegram) -> None:
    for n in range(1, 26):
        await say(bot, f"Thought number {n}.", "Filed under")
    listing_text = await say(bot, "/notes", "2. Meeting times")
    assert "Notes 6–25" in listing_text and "Thought number 25." in listing_text
    assert "Thought number 5." not in listing_text
    listing = bot.sent_messages(WRITER)[-1]
    labels = [label for label, _ in buttons(listing)]
    assert labels.count("◀️ Earlier") == 1 and "Later ▶️" not in labels
    assert len(labels) == 2 * 20 + 1
    await press(bot, listing, "◀️ Earlier")
    earlier = await bot.wait_for(
        lambda: next(
            (
                m
                for m in bot.sent_messages(WRITER)
                if m.message_id == listing.message_id and "Notes 1–20" in m.text
            ),
            None,
        )
    )
    assert "Thought number 1." in earlier.text and "Later ▶️" in [b for b, _ in buttons(earlier)]


async def test_a_video_file_is_transcribed_like_a_voice_note(
    bot: FakeTelegram, tmp_path: Path
) -> None:
    data = (AUDIO / "book_club.ogg").read_bytes()
    bot.enqueue_raw(
        {
            "message": {
                "message_id": 777,
                "date": 0,
                "chat": {"id": WRITER, "type": "private"},
                "from": {"id": WRITER, "is_bot": False, "first_name": "Writer"},
                "video": {
                    "file_id": bot.add_file(data),
                    "file_unique_id": "vid-1",
                    "width": 640,
                    "height": 360,
                    "duration": 5,
                    "file_size": len(data),
                },
            }
        }
    )
    await bot.wait_for_text(WRITER, "book club meets", timeout=60)
    assert [n.kind.value for n in await notes_in_db(tmp_path)] == ["video"]
