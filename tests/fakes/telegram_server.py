"""Fake Telegram Bot API server for tests (real HTTP on 127.0.0.1, background thread).

The real python-telegram-bot ``Application`` talks to it via
``ApplicationBuilder().base_url(fake.base_url).base_file_url(fake.file_base_url)``.
The server runs its own event loop in a daemon thread, so it also serves bots running in
another OS process. All shared state is guarded by one lock; public methods are safe to call
from any thread or from async test code.

Notes on how PTB 22 (HTTPXRequest) encodes requests, which the decoder below mirrors:

* every call is a POST; without uploads the body is ``application/x-www-form-urlencoded``,
  with uploads it is ``multipart/form-data`` (never a JSON body);
* every value is a string: ``str`` values are sent verbatim, everything else (ints, bools,
  lists, dicts such as ``reply_markup``) is ``json.dumps``-ed; so ``chat_id=42`` arrives as
  ``"42"`` and must be typed back by the server;
* an uploaded file is a multipart part named after the parameter (``document``) carrying the
  filename; ``attach://<name>`` references are used only for thumbnails / media groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

__all__ = [
    "BotMessage",
    "Call",
    "FakeTelegram",
    "check_html",
]

T = TypeVar("T")
JSONDict = dict[str, Any]

_MAX_UPLOAD = 64 * 1024 * 1024
_MAX_TEXT = 4096
_MAX_POLL_TIMEOUT = 60.0
_PARSE_ERROR = "Bad Request: can't parse entities: "
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)

# Parameters that are strings in the Bot API: never JSON-decode them ("123" stays "123").
_STRING_PARAMS = frozenset(
    {
        "action",
        "address",
        "animation",
        "audio",
        "business_connection_id",
        "callback_query_id",
        "caption",
        "certificate",
        "currency",
        "custom_emoji_id",
        "description",
        "document",
        "emoji",
        "explanation",
        "explanation_parse_mode",
        "file_id",
        "first_name",
        "foursquare_id",
        "foursquare_type",
        "google_place_id",
        "google_place_type",
        "inline_message_id",
        "ip_address",
        "language_code",
        "last_name",
        "message_effect_id",
        "name",
        "next_offset",
        "parse_mode",
        "payload",
        "performer",
        "phone_number",
        "photo",
        "provider_token",
        "query",
        "question",
        "question_parse_mode",
        "result_id",
        "secret_token",
        "short_description",
        "start_parameter",
        "sticker",
        "sticker_set_name",
        "switch_pm_parameter",
        "switch_pm_text",
        "text",
        "thumbnail",
        "title",
        "url",
        "vcard",
        "video",
        "video_note",
        "voice",
    }
)


@dataclass
class Call:
    """One Bot API request as received (time is ``time.monotonic()``; error_code if it failed)."""

    method: str
    params: dict[str, Any]
    time: float
    error_code: int | None = None


@dataclass
class BotMessage:
    """A text message the bot sent with sendMessage; ``text`` is the latest text after edits."""

    message_id: int
    chat_id: int
    text: str
    parse_mode: str | None = None
    reply_markup: dict[str, Any] | None = None
    edits: list[str] = field(default_factory=list)
    deleted: bool = False
    reply_to: int | None = None  # the message it answers, when it was sent as a reply


@dataclass
class _Failure:
    error_code: int
    description: str
    retry_after: int | None
    remaining: int
    chat_id: int | None = None  # only calls to this chat fail


@dataclass
class _StoredFile:
    data: bytes
    file_unique_id: str
    file_path: str | None
    get_file_error: tuple[int, str] | None = None


class _ApiError(Exception):
    def __init__(self, error_code: int, description: str) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description


# ---------------------------------------------------------------------------------------------
# Parse-mode checkers (heuristic versions of Telegram's entity parsers)
# ---------------------------------------------------------------------------------------------

_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "*": "Bold",
    "_": "Italic",
    "__": "Underline",
    "~": "Strikethrough",
    "||": "Spoiler",
    "[": "TextUrl",
}


def _offset(text: str, i: int) -> int:
    return len(text[:i].encode("utf-8"))


_HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "blockquote",
        "code",
        "del",
        "em",
        "i",
        "ins",
        "pre",
        "s",
        "span",
        "strike",
        "strong",
        "tg-emoji",
        "tg-spoiler",
        "u",
    }
)
_HTML_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)(\s[^<>]*)?>")
_HTML_ENTITY_RE = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);")


def check_html(text: str) -> str | None:
    """Return a Telegram-like error description if ``text`` is invalid Telegram HTML."""
    stack: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "<":
            m = _HTML_TAG_RE.match(text, i)
            if m is None:
                return (
                    _PARSE_ERROR
                    + "Unexpected end of name token at byte offset "
                    + str(_offset(text, i))
                )
            closing, name = m.group(1) == "/", m.group(2).lower()
            if name not in _HTML_TAGS:
                kind = "end" if closing else "start"
                return (
                    _PARSE_ERROR
                    + f'Unsupported {kind} tag "{name}" at byte offset {_offset(text, i)}'
                )
            if closing:
                if not stack:
                    return _PARSE_ERROR + f"Unexpected end tag at byte offset {_offset(text, i)}"
                if stack[-1] != name:
                    return (
                        _PARSE_ERROR
                        + f'Can\'t find end tag corresponding to start tag "{stack[-1]}"'
                    )
                stack.pop()
            else:
                stack.append(name)
            i = m.end()
            continue
        if c == "&":
            m = _HTML_ENTITY_RE.match(text, i)
            if m is None:
                return (
                    _PARSE_ERROR
                    + f"Character entity expected at byte offset {_offset(text, i)}; "
                    + "use &amp; for a bare '&'"
                )
            i = m.end()
            continue
        i += 1
    if stack:
        return _PARSE_ERROR + f'Can\'t find end tag corresponding to start tag "{stack[-1]}"'
    return None


def _check_parse_mode(text: str, parse_mode: str | None) -> str | None:
    # The bot sends HTML only; other parse modes are not checked.
    if (parse_mode or "").lower() == "html":
        return check_html(text)
    return None


# ---------------------------------------------------------------------------------------------
# Parameter decoding
# ---------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _decode_value(key: str, value: Any) -> Any:
    """Turn a wire string back into a Python object (JSON-decoded unless a string param)."""
    if not isinstance(value, str) or key in _STRING_PARAMS or key.endswith("_filename"):
        return value
    try:
        return json.loads(value, parse_constant=_reject_constant)
    except ValueError:
        return value


def _summarize(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, str) and len(value) > 200:
        return value[:200] + "..."
    return value


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _guess_file_path(data: bytes, n: int) -> str:
    if data.startswith(b"OggS"):
        return f"voice/file_{n}.oga"
    if data.startswith(b"ID3") or data[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return f"music/file_{n}.mp3"
    if data[4:8] == b"ftyp":
        return f"video_notes/file_{n}.mp4"
    if data.startswith(b"RIFF") and data[8:12] == b"WAVE":
        return f"documents/file_{n}.wav"
    if data.startswith(b"\x1aE\xdf\xa3"):
        return f"documents/file_{n}.webm"
    return f"documents/file_{n}"


# ---------------------------------------------------------------------------------------------
# The fake server
# ---------------------------------------------------------------------------------------------


class FakeTelegram:
    """Fake Telegram Bot API server running in a background thread with its own event loop."""

    bot_first_name = "Draft Test Bot"

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",
        bot_id: int = 123456,
        bot_username: str = "draft_test_bot",
    ) -> None:
        self.token = token
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.port: int | None = None

        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._closing = False
        self._waiters: set[asyncio.Future[None]] = set()  # only touched on the server loop

        self._requests: list[Call] = []
        self._failures: dict[str, list[_Failure]] = {}
        self._reject_markdown = False
        self._latency = 0.0  # seconds added to every answer (a slow network)
        self._confirmed: set[int] = set()  # update ids a getUpdates offset confirmed

        self._next_update_id = 100_000
        self._next_file_no = 1
        self._next_callback_no = 1
        self._next_message_id: dict[int, int] = {}
        self._pending: list[JSONDict] = []  # delivered or not, until confirmed by offset
        self._forced: list[JSONDict] = []  # redelivered; dropped once handed out
        self._allowed_updates: list[str] | None = None
        # Set by setWebhook: updates are then pushed to the bot by POST, as Telegram does.
        self._webhook: JSONDict | None = None
        self._pusher: asyncio.Task[None] | None = None
        self.webhook_deliveries: list[tuple[int, int]] = []  # (update_id, HTTP status)

        self._files: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, str] = {}
        self._chats: dict[int, JSONDict] = {}
        self._user_messages: dict[tuple[int, int], JSONDict] = {}
        self._bot_messages: dict[tuple[int, int], JSONDict] = {}
        self._text_messages: dict[tuple[int, int], BotMessage] = {}
        self._commands: dict[str, list[JSONDict]] = {}

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server thread and block until it is listening."""
        if self._thread is not None:
            raise RuntimeError("FakeTelegram already started")
        self._closing = False
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=self._run_loop, args=(loop,), name="fake-telegram", daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._astart(), loop).result(timeout=10)

    def stop(self) -> None:
        """Release held polls, shut the HTTP server down and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._closing = True
        try:
            self._wake()
            asyncio.run_coroutine_threadsafe(self._astop(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            self._loop = None
            self._thread = None

    def __enter__(self) -> FakeTelegram:
        """Start the server."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    @property
    def base_url(self) -> str:
        """API base URL for PTB's ``base_url`` (PTB appends the token)."""
        return f"http://127.0.0.1:{self._require_port()}/bot"

    @property
    def file_base_url(self) -> str:
        """File base URL for PTB's ``base_file_url`` (PTB appends the token)."""
        return f"http://127.0.0.1:{self._require_port()}/file/bot"

    @property
    def api_url(self) -> str:
        """Full API prefix including the token, e.g. for raw HTTP clients: ``api_url + 'getMe'``."""
        return f"{self.base_url}{self.token}/"

    def _require_port(self) -> int:
        if self.port is None:
            raise RuntimeError("FakeTelegram is not started")
        return self.port

    def _run_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _astart(self) -> None:
        app = web.Application(client_max_size=_MAX_UPLOAD)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=2.0
        )
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(runner, sock)
        await site.start()
        self._runner = runner
        self.port = sock.getsockname()[1]
        self._pusher = asyncio.create_task(self._push_to_webhook())

    async def _astop(self) -> None:
        self._notify_waiters()
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _notify_waiters(self) -> None:
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)

    def _wake(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._notify_waiters)

    # -- files ------------------------------------------------------------------------------------

    def add_file(
        self, data: bytes, *, file_unique_id: str | None = None, file_path: str | None = None
    ) -> str:
        """Store a downloadable file and return its file_id (file_path guessed from magic bytes)."""
        with self._lock:
            n = self._next_file_no
            self._next_file_no += 1
            file_id = f"FAKEFILE{n:04d}"
            path = file_path or _guess_file_path(bytes(data), n)
            self._files[file_id] = _StoredFile(
                data=bytes(data), file_unique_id=file_unique_id or f"UNIQ{n:04d}", file_path=path
            )
            self._files_by_path[path] = file_id
            return file_id

    def file_bytes(self, file_id: str) -> bytes:
        """Return the stored bytes of a file (added by a test or uploaded by the bot)."""
        with self._lock:
            return self._files[file_id].data

    def remove_file_path(self, file_id: str) -> None:
        """Make getFile return no file_path for this file and make its download 404."""
        with self._lock:
            stored = self._files[file_id]
            if stored.file_path is not None:
                self._files_by_path.pop(stored.file_path, None)
            stored.file_path = None

    def fail_get_file(
        self,
        file_id: str,
        *,
        error_code: int = 400,
        description: str = "Bad Request: file is too big",
    ) -> None:
        """Make every getFile for this file_id fail with the given error."""
        with self._lock:
            self._files[file_id].get_file_error = (error_code, description)

    def remove_file(self, file_id: str) -> None:
        """Forget a file entirely (getFile then answers "invalid file_id")."""
        with self._lock:
            stored = self._files.pop(file_id)
            if stored.file_path is not None:
                self._files_by_path.pop(stored.file_path, None)

    # -- incoming updates -------------------------------------------------------------------------

    def send_text(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        first_name: str = "Writer",
        reply_to_message_id: int | None = None,
        forward_origin: JSONDict | None = None,
    ) -> JSONDict:
        """Enqueue a text message from a user (bot_command entity added for "/cmd" texts);
        `forward_origin` (see `channel_origin`) makes it a forwarded message."""
        content: JSONDict = {"text": text}
        if forward_origin is not None:
            content["forward_origin"] = forward_origin
        entities = self._command_entities(text)
        if entities:
            content["entities"] = entities
        with self._lock:
            cid = user_id if chat_id is None else chat_id
            if reply_to_message_id is not None:
                replied = self._bot_messages.get((cid, reply_to_message_id)) or (
                    self._user_messages.get((cid, reply_to_message_id))
                )
                if replied is not None:
                    content["reply_to_message"] = copy.deepcopy(replied)
            msg = self._incoming_message(user_id, chat_id, first_name, content)
            return self._enqueue_locked({"message": msg})

    def send_voice(
        self,
        user_id: int,
        file_id: str,
        *,
        duration: int,
        file_size: int | None = None,
        chat_id: int | None = None,
        forward_from: int | None = None,
        mime_type: str = "audio/ogg",
        caption: str | None = None,
        first_name: str = "Writer",
        reply_to_message_id: int | None = None,
    ) -> JSONDict:
        """Enqueue a voice message (optionally forwarded from another user, or replying to a
        message of the chat)."""
        with self._lock:
            voice = self._file_obj(file_id, file_size, duration=duration, mime_type=mime_type)
            content: JSONDict = {"voice": voice}
            if caption is not None:
                content["caption"] = caption
            if reply_to_message_id is not None:
                cid = user_id if chat_id is None else chat_id
                replied = self._bot_messages.get((cid, reply_to_message_id))
                if replied is not None:
                    content["reply_to_message"] = copy.deepcopy(replied)
            if forward_from is not None:
                content["forward_origin"] = {
                    "type": "user",
                    "date": int(time.time()) - 60,
                    "sender_user": {
                        "id": forward_from,
                        "is_bot": False,
                        "first_name": "Forwarded",
                    },
                }
            msg = self._incoming_message(user_id, chat_id, first_name, content)
            return self._enqueue_locked({"message": msg})

    def send_audio(
        self,
        user_id: int,
        file_id: str,
        *,
        duration: int,
        file_size: int | None = None,
        mime_type: str = "audio/mpeg",
        file_name: str = "note.mp3",
        chat_id: int | None = None,
        caption: str | None = None,
        first_name: str = "Writer",
    ) -> JSONDict:
        """Enqueue an audio-file message."""
        with self._lock:
            audio = self._file_obj(
                file_id, file_size, duration=duration, mime_type=mime_type, file_name=file_name
            )
            content: JSONDict = {"audio": audio}
            if caption is not None:
                content["caption"] = caption
            msg = self._incoming_message(user_id, chat_id, first_name, content)
            return self._enqueue_locked({"message": msg})

    def send_video_note(
        self,
        user_id: int,
        file_id: str,
        *,
        duration: int,
        length: int = 240,
        file_size: int | None = None,
        chat_id: int | None = None,
        first_name: str = "Writer",
    ) -> JSONDict:
        """Enqueue a round video-note message."""
        with self._lock:
            note = self._file_obj(file_id, file_size, duration=duration, length=length)
            msg = self._incoming_message(user_id, chat_id, first_name, {"video_note": note})
            return self._enqueue_locked({"message": msg})

    def send_photo(
        self,
        user_id: int,
        file_id: str,
        *,
        width: int = 800,
        height: int = 600,
        file_size: int | None = None,
        caption: str | None = None,
        chat_id: int | None = None,
        forward_origin: JSONDict | None = None,
        first_name: str = "Writer",
        smaller: tuple[str, ...] = (),
    ) -> JSONDict:
        """Enqueue a photo message: a small thumbnail and the full size (`file_id`), as
        Telegram sends photos (a list of PhotoSize, smallest first). `smaller`: added files
        that are the photo's smaller sizes instead of the thumbnail, smallest first."""
        with self._lock:
            full = self._file_obj(file_id, file_size, width=width, height=height)
            if smaller:
                scaled = [
                    self._file_obj(
                        f,
                        None,
                        width=width * (n + 1) // (len(smaller) + 1),
                        height=height * (n + 1) // (len(smaller) + 1),
                    )
                    for n, f in enumerate(smaller)
                ]
            else:
                scaled = [self._file_obj(f"{file_id}-thumb", 1200, width=90, height=68)]
            content: JSONDict = {"photo": [*scaled, full]}
            if caption is not None:
                content["caption"] = caption
            if forward_origin is not None:
                content["forward_origin"] = forward_origin
            msg = self._incoming_message(user_id, chat_id, first_name, content)
            return self._enqueue_locked({"message": msg})

    @staticmethod
    def channel_origin(
        title: str, username: str | None, message_id: int, chat_id: int = -1001234567890
    ) -> JSONDict:
        """A forward_origin of type "channel", as Telegram describes a forwarded post."""
        chat: JSONDict = {"id": chat_id, "type": "channel", "title": title}
        if username is not None:
            chat["username"] = username
        return {
            "type": "channel",
            "date": int(time.time()) - 3600,
            "chat": chat,
            "message_id": message_id,
        }

    def send_document(
        self,
        user_id: int,
        file_id: str,
        *,
        file_name: str,
        mime_type: str,
        file_size: int | None = None,
        chat_id: int | None = None,
        caption: str | None = None,
        first_name: str = "Writer",
    ) -> JSONDict:
        """Enqueue a document message."""
        with self._lock:
            doc = self._file_obj(file_id, file_size, file_name=file_name, mime_type=mime_type)
            content: JSONDict = {"document": doc}
            if caption is not None:
                content["caption"] = caption
            msg = self._incoming_message(user_id, chat_id, first_name, content)
            return self._enqueue_locked({"message": msg})

    def send_callback(
        self,
        user_id: int,
        data: str,
        *,
        message_id: int,
        chat_id: int | None = None,
        first_name: str = "Writer",
    ) -> JSONDict:
        """Enqueue a callback_query for a button on a message the bot sent earlier."""
        with self._lock:
            cid = user_id if chat_id is None else chat_id
            user = self._user(user_id, first_name)
            message = self._bot_messages.get((cid, message_id))
            if message is None:
                message = {
                    "message_id": message_id,
                    "from": self._bot_user(),
                    "chat": self._chat(cid, user),
                    "date": int(time.time()),
                    "text": "",
                }
            cq_id = f"{user_id}{self._next_callback_no:06d}"
            self._next_callback_no += 1
            callback = {
                "id": cq_id,
                "from": user,
                "chat_instance": f"ci{cid}",
                "data": data,
                "message": copy.deepcopy(message),
            }
            return self._enqueue_locked({"callback_query": callback})

    def edit_text(
        self,
        user_id: int,
        message_id: int,
        new_text: str,
        chat_id: int | None = None,
        first_name: str = "Writer",
    ) -> JSONDict:
        """Enqueue an edited_message update for a message the user sent earlier."""
        with self._lock:
            cid = user_id if chat_id is None else chat_id
            user = self._user(user_id, first_name)
            original = self._user_messages.get((cid, message_id))
            msg: JSONDict = copy.deepcopy(original) if original else {}
            msg.update(
                {
                    "message_id": message_id,
                    "from": user,
                    "chat": self._chat(cid, user),
                    "date": msg.get("date", int(time.time()) - 1),
                    "edit_date": int(time.time()),
                    "text": new_text,
                }
            )
            msg.pop("entities", None)
            entities = self._command_entities(new_text)
            if entities:
                msg["entities"] = entities
            self._user_messages[(cid, message_id)] = msg
            return self._enqueue_locked({"edited_message": copy.deepcopy(msg)})

    def enqueue_raw(self, update: JSONDict) -> JSONDict:
        """Enqueue any update dict; update_id is assigned if missing. Returns the update."""
        with self._lock:
            return self._enqueue_locked(update)

    def redeliver(self, update: JSONDict) -> None:
        """Deliver the SAME update (same ids) again on the next getUpdates, ignoring offset."""
        with self._lock:
            self._forced.insert(0, copy.deepcopy(update))
        self._wake()

    def pending_updates(self) -> int:
        """Number of updates not yet confirmed by a getUpdates offset (or redeliveries queued)."""
        with self._lock:
            return len(self._pending) + len(self._forced)

    def _enqueue_locked(self, update: JSONDict) -> JSONDict:
        if "update_id" not in update:
            update["update_id"] = self._next_update_id
        self._next_update_id = max(self._next_update_id, int(update["update_id"]) + 1)
        for key in ("message", "edited_message", "channel_post"):
            msg = update.get(key)
            if isinstance(msg, dict) and "chat" in msg and "message_id" in msg:
                cid = int(msg["chat"]["id"])
                nxt = self._next_message_id.get(cid, 1)
                self._next_message_id[cid] = max(nxt, int(msg["message_id"]) + 1)
        self._pending.append(update)
        self._wake()
        return update

    def _user(self, user_id: int, first_name: str) -> JSONDict:
        return {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "en"}

    def _bot_user(self) -> JSONDict:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    def _chat(self, chat_id: int, user: JSONDict | None = None) -> JSONDict:
        chat = self._chats.get(chat_id)
        if chat is None:
            if chat_id < 0:
                kind = "supergroup" if chat_id < -1_000_000_000_000 else "group"
                chat = {"id": chat_id, "type": kind, "title": "Test Group"}
            else:
                chat = {"id": chat_id, "type": "private"}
                if user is not None and user["id"] == chat_id:
                    chat["first_name"] = user["first_name"]
            self._chats[chat_id] = chat
        return dict(chat)

    def _new_message_id(self, chat_id: int) -> int:
        mid = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = mid + 1
        return mid

    def _incoming_message(
        self, user_id: int, chat_id: int | None, first_name: str, content: JSONDict
    ) -> JSONDict:
        cid = user_id if chat_id is None else chat_id
        user = self._user(user_id, first_name)
        msg: JSONDict = {
            "message_id": self._new_message_id(cid),
            "from": user,
            "chat": self._chat(cid, user),
            "date": int(time.time()),
            **content,
        }
        self._user_messages[(cid, msg["message_id"])] = msg
        return msg

    def _file_obj(self, file_id: str, file_size: int | None, **extra: Any) -> JSONDict:
        stored = self._files.get(file_id)
        obj: JSONDict = {
            "file_id": file_id,
            "file_unique_id": stored.file_unique_id if stored else f"U{file_id}"[:32],
        }
        obj.update(extra)
        size = file_size if file_size is not None else (len(stored.data) if stored else None)
        if size is not None:
            obj["file_size"] = size
        return obj

    @staticmethod
    def _command_entities(text: str) -> list[JSONDict]:
        if not text.startswith("/"):
            return []
        word = text.split(maxsplit=1)[0] if text.strip() else text
        if len(word) < 2:
            return []
        return [{"type": "bot_command", "offset": 0, "length": _utf16_len(word)}]

    # -- what the bot did -------------------------------------------------------------------------

    @property
    def requests(self) -> list[Call]:
        """Snapshot of every API call received, in order."""
        with self._lock:
            return list(self._requests)

    def calls(self, method: str) -> list[Call]:
        """All calls of one method (case-insensitive), in order."""
        wanted = method.lower()
        with self._lock:
            return [c for c in self._requests if c.method.lower() == wanted]

    def clear_requests(self) -> None:
        """Forget all recorded calls."""
        with self._lock:
            self._requests.clear()

    def sent_messages(self, chat_id: int | None = None) -> list[BotMessage]:
        """Snapshots of the text messages sent by the bot (edits applied), in send order."""
        with self._lock:
            return [
                replace(m, edits=list(m.edits), reply_markup=copy.deepcopy(m.reply_markup))
                for m in self._text_messages.values()
                if chat_id is None or m.chat_id == chat_id
            ]

    def reply_to(self, chat_id: int, message_id: int) -> BotMessage | None:
        """The bot's first message that answers the writer's message `message_id`."""
        with self._lock:
            return next(
                (
                    copy.deepcopy(m)
                    for m in self._text_messages.values()
                    if m.chat_id == chat_id and m.reply_to == message_id
                ),
                None,
            )

    async def wait_for_final_reply(
        self,
        chat_id: int,
        message_id: int,
        *,
        pending: str = "Transcribing",
        timeout: float = 60,  # noqa: ASYNC109 - API mirrors wait_for
    ) -> BotMessage:
        """The bot's answer to a note once it no longer says `pending` (the message that
        acknowledged the note, edited to its outcome)."""

        def final() -> BotMessage | None:
            reply = self.reply_to(chat_id, message_id)
            return reply if reply is not None and pending not in reply.text else None

        return await self.wait_for(final, timeout=timeout)

    def sent_texts(self, chat_id: int | None = None) -> list[str]:
        """Latest texts of the bot's (non-deleted) text messages, in send order."""
        return [m.text for m in self.sent_messages(chat_id) if not m.deleted]

    def sent_documents(self, chat_id: int | None = None) -> list[Call]:
        """Successful sendDocument calls (params hold document bytes and document_filename)."""
        return [
            c
            for c in self.calls("sendDocument")
            if c.error_code is None and (chat_id is None or c.params.get("chat_id") == chat_id)
        ]

    def commands(self, language_code: str = "", scope_type: str = "default") -> list[JSONDict]:
        """Commands last set with setMyCommands for a scope type / language."""
        with self._lock:
            return copy.deepcopy(self._commands.get(f"{scope_type}|{language_code}", []))

    async def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 10.0,  # noqa: ASYNC109 - API mirrors wait_for_sync
    ) -> T:
        """Poll ``predicate`` (every 20 ms) until truthy and return it, else AssertionError."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() >= deadline:
                raise AssertionError(self._timeout_report(timeout))
            await asyncio.sleep(0.02)

    def wait_for_sync(self, predicate: Callable[[], T | None], timeout: float = 10.0) -> T:
        """Blocking version of :meth:`wait_for` for code outside an event loop."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() >= deadline:
                raise AssertionError(self._timeout_report(timeout))
            time.sleep(0.02)

    async def wait_for_text(
        self,
        chat_id: int,
        contains: str,
        timeout: float = 10.0,  # noqa: ASYNC109 - forwarded to wait_for
    ) -> BotMessage:
        """Wait until a bot message in ``chat_id`` (latest text) contains ``contains``."""

        def find() -> BotMessage | None:
            for m in reversed(self.sent_messages(chat_id)):
                if contains in m.text:
                    return m
            return None

        return await self.wait_for(find, timeout)

    def _timeout_report(self, timeout: float) -> str:
        with self._lock:
            calls = [c for c in self._requests if c.method.lower() != "getupdates"][-20:]
            polls = sum(1 for c in self._requests if c.method.lower() == "getupdates")
            pending = len(self._pending) + len(self._forced)
        lines = [
            f"condition not met within {timeout:.1f}s; {polls} getUpdates calls, "
            f"{pending} updates pending; last {len(calls)} other calls:"
        ]
        for c in calls:
            params = {k: _summarize(v) for k, v in c.params.items()}
            status = f" -> error {c.error_code}" if c.error_code else ""
            lines.append(f"  {c.method} {params}{status}")
        return "\n".join(lines)

    # -- failures on demand -----------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        error_code: int,
        description: str,
        retry_after: int | None = None,
        times: int = 1,
        chat_id: int | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail with this Bot API error (only the
        calls to ``chat_id``, when given: flood control is per chat)."""
        with self._lock:
            self._failures.setdefault(method.lower(), []).append(
                _Failure(error_code, description, retry_after, times, chat_id)
            )

    def set_latency(self, seconds: float) -> None:
        """Answer every request this much later (a round trip to a far-away Telegram)."""
        with self._lock:
            self._latency = seconds

    def confirmed(self, update_id: int) -> bool:
        """Whether a getUpdates offset confirmed the update (Telegram forgot it then)."""
        with self._lock:
            return update_id in self._confirmed

    def reject_markdown(self, enabled: bool) -> None:
        """Toggle validation of text/caption against parse_mode (invalid markup -> 400)."""
        with self._lock:
            self._reject_markdown = enabled

    def _pop_failure(self, method: str, params: dict[str, Any]) -> _Failure | None:
        queue = self._failures.get(method.lower())
        if not queue:
            return None
        chat = params.get("chat_id")
        failure = next((f for f in queue if f.chat_id is None or f.chat_id == chat), None)
        if failure is None:
            return None
        failure.remaining -= 1
        if failure.remaining <= 0:
            queue.remove(failure)
        return failure

    # -- HTTP layer -------------------------------------------------------------------------------

    @staticmethod
    def _error(
        error_code: int, description: str, parameters: JSONDict | None = None
    ) -> web.Response:
        body: JSONDict = {"ok": False, "error_code": error_code, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=error_code)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/file/bot"):
            return self._serve_file(path[len("/file/bot") :])
        if not path.startswith("/bot"):
            return self._error(404, "Not Found")
        token, sep, method = path[len("/bot") :].partition("/")
        if not sep or not method or "/" in method:
            return self._error(404, "Not Found")
        if token != self.token:
            return self._error(401, "Unauthorized")
        try:
            params = await self._read_params(request)
        except ValueError as exc:
            return self._error(400, f"Bad Request: {exc}")
        call = Call(method=method, params=params, time=time.monotonic())
        with self._lock:
            self._requests.append(call)
            failure = self._pop_failure(method, params)
            if failure is not None:
                call.error_code = failure.error_code
            latency = self._latency
        if latency:
            await asyncio.sleep(latency)
        if failure is not None:
            extra = {"retry_after": failure.retry_after} if failure.retry_after else None
            return self._error(failure.error_code, failure.description, extra)
        try:
            if method.lower() == "getupdates":
                with self._lock:
                    if self._webhook is not None:
                        raise _ApiError(
                            409,
                            "Conflict: can't use getUpdates method while webhook is active; "
                            "use deleteWebhook to delete the webhook first",
                        )
                body = await self._get_updates(params)
            else:
                with self._lock:
                    body = json.dumps({"ok": True, "result": self._dispatch(method, params)})
        except _ApiError as exc:
            with self._lock:
                call.error_code = exc.error_code
            return self._error(exc.error_code, exc.description)
        return web.Response(text=body, content_type="application/json")

    async def _read_params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = {k: _decode_value(k, v) for k, v in request.query.items()}
        if not request.body_exists:
            return params
        ctype = request.content_type
        if ctype == "application/json":
            raw = await request.read()
            if raw.strip():
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise ValueError("JSON body must be an object")
                params.update({k: _decode_value(k, v) for k, v in body.items()})
        elif ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    params[key] = value.file.read()
                    params[f"{key}_filename"] = value.filename
                    params[f"{key}_content_type"] = value.content_type
                else:
                    params[key] = _decode_value(key, value)
            # Resolve attach://<name> references (thumbnails etc.) to the uploaded bytes.
            for key, value in list(params.items()):
                if isinstance(value, str) and value.startswith("attach://"):
                    name = value[len("attach://") :]
                    if isinstance(params.get(name), bytes):
                        params[key] = params.pop(name)
                        for suffix in ("_filename", "_content_type"):
                            params[f"{key}{suffix}"] = params.pop(f"{name}{suffix}", None)
        return params

    def _serve_file(self, rest: str) -> web.Response:
        token, _, file_path = rest.partition("/")
        if token != self.token:
            return self._error(401, "Unauthorized")
        with self._lock:
            file_id = self._files_by_path.get(file_path)
            data = self._files[file_id].data if file_id is not None else None
        if data is None:
            return self._error(404, "Not Found")
        return web.Response(body=data, content_type="application/octet-stream")

    async def _get_updates(self, params: dict[str, Any]) -> str:
        loop = asyncio.get_running_loop()
        timeout = min(max(float(params.get("timeout") or 0), 0.0), _MAX_POLL_TIMEOUT)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        offset = params.get("offset")
        allowed = params.get("allowed_updates")
        deadline = loop.time() + timeout
        with self._lock:
            if isinstance(allowed, list) and allowed:
                self._allowed_updates = [str(a) for a in allowed]
            if offset is not None:
                self._confirm(int(offset))
        while True:
            with self._lock:
                batch = self._take_updates(limit)
                if batch or self._closing:
                    return json.dumps({"ok": True, "result": batch})
            remaining = deadline - loop.time()
            if remaining <= 0:
                return json.dumps({"ok": True, "result": []})
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.add(fut)
            try:
                await asyncio.wait({fut}, timeout=remaining)
            finally:
                self._waiters.discard(fut)

    async def _push_to_webhook(self) -> None:
        """While a webhook is set, POST each pending update to it with the secret header;
        an update counts as delivered only on a 2xx answer (otherwise retried)."""
        import aiohttp

        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as session:
            while not self._closing:
                with self._lock:
                    hook = self._webhook
                    batch = self._take_updates(1) if hook is not None else []
                if hook is None or not batch:
                    fut: asyncio.Future[None] = loop.create_future()
                    self._waiters.add(fut)
                    try:
                        await asyncio.wait({fut}, timeout=0.5)
                    finally:
                        self._waiters.discard(fut)
                    continue
                update = batch[0]
                headers = {"Content-Type": "application/json"}
                if hook.get("secret_token"):
                    headers["X-Telegram-Bot-Api-Secret-Token"] = str(hook["secret_token"])
                try:
                    async with session.post(
                        str(hook["url"]), data=json.dumps(update), headers=headers, timeout=10
                    ) as response:
                        status = response.status
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                with self._lock:
                    self.webhook_deliveries.append((int(update["update_id"]), status))
                    if 200 <= status < 300:
                        uid = update["update_id"]
                        self._confirmed.add(int(uid))  # answered 2xx: Telegram forgets it
                        self._pending = [u for u in self._pending if u["update_id"] != uid]
                        self._forced = [u for u in self._forced if u["update_id"] != uid]
                if not 200 <= status < 300:
                    await asyncio.sleep(0.2)

    @property
    def webhook(self) -> JSONDict | None:
        """What setWebhook registered (url, secret_token, allowed_updates), or None."""
        with self._lock:
            return copy.deepcopy(self._webhook)

    def _confirm(self, offset: int) -> None:
        if offset < 0:
            kept = self._pending[offset:]
        elif offset > 0:
            kept = [u for u in self._pending if int(u["update_id"]) >= offset]
        else:
            return
        self._confirmed |= {int(u["update_id"]) for u in self._pending} - {
            int(u["update_id"]) for u in kept
        }
        self._pending = kept

    def _wanted(self, update: JSONDict) -> bool:
        if not self._allowed_updates:
            return True
        return any(k in self._allowed_updates for k in update if k != "update_id")

    def _take_updates(self, limit: int) -> list[JSONDict]:
        self._forced = [u for u in self._forced if self._wanted(u)]
        self._pending = [u for u in self._pending if self._wanted(u)]
        forced, self._forced = self._forced[:limit], self._forced[limit:]
        batch = forced + self._pending[: limit - len(forced)]
        return copy.deepcopy(batch)

    # -- Bot API methods (called with the lock held) ----------------------------------------------

    def _dispatch(self, method: str, params: dict[str, Any]) -> Any:
        name = method.lower()
        handler = _HANDLERS.get(name)
        if handler is not None:
            return handler(self, params)
        if name.startswith(("send", "forward")) and name not in ("sendchataction",):
            return self._generic_send(params)
        if name == "copymessage":
            return {"message_id": self._new_message_id(self._chat_id(params))}
        return True

    @staticmethod
    def _chat_id(params: dict[str, Any]) -> int:
        value = params.get("chat_id")
        if value is None or value == "":
            raise _ApiError(400, "Bad Request: chat_id is empty")
        if isinstance(value, bool) or not isinstance(value, int):
            raise _ApiError(400, "Bad Request: chat not found")
        return value

    def _check_markup(self, text: str, parse_mode: Any) -> None:
        if self._reject_markdown and isinstance(parse_mode, str):
            error = _check_parse_mode(text, parse_mode)
            if error:
                raise _ApiError(400, error)

    def _inline_markup(self, markup: Any) -> JSONDict | None:
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            return markup
        return None

    def _new_bot_message(self, chat_id: int, content: JSONDict) -> JSONDict:
        msg: JSONDict = {
            "message_id": self._new_message_id(chat_id),
            "from": self._bot_user(),
            "chat": self._chat(chat_id),
            "date": int(time.time()),
            **content,
        }
        self._bot_messages[(chat_id, msg["message_id"])] = msg
        return msg

    def _reply_content(self, chat_id: int, params: dict[str, Any]) -> JSONDict:
        content: JSONDict = {}
        reply_id = params.get("reply_to_message_id")
        reply_params = params.get("reply_parameters")
        if isinstance(reply_params, dict):
            reply_id = reply_params.get("message_id", reply_id)
        if isinstance(reply_id, int):
            replied = self._user_messages.get((chat_id, reply_id)) or self._bot_messages.get(
                (chat_id, reply_id)
            )
            if replied is not None:
                content["reply_to_message"] = copy.deepcopy(replied)
        markup = self._inline_markup(params.get("reply_markup"))
        if markup is not None:
            content["reply_markup"] = markup
        return content

    def _m_getme(self, params: dict[str, Any]) -> JSONDict:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _m_setwebhook(self, params: dict[str, Any]) -> bool:
        url = params.get("url")
        if not isinstance(url, str) or not url:
            return self._m_deletewebhook(params)
        if not url.startswith(("https://", "http://")):
            raise _ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise _ApiError(400, "Bad Request: secret token contains unallowed characters")
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list) and allowed:
            self._allowed_updates = [str(a) for a in allowed]
        if params.get("drop_pending_updates") is True:
            self._pending.clear()
            self._forced.clear()
        self._webhook = {
            "url": url,
            "secret_token": None if secret is None else str(secret),
            "allowed_updates": allowed,
        }
        self._wake()
        return True

    def _m_deletewebhook(self, params: dict[str, Any]) -> bool:
        self._webhook = None
        if params.get("drop_pending_updates") is True:
            self._pending.clear()
            self._forced.clear()
        return True

    def _m_getwebhookinfo(self, params: dict[str, Any]) -> JSONDict:
        return {
            "url": self._webhook["url"] if self._webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending) + len(self._forced),
        }

    def _m_sendmessage(self, params: dict[str, Any]) -> JSONDict:
        chat_id = self._chat_id(params)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text) > _MAX_TEXT:
            raise _ApiError(400, "Bad Request: message is too long")
        parse_mode = params.get("parse_mode")
        self._check_markup(text, parse_mode)
        content: JSONDict = {"text": text, **self._reply_content(chat_id, params)}
        if isinstance(params.get("entities"), list):
            content["entities"] = params["entities"]
        msg = self._new_bot_message(chat_id, content)
        markup = params.get("reply_markup")
        replied = content.get("reply_to_message")
        self._text_messages[(chat_id, msg["message_id"])] = BotMessage(
            message_id=msg["message_id"],
            chat_id=chat_id,
            text=text,
            parse_mode=parse_mode if isinstance(parse_mode, str) else None,
            reply_markup=markup if isinstance(markup, dict) else None,
            reply_to=int(replied["message_id"]) if isinstance(replied, dict) else None,
        )
        return msg

    def _find_bot_message(self, params: dict[str, Any], action: str) -> tuple[int, JSONDict]:
        chat_id = self._chat_id(params)
        message_id = params.get("message_id")
        msg = self._bot_messages.get((chat_id, message_id)) if isinstance(message_id, int) else None
        if msg is None:
            raise _ApiError(400, f"Bad Request: message to {action} not found")
        return chat_id, msg

    def _m_editmessagetext(self, params: dict[str, Any]) -> JSONDict | bool:
        if params.get("inline_message_id"):
            return True
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text) > _MAX_TEXT:
            raise _ApiError(400, "Bad Request: message is too long")
        chat_id, msg = self._find_bot_message(params, "edit")
        if "text" not in msg:
            raise _ApiError(400, "Bad Request: there is no text in the message to edit")
        parse_mode = params.get("parse_mode")
        self._check_markup(text, parse_mode)
        new_markup = self._inline_markup(params.get("reply_markup"))
        if msg["text"] == text and msg.get("reply_markup") == new_markup:
            raise _ApiError(400, _NOT_MODIFIED)
        msg["text"] = text
        msg["edit_date"] = int(time.time())
        if new_markup is None:
            msg.pop("reply_markup", None)
        else:
            msg["reply_markup"] = new_markup
        if isinstance(params.get("entities"), list):
            msg["entities"] = params["entities"]
        else:
            msg.pop("entities", None)
        record = self._text_messages.get((chat_id, msg["message_id"]))
        if record is not None:
            record.text = text
            record.edits.append(text)
            record.parse_mode = parse_mode if isinstance(parse_mode, str) else None
            record.reply_markup = new_markup
        return msg

    def _m_editmessagereplymarkup(self, params: dict[str, Any]) -> JSONDict | bool:
        if params.get("inline_message_id"):
            return True
        chat_id, msg = self._find_bot_message(params, "edit")
        new_markup = self._inline_markup(params.get("reply_markup"))
        if msg.get("reply_markup") == new_markup:
            raise _ApiError(400, _NOT_MODIFIED)
        if new_markup is None:
            msg.pop("reply_markup", None)
        else:
            msg["reply_markup"] = new_markup
        msg["edit_date"] = int(time.time())
        record = self._text_messages.get((chat_id, msg["message_id"]))
        if record is not None:
            record.reply_markup = new_markup
        return msg

    def _m_deletemessage(self, params: dict[str, Any]) -> bool:
        chat_id, msg = self._find_bot_message(params, "delete")
        del self._bot_messages[(chat_id, msg["message_id"])]
        record = self._text_messages.get((chat_id, msg["message_id"]))
        if record is not None:
            record.deleted = True
        return True

    def _m_getfile(self, params: dict[str, Any]) -> JSONDict:
        file_id = params.get("file_id")
        stored = self._files.get(file_id) if isinstance(file_id, str) else None
        if stored is None:
            raise _ApiError(400, "Bad Request: invalid file_id")
        if stored.get_file_error is not None:
            raise _ApiError(*stored.get_file_error)
        result: JSONDict = {
            "file_id": file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
        }
        if stored.file_path is not None:
            result["file_path"] = stored.file_path
        return result

    def _m_senddocument(self, params: dict[str, Any]) -> JSONDict:
        chat_id = self._chat_id(params)
        document = params.get("document")
        if isinstance(document, bytes):
            file_name = params.get("document_filename") or "document"
            mime = params.get("document_content_type") or "application/octet-stream"
            file_id = self.add_file(document, file_path=f"documents/{file_name}")
        elif isinstance(document, str) and document in self._files:
            file_id, file_name, mime = document, "document", "application/octet-stream"
        else:
            raise _ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        stored = self._files[file_id]
        content: JSONDict = {
            "document": {
                "file_id": file_id,
                "file_unique_id": stored.file_unique_id,
                "file_name": file_name,
                "mime_type": mime,
                "file_size": len(stored.data),
            },
            **self._reply_content(chat_id, params),
        }
        caption = params.get("caption")
        if isinstance(caption, str) and caption:
            self._check_markup(caption, params.get("parse_mode"))
            content["caption"] = caption
        return self._new_bot_message(chat_id, content)

    def _generic_send(self, params: dict[str, Any]) -> JSONDict:
        chat_id = self._chat_id(params)
        content = self._reply_content(chat_id, params)
        caption = params.get("caption")
        if isinstance(caption, str) and caption:
            self._check_markup(caption, params.get("parse_mode"))
            content["caption"] = caption
        return self._new_bot_message(chat_id, content)

    @staticmethod
    def _commands_key(params: dict[str, Any]) -> str:
        scope = params.get("scope")
        scope_type = scope.get("type", "default") if isinstance(scope, dict) else "default"
        return f"{scope_type}|{params.get('language_code') or ''}"

    def _m_setmycommands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _ApiError(400, "Bad Request: can't parse commands JSON object")
        self._commands[self._commands_key(params)] = commands
        return True

    def _m_getmycommands(self, params: dict[str, Any]) -> list[JSONDict]:
        return self._commands.get(self._commands_key(params), [])

    def _m_deletemycommands(self, params: dict[str, Any]) -> bool:
        self._commands.pop(self._commands_key(params), None)
        return True

    def _m_true(self, params: dict[str, Any]) -> bool:
        return True


_HANDLERS: dict[str, Callable[[FakeTelegram, dict[str, Any]], Any]] = {
    "getme": FakeTelegram._m_getme,
    "setwebhook": FakeTelegram._m_setwebhook,
    "deletewebhook": FakeTelegram._m_deletewebhook,
    "getwebhookinfo": FakeTelegram._m_getwebhookinfo,
    "sendmessage": FakeTelegram._m_sendmessage,
    "editmessagetext": FakeTelegram._m_editmessagetext,
    "editmessagereplymarkup": FakeTelegram._m_editmessagereplymarkup,
    "deletemessage": FakeTelegram._m_deletemessage,
    "getfile": FakeTelegram._m_getfile,
    "senddocument": FakeTelegram._m_senddocument,
    "setmycommands": FakeTelegram._m_setmycommands,
    "getmycommands": FakeTelegram._m_getmycommands,
    "deletemycommands": FakeTelegram._m_deletemycommands,
    "answercallbackquery": FakeTelegram._m_true,
    "sendchataction": FakeTelegram._m_true,
    "close": FakeTelegram._m_true,
    "logout": FakeTelegram._m_true,
}
