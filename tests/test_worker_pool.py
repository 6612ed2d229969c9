"""The transcription pool: chats side by side, each chat in order, cancel per running job.

The real bot runs against the fake Telegram server with WHISPER_WORKERS=2 (claiming slots).
Speech is recognised by the real tiny.en model; a gate in front of it holds each transcription until
the test lets it go, so what runs at the same time is decided by the test, not by timing.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from bot.app import build_bot, running
from bot.config import whisper_parallelism
from bot.db.migrate import upgrade_to_head
from bot.transcription.base import ProgressCallback, Transcript
from bot.transcription.whisper import WhisperTranscriber
from tests.conftest import AUDIO, FAST, bot_settings
from tests.fakes.telegram_server import FakeTelegram
from tests.test_chat_e2e import notes_in_db

ALICE = 1001
BOB = 2002
GATE_TIMEOUT_S = 60.0


class GatedTranscriber:
    """Real whisper behind a gate: each call waits until released (or cancelled)."""

    def __init__(self, whisper: WhisperTranscriber) -> None:
        self._whisper = whisper
        self._lock = threading.Lock()
        self.started: list[str] = []  # audio file names, in the order transcription began
        self.finished: list[str] = []
        self._gates: dict[str, threading.Event] = {}
        self.open_all = threading.Event()

    def release(self, name: str) -> None:
        with self._lock:
            self._gates.setdefault(name, threading.Event()).set()

    def transcribe(
        self,
        audio_path: Path,
        *,
        vocabulary: Sequence[str] = (),
        language: str | None = None,
        cancel: threading.Event | None = None,
        progress: ProgressCallback | None = None,
    ) -> Transcript:
        name = audio_path.name
        with self._lock:
            self.started.append(name)
            gate = self._gates.setdefault(name, threading.Event())
        waited = 0.0
        while not (gate.is_set() or self.open_all.is_set() or (cancel and cancel.is_set())):
            gate.wait(0.02)
            waited += 0.02
            if waited > GATE_TIMEOUT_S:
                break
        try:
            return self._whisper.transcribe(
                audio_path,
                vocabulary=vocabulary,
                language=language,
                cancel=cancel,
                progress=progress,
            )
        finally:
            with self._lock:
                self.finished.append(name)


@pytest.fixture
def gated(whisper: WhisperTranscriber) -> GatedTranscriber:
    return GatedTranscriber(whisper)


@pytest.fixture(params=[2])
async def pool_bot(
    request: pytest.FixtureRequest,
    telegram: FakeTelegram,
    tmp_path: Path,
    tiny_model_path: str,
    gated: GatedTranscriber,
) -> AsyncIterator[FakeTelegram]:
    """The real bot with WHISPER_WORKERS = the fixture's param."""
    settings = bot_settings(
        tmp_path,
        telegram,
        tiny_model_path,
        allowed_user_ids="1001,2002",
        whisper_workers=request.param,
    )
    upgrade_to_head(settings.database_url)
    try:
        async with running(build_bot(settings, gated, timing=FAST)):
            yield telegram
    finally:
        gated.open_all.set()


def send(telegram: FakeTelegram, user: int, fixture: str, duration: int) -> int:
    data = (AUDIO / fixture).read_bytes()
    update = telegram.send_voice(user, telegram.add_file(data), duration=duration)
    return int(update["message"]["message_id"])


def audio_name(note_id: int) -> str:
    return f"note-{note_id}.audio"


async def filed(telegram: FakeTelegram, user: int, count: int) -> list[str]:
    """Wait until `count` of the user's acknowledgements carry a filed transcript."""

    def done() -> list[str] | None:
        texts = [m.text for m in telegram.sent_messages(user) if "Filed under" in m.text]
        return texts if len(texts) >= count else None

    return await telegram.wait_for(done, timeout=90)


