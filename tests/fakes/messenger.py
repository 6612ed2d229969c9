"""An in-process messenger for the outbox: a history of what it showed and told, and failures
queued on demand (the real one talks to Telegram; see bot/telegram/delivery.py)."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

from bot.domain import Notice
from bot.services.outbox import TryLater, Undeliverable


@dataclass
class Shown:
    chat_id: int
    view: object
    shown_before: dict[int, int]
    reply_to: int | None


@dataclass
class FakeMessenger:
    """Each view is one message per `pieces` (default 1); message ids count up per chat."""

    history: list[Shown | tuple[int, Notice]] = field(default_factory=list)
    pieces: int = 1
    _failures: deque[tuple[int | None, int, Exception]] = field(default_factory=deque)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def fail_next(
        self, error: Exception, *, chat_id: int | None = None, after_pieces: int = 0
    ) -> None:
        """The next delivery (to `chat_id`, or to any chat) raises `error`, once
        `after_pieces` pieces of its view went out."""
        self._failures.append((chat_id, after_pieces, error))

    def _failure(self, chat_id: int, piece: int = 0) -> Exception | None:
        for index, (chat, after, error) in enumerate(self._failures):
            if (chat is None or chat == chat_id) and after == piece:
                del self._failures[index]
                return error
        return None

    async def show(
        self, chat_id: int, view: object, shown: dict[int, int], reply_to: int | None
    ) -> dict[int, int]:
        now = dict(shown)
        for position in range(self.pieces):
            error = self._failure(chat_id, position)
            if error is not None:
                if isinstance(error, TryLater):
                    raise TryLater(error.retry_after, now)
                raise error
            now.setdefault(position, next(self._ids))
        self.history.append(Shown(chat_id, view, dict(shown), reply_to))
        return {p: m for p, m in now.items() if p < self.pieces}

    async def tell(self, chat_id: int, notice: Notice, reply_to: int | None) -> None:
        error = self._failure(chat_id)
        if error is not None:
            raise error
        self.history.append((chat_id, notice))

    def views(self, chat_id: int | None = None) -> list[object]:
        return [
            h.view
            for h in self.history
            if isinstance(h, Shown) and (chat_id is None or h.chat_id == chat_id)
        ]


__all__ = ["FakeMessenger", "Shown", "TryLater", "Undeliverable"]
