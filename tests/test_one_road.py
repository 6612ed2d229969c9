"""One road for a note, tried the way it breaks: kill -9 right after Telegram forgot a burst
(polling and webhook), graceful restarts during one note, a worker frozen past its lease.

Each test runs the real `python -m bot` (and workers) as child processes against the fake
Bot API over real HTTP; the fake's database-independent state (what Telegram still holds)
and the bot's SQLite or PostgreSQL database outlive every process.
"""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

from sqlalchemy import select

from bot.db.models import NotePart
from bot.db.session import create_engine, create_session_factory
from tests.conftest import AUDIO, StartBot, eventually
from tests.fakes.telegram_server import FakeTelegram
from tests.processes import BotLauncher, BotProcess, message_calls
from tests.test_process_resilience import (
    STARTUP_S,
    WRITER,
    send_recording,
    wait_filed,
    wait_transcribing,
)
from tests.test_separate_workers import notes_by_id, start_worker, wait_ready
from tests.test_webhook import SECRET, free_port

BURST = 20
# A far-away Telegram: every Bot API call takes this long to answer.
ROUND_TRIP_S = 0.3


def wait_polling(bots: BotLauncher, bot: BotProcess) -> None:
    bots.wait_for(bot, lambda: "Bot started" in bot.log(), "the bot to start", STARTUP_S)


def stored_texts(bots: BotLauncher) -> list[str]:
    return [row[0] for row in bots.query("SELECT transcript FROM notes ORDER BY id")]


def replies(server: FakeTelegram, message_ids: list[int]) -> dict[int, int]:
    """How many of the bot's messages answer each of the writer's messages."""
    counts = dict.fromkeys(message_ids, 0)
    for message in server.sent_messages(WRITER):
        if message.reply_to in counts:
            counts[message.reply_to] += 1
    return counts


def send_burst(server: FakeTelegram) -> tuple[list[int], list[int]]:
    """BURST text notes at once; (update ids, message ids)."""
    updates = [server.send_text(WRITER, f"Burst note number {n}.") for n in range(BURST)]
    return [u["update_id"] for u in updates], [u["message"]["message_id"] for u in updates]


def kill_when_confirmed(
    bots: BotLauncher, bot: BotProcess, update_ids: list[int], what: str
) -> None:
    server = bots.server
    bots.wait_for(bot, lambda: all(server.confirmed(u) for u in update_ids), what, STARTUP_S)
    bot.signal(signal.SIGKILL)
    assert bot.wait_exit(10) == -signal.SIGKILL
    assert server.pending_updates() == 0, "Telegram holds none of them any more"


def assert_burst_survived(bots: BotLauncher, bot: BotProcess, message_ids: list[int]) -> None:
    """Every note of the burst stored once and answered, after the restart."""
    expected = [f"Burst note number {n}." for n in range(BURST)]
    bots.wait_for(
        bot,
        lambda: sorted(stored_texts(bots)) == sorted(expected)
        and all(replies(bots.server, message_ids).values()),
        "every note of the burst stored and answered",
        120,
    )
    assert len(stored_texts(bots)) == BURST, "each note stored once"
    # At least once: a reply whose send was in flight at the kill may come twice, never more.
    assert max(replies(bots.server, message_ids).values()) <= 2


def test_kill_9_after_polling_confirmed_a_burst_loses_nothing(bots: BotLauncher) -> None:
    server = bots.server
    server.set_latency(ROUND_TRIP_S)
    first = bots.start()
    wait_polling(bots, first)
    update_ids, message_ids = send_burst(server)
    kill_when_confirmed(bots, first, update_ids, "getUpdates to confirm the burst")

    second = bots.start()
    assert_burst_survived(bots, second, message_ids)
    assert second.stop() == 0


