"""The inbox: every Telegram update is stored before Telegram is told it arrived.

In polling mode the offset that confirms updates is sent only after they are committed here;
in webhook mode the 200 goes out only then. An update is marked handled once its handlers
ran, so a crash in between leaves it for the next start, which handles it then. Telegram may
deliver an update twice; it is stored, and so handled, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import utcnow
from bot.db.repository import InboxQueries
from bot.timing import Timing

log = logging.getLogger(__name__)

# Handled marks are written together this long after the first of them.
HANDLED_FLUSH_S = 0.25
# An update whose handling was cut off this often (say, it crashes the process every time)
# is given up instead of being tried at every start.
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class StoredUpdate:
    row_id: int
    update_id: int
    chat_id: int | None  # updates of one chat are handled in order
    payload: dict[str, Any]  # the update as Telegram sent it


class Inbox:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], bot_id: int, timing: Timing
    ) -> None:
        """`bot_id`: the bot's Telegram id (update ids are unique per bot)."""
        self._sessions = sessions
        self._bot_id = bot_id
        self._timing = timing
        self._handled: list[int] = []
        self._flusher: asyncio.Task[None] | None = None

    async def store(
        self, updates: Sequence[tuple[int, int | None, dict[str, Any]]]
    ) -> list[StoredUpdate]:
        """Store (update_id, chat_id, payload) updates in one transaction; returns the ones not
        seen before. Once this returns, they survive any crash."""
        stored: list[StoredUpdate] = []
        async with self._sessions.begin() as session:
            inbox = InboxQueries(session)
            for update_id, chat_id, payload in updates:
                row_id = await inbox.add(
                    self._bot_id, update_id, chat_id, json.dumps(payload, ensure_ascii=False)
                )
                if row_id is None:
                    log.info("Update %s arrived again; it is handled once", update_id)
                else:
                    stored.append(StoredUpdate(row_id, update_id, chat_id, payload))
        return stored

    async def unhandled(self) -> list[StoredUpdate]:
        """Updates stored but not handled (a previous run stopped or died first), in order."""
        async with self._sessions.begin() as session:
            rows = await InboxQueries(session).unhandled(self._bot_id)
            return [
                StoredUpdate(row.id, row.update_id, row.chat_id, json.loads(row.payload))
                for row in rows
            ]

    async def begin(self, update: StoredUpdate) -> bool:
        """Count an attempt to handle an update an earlier run left unhandled; False when it
        was tried too often already (it is then marked handled and skipped)."""
        async with self._sessions.begin() as session:
            row = await InboxQueries(session).get(update.row_id)
            if row is None or row.handled_at is not None:
                return False
            row.attempts += 1
            if row.attempts > MAX_ATTEMPTS:
                log.error(
                    "Update %s was cut off %d times while being handled; skipping it",
                    update.update_id,
                    MAX_ATTEMPTS,
                )
                row.handled_at = utcnow()
                return False
            return True

    def handled(self, update: StoredUpdate) -> None:
        """Mark the update handled; written with others in one transaction a moment later
        (`flush`), so a burst of updates does not queue a write each for the database lock.
        A crash in that moment only makes the update be handled again at the next start,
        which a note survives (it is stored once per message)."""
        self._handled.append(update.row_id)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon(), name="inbox-handled")

    async def flush(self) -> None:
        """Write the handled marks not written yet (at stop)."""
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self._write_handled()

    async def _flush_soon(self) -> None:
        await asyncio.sleep(HANDLED_FLUSH_S)
        await self._write_handled()

    async def _write_handled(self) -> None:
        ids, self._handled = self._handled, []
        if not ids:
            return
        try:
            async with self._sessions.begin() as session:
                await InboxQueries(session).mark_handled(ids, utcnow())
        except Exception:
            log.warning("Could not mark %d update(s) handled; they may be handled again "
                        "after a restart", len(ids), exc_info=True)

    async def prune(self) -> None:
        """Forget handled updates after a while (long enough to recognise a redelivery)."""
        async with self._sessions.begin() as session:
            await InboxQueries(session).prune(
                utcnow() - timedelta(seconds=self._timing.inbox_keep_s)
            )