async def test_chats_run_side_by_side_and_each_chat_stays_in_order(
    pool_bot: FakeTelegram, gated: GatedTranscriber, tmp_path: Path
) -> None:
    telegram = pool_bot
    send(telegram, ALICE, "long_speech.ogg", 78)  # note 1, held at the gate
    await telegram.wait_for(lambda: audio_name(1) in gated.started)
    send(telegram, ALICE, "book_club.ogg", 5)  # note 2, must wait for note 1
    await telegram.wait_for(lambda: len(telegram.sent_messages(ALICE)) == 2)
    send(telegram, BOB, "pipelines.ogg", 6)  # note 3, another chat: runs on the free worker
    await telegram.wait_for(lambda: audio_name(3) in gated.started)
    gated.release(audio_name(3))

    bob_filed = await filed(telegram, BOB, 1)
    assert "pipeline" in bob_filed[0].lower()
    # Bob's note was filed while Alice's first note was still held; her second never started.
    assert gated.started == [audio_name(1), audio_name(3)]
    assert audio_name(1) not in gated.finished

    gated.release(audio_name(1))
    gated.release(audio_name(2))
    alice_filed = await filed(telegram, ALICE, 2)
    assert gated.started == [audio_name(1), audio_name(3), audio_name(2)]
    assert gated.finished.index(audio_name(1)) < gated.started.index(audio_name(2))
    assert "libraries" in alice_filed[0].lower() or "library" in alice_filed[0].lower()
    assert "book club" in alice_filed[1].lower()
    states = [(n.id, n.state.value) for n in await notes_in_db(tmp_path)]
    assert states == [(1, "filed"), (2, "filed"), (3, "filed")]


async def test_cancel_and_undo_stop_only_their_own_running_job(
    pool_bot: FakeTelegram, gated: GatedTranscriber, tmp_path: Path
) -> None:
    telegram = pool_bot
    send(telegram, ALICE, "long_speech.ogg", 78)  # note 1
    # Chats are handled side by side: wait, so that note ids follow the order of sending.
    await telegram.wait_for(lambda: len(gated.started) == 1)
    send(telegram, BOB, "book_club.ogg", 5)  # note 2
    await telegram.wait_for(lambda: len(gated.started) == 2)  # both running at once

    telegram.send_text(ALICE, "/cancel")
    await telegram.wait_for_text(ALICE, "cancelled", timeout=60)
    assert not any("cancelled" in m.text for m in telegram.sent_messages(BOB))

    send(telegram, ALICE, "pipelines.ogg", 6)  # note 3: Alice's worker is free again
    await telegram.wait_for(lambda: audio_name(3) in gated.started)
    telegram.send_text(BOB, "/undo")  # removes Bob's note 2, still running
    await telegram.wait_for_text(BOB, "Removed before it was transcribed", timeout=60)

    gated.release(audio_name(3))
    alice_filed = await filed(telegram, ALICE, 1)
    assert "pipeline" in alice_filed[0].lower()
    notes = {n.id: n.state.value for n in await notes_in_db(tmp_path)}
    assert notes == {1: "failed", 3: "filed"}


@pytest.mark.parametrize("pool_bot", [1], indirect=True)
async def test_with_one_worker_chats_take_turns(
    pool_bot: FakeTelegram, gated: GatedTranscriber
) -> None:
    telegram = pool_bot
    send(telegram, ALICE, "book_club.ogg", 5)  # note 1, held at the gate
    await telegram.wait_for(lambda: audio_name(1) in gated.started)
    for _ in range(2):
        send(telegram, ALICE, "book_club.ogg", 5)  # notes 2 and 3
    await telegram.wait_for(lambda: len(telegram.sent_messages(ALICE)) == 3)
    send(telegram, BOB, "pipelines.ogg", 6)  # note 4
    await telegram.wait_for(lambda: telegram.sent_messages(BOB))
    gated.open_all.set()
    await filed(telegram, ALICE, 3)
    await filed(telegram, BOB, 1)
    # Bob's one note ran after Alice's first, not after all three of hers.
    assert gated.started == [audio_name(n) for n in (1, 4, 2, 3)]


@pytest.mark.parametrize(
    ("workers", "threads", "cores", "expected"),
    [
        (0, 0, 2, (2, 1)),  # the measured default on two cores: two workers, a thread each
        (0, 0, 1, (1, 1)),
        (0, 0, 8, (2, 4)),  # more cores become threads of each worker
        (1, 0, 2, (1, 2)),  # workers given: threads fill the cores, never oversubscribe
        (3, 0, 2, (3, 1)),
        (0, 1, 4, (2, 1)),  # threads given: kept as they are
        (2, 2, 8, (2, 2)),
    ],
)
def test_whisper_parallelism_fills_the_cores(
    workers: int, threads: int, cores: int, expected: tuple[int, int]
) -> None:
    assert whisper_parallelism(workers, threads, cores) == expected


def test_warm_up_runs_every_worker_and_leaves_the_model_usable(tiny_model_path: str) -> None:
    transcriber = WhisperTranscriber(tiny_model_path, cpu_threads=1, workers=2)
    transcriber.warm_up()
    text = transcriber.transcribe(AUDIO / "book_club.ogg").text.lower()
    assert "book club" in text
