"""Talking to Telegram safely: limits, parse errors, flood control, blocked chats."""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
import re
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
from bot.render import SAFE_MESSAGE_LIMIT, html_to_plain, utf16_len
from bot.telegram import texts

log = logging.getLogger(__name__)

BOT_UPLOAD_LIMIT = 50 * 1024 * 1024 - 64 * 1024  # minus room for the multipart envelope
MAX_FLOOD_WAITS = 3
MAX_FLOOD_WAIT_S = 60.0


def seconds(value: int | dtm.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def _is_parse_error(exc: BadRequest) -> bool:
    return "can't parse entities" in exc.message.lower() or "can't find end" in exc.message.lower()


class ChatGone(Exception):
    """The writer blocked the bot or the chat no longer exists: stop talking to it."""


class TelegramChat:
    """Sends and edits messages; every call goes through the same safety net."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def _call(
        self, factory: Callable[[], Awaitable[Message | bool]], *, wait_floods: bool = True
    ) -> Message | bool:
        """Run a Bot API call. With `wait_floods`, flood control is waited out a few times
        (a direct reply in the chat's own lane); without, RetryAfter reaches the caller,
        who schedules the retry (the outbox)."""
        for attempt in range(MAX_FLOOD_WAITS + 1):
            try:
                return await factory()
            except RetryAfter as exc:
                if not wait_floods or attempt == MAX_FLOOD_WAITS:
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
                return True
            if "message to edit not found" in text or "can't be edited" in text:
                log.info("Could not edit message %s: %s", message_id, exc.message)
                return False
            raise
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


_HTML_ATOM = re.compile(r"<[^<>]*>|&#?\w+;|[\s\S]")
_HTML_TAG = re.compile(r"<(/?)([a-zA-Z][\w-]*)")
_OpenTags = tuple[tuple[str, str], ...]  # (name, opening tag as written), outermost first


def split_html(html: str, limit: int = SAFE_MESSAGE_LIMIT) -> list[str]:
    """Split Telegram HTML under limit, preferring paragraph, line, sentence, word breaks.

    A cut never falls inside a tag or a character entity, and tags open at a cut are closed
    at the end of the chunk and opened again at the start of the next one, so every chunk is
    valid HTML on its own.
    """
    if utf16_len(html) <= limit:
        return [html]
    atoms = _HTML_ATOM.findall(html)
    chunks: list[str] = []
    carried: _OpenTags = ()
    start = 0
    while True:
        while start < len(atoms) and atoms[start].isspace():
            start += 1
        if start >= len(atoms):
            return chunks
        prefix = "".join(tag for _, tag in carried)
        size = utf16_len(prefix)
        stacks = [carried]  # stacks[k]: tags open after atoms[start : start + k]
        breaks: dict[int, int] = {}  # break rank -> atom index just after the latest break
        end = start
        while end < len(atoms):
            atom = atoms[end]
            stack = _open_after(stacks[-1], atom)
            if end > start and size + utf16_len(atom) + _closers_len(stack) > limit:
                break
            size += utf16_len(atom)
            stacks.append(stack)
            end += 1
            rank = _break_rank(atoms, end - 1)
            if rank is not None:
                breaks[rank] = end
        cut = end
        if end < len(atoms):
            for rank in range(4):
                position = breaks.get(rank)
                # A paragraph break anywhere; a lesser break only past the first third.
                if position is not None and (rank == 0 or position - start > (end - start) // 3):
                    cut = position
                    break
            else:
                while cut - 1 > start and _is_start_tag(atoms[cut - 1]):
                    cut -= 1  # a hard cut leaves no empty tag pair behind
        body_end = cut
        while body_end > start and atoms[body_end - 1].isspace():
            body_end -= 1
        open_tags = stacks[cut - start]
        closers = "".join(f"</{name}>" for name, _ in reversed(open_tags))
        chunk = prefix + "".join(atoms[start:body_end]) + closers
        if html_to_plain(chunk).strip():
            chunks.append(chunk)
        carried = open_tags
        start = cut


def _is_start_tag(atom: str) -> bool:
    tag = _HTML_TAG.match(atom) if atom.endswith(">") else None
    return tag is not None and not tag.group(1)


def _open_after(stack: _OpenTags, atom: str) -> _OpenTags:
    """The open tags after atom (a start tag, an end tag, or any other text)."""
    tag = _HTML_TAG.match(atom) if atom.endswith(">") else None
    if tag is None:
        return stack
    name = tag.group(2).lower()
    if not tag.group(1):
        return (*stack, (name, atom))
    for index in range(len(stack) - 1, -1, -1):
        if stack[index][0] == name:
            return stack[:index] + stack[index + 1 :]
    return stack


def _closers_len(stack: _OpenTags) -> int:
    return sum(len(name) + 3 for name, _ in stack)


def _break_rank(atoms: list[str], index: int) -> int | None:
    """How good a cut right after atoms[index] is: 0 paragraph, 1 line, 2 sentence, 3 word."""
    atom = atoms[index]
    previous = atoms[index - 1] if index > 0 else ""
    if atom == "\n":
        return 0 if previous == "\n" else 1
    if atom == " ":
        return 2 if previous in (".", "!", "?") else 3
    return None


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
