"""TelegramChat and TelegramAudioSource against the fake Bot API, over real HTTP."""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, RetryAfter

from bot.notes.transcribe import DownloadError
from bot.render import TELEGRAM_MESSAGE_LIMIT, escape, html_to_plain, split_html, utf16_len
from bot.telegram.io import TelegramAudioSource, TelegramChat
from tests.fakes.telegram_server import FakeTelegram, check_html

CHAT = 1001
PARSE_ERROR = "Bad Request: can't parse entities: Can't find end tag corresponding to start tag"
WORD = re.compile(r"[^\W_]+")


def _bot(server: FakeTelegram, file_base_url: str | None = None) -> Bot:
    return Bot(
        token=server.token,
        base_url=server.base_url,
        base_file_url=file_base_url or server.file_base_url,
    )


@pytest.fixture
async def bot(telegram: FakeTelegram) -> AsyncIterator[Bot]:
    async with _bot(telegram) as real_bot:
        yield real_bot


@pytest.fixture
def chat(bot: Bot) -> TelegramChat:
    return TelegramChat(bot)


def _ok_calls(server: FakeTelegram, method: str) -> list[object]:
    return [c for c in server.calls(method) if c.error_code is None]


def _keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton("Go", callback_data="go")]])


def _long_html(paragraphs: int = 15) -> str:
    return "\n\n".join(
        f"<b>Part {n}</b> " + escape(f"Tom & Jerry <{n}> said words number {n} ") * 15
        for n in range(paragraphs)
    )


# ---------------------------------------------------------------------------------------------
# send
# ---------------------------------------------------------------------------------------------


async def test_send_delivers_html(chat: TelegramChat, telegram: FakeTelegram) -> None:
    telegram.reject_markdown(True)
    message = await chat.send(CHAT, "<b>Hello</b> &amp; welcome", reply_markup=_keyboard())
    assert message is not None
    [sent] = telegram.sent_messages(CHAT)
    assert sent.message_id == message.message_id
    assert sent.text == "<b>Hello</b> &amp; welcome"
    assert sent.parse_mode == "HTML"
    assert sent.reply_markup is not None


async def test_parse_error_falls_back_to_plain_text_once(
    chat: TelegramChat, telegram: FakeTelegram
) -> None:
    telegram.fail_next("sendMessage", error_code=400, description=PARSE_ERROR)

    message = await chat.send(CHAT, "<b>Tom</b> &amp; <i>Jerry</i> &lt;3")

    assert message is not None
    [sent] = telegram.sent_messages(CHAT)
    assert sent.text == "Tom & Jerry <3"
    assert sent.parse_mode is None
    calls = telegram.calls("sendMessage")
    assert len(calls) == 2
    assert calls[0].error_code == 400
    assert calls[0].params.get("parse_mode") == "HTML"
    assert "parse_mode" not in calls[1].params
    assert sum(c.params.get("parse_mode") == "HTML" for c in calls) == 1


async def test_really_broken_html_is_sent_as_plain_text(
    chat: TelegramChat, telegram: FakeTelegram
) -> None:
    telegram.reject_markdown(True)
    assert await chat.send(CHAT, "<b>never closed, 2 &amp; 3") is not None
    assert telegram.sent_texts(CHAT) == ["never closed, 2 & 3"]
    assert len(telegram.calls("sendMessage")) == 2


async def test_other_bad_requests_are_not_mistaken_for_parse_errors(
    chat: TelegramChat, telegram: FakeTelegram
) -> None:
    telegram.fail_next("sendMessage", error_code=400, description="Bad Request: message is empty")
    with pytest.raises(BadRequest):
        await chat.send(CHAT, "<b>hi</b>")
    assert len(telegram.calls("sendMessage")) == 1


async def test_retry_after_is_honoured(chat: TelegramChat, telegram: FakeTelegram) -> None:
    telegram.fail_next(
        "sendMessage",
        error_code=429,
        description="Too Many Requests: retry after 1",
        retry_after=1,
    )
    started = time.monotonic()

    message = await chat.send(CHAT, "<b>after the wait</b>")

    assert message is not None
    assert time.monotonic() - started >= 0.95
    calls = telegram.calls("sendMessage")
    assert len(calls) == 2
    assert calls[1].time - calls[0].time >= 0.95
    assert telegram.sent_texts(CHAT) == ["<b>after the wait</b>"]


async def test_flood_control_gives_up_after_a_few_waits(
    bot: Bot, telegram: FakeTelegram
) -> None:
    chat = TelegramChat(bot, flood_waits=1)
    telegram.fail_next(
        "sendMessage", error_code=429, description="Too Many Requests", retry_after=1, times=2
    )
    with pytest.raises(RetryAfter):
        await chat.send(CHAT, "never")
    assert len(telegram.calls("sendMessage")) == 2
    assert telegram.sent_texts(CHAT) == []


