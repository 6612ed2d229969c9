"""One transcription job with an in-process transcriber and audio source, on SQLite and
PostgreSQL: every way a job ends is a state and a failure code, never a sentence."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Note
from bot.domain import IncomingMedia, NoteKind
from bot.notes.intake import IntakeService
from bot.notes.lifecycle import FailureCode, NoteState
from bot.notes.queue import NoteQueue
from bot.notes.transcribe import DownloadError, JobControl, TranscriptionJob
from bot.notes.worker import TranscriptionWorker
from bot.transcription.base import (
    Transcript,
    TranscriptionError,
    TranscriptionUnavailable,
    UnavailableReason,
)
from tests.conftest import FAST, eventually
from tests.fakes.transcriber import FakeTranscriber

Sessions = async_sessionmaker[AsyncSession]


class FakeAudio:
    """Downloads succeed (writing a few bytes) unless errors are queued."""

    def __init__(self) -> None:
        self.errors: list[DownloadError] = []
        self.downloads = 0

    async def download(self, file_id: str, destination: Path) -> None:
        self.downloads += 1
        if self.errors:
            raise self.errors.pop(0)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(b"audio")  # noqa: ASYNC240


@pytest.fixture
def transcriber() -> FakeTranscriber:
    return FakeTranscriber()


@pytest.fixture
def audio() -> FakeAudio:
    return FakeAudio()


async def run_one(
    sessions: Sessions, transcriber: FakeTranscriber, audio: FakeAudio, tmp_path: Path
) -> Note:
    """Queue a 5 s voice note, run one job on it, return the note as stored."""
    media = IncomingMedia(NoteKind.VOICE, "file-1", None, 5, 1000)
    result = await IntakeService(sessions).receive_media(1, 1, 1, media)
    queue = NoteQueue(sessions, FAST)
    job = TranscriptionJob(queue, transcriber, audio, tmp_path / "audio", FAST, sessions=sessions)
    claim = await queue.claim("w")
    assert claim is not None
    await job.run(claim, JobControl())
    async with sessions.begin() as session:
        note = await session.get(Note, result.note_id)
        assert note is not None
        return note


@pytest.mark.parametrize(
    ("answer", "state", "failure"),
    [
        (Transcript("Words.", "en", 5.0, 4.0), NoteState.FILED, None),
        (Transcript("", "en", 5.0, 0.0), NoteState.FAILED, FailureCode.NO_SPEECH),
        (Transcript("Words.", "en", 1.0, 1.0), NoteState.FAILED, FailureCode.CUT_OFF),
        (TranscriptionError("bad"), NoteState.FAILED, FailureCode.UNREADABLE),
        (
            TranscriptionError("big", too_large=True),
            NoteState.FAILED,
            FailureCode.TOO_LARGE_FOR_SERVICE,
        ),
        (
            TranscriptionUnavailable("503", why=UnavailableReason.DOWN),
            NoteState.QUEUED,
            FailureCode.SERVICE_DOWN,
        ),
        (
            TranscriptionUnavailable("401", why=UnavailableReason.REFUSED),
            NoteState.QUEUED,
            FailureCode.SERVICE_REFUSED,
        ),
    ],
)
async def test_every_ending_is_a_state_and_a_code(
    sessions: Sessions,
    transcriber: FakeTranscriber,
    audio: FakeAudio,
    tmp_path: Path,
    answer: Transcript | Exception,
    state: NoteState,
    failure: FailureCode | None,
) -> None:
    transcriber.answer(answer)
    note = await run_one(sessions, transcriber, audio, tmp_path)
    assert (note.state, note.failure) == (state, failure)
    if state == NoteState.QUEUED:  # held for the service: kept, with a time to try again
        assert note.not_before is not None and note.audio_path
        assert Path(note.audio_path).exists()  # noqa: ASYNC240
    else:
        assert not list((tmp_path / "audio").glob("*")), "no recording left behind"
    assert transcriber.history and transcriber.history[0].vocabulary == ["Notes"]


async def test_downloads_are_retried_then_held_or_failed_for_good(
    sessions: Sessions, transcriber: FakeTranscriber, audio: FakeAudio, tmp_path: Path
) -> None:
    audio.errors = [DownloadError("502")] * 2
    note = await run_one(sessions, transcriber, audio, tmp_path)
    assert note.state == NoteState.FILED and audio.downloads == 3

    async with sessions.begin() as session:
        await session.delete(note)
    audio.downloads = 0
    audio.errors = [DownloadError("502")] * FAST.download_attempts
    note = await run_one(sessions, transcriber, audio, tmp_path)
    assert (note.state, note.failure) == (NoteState.QUEUED, FailureCode.DOWNLOAD_FAILED)
    assert audio.downloads == FAST.download_attempts, "Telegram down: tried again later"

    async with sessions.begin() as session:
        await session.delete(await session.get(Note, note.id))
    audio.errors = [DownloadError("file is too big", permanent=True)]
    note = await run_one(sessions, transcriber, audio, tmp_path)
    assert (note.state, note.failure) == (NoteState.FAILED, FailureCode.DOWNLOAD_FAILED)


async def test_a_worker_stopping_mid_note_gives_it_back_untouched(
    sessions: Sessions, transcriber: FakeTranscriber, audio: FakeAudio, tmp_path: Path
) -> None:
    transcriber.gate = threading.Event()  # the transcription never ends by itself
    media = IncomingMedia(NoteKind.VOICE, "file-1", None, 5, 1000)
    result = await IntakeService(sessions).receive_media(1, 1, 1, media)
    queue = NoteQueue(sessions, FAST)
    job = TranscriptionJob(queue, transcriber, audio, tmp_path / "audio", FAST, sessions=sessions)
    worker = TranscriptionWorker(queue, job, "w", slots=1, timing=FAST)
    worker.start()
    await eventually(lambda: transcriber.history)
    await worker.stop()
    async with sessions.begin() as session:
        note = await session.get(Note, result.note_id)
        assert note is not None
        assert (note.state, note.failure, note.crashes) == (NoteState.QUEUED, None, 0)
        kept = note.audio_path and Path(note.audio_path).exists()  # noqa: ASYNC240
        assert kept, "kept for the next start"
