"""Background transcription: download, transcribe off the event loop, file, tell the writer."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Note, NoteStatus, UsageKind, utcnow
from bot.db.repository import JobQueries, Repository
from bot.domain import SuggestedSection, TranscriptionOutcome, UserError
from bot.drafting.citations import quote_in
from bot.llm.schemas import NoteForDraft, RoutingAdvice
from bot.notes.filing import file_transcript
from bot.notes.vocabulary import whisper_vocabulary
from bot.services.outline import clean_title, normalise_title
from bot.services.threads import run_in_daemon_thread
from bot.services.usage import llm_usage_recorded
from bot.transcription.base import (
    Transcriber,
    TranscriptionCancelled,
    TranscriptionError,
    TranscriptionUnavailable,
)

log = logging.getLogger(__name__)

PROGRESS_MIN_DURATION_S = 60
PROGRESS_INTERVAL_S = 5.0
PROGRESS_DRAIN_TIMEOUT_S = 5.0
DOWNLOAD_ATTEMPTS = 4
DOWNLOAD_BACKOFF_S = 1.0
# A note whose job died this often (e.g. it crashed the process) is set aside, not retried.
MAX_JOB_ATTEMPTS = 3
# Whisper invents words for near-silent input; below this much speech we file nothing.
MIN_SPEECH_SECONDS = 0.3
# A recording that decodes to much less than Telegram says it lasts is damaged (cut off).
MIN_DECODED_SHARE = 0.6
# New headings offered per note: a few buttons, never a wall of them.
MAX_SUGGESTIONS = 3
# Routing is an extra: it may not hold a worker (and the notes queued behind it) for long.
ROUTING_TIMEOUT_S = 45.0
# A hosted transcription service that is down gets the note again this much later (bounded
# by MAX_JOB_ATTEMPTS, like a crash).
UNAVAILABLE_RETRY_S = 180.0


class DownloadError(Exception):
    """The recording could not be fetched; `permanent` means retrying will not help."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


class AudioSource(Protocol):
    async def download(self, file_id: str, destination: Path) -> None:
        """Fetch the file behind a Telegram file_id into destination."""
        ...


class NoteRouter(Protocol):
    async def advise(
        self, article_title: str, outline: Sequence[str], note: NoteForDraft
    ) -> RoutingAdvice:
        """Suggest a section for a note that names none, and new spoken headings."""
        ...


class Notifier(Protocol):
    async def deliver(self, outcome: TranscriptionOutcome) -> None:
        """Tell the writer how a transcription ended."""
        ...

    async def progress(self, chat_id: int, ack_message_id: int, percent: int) -> None:
        """Show how far a long transcription has come."""
        ...


@dataclass(frozen=True)
class _Running:
    owner_id: int
    cancel: threading.Event  # set by /cancel, /undo or shutdown
    # Also set when the job must stop without a trace: the note is left as it is, for whoever
    # has it now (a worker that lost its claim, or a worker shutting down).
    quiet: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class _Job:
    note_id: int
    owner_id: int
    chat_id: int
    ack_message_id: int | None
    file_id: str
    duration: int | None
    audio_path: Path | None
    vocabulary: list[str]  # the writer's words for whisper: glossary, outline titles
    language: str | None  # the writer's /language; None = WHISPER_LANGUAGE
    article_title: str
    outline: list[str]
    outline_ids: list[int]  # the sections behind `outline`, as the LLM numbers them
    created_at: datetime


# User-facing reasons, stored on the note and shown in chat.
NO_SPEECH = "I couldn't hear any speech in that recording, so I didn't file it."
UNREADABLE = (
    "I couldn't read that recording (the file looks damaged or isn't audio). "
    "Nothing was filed; please send it again."
)
DOWNLOAD_FAILED = "I couldn't download that recording from Telegram. Please send it again."
CANCELLED = "Transcription cancelled. Nothing was filed."
REMOVED = "Removed before it was transcribed."
DAMAGED = (
    "That recording looks cut off (it is much shorter than Telegram says), so I didn't file it. "
    "Please send it again."
)
GAVE_UP = "I couldn't transcribe that recording after several tries, so I set it aside."
RETRY_LATER = "Your recording is kept; I'll try again in a few minutes."