async def test_blocked_after_a_flood_wait_is_still_dropped_quietly(
    bot: Bot, telegram: FakeTelegram
) -> None:
    # The last attempt after the flood waits used to run outside the Forbidden handling.
    chat = TelegramChat(bot, flood_waits=1)
    telegram.fail_next("sendMessage", error_code=429, description="Too Many", retry_after=1)
    telegram.fail_next(
        "sendMessage", error_code=403, description="Forbidden: bot was blocked by the user"
    )
    assert await chat.send(CHAT, "hello") is None
    assert len(telegram.calls("sendMessage")) == 2


async def test_forbidden_is_dropped_quietly(chat: TelegramChat, telegram: FakeTelegram) -> None:
    telegram.fail_next(
        "sendMessage", error_code=403, description="Forbidden: bot was blocked by the user"
    )
    assert await chat.send(CHAT, "<b>hello</b>") is None
    assert len(telegram.calls("sendMessage")) == 1
    assert telegram.sent_texts(CHAT) == []


async def test_chat_not_found_is_dropped_quietly(
    chat: TelegramChat, telegram: FakeTelegram
) -> None:
    telegram.fail_next("sendMessage", error_code=400, description="Bad Request: chat not found")
    assert await chat.send(CHAT, "hello") is None
    assert len(telegram.calls("sendMessage")) == 1


async def test_long_send_is_split_into_valid_messages(
    chat: TelegramChat, telegram: FakeTelegram
) -> None:
    telegram.reject_markdown(True)  # any invalid chunk would come back as a parse error
    html = _long_html()
    assert utf16_len(html) > 2 * TELEGRAM_MESSAGE_LIMIT

    first = await chat.send(CHAT, html, reply_to=7, reply_markup=_keyboard())

    sent = telegram.sent_messages(CHAT)
    assert first is not None and first.message_id == sent[0].message_id
    assert len(sent) >= 3
    assert all(m.parse_mode == "HTML" for m in sent)  # no chunk needed the plain fallback
    assert all(utf16_len(m.text) <= TELEGRAM_MESSAGE_LIMIT for m in sent)
    assert [m.reply_markup is not None for m in sent] == [False] * (len(sent) - 1) + [True]
    plain = " ".join(html_to_plain(m.text) for m in sent)
    assert WORD.findall(plain) == WORD.findall(html_to_plain(html))


async def test_long_escaped_transcript_is_split_without_breaking_entities(
    chat: TelegramChat, telegram: FakeTelegram
) -> None:
    # One paragraph, no spaces: a hard cut used to fall inside "&amp;" or inside a tag.
    telegram.reject_markdown(True)
    transcript = "&<>" * 3000
    html = f"✅ Filed under <b>1. Intro</b>:\n\n<i>{escape(transcript)}</i>"

    await chat.send(CHAT, html)

    sent = telegram.sent_messages(CHAT)
    assert len(sent) >= 3
    assert all(m.parse_mode == "HTML" for m in sent)
    assert "".join(html_to_plain(m.text) for m in sent[1:]) == transcript


# ---------------------------------------------------------------------------------------------
# edit
# ---------------------------------------------------------------------------------------------


async def test_edit_of_a_long_text_edits_then_continues(
    chat: TelegramChat, telegram: FakeTelegram
) -> None:
    telegram.reject_markdown(True)
    ack = await chat.send(CHAT, "Transcribing…")
    assert ack is not None
    html = _long_html(13)
    assert 8500 < len(html) < 10_000

    await chat.edit(CHAT, ack.message_id, html, reply_markup=_keyboard())

    sent = telegram.sent_messages(CHAT)
    assert len(telegram.calls("editMessageText")) == 1
    assert sent[0].message_id == ack.message_id
    assert sent[0].edits and sent[0].text.startswith("<b>Part 0</b>")
    assert len(sent) >= 3
    assert all(utf16_len(m.text) <= TELEGRAM_MESSAGE_LIMIT for m in sent)
    assert all(check_html(m.text) is None and m.parse_mode == "HTML" for m in sent)
    assert sent[0].reply_markup is None and sent[-1].reply_markup is not None
    plain = " ".join(html_to_plain(m.text) for m in sent)
    assert WORD.findall(plain) == WORD.findall(html_to_plain(html))


async def test_edit_of_a_9000_character_plain_text(
    chat: TelegramChat, telegram: FakeTelegram
) -> None:
    ack = await chat.send(CHAT, "Transcribing…")
    assert ack is not None
    text = " ".join(f"word{n}" for n in range(1500))[:9000]

    await chat.edit(CHAT, ack.message_id, text)

    sent = telegram.sent_messages(CHAT)
    assert len(sent) == 3
    assert sent[0].edits == [sent[0].text]
    assert all(len(m.text) <= TELEGRAM_MESSAGE_LIMIT for m in sent)
    assert " ".join(m.text for m in sent).split() == text.split()


