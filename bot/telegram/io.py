"""Talking to Telegram safely: limits, parse errors, flood control, blocked chats."""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path

from telegram import Bot, InlineKeyboardMarkup, InputFile, Message
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from bot.notes.transcribe import DownloadError
from bot.render import html_to_plain, split_html
from bot.telegram import texts

log = logging.getLogger(__name__)

BOT_UPLOAD_LIMIT = 50 * 1024 * 1024 - 64 * 1024  # minus room for the multipart envelope
MAX_FLOOD_WAITS = 3
# Messages whose last shown content is remembered (an edit to the same content is skipped).
REMEMBERED_MESSAGES = 4096
MAX_FLOOD_WAIT_S = 60.0


def seconds(value: int | dtm.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def _content(html: str, markup: InlineKeyboardMarkup | None) -> tuple[str, str | None]:
    return html, markup.to_json() if markup is not None else None


def _is_parse_error(exc: BadRequest) -> bool:
    return "can't parse entities" in exc.message.lower() or "can't find end" in exc.message.lower()


class ChatGone(Exception):
    """The writer blocked the bot or the chat no longer exists: stop talking to it."""


class TelegramChat:
    """Sends and edits messages; every call goes through the same safety net."""

    def __init__(self, bot: Bot, *, flood_waits: int = MAX_FLOOD_WAITS) -> None:
        """`flood_waits`: how often a direct reply waits out flood control before it gives up."""
        self.bot = bot
        self._flood_waits = flood_waits
        # (chat, message) -> what it shows, as this process last sent or edited it. The same
        # note card can be delivered twice in a row with the same content (its state changed
        # between reading an outbox row and loading the card); Telegram refuses such an edit
        # ("message is not modified") and it spends the chat's edit budget, so it is skipped.
        # Lost at a restart: then one edit too many, at worst.
        self._showing: OrderedDict[tuple[int, int], tuple[str, str | None]] = OrderedDict()

    def _remember(self, chat_id: int, message_id: int, content: tuple[str, str | None]) -> None:
        self._showing[(chat_id, message_id)] = content
        self._showing.move_to_end((chat_id, message_id))
        while len(self._showing) > REMEMBERED_MESSAGES:
            self._showing.popitem(last=False)

    async def _call(
        self, factory: Callable[[], Awaitable[Message | bool]], *, wait_floods: bool = True
    ) -> Message | bool:
        """Run a Bot API call. With `wait_floods`, flood control is waited out a few times
        (a direct reply in the chat's own lane); without, RetryAfter reaches the caller,
        who schedules the retry (the outbox)."""
        for attempt in range(self._flood_waits + 1):
            try:
                return await factory()
            except RetryAfter as exc:
                if not wait_floods or attempt == self._flood_waits:
                    raise
                wait = min(seconds(exc.retry_after), MAX_FLOOD_WAIT_S)
                log.warning("Telegram flood control: waiting %.0f s", wait)
                await asyncio.sleep(wait)
            except Forbidden as exc:
                # Also on the last attempt after flood waits: a blocked chat is never an error.
                raise ChatGone() from exc
            except BadRequest as exc:
                if "chat not found" in exc.message.lower():
                    raise ChatGone() from exc
                raise
        raise AssertionError("unreachable")

    async def send(
        self,
        chat_id: int,
        html: str,
        *,
        reply_to: int | None = None,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> Message | None:
        """Send HTML, split to Telegram's limit; returns the first message sent (None when
        the chat blocked the bot)."""
        first: Message | None = None
        chunks = split_html(html)
        try:
            for index, chunk in enumerate(chunks):
                markup = reply_markup if index == len(chunks) - 1 else None
                message = await self.send_one(
                    chat_id, chunk, reply_to=reply_to if index == 0 else None, markup=markup
                )
                first = first or message
        except ChatGone:
            log.info("Chat %s blocked the bot; message dropped", chat_id)
        return first

    async def send_one(
        self,
        chat_id: int,
        html: str,
        *,
        reply_to: int | None = None,
        markup: InlineKeyboardMarkup | None = None,
        wait_floods: bool = True,
    ) -> Message:
        """Send one message of HTML (within the limit); HTML Telegram cannot parse is sent as
        plain text. Raises ChatGone, and TelegramError for what the caller must decide."""

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
            result = await self._call(lambda: send(html, ParseMode.HTML), wait_floods=wait_floods)
        except BadRequest as exc:
            if not _is_parse_error(exc):
                raise
            # Not a network error: retrying the same text would fail the same way.
            log.warning("Telegram rejected our HTML; sending plain text instead")
            result = await self._call(
                lambda: send(html_to_plain(html), None), wait_floods=wait_floods
            )
        assert isinstance(result, Message)
        self._remember(chat_id, result.message_id, _content(html, markup))
        return result

    async def edit_one(
        self,
        chat_id: int,
        message_id: int,
        html: str,
        *,
        markup: InlineKeyboardMarkup | None = None,
        wait_floods: bool = True,
    ) -> bool:
        """Edit one message to show HTML (within the limit). False when the message cannot be
        edited any more (deleted, too old): the caller sends it anew. Raises ChatGone, and
        TelegramError for what the caller must decide."""

        content = _content(html, markup)
        if self._showing.get((chat_id, message_id)) == content:
            return True

        async def edit(text: str, parse_mode: str | None) -> Message | bool:
            return await self.bot.edit_message_text(
                text,
                chat_id=chat_id,
                message_id=message_id,
                parse_mode=parse_mode,
                reply_markup=markup,
                disable_web_page_preview=True,
            )

        try:
            try:
                await self._call(lambda: edit(html, ParseMode.HTML), wait_floods=wait_floods)
            except BadRequest as exc:
                if not _is_parse_error(exc):
                    raise
                await self._call(lambda: edit(html_to_plain(html), None), wait_floods=wait_floods)
        except BadRequest as exc:
            text = exc.message.lower()
            if "message is not modified" in text:
                self._remember(chat_id, message_id, content)
                return True
            if "message to edit not found" in text or "can't be edited" in text:
                log.info("Could not edit message %s: %s", message_id, exc.message)
                return False
            raise
        self._remember(chat_id, message_id, content)
        return True

    async def edit(
        self,
        chat_id: int,
        message_id: int,
        html: str,
        *,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> None:
        """Edit a message (a direct reply to a button); text beyond one message continues in
        new messages, and a message that cannot be edited is sent anew."""
        chunks = split_html(html)
        try:
            edited = await self.edit_one(
                chat_id,
                message_id,
                chunks[0],
                markup=reply_markup if len(chunks) == 1 else None,
            )
            if not edited:
                await self.send(chat_id, "\n\n".join(chunks), reply_markup=reply_markup)
                return
            for index, chunk in enumerate(chunks[1:], start=1):
                await self.send_one(
                    chat_id, chunk, markup=reply_markup if index == len(chunks) - 1 else None
                )
        except ChatGone:
            log.info("Chat %s blocked the bot; edit dropped", chat_id)

    async def download_bytes(self, file_id: str) -> bytes:
        """A small file from the chat, in memory; DownloadError when it cannot be had."""
        try:
            telegram_file = await self.bot.get_file(file_id)
            return bytes(await telegram_file.download_as_bytearray())
        except (TelegramError, RuntimeError) as exc:
            raise DownloadError(type(exc).__name__) from exc

    async def send_document(
        self, chat_id: int, filename: str, content: bytes, caption: str = ""
    ) -> None:
        if len(content) > BOT_UPLOAD_LIMIT:
            # Bots may upload at most 50 MB; say so instead of failing at Telegram.
            await self.send(chat_id, texts.file_too_big_to_send(filename, len(content)))
            return

        async def send(caption_text: str, parse_mode: str | None) -> Message | bool:
            return await self.bot.send_document(
                chat_id,
                InputFile(content, filename=filename),
                caption=caption_text or None,
                parse_mode=parse_mode if caption_text else None,
            )

        try:
            try:
                await self._call(lambda: send(caption, ParseMode.HTML))
            except BadRequest as exc:
                if not caption or not _is_parse_error(exc):
                    raise
                log.warning("Telegram rejected our caption HTML; sending it as plain text")
                await self._call(lambda: send(html_to_plain(caption), None))
        except ChatGone:
            log.info("Chat %s blocked the bot; document dropped", chat_id)


class TelegramAudioSource:
    """Downloads recordings through the Bot API (getFile, then the file URL)."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def download(self, file_id: str, destination: Path) -> None:
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            telegram_file = await self.bot.get_file(file_id)
            if not telegram_file.file_path:
                # PTB would raise RuntimeError; without a path the file is never downloadable.
                raise DownloadError("Telegram gave no file_path", permanent=True)
            await telegram_file.download_to_drive(destination)
        except BadRequest as exc:
            # "file is too big", "invalid file_id": asking again will not help.
            raise DownloadError(exc.message, permanent=True) from exc
        except (TimedOut, NetworkError, RetryAfter) as exc:
            raise DownloadError(type(exc).__name__) from exc
        except InvalidToken as exc:
            # The file URL answered 404 (file paths expire after an hour): getFile again.
            raise DownloadError(f"file URL failed: {exc.message}") from exc
        except TelegramError as exc:
            raise DownloadError(f"{type(exc).__name__}: {exc.message}") from exc
        except OSError as exc:
            raise DownloadError(f"cannot write audio: {type(exc).__name__}") from exc
