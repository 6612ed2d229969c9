"""Separate workers: the bot holds the Telegram connection, `python -m bot worker` processes
transcribe, all sharing one PostgreSQL database.

The bot runs in this process against the fake Bot API server; each worker is a real child
process with its own DATA_DIR (as on another machine) that downloads through the same fake
server and leaves its results in the database for the bot to deliver.
"""

from __future__ import annotations

import re
import signal
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from bot.db.models import MessageView, Note
from bot.db.session import create_engine, create_session_factory
from bot.notes.lifecycle import NoteState
from tests.conftest import AUDIO, StartBot, eventually
from tests.fakes.telegram_server import FakeTelegram
from tests.processes import BotLauncher, BotProcess, message_calls

WRITERS = (1001, 1002, 1003)
FILED = "Filed under"
STARTUP_S = 60.0
CLAIM = re.compile(r"(worker:\S+) transcribing note (\d+)")


def start_worker(
    bots: BotLauncher,
    tmp_path: Path,
    database_url: str,
    n: int,
    extra: dict[str, str] | None = None,
) -> BotProcess:
    return bots.start(
        "worker",
        env={
            "DATABASE_URL": database_url,
            "DATA_DIR": str(tmp_path / f"worker-{n}"),  # no disk shared with the bot
            "ALLOWED_USER_IDS": ",".join(map(str, WRITERS)),
            "SEPARATE_WORKERS": "true",
            "WORKER_POLL_SECONDS": "0.2",
            "WORKER_LEASE_SECONDS": "5",
            **(extra or {}),
        },
    )


def wait_ready(bots: BotLauncher, worker: BotProcess) -> None:
    bots.wait_for(worker, lambda: "waiting for notes" in worker.log(), "worker", STARTUP_S)


def claims(bots: BotLauncher) -> list[tuple[str, int]]:
    text = bots.log_path.read_text(errors="replace")
    return [(m.group(1), int(m.group(2))) for m in CLAIM.finditer(text)]


async def notes_by_id(database_url: str) -> dict[int, Note]:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine).begin() as session:
            return {n.id: n for n in (await session.scalars(select(Note))).all()}
    finally:
        await engine.dispose()


async def shown_by(database_url: str, note_ids: list[int]) -> set[int]:
    """The message ids that show these notes' cards (the acknowledgements)."""
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine).begin() as session:
            subjects = [f"note:{n}" for n in note_ids]
            rows = await session.scalars(
                select(MessageView.message_id).where(MessageView.subject.in_(subjects))
            )
            return set(rows)
    finally:
        await engine.dispose()


async def test_two_workers_transcribe_every_note_exactly_once_in_chat_order(
    tmp_path: Path,
    telegram: FakeTelegram,
    start_bot: StartBot,
    bots: BotLauncher,
    postgres_url: str,
) -> None:
    workers = [start_worker(bots, tmp_path, postgres_url, n) for n in (1, 2)]
    for worker in workers:
        wait_ready(bots, worker)
    recordings = {"book_club.ogg": 4, "pipelines.ogg": 6, "two_sections.ogg": 10}  # seconds
    allowed = ",".join(map(str, WRITERS))
    settings = {"database_url": postgres_url, "allowed_user_ids": allowed}
    async with start_bot(separate_workers=True, **settings):
        for name, seconds in recordings.items():  # three notes from each of three writers
            audio = (AUDIO / name).read_bytes()
            for writer in WRITERS:
                telegram.send_voice(writer, telegram.add_file(audio), duration=seconds)

        def all_filed() -> bool:
            return all(
                len(message_calls(telegram, writer, FILED)) >= len(recordings)
                for writer in WRITERS
            )

        try:
            await eventually(all_filed, within=120)
        except AssertionError:
            raise AssertionError(bots.report()) from None

    notes = await notes_by_id(postgres_url)
    assert len(notes) == 9
    assert all(n.state == NoteState.FILED for n in notes.values())
    # Exactly once: each note claimed once, by one of the two workers, and delivered once.
    taken = claims(bots)
    assert sorted(note_id for _, note_id in taken) == sorted(notes)
    names = {name for name, _ in taken}
    assert len(names) == 2, f"both workers should have worked: {Counter(n for n, _ in taken)}"
    assert {n.claimed_by for n in notes.values()} == names
    for writer in WRITERS:
        assert len(message_calls(telegram, writer, FILED)) == len(recordings)
        # Each writer's notes were transcribed in the order they were sent.
        mine = sorted((n for n in notes.values() if n.chat_id == writer), key=lambda n: n.id)
        times = [n.transcribed_at for n in mine]
        assert times == sorted(times)  # type: ignore[type-var]
        # One message shows each note: its acknowledgement, edited into the transcript (or,
        # when the transcript was ready first, sent with it).
        shown = await shown_by(postgres_url, [n.id for n in mine])
        assert len(shown) == len(mine)
        filed_in = {
            c.params.get("message_id") for c in message_calls(telegram, writer, FILED)
        } - {None}
        assert filed_in <= shown

    for worker in workers:
        assert worker.stop(timeout=15) == 0


