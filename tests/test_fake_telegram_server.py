"""Tests for the fake Telegram Bot API server, driven by the real python-telegram-bot."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, InvalidToken, RetryAfter
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.fakes.telegram_server import (
    FakeTelegram,
    check_html,
)

USER = 4242


@pytest.fixture
def server() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


def _raw(server: FakeTelegram, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
    """Call the fake with urllib, PTB-style (form-encoded, non-strings JSON-dumped)."""
    data = urllib.parse.urlencode(
        {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    ).encode()
    req = urllib.request.Request(server.api_url + method, data=data, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _build_app(server: FakeTelegram) -> Application[Any, Any, Any, Any, Any, Any]:
    app = (
        ApplicationBuilder()
        .token(server.token)
        .base_url(server.base_url)
        .base_file_url(server.file_base_url)
        .build()
    )

    async def ping(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text("pong")

    async def keyboard(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("Go", callback_data="go:1")]])
        await update.effective_message.reply_text("choose", reply_markup=markup)

    async def doc(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_document(
            document=b"# Draft\n", filename="draft.md", caption="your draft"
        )

    async def on_voice(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None and message.voice is not None
        tg_file = await context.bot.get_file(message.voice.file_id)
        data = await tg_file.download_as_bytearray()
        origin = "forwarded" if message.forward_origin is not None else "own"
        await message.reply_text(f"{len(data)} {origin}")

    async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer()
        await query.edit_message_text(f"picked {query.data}")

    app.add_handler(CommandHandler("ping", ping))
    app.add_handler(CommandHandler("kb", keyboard))
    app.add_handler(CommandHandler("doc", doc))
    app.add_handler(MessageHandler(filters.VOICE, on_voice))
    app.add_handler(CallbackQueryHandler(on_button))
    return app


async def test_real_ptb_application_round_trip(server: FakeTelegram) -> None:
    app = _build_app(server)
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=5)
        try:
            ping = server.send_text(USER, "/ping")
            await server.wait_for_text(USER, "pong")

            audio = b"OggS" + b"\x00" * 1230
            file_id = server.add_file(audio)
            server.send_voice(USER, file_id, duration=3)
            await server.wait_for_text(USER, "1234 own")
            server.send_voice(USER, file_id, duration=3, forward_from=777)
            await server.wait_for_text(USER, "1234 forwarded")

            # Redelivery of an already-confirmed update runs the handler again.
            server.redeliver(ping)
            await server.wait_for(lambda: server.sent_texts(USER).count("pong") == 2)

            # Inline keyboard -> callback -> edit.
            server.send_text(USER, "/kb")
            choose = await server.wait_for_text(USER, "choose")
            assert choose.reply_markup == {
                "inline_keyboard": [[{"text": "Go", "callback_data": "go:1"}]]
            }
            server.send_callback(USER, "go:1", message_id=choose.message_id)
            edited = await server.wait_for_text(USER, "picked go:1")
            assert edited.message_id == choose.message_id
            assert edited.edits == ["picked go:1"]
            assert server.calls("answerCallbackQuery")

            # Multipart document upload.
            server.send_text(USER, "/doc")
            docs = await server.wait_for(lambda: server.sent_documents(USER))
            params = docs[0].params
            assert params["document"] == b"# Draft\n"
            assert params["document_filename"] == "draft.md"
            assert params["caption"] == "your draft"
            assert params["chat_id"] == USER
        finally:
            await app.updater.stop()
            await app.stop()

    methods = [c.method for c in server.requests]
    assert methods[0] == "getMe"
    assert "deleteWebhook" in methods
    send = server.calls("sendMessage")[0]
    assert send.params["chat_id"] == USER  # typed back from the "4242" form string
    assert send.params["text"] == "pong"
    assert server.pending_updates() == 0
    message_ids = [m.message_id for m in server.sent_messages(USER)]
    assert message_ids == sorted(message_ids)


def test_long_poll_holds_until_timeout(server: FakeTelegram) -> None:
    started = time.monotonic()
    status, body = _raw(server, "getUpdates", timeout=2)
    elapsed = time.monotonic() - started
    assert status == 200 and body == {"ok": True, "result": []}
    assert 1.5 <= elapsed < 4


def test_enqueue_from_other_thread_wakes_held_poll(server: FakeTelegram) -> None:
    enqueued_at: list[float] = []

    def later() -> None:
        time.sleep(0.3)
        enqueued_at.append(time.monotonic())
        server.send_text(USER, "hello")

    thread = threading.Thread(target=later)
    thread.start()
    status, body = _raw(server, "getUpdates", timeout=5)
    returned_at = time.monotonic()
    thread.join()
    assert status == 200
    [update] = body["result"]
    assert update["message"]["text"] == "hello"
    assert returned_at - enqueued_at[0] < 1.0


async def test_wakes_async_client(server: FakeTelegram) -> None:
    async with Bot(server.token, base_url=server.base_url) as bot:
        poll = asyncio.create_task(bot.get_updates(timeout=5))
        await asyncio.sleep(0.2)
        assert not poll.done()
        started = time.monotonic()
        server.send_text(USER, "/start")
        updates = await poll
        assert time.monotonic() - started < 1.0
    assert updates[0].message is not None
    assert updates[0].message.text == "/start"
    assert updates[0].message.entities[0].type == "bot_command"
    assert updates[0].message.entities[0].length == len("/start")


def test_offset_confirms_and_redeliver(server: FakeTelegram) -> None:
    first = server.send_text(USER, "one")
    second = server.send_text(USER, "two")
    assert second["update_id"] == first["update_id"] + 1
    assert second["message"]["message_id"] == first["message"]["message_id"] + 1
    _, body = _raw(server, "getUpdates", timeout=0, limit=1)
    assert [u["update_id"] for u in body["result"]] == [first["update_id"]]
    _, body = _raw(server, "getUpdates", timeout=0, offset=first["update_id"] + 1)
    assert [u["update_id"] for u in body["result"]] == [second["update_id"]]
    _, body = _raw(server, "getUpdates", timeout=0, offset=second["update_id"] + 1)
    assert body["result"] == []
    assert server.pending_updates() == 0

    server.redeliver(first)
    _, body = _raw(server, "getUpdates", timeout=0, offset=second["update_id"] + 1)
    assert body["result"] == [first]
    _, body = _raw(server, "getUpdates", timeout=0, offset=second["update_id"] + 1)
    assert body["result"] == []


def test_fail_next_429_has_retry_after(server: FakeTelegram) -> None:
    server.fail_next(
        "sendMessage",
        error_code=429,
        description="Too Many Requests: retry after 1",
        retry_after=1,
    )
    status, body = _raw(server, "sendMessage", chat_id=USER, text="hi")
    assert status == 429
    assert body == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 1",
        "parameters": {"retry_after": 1},
    }
    status, body = _raw(server, "sendMessage", chat_id=USER, text="hi")
    assert status == 200 and body["result"]["text"] == "hi"
    assert [c.error_code for c in server.calls("sendMessage")] == [429, None]


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_errors_surface_as_ptb_exceptions(server: FakeTelegram) -> None:
    server.fail_next("sendMessage", error_code=429, description="Too Many Requests", retry_after=2)
    server.fail_next("sendMessage", error_code=403, description="Forbidden: bot was blocked")
    async with Bot(server.token, base_url=server.base_url) as bot:
        with pytest.raises(RetryAfter) as retry:
            await bot.send_message(USER, "x")
        assert retry.value.retry_after in (2, dt.timedelta(seconds=2))
        with pytest.raises(Forbidden, match="blocked"):
            await bot.send_message(USER, "x")
        sent = await bot.send_message(USER, "same")
        with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
            await bot.edit_message_text("same", chat_id=USER, message_id=sent.message_id)
        with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
            await bot.get_file("nope")
        file_id = server.add_file(b"x" * 10)
        server.fail_get_file(file_id)
        with pytest.raises(BadRequest, match=r"(?i)file is too big"):
            await bot.get_file(file_id)

        server.reject_markdown(True)
        with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
            await bot.send_message(USER, "<b>bold", parse_mode="HTML")
        await bot.send_message(USER, "<b>a</b> &amp; b", parse_mode="HTML")

        assert await bot.set_my_commands([("ping", "Ping")])
        commands = await bot.get_my_commands()
        assert [c.command for c in commands] == ["ping"]

    wrong = Bot("999:WRONG", base_url=server.base_url)
    try:
        with pytest.raises(InvalidToken):
            await wrong.initialize()
    finally:
        await wrong.shutdown()


def test_the_html_checker() -> None:
    assert check_html('<a href="http://x">x</a> &lt; &#33;') is None
    assert check_html("<b><i>x</b></i>") is not None
    assert check_html("a < b") is not None
    assert check_html("a & b") is not None
    assert check_html("<foo>x</foo>") is not None


def test_serves_other_process(server: FakeTelegram) -> None:
    script = (
        "import json, sys, urllib.request\n"
        "print(urllib.request.urlopen(sys.argv[1] + 'getMe', timeout=5).read().decode())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, server.api_url],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    assert json.loads(out)["result"]["username"] == server.bot_username
