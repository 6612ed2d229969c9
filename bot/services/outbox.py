"""The outbox: everything the bot tells a writer about a note is a row here until Telegram
takes it.

Whoever changes a note (a handler's service, a worker in this process or another) adds a row
in the same transaction, so a crash can lose neither the change nor the message about it. The
bot process delivers: each chat's rows in order, chats side by side, so a slow, failing or
rate-limited chat never holds up another. A row that Telegram does not take is tried again
with backoff (a flood wait's `retry_after` for that chat only) until Telegram takes it or says
it never will (the bot was blocked, the chat is gone).

A row with a subject ("note:17") means "show the subject as it is now": the messages that show
it (MessageView) are edited in place, or sent when there are none yet, and every older row of
the same subject is done by the same delivery. So an acknowledgement still waiting when the
transcript is filed is never sent on its own: the writer gets the transcript.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import OutboxMessage, utcnow
from bot.db.repository import OutboxQueries
from bot.domain import Notice, NoticeKind
from bot.timing import Timing

log = logging.getLogger(__name__)

VIEW = "view"
NOTICE = "notice"

# subject kind ("note") -> loads what the subject looks like now, given its key ("17") and
# the payloads of its waiting rows merged in order; None when there is nothing to show.
ViewLoader = Callable[[AsyncSession, str, Mapping[str, Any]], Awaitable[object | None]]


class TryLater(Exception):
    """Telegram did not take the message now (flood control, 5xx, network): try again.

    `retry_after`: Telegram's own wait, when it named one. `shown`: for a view, the messages
    that already show it (a long view is several messages), so a retry edits them instead of
    sending them again.
    """

    def __init__(self, retry_after: float | None = None, shown: dict[int, int] | None = None):
        super().__init__("try later")
        self.retry_after = retry_after
        self.shown = shown


class Undeliverable(Exception):
    """Telegram will never take it (the bot was blocked, the chat is gone)."""


class Messenger(Protocol):
    async def show(
        self, chat_id: int, view: object, shown: dict[int, int], reply_to: int | None
    ) -> dict[int, int]:
        """Make the chat show `view`: edit the messages in `shown` (position -> message id),
        send what is missing; returns the messages that show it now."""
        ...

    async def tell(self, chat_id: int, notice: Notice, reply_to: int | None) -> None:
        """Send a one-off message."""
        ...


def subject(kind: str, key: int | str) -> str:
    return f"{kind}:{key}"


async def post_view(
    session: AsyncSession,
    chat_id: int,
    subject_: str,
    *,
    reply_to: int | None = None,
    **payload: object,
) -> None:
    """Have the writer shown `subject_` as it is once this transaction commits."""
    await OutboxQueries(session).add(
        chat_id, VIEW, subject=subject_, payload=json.dumps(payload), reply_to=reply_to
    )


async def post_notice(
    session: AsyncSession, chat_id: int, notice: Notice, *, reply_to: int | None = None
) -> None:
    await OutboxQueries(session).add(
        chat_id, NOTICE, payload=json.dumps(asdict(notice)), reply_to=reply_to
    )


class OutboxDelivery:
    """Delivers the outbox: one task per chat with rows due, each chat's rows in order."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        messenger: Messenger,
        loaders: Mapping[str, ViewLoader],
        timing: Timing,
        *,
        readers: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        """`readers`: sessions for the reading half of a delivery (on SQLite they need not
        wait for the write lock, which the workers and handlers use all the time)."""
        self._sessions = sessions
        self._readers = readers or sessions
        self._messenger = messenger
        self._loaders = loaders
        self._timing = timing
        self._wake = asyncio.Event()
        self._chats: dict[int, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Rows were added in this process: look now instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox")

    async def stop(self) -> None:
        """Stop delivering; a send in flight gets `stop_grace_s` to finish (what is left is
        delivered after the next start)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        chats = list(self._chats.values())
        if chats:
            _, late = await asyncio.wait(chats, timeout=self._timing.stop_grace_s)
            for task in late:
                task.cancel()
            for task in late:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._chats.clear()

    async def deliver_due(self) -> None:
        """Deliver every row that is due now, then return (tests and one-off commands)."""
        await self._start_due_chats()
        while self._chats:
            await asyncio.gather(*self._chats.values(), return_exceptions=True)
            await self._start_due_chats()

    async def _run(self) -> None:
        while True:
            try:
                next_due = await self._start_due_chats()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("Could not read the outbox; trying again", exc_info=True)
                next_due = None
            wait = self._timing.outbox_poll_s
            if next_due is not None:
                wait = min(wait, max(0.0, (next_due - utcnow()).total_seconds()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def _start_due_chats(self) -> datetime | None:
        """Start a delivery task for every idle chat whose first row is due; returns when the
        earliest row that is not due yet will be."""
        async with self._readers.begin() as session:
            waiting = await OutboxQueries(session).waiting_chats()
        now = utcnow()
        later: datetime | None = None
        for chat_id, not_before in waiting:
            if chat_id in self._chats:
                continue
            due = _aware(not_before)
            if due is not None and due > now:
                later = due if later is None else min(later, due)
                continue
            self._chats[chat_id] = asyncio.create_task(
                self._drain(chat_id), name=f"outbox-chat-{chat_id}"
            )
        return later

    async def _drain(self, chat_id: int) -> None:
        """Deliver the chat's rows in order until none is due; a failing row stops the chat
        (the rows behind it wait, so the writer's messages never arrive out of order)."""
        try:
            while True:
                async with self._readers.begin() as session:
                    row = await OutboxQueries(session).first_of_chat(chat_id)
                    if row is None:
                        return
                    due = _aware(row.not_before)
                    if due is not None and due > utcnow():
                        return
                    job = await self._prepare(session, row)
                try:
                    await job.deliver()
                except TryLater as exc:
                    await self._postpone(row, exc.retry_after, job, exc.shown)
                    return
                except Undeliverable:
                    log.info("Chat %s cannot be reached; message %s dropped", chat_id, row.id)
                    await job.done(None)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # A bug or an answer nobody foresaw: never block the chat for good, never
                    # lose the row at once either.
                    log.exception("Delivering outbox message %s failed", row.id)
                    if row.attempts >= 5:
                        await job.done(None)
                    else:
                        await self._postpone(row, None, job, None)
                        return
                else:
                    await job.done(job.result)
        finally:
            self._chats.pop(chat_id, None)
            self._wake.set()  # rows may have come in meanwhile

    async def _prepare(self, session: AsyncSession, row: OutboxMessage) -> _Delivery:
        outbox = OutboxQueries(session)
        if row.kind == NOTICE or row.subject is None:
            notice = _notice(row.payload)
            return _Delivery(
                self, row, lambda: self._messenger.tell(row.chat_id, notice, row.reply_to)
            )
        latest = await outbox.latest_of_subject(row.chat_id, row.subject)
        assert latest is not None  # `row` itself is one
        kind, _, key = row.subject.partition(":")
        loader = self._loaders.get(kind)
        payload: dict[str, Any] = {}
        for stored in await outbox.payloads_of_subject(row.chat_id, row.subject, latest.id):
            with contextlib.suppress(ValueError, TypeError):
                payload.update(json.loads(stored))  # later rows win
        view = await loader(session, key, payload) if loader is not None else None
        shown = await outbox.views(row.chat_id, row.subject)
        reply_to = row.reply_to or latest.reply_to
        delivery = _Delivery(self, row, None, subject=row.subject, through=latest.id)
        if view is None:
            log.debug("Nothing to show for %s any more", row.subject)
            return delivery

        async def show() -> None:
            delivery.result = await self._messenger.show(row.chat_id, view, shown, reply_to)

        delivery.send = show
        return delivery

    async def _postpone(
        self,
        row: OutboxMessage,
        retry_after: float | None,
        job: _Delivery,
        shown: dict[int, int] | None,
    ) -> None:
        if retry_after is None:
            backoff = self._timing.outbox_backoff_s * 2 ** min(row.attempts, 16)
            retry_after = min(self._timing.outbox_backoff_max_s, backoff)
            retry_after *= random.uniform(0.8, 1.0)
        log.info(
            "Telegram did not take outbox message %s (chat %s); trying again in %.1f s",
            row.id,
            row.chat_id,
            retry_after,
        )
        async with self._sessions.begin() as session:
            outbox = OutboxQueries(session)
            await outbox.postpone(row.id, utcnow() + timedelta(seconds=retry_after))
            if shown is not None and job.subject is not None:
                await outbox.set_views(row.chat_id, job.subject, shown)


class _Delivery:
    """One row (or one subject's rows) on its way: what to send, and what to store after."""

    def __init__(
        self,
        outbox: OutboxDelivery,
        row: OutboxMessage,
        send: Callable[[], Awaitable[None]] | None,
        *,
        subject: str | None = None,
        through: int | None = None,
    ) -> None:
        self._outbox = outbox
        self.row = row
        self.send = send
        self.subject = subject
        self._through = through
        self.result: dict[int, int] | None = None

    async def deliver(self) -> None:
        if self.send is not None:
            await self.send()

    async def done(self, shown: dict[int, int] | None) -> None:
        async with self._outbox._sessions.begin() as session:
            outbox = OutboxQueries(session)
            if self.subject is None or self._through is None:
                await outbox.remove(self.row.id)
                return
            if shown is not None:
                await outbox.set_views(self.row.chat_id, self.subject, shown)
            await outbox.remove_subject_through(self.row.chat_id, self.subject, self._through)


def _notice(payload: str) -> Notice:
    data = json.loads(payload)
    return Notice(kind=NoticeKind(data["kind"]), count=int(data.get("count", 0)))


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; they are stored in UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
