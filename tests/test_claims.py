"""Note claims for separate workers, on SQLite and PostgreSQL: one note, one worker, in order."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Note, NoteStatus, OutboxMessage, utcnow
from bot.db.repository import ClaimQueries
from bot.domain import (
    FiledPart,
    IncomingMedia,
    NoteKind,
    SuggestedSection,
    TranscriptionOutcome,
)
from bot.notes.intake import IntakeService
from bot.services.remote_jobs import (
    ClaimingWorker,
    OutboxNotifier,
    RemoteTranscription,
    decode_outcome,
    encode_outcome,
)
from bot.services.transcription_jobs import TranscriptionWorker
from bot.transcription.base import TranscriptionCancelled
from tests.conftest import eventually

LEASE = timedelta(seconds=60)


async def _voice(sessions: async_sessionmaker[AsyncSession], user: int, message_id: int) -> int:
    media = IncomingMedia(NoteKind.VOICE, f"file-{user}-{message_id}", None, 3, 1000)
    intake = IntakeService(sessions)
    result = await intake.receive_media(user, user, message_id, media)
    await intake.remember_ack(user, result.note_id, 1000 + message_id)
    return result.note_id


async def _claim(sessions: async_sessionmaker[AsyncSession], worker: str) -> int | None:
    async with sessions.begin() as session:
        return await ClaimQueries(session).claim_next(worker, LEASE)


async def _finish(sessions: async_sessionmaker[AsyncSession], note_id: int) -> None:
    async with sessions.begin() as session:
        note = await session.get(Note, note_id)
        assert note is not None
        note.status = NoteStatus.TRANSCRIBED


async def test_each_chat_is_worked_in_order_and_no_note_twice(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a1 = await _voice(sessions, 1, 1)
    a2 = await _voice(sessions, 1, 2)
    b1 = await _voice(sessions, 2, 1)

    assert await _claim(sessions, "w1") == a1
    # Chat 1's second note waits for its first: the other worker gets chat 2.
    assert await _claim(sessions, "w2") == b1
    assert await _claim(sessions, "w3") is None

    await _finish(sessions, a1)
    assert await _claim(sessions, "w3") == a2
    assert await _claim(sessions, "w1") is None


async def test_concurrent_claims_never_take_the_same_note(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    notes = {await _voice(sessions, user, 1) for user in range(1, 9)}
    claimed = await asyncio.gather(*(_claim(sessions, f"w{i}") for i in range(12)))
    taken = [n for n in claimed if n is not None]
    assert sorted(taken) == sorted(notes)  # every note once, four workers found nothing


async def test_a_dead_workers_claim_runs_out_and_a_released_one_is_free_at_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    note = await _voice(sessions, 1, 1)
    async with sessions.begin() as session:
        taken = await ClaimQueries(session).claim_next("dead", LEASE, now=utcnow() - 2 * LEASE)
        assert taken == note
    # The claim expired a minute ago: another worker takes the note.
    assert await _claim(sessions, "alive") == note
    async with sessions.begin() as session:
        ours, cancel = await ClaimQueries(session).renew(note, "dead", LEASE)
    assert (ours, cancel) == (False, False)  # the dead worker, back, learns it lost the note

    async with sessions.begin() as session:
        await ClaimQueries(session).release(note, "alive")
    assert await _claim(sessions, "next") == note


async def test_cancel_reaches_only_the_writers_running_note(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    mine = await _voice(sessions, 1, 1)
    queued = await _voice(sessions, 1, 2)
    other = await _voice(sessions, 2, 1)
    remote = RemoteTranscription(sessions, notifier=_Recorder())
    assert await remote.cancel(1) is False  # nothing of writer 1 is being transcribed yet

    assert await _claim(sessions, "w1") == mine
    assert await _claim(sessions, "w2") == other
    assert await remote.cancel(1) is True
    async with sessions.begin() as session:
        flags = dict(
            (await session.execute(select(Note.id, Note.cancel_requested))).all()
        )
        assert await ClaimQueries(session).renew(mine, "w1", LEASE) == (True, True)
        assert await ClaimQueries(session).renew(other, "w2", LEASE) == (True, False)
    assert flags == {mine: True, queued: False, other: False}


class _Recorder:
    def __init__(self) -> None:
        self.outcomes: list[TranscriptionOutcome] = []
        self.progress_calls: list[tuple[int, int, int]] = []

    async def deliver(self, outcome: TranscriptionOutcome) -> None:
        self.outcomes.append(outcome)

    async def progress(self, chat_id: int, ack_message_id: int, percent: int) -> None:
        self.progress_calls.append((chat_id, ack_message_id, percent))


def test_outcomes_survive_the_outbox_encoding() -> None:
    outcome = TranscriptionOutcome(
        note_id=7,
        chat_id=5,
        ack_message_id=9,
        ok=True,
        transcript="Привет, world",
        parts=[FiledPart(1, 2, "Intro", "Привет", title_spoken=True)],
        suggestions=[SuggestedSection(3, "Skill gaps")],
    )
    assert decode_outcome(encode_outcome(outcome)) == outcome


async def test_the_bot_delivers_each_outbox_message_once_with_the_stored_ack(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    note = await _voice(sessions, 1, 1)
    # The worker finished before the bot stored its acknowledgement's id...
    outcome = TranscriptionOutcome(note_id=note, chat_id=1, ack_message_id=None, ok=True)
    worker_side = OutboxNotifier(sessions)
    async with sessions.begin() as session:
        stored = await session.get(Note, note)
        assert stored is not None
        stored.ack_message_id = 77
    await worker_side.progress(1, 77, 40)
    await worker_side.deliver(outcome)

    recorder = _Recorder()
    bot_side = RemoteTranscription(sessions, notifier=recorder)
    assert await bot_side.deliver_pending() == 2
    assert await bot_side.deliver_pending() == 0
    # ...so the bot edits the acknowledgement it knows of now, and the late progress edit,
    # in the same batch as the result, is dropped rather than overwrite it.
    assert [o.ack_message_id for o in recorder.outcomes] == [77]
    assert recorder.progress_calls == []


async def test_progress_is_shown_while_the_result_is_not_there_yet(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    note = await _voice(sessions, 1, 1)
    async with sessions.begin() as session:
        stored = await session.get(Note, note)
        assert stored is not None
        stored.ack_message_id = 77
    await OutboxNotifier(sessions).progress(1, 77, 40)
    recorder = _Recorder()
    assert await RemoteTranscription(sessions, notifier=recorder).deliver_pending() == 1
    assert recorder.progress_calls == [(1, 77, 40)]


async def test_a_held_note_waits_for_its_retry_time_then_any_worker_takes_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    note = await _voice(sessions, 1, 1)
    assert await _claim(sessions, "w1") == note
    async with sessions.begin() as session:  # the transcription service was down
        await ClaimQueries(session).hold(note, "w1", timedelta(minutes=3))
    assert await _claim(sessions, "w2") is None
    # Held, nobody transcribes it: /cancel must not claim to stop it.
    assert await RemoteTranscription(sessions, notifier=_Recorder()).cancel(1) is False
    async with sessions.begin() as session:
        later = utcnow() + timedelta(minutes=4)
        assert await ClaimQueries(session).claim_next("w2", LEASE, now=later) == note


async def test_a_note_is_claimed_once_the_bot_has_acknowledged_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    media = IncomingMedia(NoteKind.VOICE, "file-1-1", None, 3, 1000)
    intake = IntakeService(sessions)
    note = (await intake.receive_media(1, 1, 1, media)).note_id
    # The transcript edits the acknowledgement, so the worker waits for it to be stored...
    assert await _claim(sessions, "w1") is None
    await intake.remember_ack(1, note, 55)
    assert await _claim(sessions, "w1") == note


async def test_a_note_whose_acknowledgement_failed_is_taken_after_a_grace_period(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    media = IncomingMedia(NoteKind.VOICE, "file-1-1", None, 3, 1000)
    note = (await IntakeService(sessions).receive_media(1, 1, 1, media)).note_id
    async with sessions.begin() as session:
        later = utcnow() + timedelta(seconds=11)
        assert await ClaimQueries(session).claim_next("w1", LEASE, now=later) == note


async def test_outbox_messages_of_a_removed_note_are_dropped(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from bot.notes.manage import NotesService

    note = await _voice(sessions, 1, 1)
    worker_side = OutboxNotifier(sessions)
    await worker_side.progress(1, 1001, 40)
    await NotesService(sessions).undo_last(1)  # the writer removed it meanwhile
    filed = TranscriptionOutcome(note_id=note, chat_id=1, ack_message_id=1001, ok=True)
    await worker_side.deliver(filed)
    recorder = _Recorder()
    assert await RemoteTranscription(sessions, notifier=recorder).deliver_pending() == 2
    assert recorder.outcomes == [] and recorder.progress_calls == []


class _SlowTranscriber:
    """Transcribes nothing until released (or cancelled), like a long recording."""

    def __init__(self) -> None:
        self.started = threading.Event()

    def transcribe(self, audio_path, *, vocabulary=(), language=None, cancel=None, progress=None):  # type: ignore[no-untyped-def]
        self.started.set()
        while cancel is None or not cancel.is_set():
            time.sleep(0.01)
        raise TranscriptionCancelled()


class _Audio:
    async def download(self, file_id: str, destination: Path) -> None:
        await asyncio.to_thread(destination.write_bytes, b"OggS fake")


async def test_a_worker_that_lost_its_claim_stops_without_touching_the_note(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    note = await _voice(sessions, 1, 1)
    transcriber = _SlowTranscriber()
    jobs = TranscriptionWorker(
        sessions, transcriber, _Audio(), OutboxNotifier(sessions), tmp_path, claimant="w1"
    )
    worker = ClaimingWorker(sessions, jobs, "w1", lease_seconds=60, poll_seconds=0.05)
    run = asyncio.create_task(worker.run_once())
    await eventually(transcriber.started.is_set)
    async with sessions.begin() as session:
        # Another worker took the note over (this one looked dead to it).
        stored = await session.get(Note, note)
        assert stored is not None and stored.claimed_by == "w1"
        stored.claimed_by = "w2"
    assert await asyncio.wait_for(run, 10) is True
    async with sessions.begin() as session:
        stored = await session.get(Note, note)
        assert stored is not None
        assert stored.status == NoteStatus.DOWNLOADED and stored.claimed_by == "w2"
        assert stored.error is None
        assert stored.audio_path, "audio kept for w2"
        assert await asyncio.to_thread(os.path.exists, stored.audio_path)
        assert not (await session.scalars(select(OutboxMessage))).all(), "no message"
