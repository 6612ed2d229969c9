"""Talking to Telegram safely: limits, parse errors, flood control, blocked chats."""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
from pathlib import Path

from telegram import Bot, InlineKeyboardMarkup, InputFile, Message
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from bot.domain import TranscriptionOutcome
from bot.render import SAFE_MESSAGE_LIMIT, html_to_plain, split_plain, utf16_len
from bot.services.transcription_jobs import DownloadError
from bot.telegram import texts

log = logging.getLogger(__name__)

MAX_FLOOD_WAITS = 3
MAX_FLOOD_WAIT_S = 60.0


def _seconds(value: int | dtm.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def _is_parse_error(exc: BadRequest) -> bool:
    return "can't parse entities" in exc.message.lower() or "can't find end" in exc.message.lower()


class ChatGone(Exception):
    """The writer blocked the bot or the chat no longer exists: stop talking to it."""


class TelegramChat:
    """Sends and edits messages; every call goes through the same safety net."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def _call(self, factory: object) -> Message | bool:
        """Run a Bot API call, waiting out flood control a few times."""
        assert callable(factory)
        for _ in range(MAX_FLOOD_WAITS):
            try:
                result: Message | bool = await factory()
                return result
            except RetryAfter as exc:
                wait = min(_seconds(exc.retry_after), MAX_FLOOD_WAIT_S)
                log.warning("Telegram flood control: waiting %.0f s", wait)
                await asyncio.sleep(wait)
            except Forbidden as exc:
                raise ChatGone() from exc
        result = await factory()
        return result

    async def send(
        self,
        chat_id: int,
        html: str,
        *,
        reply_to: int | None = None,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> Message | None:
        """Send HTML, split to Telegram's limit; returns the first message sent."""
        first: Message | None = None
        chunks = split_html(html)
        for index, chunk in enumerate(chunks):
            markup = reply_markup if index == len(chunks) - 1 else None
            message = await self._send_one(chat_id, chunk, reply_to if index == 0 else None, markup)
            first = first or message
        return first

    async def _send_one(
        self,
        chat_id: int,
        html: str,
        reply_to: int | None,
        markup: InlineKeyboardMarkup | None,
    ) -> Message | None:
        async def send(text: str, parse_mode: str | None) -> Message | bool:
            return await self.bot.send_message(
                chat_id,
                text,
                parse_mode=parse_mode,
                reply_to_message_id=reply_to,
                reply_markup=markup,
                allow_sending_without_reply=True,
                disable_web_page_preview=True,
            )

        try:
            try:
                result = await self._call(lambda: send(html, ParseMode.HTML))
            except BadRequest as exc:
                if not _is_parse_error(exc):
                    raise
                # Not a network error: retrying the same text would fail the same way.
                log.warning("Telegram rejected our HTML; sending plain text instead")
                result = await self._call(lambda: send(html_to_plain(html), None))
        except ChatGone:
            log.info("Chat %s blocked the bot; message dropped", chat_id)
            return None
        return result if isinstance(result, Message) else None

    async def edit(
        self,
        chat_id: int,
        message_id: int,
        html: str,
        *,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> None:
        """Edit a message; text beyond one message continues in new messages."""
        chunks = split_html(html)

        async def edit(text: str, parse_mode: str | None) -> Message | bool:
            return await self.bot.edit_message_text(
                text,
                chat_id=chat_id,
                message_id=message_id,
                parse_mode=parse_mode,
                reply_markup=reply_markup if len(chunks) == 1 else None,
                disable_web_page_preview=True,
            )

        try:
            try:
                await self._call(lambda: edit(chunks[0], ParseMode.HTML))
            except BadRequest as exc:
                if "message is not modified" in exc.message.lower():
                    pass
                elif _is_parse_error(exc):
                    await self._call(lambda: edit(html_to_plain(chunks[0]), None))
                else:
                    # The message may be gone or too old to edit: say it anew instead.
                    log.info("Could not edit message %s: %s", message_id, exc.message)
                    await self.send(chat_id, "\n\n".join(chunks), reply_markup=reply_markup)
                    return
        except ChatGone:
            log.info("Chat %s blocked the bot; edit dropped", chat_id)
            return
        for index, chunk in enumerate(chunks[1:], start=1):
            await self._send_one(
                chat_id, chunk, None, reply_markup if index == len(chunks) - 1 else None
            )

    async def send_document(
        self, chat_id: int, filename: str, content: bytes, caption: str = ""
    ) -> None:
        try:
            await self._call(
                lambda: self.bot.send_document(
                    chat_id,
                    InputFile(content, filename=filename),
                    caption=caption or None,
                    parse_mode=ParseMode.HTML,
                )
            )
        except ChatGone:
            log.info("Chat %s blocked the bot; document dropped", chat_id)


def split_html(html: str, limit: int = SAFE_MESSAGE_LIMIT) -> list[str]:
    """Split our own HTML at paragraph breaks; a tag never spans two paragraphs."""
    if utf16_len(html) <= limit:
        return [html]
    chunks: list[str] = []
    for paragraph in html.split("\n\n"):
        pieces = [paragraph] if utf16_len(paragraph) <= limit else split_plain(paragraph, limit)
        for piece in pieces:
            if chunks and utf16_len(chunks[-1]) + 2 + utf16_len(piece) <= limit:
                chunks[-1] = f"{chunks[-1]}\n\n{piece}"
            else:
                chunks.append(piece)
    return chunks


class TelegramAudioSource:
    """Downloads recordings through the Bot API (getFile, then the file URL)."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def download(self, file_id: str, destination: Path) -> None:
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            telegram_file = await self.bot.get_file(file_id)
            await telegram_file.download_to_drive(destination)
        except BadRequest as exc:
            # "file is too big", "invalid file_id": asking again will not help.
            raise DownloadError(exc.message, permanent=True) from exc
        except (TimedOut, NetworkError, RetryAfter) as exc:
            raise DownloadError(type(exc).__name__) from exc
        except OSError as exc:
            raise DownloadError(f"cannot write audio: {type(exc).__name__}") from exc


class TelegramNotifier:
    """Tells the writer how transcriptions went, editing the acknowledgement in place."""

    def __init__(self, chat: TelegramChat) -> None:
        self.chat = chat

    async def deliver(self, outcome: TranscriptionOutcome) -> None:
        text = texts.transcription_done(outcome)
        if outcome.ack_message_id is not None:
            await self.chat.edit(outcome.chat_id, outcome.ack_message_id, text)
        else:
            await self.chat.send(outcome.chat_id, text)

    async def progress(self, chat_id: int, ack_message_id: int, percent: int) -> None:
        try:
            await self.chat.edit(chat_id, ack_message_id, texts.progress(percent))
        except Exception:  # progress is a courtesy; never let it break the job
            log.debug("Progress update failed", exc_info=True)