def test_kill_9_after_the_webhook_accepted_a_burst_loses_nothing(bots: BotLauncher) -> None:
    server = bots.server
    server.set_latency(ROUND_TRIP_S)
    port = free_port()
    bots.env.update(
        {
            "WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram/hook",
            "WEBHOOK_SECRET": SECRET,
            "WEBHOOK_LISTEN": "127.0.0.1",
            "WEBHOOK_PORT": str(port),
        }
    )
    first = bots.start()
    bots.wait_for(first, lambda: server.webhook, "setWebhook", STARTUP_S)
    update_ids, message_ids = send_burst(server)
    kill_when_confirmed(bots, first, update_ids, "the webhook to answer 200 for the burst")

    second = bots.start()
    assert_burst_survived(bots, second, message_ids)
    assert second.stop() == 0


def test_three_graceful_restarts_during_one_note_never_set_it_aside(
    bots: BotLauncher, very_long_recording: tuple[bytes, int]
) -> None:
    server = bots.server
    audio, seconds = very_long_recording
    bot = bots.start()
    _, message_id = send_recording(server, audio, duration=seconds)
    for _ in range(3):
        wait_transcribing(bots, bot, message_id)
        bot.signal(signal.SIGTERM)
        assert bot.wait_exit(30) in (0, -signal.SIGTERM)
        assert bots.state_of(WRITER, message_id) == "queued"
        bot = bots.start()
    wait_filed(bots, bot, message_id, timeout=240)
    [(crashes, failure)] = bots.query("SELECT crashes, failure FROM notes")
    assert (crashes, failure) == (0, None), "a graceful stop is not a crash"
    assert not [t for t in server.sent_texts(WRITER) if "⚠️" in t or "set aside" in t]
    assert bot.stop() == 0


async def test_a_worker_frozen_past_its_lease_never_touches_the_note_again(
    tmp_path: Path,
    telegram: FakeTelegram,
    start_bot: StartBot,
    bots: BotLauncher,
    postgres_url: str,
) -> None:
    """Frozen while Telegram answers its getFile: awake, the stale worker would download the
    recording and go on to transcribe and file a note another worker filed meanwhile."""
    telegram.set_latency(1.0)  # long enough to freeze the worker while it waits for getFile
    frozen = start_worker(bots, tmp_path, postgres_url, 1)
    wait_ready(bots, frozen)
    async with start_bot(separate_workers=True, database_url=postgres_url):
        audio = (AUDIO / "book_club.ogg").read_bytes()
        voice = telegram.send_voice(WRITER, telegram.add_file(audio), duration=5)
        await eventually(lambda: telegram.calls("getFile"), within=STARTUP_S)
        frozen.signal(signal.SIGSTOP)  # no beats: its claim runs out (lease 5 s)
        try:
            other = start_worker(bots, tmp_path, postgres_url, 2)
            voice_id = voice["message"]["message_id"]

            def filed() -> bool:
                return "Filed under" in getattr(telegram.reply_to(WRITER, voice_id), "text", "")

            await eventually(filed, within=120)
        finally:
            frozen.signal(signal.SIGCONT)
        note_id = next(iter(await notes_by_id(postgres_url)))
        # Awake, the stale worker finds the note is not its own any more.
        await eventually(
            lambda: f"no longer holds note {note_id}" in frozen.log(), within=STARTUP_S
        )
        await asyncio.sleep(2.0)  # anything it would still do to the note happens now

    (note,) = (await notes_by_id(postgres_url)).values()
    assert note.state.value == "filed" and note.crashes == 1 and note.failure is None
    assert note.claimed_by == _claimant(other)
    assert await part_count(postgres_url, note_id) == 1, "filed once"
    shown = [m for m in telegram.sent_messages(WRITER) if m.reply_to == note.message_id]
    assert len(shown) == 1 and "Filed under" in shown[0].text
    assert len(message_calls(telegram, WRITER, "Filed under")) == 1, "shown once"
    assert not [t for t in telegram.sent_texts(WRITER) if "⚠️" in t]
    assert frozen.stop(timeout=15) == 0 and other.stop(timeout=15) == 0


async def part_count(database_url: str, note_id: int) -> int:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine).begin() as session:
            rows = await session.scalars(select(NotePart.id).where(NotePart.note_id == note_id))
            return len(list(rows))
    finally:
        await engine.dispose()


def _claimant(worker: BotProcess) -> str:
    names = re.findall(r"(worker:\S+) waiting for notes", worker.log())
    assert names, worker.log()
    return names[0]