async def test_edit_not_modified_is_swallowed(chat: TelegramChat, telegram: FakeTelegram) -> None:
    ack = await chat.send(CHAT, "<b>Same</b>")
    assert ack is not None
    # Another process (or this one before a restart) sent it: this chat has no memory of it.
    fresh = TelegramChat(chat.bot)
    await fresh.edit(CHAT, ack.message_id, "<b>Same</b>")
    [call] = telegram.calls("editMessageText")
    assert call.error_code == 400
    assert len(telegram.sent_messages(CHAT)) == 1
    # Now it knows what the message shows: the same edit is not even asked for.
    await fresh.edit(CHAT, ack.message_id, "<b>Same</b>")
    assert len(telegram.calls("editMessageText")) == 1


async def test_edit_parse_error_falls_back_to_plain(
    chat: TelegramChat, telegram: FakeTelegram
) -> None:
    ack = await chat.send(CHAT, "Working")
    assert ack is not None
    telegram.fail_next("editMessageText", error_code=400, description=PARSE_ERROR)
    await chat.edit(CHAT, ack.message_id, "<b>Done</b> &amp; dusted")
    assert telegram.sent_texts(CHAT) == ["Done & dusted"]
    assert len(telegram.calls("editMessageText")) == 2


async def test_edit_of_a_vanished_message_sends_anew(
    chat: TelegramChat, telegram: FakeTelegram
) -> None:
    await chat.edit(CHAT, 999, "<b>Result</b>")
    assert telegram.sent_texts(CHAT) == ["<b>Result</b>"]


async def test_edit_in_a_blocked_chat_is_dropped(
    chat: TelegramChat, telegram: FakeTelegram
) -> None:
    ack = await chat.send(CHAT, "Working")
    assert ack is not None
    telegram.fail_next(
        "editMessageText", error_code=403, description="Forbidden: bot was blocked by the user"
    )
    await chat.edit(CHAT, ack.message_id, "Done")
    assert telegram.sent_texts(CHAT) == ["Working"]


# ---------------------------------------------------------------------------------------------
# send_document
# ---------------------------------------------------------------------------------------------


async def test_send_document_uploads_bytes_intact(
    chat: TelegramChat, telegram: FakeTelegram
) -> None:
    content = os.urandom(200_000) + "\n# Draft — naïve 🎙️\n".encode() + bytes(range(256))

    await chat.send_document(CHAT, "draft.md", content, "The <b>latest</b> draft.")

    [call] = telegram.sent_documents(CHAT)
    assert call.params["document"] == content
    assert call.params["document_filename"] == "draft.md"
    assert call.params["caption"] == "The <b>latest</b> draft."
    assert call.params["parse_mode"] == "HTML"


async def test_send_document_without_caption(chat: TelegramChat, telegram: FakeTelegram) -> None:
    await chat.send_document(CHAT, "notes.md", b"# Notes\n")
    [call] = telegram.sent_documents(CHAT)
    assert call.params["document"] == b"# Notes\n"
    assert "caption" not in call.params


async def test_send_document_survives_flood_control(
    chat: TelegramChat, telegram: FakeTelegram
) -> None:
    content = os.urandom(50_000)
    telegram.fail_next("sendDocument", error_code=429, description="Too Many", retry_after=1)
    await chat.send_document(CHAT, "draft.md", content)
    assert len(telegram.calls("sendDocument")) == 2
    [call] = telegram.sent_documents(CHAT)
    assert call.params["document"] == content


async def test_send_document_caption_parse_error_falls_back_to_plain(
    chat: TelegramChat, telegram: FakeTelegram
) -> None:
    telegram.reject_markdown(True)
    await chat.send_document(CHAT, "draft.md", b"body", "<b>unclosed &amp; caption")
    [call] = telegram.sent_documents(CHAT)
    assert call.params["document"] == b"body"
    assert call.params["caption"] == "unclosed & caption"
    assert "parse_mode" not in call.params


async def test_send_document_to_a_blocked_chat_is_dropped(
    chat: TelegramChat, telegram: FakeTelegram
) -> None:
    telegram.fail_next(
        "sendDocument", error_code=403, description="Forbidden: bot was blocked by the user"
    )
    await chat.send_document(CHAT, "draft.md", b"body")
    assert len(telegram.calls("sendDocument")) == 1


# ---------------------------------------------------------------------------------------------
# split_html
# ---------------------------------------------------------------------------------------------


def test_split_html_short_text_is_untouched() -> None:
    assert split_html("<b>a</b>\n\nb") == ["<b>a</b>\n\nb"]