class TranscriptionWorker:
    """A pool of `workers` consumers; each chat's notes are transcribed one at a time, in order.

    Different chats run side by side (up to `workers` at once), so one writer's long recording
    does not hold up another's; a chat's second note never starts before its first finished,
    so transcripts arrive in the order they were spoken. Chats waiting for a consumer take
    turns, so a writer who sends twenty notes does not starve one who sends one.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        transcriber: Transcriber,
        audio_source: AudioSource,
        notifier: Notifier,
        audio_dir: Path,
        router: NoteRouter | None = None,
        *,
        workers: int = 1,
        claimant: str | None = None,
    ) -> None:
        """`claimant`: in a separate worker process, its name; the job then touches a note
        only while the note's claim is this worker's."""
        if workers < 1:
            raise ValueError("a transcription pool needs at least one worker")
        self._sessions = sessions
        self._transcriber = transcriber
        self._audio = audio_source
        self._notifier = notifier
        self._audio_dir = audio_dir
        self._router = router
        self._workers = workers
        self._claimant = claimant
        # Per chat, its notes not started yet; a chat is in `_ready` (once) when it has
        # waiting notes and none of its notes is running.
        self._waiting: dict[int, deque[int]] = {}
        self._ready: asyncio.Queue[int] = asyncio.Queue()
        self._busy_chats: set[int] = set()
        self._queued: set[int] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._running: dict[int, _Running] = {}  # note id -> the job being worked on
        self._retries: set[asyncio.TimerHandle] = set()
        # Chats whose note waits for a transcription service to come back: the chat's later
        # notes wait too, so transcripts still arrive in the order they were sent.
        self._parked: dict[int, int] = {}

    # lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._audio_dir.mkdir(parents=True, exist_ok=True)
        self._tasks = [
            asyncio.create_task(self._run(), name=f"transcription-worker-{n}")
            for n in range(1, self._workers + 1)
        ]

    async def stop(self) -> None:
        for retry in self._retries:  # the next start resumes those notes anyway
            retry.cancel()
        self._retries.clear()
        self._parked.clear()
        for running in self._running.values():
            running.quiet.set()  # stopped, not failed: the next start resumes the note
            running.cancel.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def enqueue(self, note_id: int, chat_id: int) -> None:
        """Queue a note behind the chat's earlier notes (a note already queued is ignored)."""
        if note_id in self._queued:
            return
        self._queued.add(note_id)
        self._idle.clear()
        waiting = self._waiting.setdefault(chat_id, deque())
        waiting.append(note_id)
        if len(waiting) == 1 and chat_id not in self._busy_chats:
            self._ready.put_nowait(chat_id)

    async def resume_unfinished(self) -> dict[int, int]:
        """Queue every note a previous run left unfinished; return how many per chat."""
        async with self._sessions.begin() as session:
            notes = await JobQueries(session).unfinished_notes()
            pending = [(n.id, n.chat_id) for n in notes]
        for note_id, chat_id in pending:
            self.enqueue(note_id, chat_id)
        return dict(Counter(chat_id for _, chat_id in pending))

    def forget(self, note_id: int) -> bool:
        """The note was deleted: stop working on it; True if it was running (the worker then
        tells the writer itself, after any progress edit in flight)."""
        running = self._running.get(note_id)
        if running is None:
            return False
        running.cancel.set()
        return True

    def abandon(self, note_id: int) -> None:
        """Stop working on the note and leave it untouched (no status, no message)."""
        running = self._running.get(note_id)
        if running is not None:
            running.quiet.set()
            running.cancel.set()

    def cancel_current(self, owner_id: int) -> bool:
        """Stop the writer's running transcription(s), if one is running."""
        found = False
        for running in self._running.values():
            if running.owner_id == owner_id:
                running.cancel.set()
                found = True
        return found

    async def cancel(self, owner_id: int) -> bool:
        return self.cancel_current(owner_id)

    async def wait_idle(self) -> None:
        """Wait until every queued note is processed (tests and benchmarks)."""
        await self._idle.wait()

    # the job ---------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            chat_id = await self._ready.get()
            waiting = self._waiting[chat_id]
            note_id = waiting.popleft()
            self._busy_chats.add(chat_id)
            try:
                await self.process(note_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The note stays unfinished and is retried at the next start.
                log.exception("Transcription job for note %s crashed", note_id)
            finally:
                self._queued.discard(note_id)
                if chat_id not in self._parked:  # else the chat stays busy until the retry
                    self._busy_chats.discard(chat_id)
                    if waiting:
                        self._ready.put_nowait(chat_id)  # behind the chats already waiting
                    else:
                        del self._waiting[chat_id]
                if not self._queued:
                    self._idle.set()

    async def process(self, note_id: int) -> None:
        job = await self._load(note_id)
        if isinstance(job, TranscriptionOutcome):
            await self._notifier.deliver(job)
            return
        if job is None:
            return
        # Registered before the download, so /cancel works from the first moment.
        running = _Running(job.owner_id, threading.Event())
        self._running[job.note_id] = running
        try:
            await self._transcribe(job, running)
        finally:
            self._running.pop(job.note_id, None)

    async def _transcribe(self, job: _Job, running: _Running) -> None:
        cancel = running.cancel
        try:
            path = await self._ensure_audio(job)
        except DownloadError as exc:
            log.warning("Download of note %s failed: %s", job.note_id, exc)
            await self._finish_failed(job, DOWNLOAD_FAILED)
            return
        reporter = self._progress_reporter(job)
        try:
            if cancel.is_set():
                raise TranscriptionCancelled()
            transcript = await run_in_daemon_thread(
                self._transcriber.transcribe,
                path,
                vocabulary=job.vocabulary,
                language=job.language,
                cancel=cancel,
                progress=reporter,
            )
        except TranscriptionCancelled:
            if not running.quiet.is_set():
                await self._finish_failed(job, CANCELLED, path)
            return
        except TranscriptionUnavailable as exc:
            log.warning("Transcription service unavailable for note %s: %s", job.note_id, exc)
            await self._retry_later(job, exc.user_message)
            return
        except TranscriptionError as exc:
            log.warning("Note %s could not be transcribed: %s", job.note_id, exc)
            await self._finish_failed(job, exc.user_message or UNREADABLE, path)
            return
        finally:
            if reporter is not None:
                # A late progress edit must never overwrite the transcript.
                await reporter.drain()

        if job.duration and transcript.duration < job.duration * MIN_DECODED_SHARE - 1:
            await self._finish_failed(job, DAMAGED, path)
            return
        if not transcript.text or transcript.speech_duration < MIN_SPEECH_SECONDS:
            await self._finish_failed(job, NO_SPEECH, path)
            return
        advice = await self._advise(job, transcript.text)
        if cancel.is_set():  # /cancel or /undo while the LLM was routing
            if not running.quiet.is_set():
                await self._finish_failed(job, CANCELLED, path)
            return
        outcome = await self._file(
            job, transcript.text, transcript.language, advice, audio_seconds=transcript.duration
        )
        # Filed, or the note was deleted meanwhile: either way the audio is no longer needed.
        _discard(path)
        if outcome is not None:
            await self._notifier.deliver(outcome)

    async def _load(self, note_id: int) -> _Job | TranscriptionOutcome | None:
        async with self._sessions.begin() as session:
            owner_id = await JobQueries(session).owner_of(note_id)
            if owner_id is None:
                return None
            repo = Repository(session, owner_id)
            note = await repo.notes.get(note_id, lock=True)
            if note is None or note.status not in (NoteStatus.RECEIVED, NoteStatus.DOWNLOADED):
                return None
            if not self._holds(note):
                return None
            if not note.file_id:
                return None
            note.attempts += 1
            if note.attempts > MAX_JOB_ATTEMPTS:
                gave_up = TranscriptionOutcome(
                    note_id=note.id,
                    chat_id=note.chat_id,
                    ack_message_id=note.ack_message_id,
                    ok=False,
                    failure=GAVE_UP,
                )
                note.status, note.error = NoteStatus.FAILED, GAVE_UP
                _discard(Path(note.audio_path) if note.audio_path else None)
            else:
                gave_up = None
            article = await repo.articles.get(note.article_id)
            outline = list(await repo.sections.of_article(note.article_id))
            titles = [s.title for s in outline]
            article_title = article.title if article else ""
            glossary = await repo.vocabulary.glossary()
            language = await repo.vocabulary.language()
            if gave_up is not None:
                return gave_up
            return _Job(
                note_id=note.id,
                owner_id=owner_id,
                chat_id=note.chat_id,
                ack_message_id=note.ack_message_id,
                file_id=note.file_id,
                duration=note.duration,
                audio_path=Path(note.audio_path) if note.audio_path else None,
                vocabulary=whisper_vocabulary(glossary, titles),
                language=language,
                article_title=article_title,
                outline=titles,
                outline_ids=[s.id for s in outline],
                created_at=note.created_at,
            )

    async def _ensure_audio(self, job: _Job) -> Path:
        if job.audio_path is not None and job.audio_path.exists():
            return job.audio_path
        destination = self._audio_dir / f"note-{job.note_id}.audio"
        partial = destination.with_suffix(".part")
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            try:
                await self._audio.download(job.file_id, partial)
                break
            except DownloadError as exc:
                if exc.permanent or attempt == DOWNLOAD_ATTEMPTS:
                    _discard(partial)
                    raise
                await asyncio.sleep(DOWNLOAD_BACKOFF_S * 2 ** (attempt - 1))
        partial.replace(destination)  # a crash mid-download never leaves a half file in place
        async with self._sessions.begin() as session:
            note = await Repository(session, job.owner_id).notes.get(job.note_id)
            if note is not None:
                note.status = NoteStatus.DOWNLOADED
                note.audio_path = str(destination)
        return destination

    async def _advise(self, job: _Job, text: str) -> RoutingAdvice | None:
        """The optional LLM routing; any failure falls back to the deterministic filing."""
        if self._router is None:
            return None
        note = NoteForDraft(f"N{job.note_id}", job.created_at, "voice", text)
        try:
            async with llm_usage_recorded(self._sessions, job.owner_id):
                return await asyncio.wait_for(
                    self._router.advise(job.article_title, job.outline, note), ROUTING_TIMEOUT_S
                )
        except Exception:
            log.warning(
                "LLM routing failed for note %s; filing without it", job.note_id, exc_info=True
            )
            return None

    async def _file(
        self,
        job: _Job,
        text: str,
        language: str | None,
        advice: RoutingAdvice | None = None,
        *,
        audio_seconds: float = 0.0,
    ) -> TranscriptionOutcome | None:
        async with self._sessions.begin() as session:
            repo = Repository(session, job.owner_id)
            note = await repo.notes.get(job.note_id, lock=True)
            if note is None:  # deleted with /undo while it was being transcribed
                return _failure(job, REMOVED)
            if not self._holds(note):
                return None  # another worker has the note now: it reports
            if note.status == NoteStatus.TRANSCRIBED:
                return None  # already filed: say nothing twice
            note.transcript = text
            note.language = language
            note.status = NoteStatus.TRANSCRIBED
            note.transcribed_at = utcnow()
            note.error = None
            # Counted in the transaction that files the note: once, and only when filed.
            await repo.usage.add(UsageKind.TRANSCRIPTION, audio_seconds=audio_seconds)
            sections = list(await repo.sections.of_article(note.article_id))
            # The LLM numbered the outline as it was when the job started; the writer may
            # have changed it since, so the number is resolved against that outline's ids.
            number = advice.section_number if advice is not None else None
            unnamed = (
                job.outline_ids[number - 1]
                if number is not None and 1 <= number <= len(job.outline_ids)
                else None
            )
            filed = await file_transcript(repo, note, text, unnamed_section_id=unnamed)
            suggestions: list[SuggestedSection] = []
            known = {normalise_title(s.title) for s in sections}
            for heading in advice.new_headings if advice is not None else []:
                title = _heading_title(heading)
                key = normalise_title(title)
                # Only headings really spoken in this note, new to the outline, offered once.
                if not key or key in known or not quote_in(title, text):
                    continue
                if len(suggestions) == MAX_SUGGESTIONS:
                    break
                known.add(key)
                suggestion_id = await repo.suggestions.add(note.article_id, note.id, title)
                suggestions.append(SuggestedSection(suggestion_id, title))
            return TranscriptionOutcome(
                note_id=note.id,
                chat_id=note.chat_id,
                ack_message_id=note.ack_message_id,
                ok=True,
                transcript=text,
                parts=filed,
                suggestions=suggestions,
            )

    async def _finish_failed(self, job: _Job, reason: str, audio: Path | None = None) -> None:
        async with self._sessions.begin() as session:
            note: Note | None = await Repository(session, job.owner_id).notes.get(
                job.note_id, lock=True
            )
            if note is not None:
                if not self._holds(note):
                    return  # another worker has the note now: it reports
                note.status = NoteStatus.FAILED
                note.error = reason
        # Nothing retries a failed note, so its audio would only pile up in DATA_DIR.
        _discard(audio)
        # note None: deleted with /undo while it was being transcribed
        await self._notifier.deliver(_failure(job, REMOVED if note is None else reason))

    async def _retry_later(self, job: _Job, reason: str) -> None:
        """The note stays unfinished with its audio; the writer hears why, once a try."""
        if self._tasks:  # the in-process pool; separate workers hold the note in the database
            self._park(job.note_id, job.chat_id)
        await self._notifier.deliver(_failure(job, f"{reason} {RETRY_LATER}"))

    def _park(self, note_id: int, chat_id: int) -> None:
        """Try the note again later, first in its chat; the chat's other notes wait for it."""
        self._parked[chat_id] = note_id

        def retry() -> None:
            self._retries.discard(handle)
            del self._parked[chat_id]
            self._waiting.setdefault(chat_id, deque()).appendleft(note_id)
            self._queued.add(note_id)
            self._idle.clear()
            self._busy_chats.discard(chat_id)
            self._ready.put_nowait(chat_id)

        handle = asyncio.get_running_loop().call_later(UNAVAILABLE_RETRY_S, retry)
        self._retries.add(handle)

    def _holds(self, note: Note) -> bool:
        """In a separate worker, whether this worker's claim on the note still stands."""
        return self._claimant is None or note.claimed_by == self._claimant

    def _progress_reporter(self, job: _Job) -> ProgressReporter | None:
        if job.ack_message_id is None or (job.duration or 0) < PROGRESS_MIN_DURATION_S:
            return None
        return ProgressReporter(
            asyncio.get_running_loop(), self._notifier, job.chat_id, job.ack_message_id
        )


def _failure(job: _Job, reason: str) -> TranscriptionOutcome:
    return TranscriptionOutcome(
        note_id=job.note_id,
        chat_id=job.chat_id,
        ack_message_id=job.ack_message_id,
        ok=False,
        failure=reason,
    )


def _heading_title(heading: str) -> str:
    """A spoken heading as a section title ("" when it cannot be one)."""
    try:
        return clean_title(heading.strip(" .,:;!?"), "section title")
    except UserError:
        return ""


def _discard(path: Path | None) -> None:
    """Remove a kept recording (a quick local unlink, fine on the event loop)."""
    if path is not None:
        path.unlink(missing_ok=True)


class ProgressReporter:
    """Called from the transcription thread; edits the chat at most every few seconds."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        notifier: Notifier,
        chat_id: int,
        message_id: int,
    ) -> None:
        self._loop = loop
        self._notifier = notifier
        self._chat_id = chat_id
        self._message_id = message_id
        self._last = time.monotonic()
        self._last_percent = -1
        self._pending: list[concurrent.futures.Future[None]] = []
        self._closed = threading.Event()

    def __call__(self, done_seconds: float, total_seconds: float) -> None:
        now = time.monotonic()
        percent = min(99, int(100 * done_seconds / total_seconds)) if total_seconds else 0
        if now - self._last < PROGRESS_INTERVAL_S or percent == self._last_percent:
            return
        if self._closed.is_set():
            return
        self._last, self._last_percent = now, percent
        with contextlib.suppress(RuntimeError):  # loop closed during shutdown
            self._pending.append(
                asyncio.run_coroutine_threadsafe(
                    self._notifier.progress(self._chat_id, self._message_id, percent),
                    self._loop,
                )
            )

    async def drain(self) -> None:
        """Stop reporting and let edits in flight finish, so none lands after the result."""
        self._closed.set()
        waiting = [asyncio.wrap_future(f) for f in self._pending if not f.done()]
        if not waiting:
            return
        _, stuck = await asyncio.wait(waiting, timeout=PROGRESS_DRAIN_TIMEOUT_S)
        for future in stuck:  # a single edit attempt should never take this long
            future.cancel()
