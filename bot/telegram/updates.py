"""Updates in: stored in the inbox before Telegram is told they arrived, then handled by the
python-telegram-bot Application, each chat's updates in order and chats side by side.

Polling is an own loop over `Bot.get_updates`: the offset that confirms a batch is sent only
after the batch is committed to the inbox. The webhook server answers Telegram's POST with 200
only after the update is committed (and 500 when it could not be, so Telegram sends it again).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from typing import Any

import tornado.httpserver
import tornado.web
from telegram import Bot, Update
from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter, TimedOut
from telegram.ext import Application

from bot.services.inbox import Inbox, StoredUpdate
from bot.timing import Timing

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# A chat with nothing to handle for this long lets its task go (it comes back with the next
# update).
LANE_IDLE_S = 60.0
MAX_POLL_BACKOFF_S = 30.0


def chat_of(payload: dict[str, Any]) -> int | None:
    """The chat an update belongs to (its lane): the message's chat, or the user for a
    button pressed on a message the update does not carry."""
    for key in ("message", "edited_message", "channel_post", "edited_channel_post"):
        message = payload.get(key)
        if isinstance(message, dict):
            chat = message.get("chat")
            if isinstance(chat, dict) and isinstance(chat.get("id"), int):
                return int(chat["id"])
    query = payload.get("callback_query")
    if isinstance(query, dict):
        message = query.get("message")
        if isinstance(message, dict) and isinstance(message.get("chat"), dict):
            chat_id = message["chat"].get("id")
            if isinstance(chat_id, int):
                return chat_id
        sender = query.get("from")
        if isinstance(sender, dict) and isinstance(sender.get("id"), int):
            return int(sender["id"])
    return None


class ChatLanes:
    """Stored updates handled by the Application: per chat one task that handles the chat's
    updates one after another, so a slow or rate-limited chat never delays another."""

    def __init__(self, app: Application, inbox: Inbox) -> None:  # type: ignore[type-arg]
        self._app = app
        self._inbox = inbox
        self._queues: dict[int | None, asyncio.Queue[StoredUpdate]] = {}
        self._tasks: dict[int | None, asyncio.Task[None]] = {}
        self._busy: set[int | None] = set()  # chats handling an update right now
        self._seen: set[int] = set()  # inbox rows submitted and not finished yet
        self._closing = False
        self._idle = asyncio.Event()
        self._replayed: set[int] = set()

    def submit(self, updates: Iterable[StoredUpdate], *, replayed: bool = False) -> None:
        """Handle these updates; `replayed`: an earlier run stored them and did not finish
        handling them (each such attempt is counted, so one that kills the process every
        time is given up after a few)."""
        for update in updates:
            if self._closing or update.row_id in self._seen:
                continue
            self._seen.add(update.row_id)
            if replayed:
                self._replayed.add(update.row_id)
            self._queues.setdefault(update.chat_id, asyncio.Queue()).put_nowait(update)
            task = self._tasks.get(update.chat_id)
            if task is None or task.done():
                self._tasks[update.chat_id] = asyncio.create_task(
                    self._lane(update.chat_id), name=f"chat-{update.chat_id}"
                )

    async def close(self, grace_s: float) -> None:
        """Let each chat finish the update it is handling (up to `grace_s`); what is still
        queued stays unhandled in the inbox and is handled after the next start."""
        self._closing = True
        busy = [task for chat, task in self._tasks.items() if chat in self._busy]
        for chat, task in self._tasks.items():
            if chat not in self._busy:
                task.cancel()
        if busy:
            await asyncio.wait(busy, timeout=grace_s)
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def idle(self) -> None:
        """Wait until every submitted update is handled (tests, one-off runs)."""
        if self._seen:
            self._idle.clear()
            await self._idle.wait()

    async def _lane(self, chat_id: int | None) -> None:
        queue = self._queues[chat_id]
        while not self._closing:
            try:
                update = await asyncio.wait_for(queue.get(), timeout=LANE_IDLE_S)
            except TimeoutError:
                if queue.empty():
                    self._queues.pop(chat_id, None)
                    self._tasks.pop(chat_id, None)
                    return
                continue
            self._busy.add(chat_id)
            try:
                await self._handle(update)
            finally:
                self._busy.discard(chat_id)
                self._seen.discard(update.row_id)
                if not self._seen:
                    self._idle.set()

    async def _handle(self, stored: StoredUpdate) -> None:
        try:
            if stored.row_id in self._replayed:
                self._replayed.discard(stored.row_id)
                if not await self._inbox.begin(stored):
                    return
            update = Update.de_json(stored.payload, self._app.bot)
            # Handler errors go to the Application's error handler, not here.
            await self._app.process_update(update)
            self._inbox.handled(stored)
        except Exception:
            log.exception("Update %s could not be handled", stored.update_id)


class Poller:
    """Long polling that confirms a batch of updates only after the inbox stored it."""

    def __init__(
        self,
        bot: Bot,
        inbox: Inbox,
        lanes: ChatLanes,
        timing: Timing,
        allowed_updates: Sequence[str],
    ) -> None:
        self._bot = bot
        self._inbox = inbox
        self._lanes = lanes
        self._timing = timing
        self._allowed = list(allowed_updates)

    async def run(self) -> None:
        # A webhook set earlier (a switch back to polling) would make getUpdates fail.
        await self._bot.delete_webhook(drop_pending_updates=False)
        # No offset at first: Telegram hands out everything not confirmed yet, including a
        # batch the previous run stored but could not confirm (the inbox knows those).
        offset: int | None = None
        backoff = self._timing.poll_backoff_s
        while True:
            try:
                updates = await self._bot.get_updates(
                    offset=offset,
                    timeout=self._timing.poll_timeout_s,
                    allowed_updates=self._allowed,
                )
            except RetryAfter as exc:
                await asyncio.sleep(_seconds(exc.retry_after))
                continue
            except InvalidToken:
                raise
            except Conflict:
                log.error(
                    "Another process is taking this bot's updates (two bots with one token?); "
                    "trying again in %.0f s",
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(MAX_POLL_BACKOFF_S, backoff * 2)
                continue
            except (TimedOut, NetworkError) as exc:
                log.warning("Polling Telegram failed (%s); trying again", type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(MAX_POLL_BACKOFF_S, backoff * 2)
                continue
            backoff = self._timing.poll_backoff_s
            if not updates:
                continue
            batch = [(u.update_id, chat_of(u.to_dict()), u.to_dict()) for u in updates]
            while True:
                try:
                    stored = await self._inbox.store(batch)
                    break
                except Exception:
                    # Not confirmed: Telegram keeps them. Store again until the database is back.
                    log.exception("Could not store %d update(s); trying again", len(batch))
                    await asyncio.sleep(backoff)
                    backoff = min(MAX_POLL_BACKOFF_S, backoff * 2)
            backoff = self._timing.poll_backoff_s
            self._lanes.submit(stored)
            # The next getUpdates confirms this batch: it is in the inbox now.
            offset = updates[-1].update_id + 1


class WebhookServer:
    """Receives Telegram's POSTs; answers 200 only once the update is in the inbox."""

    def __init__(
        self,
        inbox: Inbox,
        lanes: ChatLanes,
        *,
        listen: str,
        port: int,
        path: str,
        secret: str,
    ) -> None:
        self._inbox = inbox
        self._lanes = lanes
        self._listen = listen
        self._port = port
        self._secret = secret
        route = rf"/{path.strip('/')}/?" if path.strip("/") else r"/"
        app = tornado.web.Application(
            [(route, _WebhookHandler, {"server": self})],
            log_function=lambda handler: None,  # our own logging, without URLs or headers
        )
        self._http = tornado.httpserver.HTTPServer(app, xheaders=False)

    async def start(self) -> None:
        self._http.listen(self._port, address=self._listen)

    async def stop(self) -> None:
        self._http.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._http.close_all_connections(), timeout=5)

    def authorised(self, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self._secret.encode())

    async def accept(self, payload: dict[str, Any]) -> None:
        update_id = int(payload["update_id"])
        stored = await self._inbox.store([(update_id, chat_of(payload), payload)])
        self._lanes.submit(stored)


class _WebhookHandler(tornado.web.RequestHandler):
    SUPPORTED_METHODS = ("POST",)

    def initialize(self, server: WebhookServer) -> None:
        self.server = server

    async def post(self) -> None:
        if not self.server.authorised(self.request.headers.get(SECRET_HEADER, "")):
            log.info("Refused a webhook request without the right secret token")
            self.set_status(HTTPStatus.FORBIDDEN)
            return
        try:
            payload = json.loads(self.request.body)
            if not isinstance(payload, dict) or not isinstance(payload.get("update_id"), int):
                raise ValueError("no update_id")
        except ValueError:
            self.set_status(HTTPStatus.BAD_REQUEST)
            return
        try:
            await self.server.accept(payload)
        except Exception:
            log.exception(
                "Could not store update %s; Telegram will send it again", payload["update_id"]
            )
            self.set_status(HTTPStatus.INTERNAL_SERVER_ERROR)
            return
        self.set_status(HTTPStatus.OK)


def _seconds(value: object) -> float:
    total = getattr(value, "total_seconds", None)
    return float(total()) if callable(total) else float(value)  # type: ignore[arg-type]