def test_split_html_packs_whole_paragraphs() -> None:
    paragraphs = [f"<i>{n}</i> " + "x" * 1500 for n in range(6)]
    chunks = split_html("\n\n".join(paragraphs))
    assert chunks == [
        "\n\n".join(paragraphs[0:2]),
        "\n\n".join(paragraphs[2:4]),
        "\n\n".join(paragraphs[4:6]),
    ]


def test_split_html_reopens_tags_across_a_cut() -> None:
    html = '<a href="https://e.com/?a=1&amp;b=2"><b>' + "bold link words " * 600 + "</b></a>"
    chunks = split_html(html, 4000)
    assert len(chunks) >= 3
    for chunk in chunks:
        assert check_html(chunk) is None, chunk[:80]
        assert utf16_len(chunk) <= 4000
        assert chunk.startswith('<a href="https://e.com/?a=1&amp;b=2"><b>')
        assert chunk.endswith("</b></a>")
    assert " ".join(html_to_plain(c) for c in chunks).split() == html_to_plain(html).split()


def test_split_html_never_cuts_an_entity_or_counts_emoji_once() -> None:
    html = "&amp;🎙️" * 3000  # no breaks anywhere: hard cuts only
    chunks = split_html(html, 999)
    assert all(utf16_len(c) <= 999 and check_html(c) is None for c in chunks)
    assert "".join(chunks) == html


# ---------------------------------------------------------------------------------------------
# TelegramAudioSource
# ---------------------------------------------------------------------------------------------


async def test_download_is_byte_identical(bot: Bot, telegram: FakeTelegram, tmp_path: Path) -> None:
    data = b"OggS" + os.urandom(300_000)
    file_id = telegram.add_file(data)
    destination = tmp_path / "audio" / "nested" / "note-1.part"

    await TelegramAudioSource(bot).download(file_id, destination)

    assert destination.read_bytes() == data
    assert [c.params["file_id"] for c in telegram.calls("getFile")] == [file_id]


async def test_download_of_a_too_big_file_is_permanent(
    bot: Bot, telegram: FakeTelegram, tmp_path: Path
) -> None:
    file_id = telegram.add_file(b"OggS" + b"\x00" * 100)
    telegram.fail_get_file(file_id, description="Bad Request: file is too big")
    with pytest.raises(DownloadError) as caught:
        await TelegramAudioSource(bot).download(file_id, tmp_path / "a.part")
    assert caught.value.permanent is True
    assert "too big" in str(caught.value).lower()
    assert not (tmp_path / "a.part").exists()


async def test_download_of_an_unknown_file_is_permanent(bot: Bot, tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as caught:
        await TelegramAudioSource(bot).download("NO-SUCH-FILE", tmp_path / "a.part")
    assert caught.value.permanent is True


async def test_download_without_file_path_is_a_permanent_download_error(
    bot: Bot, telegram: FakeTelegram, tmp_path: Path
) -> None:
    # PTB raises RuntimeError for this; it used to escape as a crash of the job.
    file_id = telegram.add_file(b"OggS" + b"\x01" * 100)
    telegram.remove_file_path(file_id)
    with pytest.raises(DownloadError) as caught:
        await TelegramAudioSource(bot).download(file_id, tmp_path / "a.part")
    assert caught.value.permanent is True


async def test_download_server_error_is_transient(
    bot: Bot, telegram: FakeTelegram, tmp_path: Path
) -> None:
    file_id = telegram.add_file(b"OggS" + b"\x02" * 100)
    telegram.fail_next("getFile", error_code=502, description="Bad Gateway")
    with pytest.raises(DownloadError) as caught:
        await TelegramAudioSource(bot).download(file_id, tmp_path / "a.part")
    assert caught.value.permanent is False
    await TelegramAudioSource(bot).download(file_id, tmp_path / "a.part")  # the retry works
    assert (tmp_path / "a.part").read_bytes() == b"OggS" + b"\x02" * 100


async def test_failed_file_url_is_a_transient_download_error(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    # The file URL answering 401/404 made PTB raise InvalidToken, which escaped as a crash.
    file_id = telegram.add_file(b"OggS" + b"\x03" * 100)
    async with _bot(telegram, file_base_url=telegram.file_base_url + "gone/") as broken:
        with pytest.raises(DownloadError) as caught:
            await TelegramAudioSource(broken).download(file_id, tmp_path / "a.part")
    assert caught.value.permanent is False


async def test_file_over_the_upload_limit_is_explained_not_sent(
    chat: TelegramChat, telegram: FakeTelegram
) -> None:
    await chat.send_document(CHAT, "huge-notes.md", b"x" * (51 * 1024 * 1024))
    assert not telegram.calls("sendDocument")
    [message] = telegram.sent_messages(CHAT)
    assert "huge-notes.md is 51 MB" in message.text and "50 MB" in message.text
