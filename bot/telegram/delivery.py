"""The outbox's messenger: shows note cards and sends notices through Telegram, telling the
outbox which failures are worth a retry and which never will be accepted."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from telegram import InlineKeyboardMarkup
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError

from bot.domain import FiledPart, NoteCard, Notice
from bot.notes.cards import RemovedNote
from bot.render import split_html
from bot.services.outbox import TryLater, Undeliverable
from bot.sources.model import SourceCard
from bot.telegram import keyboards, texts
from bot.telegram.io import ChatGone, TelegramChat, seconds

log = logging.getLogger(__name__)


def render_view(view: object) -> tuple[str, InlineKeyboardMarkup | None]:
    """The HTML and buttons that show a subject."""
    if isinstance(view, NoteCard):
        return texts.note_card(view), keyboards.note_card(view)
    if isinstance(view, RemovedNote):
        return texts.NOTE_REMOVED, None
    if isinstance(view, SourceCard):
        if view.part_id is None:
            return texts.source_card(view), None
        part = FiledPart(view.part_id, view.section_number, view.section_title, "")
        return texts.source_card(view), keyboards.filed_parts([part])
    raise TypeError(f"no rendering for {type(view).__name__}")


class TelegramMessenger:
    def __init__(self, chat: TelegramChat) -> None:
        self.chat = chat

    async def show(
        self, chat_id: int, view: object, shown: dict[int, int], reply_to: int | None
    ) -> dict[int, int]:
        html, markup = render_view(view)
        chunks = split_html(html)
        now_shown: dict[int, int] = {}

        async def show_all() -> None:
            for position, chunk in enumerate(chunks):
                buttons = markup if position == len(chunks) - 1 else None
                message_id = shown.get(position)
                if message_id is not None and await self.chat.edit_one(
                    chat_id, message_id, chunk, markup=buttons, wait_floods=False
                ):
                    now_shown[position] = message_id
                    continue
                message = await self.chat.send_one(
                    chat_id,
                    chunk,
                    reply_to=reply_to if position == 0 else None,
                    markup=buttons,
                    wait_floods=False,
                )
                now_shown[position] = message.message_id
            # A view that got shorter: its extra messages go.
            for position, message_id in shown.items():
                if position >= len(chunks):
                    with contextlib.suppress(TelegramError):
                        await self.chat.bot.delete_message(chat_id, message_id)

        await _delivering(show_all, lambda: {**shown, **now_shown})
        return now_shown

    async def tell(self, chat_id: int, notice: Notice, reply_to: int | None) -> None:
        async def send_all() -> None:
            for index, chunk in enumerate(split_html(texts.notice(notice))):
                await self.chat.send_one(
                    chat_id, chunk, reply_to=reply_to if index == 0 else None, wait_floods=False
                )

        await _delivering(send_all, lambda: {})


async def _delivering(
    send: Callable[[], Awaitable[None]], shown: Callable[[], dict[int, int]]
) -> None:
    """Telegram's answers as the outbox understands them."""
    try:
        await send()
    except ChatGone:
        raise Undeliverable() from None
    except RetryAfter as exc:
        raise TryLater(seconds(exc.retry_after), shown()) from None
    except BadRequest as exc:
        # Not a network problem: the same request would be refused again.
        log.warning("Telegram refused an outbox message: %s", exc.message)
        raise Undeliverable() from None
    except NetworkError as exc:  # timeouts, 5xx, a connection that broke
        log.info("Telegram did not answer (%s); the message is kept", type(exc).__name__)
        raise TryLater(None, shown()) from None