async def test_a_killed_workers_note_is_taken_over_and_filed_once(
    tmp_path: Path,
    telegram: FakeTelegram,
    start_bot: StartBot,
    bots: BotLauncher,
    postgres_url: str,
) -> None:
    first = start_worker(bots, tmp_path, postgres_url, 1)
    wait_ready(bots, first)
    async with start_bot(separate_workers=True, database_url=postgres_url):
        audio = (AUDIO / "long_speech.ogg").read_bytes()
        telegram.send_voice(WRITERS[0], telegram.add_file(audio), duration=78)
        # The bot runs on this event loop: wait without blocking it.
        await eventually(lambda: claims(bots), within=STARTUP_S)
        await eventually(lambda: "s of speech (of " in first.log(), within=STARTUP_S)
        first.signal(signal.SIGKILL)
        first.wait_exit(timeout=10)

        second = start_worker(bots, tmp_path, postgres_url, 2)
        # The dead worker's claim runs out (WORKER_LEASE_SECONDS=5); the second one takes over.
        await eventually(lambda: message_calls(telegram, WRITERS[0], FILED), within=120)

    taken = claims(bots)
    assert [note for _, note in taken] == [taken[0][1], taken[0][1]]
    assert taken[0][0] != taken[1][0]
    notes = await notes_by_id(postgres_url)
    (note,) = notes.values()
    assert note.state == NoteState.FILED and note.crashes == 1
    assert len(message_calls(telegram, WRITERS[0], FILED)) == 1
    assert second.stop(timeout=15) == 0


async def test_cancel_and_undo_reach_the_worker_transcribing_the_note(
    tmp_path: Path,
    telegram: FakeTelegram,
    start_bot: StartBot,
    bots: BotLauncher,
    postgres_url: str,
) -> None:
    from tests.test_chat_e2e import say

    worker = start_worker(bots, tmp_path, postgres_url, 1)
    wait_ready(bots, worker)
    writer = WRITERS[0]
    audio = (AUDIO / "long_speech.ogg").read_bytes()
    async with start_bot(separate_workers=True, database_url=postgres_url):
        steps = [
            ("/cancel", "Stopping the current transcription", "Transcription cancelled"),
            ("/undo", "Removed your last note", "Removed before it was transcribed"),
        ]
        for command, reply, done in steps:
            decoding = worker.log().count("s of speech (of ")
            telegram.send_voice(writer, telegram.add_file(audio), duration=78)
            await eventually(
                lambda n=decoding: worker.log().count("s of speech (of ") > n,  # type: ignore[misc]
                within=STARTUP_S,
            )
            await say(telegram, command, reply)
            # The worker notices at its next beat and stops; the bot shows the outcome.
            await eventually(lambda d=done: any(d in t for t in telegram.sent_texts(writer)))

    notes = await notes_by_id(postgres_url)
    assert [n.state for n in notes.values()] == [NoteState.FAILED]  # the undone one is gone
    assert not message_calls(telegram, writer, FILED)
    assert worker.stop(timeout=15) == 0


def test_a_worker_refuses_to_start_for_a_bot_that_transcribes_itself(
    bots: BotLauncher,
) -> None:
    worker = bots.start("worker", env={"SEPARATE_WORKERS": "false"})
    assert worker.wait_exit(timeout=60) == 2
    assert "SEPARATE_WORKERS=true is needed" in worker.log()
    assert "Traceback" not in worker.log()
