"""Webhook mode: the bot registers WEBHOOK_URL with its secret, the fake Bot API pushes updates
to it (real HTTP), and requests without the secret are refused."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.config import ConfigError, load_settings
from tests.conftest import StartBot
from tests.fakes.telegram_server import FakeTelegram
from tests.processes import BotLauncher
from tests.test_chat_e2e import WRITER, say

SECRET = "hook-Secret_0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def webhook_settings(port: int) -> dict[str, object]:
    return {
        "webhook_url": f"http://127.0.0.1:{port}/telegram/hook",
        "webhook_secret": SECRET,
        "webhook_listen": "127.0.0.1",
        "webhook_port": port,
    }


@pytest.fixture
async def hooked_bot(telegram: FakeTelegram, start_bot: StartBot) -> AsyncIterator[str]:
    """The bot in webhook mode; yields the URL it listens on."""
    port = free_port()
    async with start_bot(**webhook_settings(port)):
        yield f"http://127.0.0.1:{port}/telegram/hook"


async def test_the_bot_registers_its_webhook_and_handles_pushed_updates(
    telegram: FakeTelegram, hooked_bot: str
) -> None:
    hook = telegram.webhook
    assert hook is not None
    assert hook["url"] == hooked_bot and hook["secret_token"] == SECRET
    assert set(hook["allowed_updates"]) == {"message", "edited_message", "callback_query"}

    filed = await say(telegram, "/new Webhooks", "Webhooks")
    assert "Webhooks" in filed
    await say(telegram, "A text note that came by webhook", "Filed under")
    assert [status for _, status in telegram.webhook_deliveries] == [200, 200]
    assert not telegram.calls("getUpdates"), "no polling while the webhook is set"


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Telegram-Bot-Api-Secret-Token": "not-the-secret"}],
    ids=["missing secret", "wrong secret"],
)
async def test_a_request_without_the_secret_is_refused_and_not_handled(
    telegram: FakeTelegram, hooked_bot: str, headers: dict[str, str]
) -> None:
    forged = {
        "update_id": 999_001,
        "message": {
            "message_id": 77,
            "date": 1_700_000_000,
            "chat": {"id": WRITER, "type": "private", "first_name": "Writer"},
            "from": {"id": WRITER, "is_bot": False, "first_name": "Writer"},
            "text": "/new Forged article",
            "entities": [{"type": "bot_command", "offset": 0, "length": 4}],
        },
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(hooked_bot, json=forged, headers=headers) as response,
    ):
        assert response.status == 403

    # Updates are handled in order: once a later genuine one is answered, the forged one
    # would have been answered too had it been accepted.
    await say(telegram, "/new Genuine article", "Genuine article")
    assert not any("Forged" in text for text in telegram.sent_texts(WRITER))


def test_webhook_settings_are_checked_without_echoing_the_secret() -> None:
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET is required"):
        load_settings(_env_file=None, webhook_url="https://bot.example.com/hook")
    with pytest.raises(ConfigError) as bad:
        load_settings(
            _env_file=None,
            webhook_url="https://bot.example.com/hook",
            webhook_secret="has spaces and $ymbols",
        )
    assert "WEBHOOK_SECRET" in str(bad.value) and "ymbols" not in str(bad.value)
    strong = "0123456789abcdef"
    with pytest.raises(ConfigError, match="WEBHOOK_URL"):
        load_settings(_env_file=None, webhook_url="bot.example.com/hook", webhook_secret=strong)
    with pytest.raises(ConfigError, match="https"):  # Telegram's servers deliver only to HTTPS
        load_settings(_env_file=None, webhook_url="http://bot.example.com/h", webhook_secret=strong)
    # A short secret is refused (guessable, and too short to redact from logs safely).
    with pytest.raises(ConfigError) as weak:
        load_settings(_env_file=None, webhook_url="https://bot.example.com/h", webhook_secret="abc")
    assert "WEBHOOK_SECRET" in str(weak.value) and "16" in str(weak.value)
    assert "abc" not in str(weak.value).replace("openssl", "")
    settings = load_settings(
        _env_file=None, webhook_url="https://bot.example.com/tg/hook", webhook_secret="a" * 256
    )
    assert settings.webhook_path == "tg/hook" and settings.webhook_port == 8443
    assert "a" * 256 in settings.secrets


def test_python_m_bot_runs_a_webhook_and_never_logs_the_secret(
    telegram: FakeTelegram, bots: BotLauncher
) -> None:
    """The real command (`run_webhook`), at DEBUG, where PTB logs every Bot API call."""
    port = free_port()
    bots.env.update(
        {
            "WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram/hook",
            "WEBHOOK_SECRET": SECRET,
            "WEBHOOK_LISTEN": "127.0.0.1",
            "WEBHOOK_PORT": str(port),
            "LOG_LEVEL": "DEBUG",
        }
    )
    bot = bots.start()
    bots.wait_for(bot, lambda: telegram.webhook, "setWebhook", timeout=60)
    telegram.send_text(WRITER, "/new From a process")
    bots.wait_for(
        bot,
        lambda: any("From a process" in t for t in telegram.sent_texts(WRITER)),
        "the reply to a pushed update",
        timeout=60,
    )
    assert bot.stop(timeout=30) == 0
    log = bot.log()
    # PTB logs the setWebhook call with its parameters at DEBUG: the secret is redacted there.
    assert "setWebhook" in log and "***" in log
    assert SECRET not in log
