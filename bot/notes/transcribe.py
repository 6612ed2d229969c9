"""One transcription job: download, transcribe off the event loop, check, route, file.

The job owns no state of its own: the claim says what to transcribe, the queue stores every
outcome (with the writer's message about it) and checks the claim still stands, so the same
job runs in the bot process and in `python -m bot worker` processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.llm.schemas import NoteForDraft, RoutingAdvice
from bot.notes.lifecycle import FailureCode
from bot.notes.queue import Claim, NoteQueue
from bot.notes.windows import window_request
from bot.services.threads import run_in_daemon_thread, start_in_daemon_thread
from bot.services.usage import llm_usage_recorded
from bot.timing import Timing
from bot.transcription.base import (
    Transcriber,
    Transcript,
    TranscriptionCancelled,
    TranscriptionError,
    TranscriptionUnavailable,
    UnavailableReason,
    WindowedTranscriber,
    WindowTranscript,
    contiguous,
    transcribe_in_windows,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# Progress is shown for recordings at least this long.
PROGRESS_MIN_DURATION_S = 60
# Whisper invents words for near-silent input; below this much speech we file nothing.
MIN_SPEECH_SECONDS = 0.3
# A recording that decodes to much less than Telegram says it lasts is damaged (cut off).
MIN_DECODED_SHARE = 0.6
# Routing is an extra: it may not hold a worker (and the notes queued behind it) for long.
ROUTING_TIMEOUT_S = 45.0

SERVICE_FAILURES = {
    UnavailableReason.DOWN: FailureCode.SERVICE_DOWN,
    UnavailableReason.REFUSED: FailureCode.SERVICE_REFUSED,
}


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


@dataclass
class JobControl:
    """Set from outside the job: `cancel` stops the transcription at its next segment;
    with `quiet` also set, the job then leaves the note as it is (a graceful stop, or the
    claim was lost) instead of marking it cancelled."""

    cancel: threading.Event = field(default_factory=threading.Event)
    quiet: threading.Event = field(default_factory=threading.Event)

    def stop_quietly(self) -> None:
        self.quiet.set()
        self.cancel.set()


class TranscriptionJob:
    def __init__(
        self,
        queue: NoteQueue,
        transcriber: Transcriber,
        audio: AudioSource,
        audio_dir: Path,
        timing: Timing,
        *,
        sessions: async_sessionmaker[AsyncSession],
        router: NoteRouter | None = None,
        slots: int = 1,
    ) -> None:
        """`sessions`: where the optional routing's token usage is stored; `slots`: windows
        this process transcribes at once (its worker slots, shared fairly by the notes in
        work)."""
        self._scheduler = WindowScheduler(slots)
        self._queue = queue
        self._transcriber = transcriber
        self._audio = audio
        self._audio_dir = audio_dir
        self._timing = timing
        self._sessions = sessions
        self._router = router

    async def run(self, claim: Claim, control: JobControl) -> None:
        """Transcribe and file the claimed note, or record why not; the caller releases the
        claim when this returns with the note still in work (a quiet stop)."""
        path = await self._ensure_audio(claim)
        if path is None:
            return
        try:
            transcript = await self._transcribe(claim, path, control)
        except TranscriptionCancelled:
            if not control.quiet.is_set():
                await self._fail(claim, FailureCode.CANCELLED, path)
            return
        except TranscriptionUnavailable as exc:
            log.warning("Transcription service unavailable for note %s: %s", claim.note_id, exc)
            await self._queue.hold(claim, SERVICE_FAILURES[exc.why])
            return
        except TranscriptionError as exc:
            if control.quiet.is_set():
                return  # deleted or taken over meanwhile (its audio may be gone with it)
            log.warning("Note %s could not be transcribed: %s", claim.note_id, exc)
            reason = FailureCode.TOO_LARGE_FOR_SERVICE if exc.too_large else FailureCode.UNREADABLE
            await self._fail(claim, reason, path)
            return

        if claim.duration and transcript.duration < claim.duration * MIN_DECODED_SHARE - 1:
            await self._fail(claim, FailureCode.CUT_OFF, path)
            return
        if not transcript.text or transcript.speech_duration < MIN_SPEECH_SECONDS:
            await self._fail(claim, FailureCode.NO_SPEECH, path)
            return
        advice = await self._advise(claim, transcript.text)
        if control.cancel.is_set():  # /cancel, /undo or a stop while the LLM was routing
            if not control.quiet.is_set():
                await self._fail(claim, FailureCode.CANCELLED, path)
            return
        filed = await self._queue.file(
            claim,
            transcript.text,
            language=transcript.language,
            language_unsure=transcript.language_unsure,
            audio_seconds=transcript.duration,
            routed_section=advice.section_number if advice else None,
            new_headings=advice.new_headings if advice else (),
        )
        if filed:
            _discard(path)

    async def _transcribe(self, claim: Claim, path: Path, control: JobControl) -> Transcript:
        """The recording's transcript: window by window on the worker slots when the backend
        cuts windows (each stored as it is done, and reused when the note was begun before),
        else in one call."""
        backend = self._transcriber
        if not isinstance(backend, WindowedTranscriber):
            return await run_in_daemon_thread(
                backend.transcribe,
                path,
                vocabulary=claim.vocabulary,
                language=claim.language,
                cancel=control.cancel,
                progress=self._progress_reporter(claim),
            )
        request = window_request(claim.language, claim.vocabulary)
        known = await self._queue.windows_of(claim, request)
        if known:
            log.info("Note %s: reusing %d window(s) done before", claim.note_id, len(known))
        keeper = WindowKeeper(
            asyncio.get_running_loop(),
            self._queue,
            claim,
            request,
            control,
            known,
            show=(claim.duration or 0) >= PROGRESS_MIN_DURATION_S,
            interval_s=self._timing.progress_interval_s,
        )
        return await run_in_daemon_thread(
            transcribe_in_windows,
            backend,
            path,
            vocabulary=claim.vocabulary,
            language=claim.language,
            cancel=control.cancel,
            known=known,
            on_window=keeper,
            submit=partial(self._scheduler.submit, claim.note_id),
            # As many windows decoded and not done as there are slots: memory holds that
            # many windows of speech at most, whatever the recording's length.
            ahead=self._scheduler.slots,
        )

    async def _ensure_audio(self, claim: Claim) -> Path | None:
        """The recording on disk, downloaded (again) when needed; None when the download
        failed (the note is then held for a later try, or failed for good)."""
        if claim.audio_path is not None and claim.audio_path.exists():
            return claim.audio_path
        destination = self._audio_dir / f"note-{claim.note_id}.audio"
        partial = destination.with_suffix(".part")
        attempts = self._timing.download_attempts
        for attempt in range(1, attempts + 1):
            try:
                await self._audio.download(claim.file_id, partial)
                break
            except DownloadError as exc:
                log.warning("Download of note %s failed: %s", claim.note_id, exc)
                if exc.permanent:
                    _discard(partial)
                    await self._queue.fail(claim, FailureCode.DOWNLOAD_FAILED)
                    return None
                if attempt == attempts:
                    _discard(partial)
                    # Telegram or the network is down: the file_id stays valid, try later.
                    await self._queue.hold(claim, FailureCode.DOWNLOAD_FAILED)
                    return None
                await asyncio.sleep(self._timing.download_backoff_s * 2 ** (attempt - 1))
        partial.replace(destination)  # a crash mid-download never leaves a half file in place
        if not await self._queue.record_audio(claim, destination):
            _discard(destination)  # deleted meanwhile, or another worker has it now
            return None
        return destination

    async def _fail(self, claim: Claim, reason: FailureCode, audio: Path) -> None:
        if await self._queue.fail(claim, reason) and reason != FailureCode.CANCELLED:
            _discard(audio)  # nothing retries it; it would only pile up in DATA_DIR

    async def _advise(self, claim: Claim, text: str) -> RoutingAdvice | None:
        """The optional LLM routing; any failure falls back to the deterministic filing."""
        if self._router is None:
            return None
        note = NoteForDraft(f"N{claim.note_id}", claim.created_at, claim.kind.value, text)
        try:
            async with llm_usage_recorded(self._sessions, claim.owner_id):
                return await asyncio.wait_for(
                    self._router.advise(
                        claim.article_title, [s.title for s in claim.outline], note
                    ),
                    ROUTING_TIMEOUT_S,
                )
        except Exception:
            log.warning(
                "LLM routing failed for note %s; filing without it", claim.note_id, exc_info=True
            )
            return None

    def _progress_reporter(self, claim: Claim) -> ProgressReporter | None:
        if (claim.duration or 0) < PROGRESS_MIN_DURATION_S:
            return None
        return ProgressReporter(
            asyncio.get_running_loop(), self._queue, claim, self._timing.progress_interval_s
        )


class ProgressReporter:
    """Called from the transcription thread; stores the progress at most every few seconds.

    A late report is harmless: the queue ignores it once the note is filed."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        queue: NoteQueue,
        claim: Claim,
        interval_s: float,
    ) -> None:
        self._loop = loop
        self._queue = queue
        self._claim = claim
        self._interval = interval_s
        self._last = time.monotonic()
        self._last_percent = -1

    def __call__(self, done_seconds: float, total_seconds: float) -> None:
        now = time.monotonic()
        share = done_seconds / total_seconds if total_seconds else 0.0
        percent = int(100 * share)
        if now - self._last < self._interval or percent == self._last_percent:
            return
        self._last, self._last_percent = now, percent
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            asyncio.run_coroutine_threadsafe(
                self._queue.report_progress(self._claim, share), self._loop
            )


class WindowKeeper:
    """Called in the job's thread with each window transcribed: stores it at once (under the
    claim) and, every `interval_s` at most, has the card show the transcript so far."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        queue: NoteQueue,
        claim: Claim,
        request: str,
        control: JobControl,
        known: dict[int, WindowTranscript],
        *,
        show: bool,
        interval_s: float,
    ) -> None:
        self._loop = loop
        self._queue = queue
        self._claim = claim
        self._request = request
        self._control = control
        self._done = dict(known)
        self._show = show
        self._interval = interval_s
        self._last = float("-inf")  # the first words are shown as soon as they are there
        self._shown = len(contiguous(self._done))

    def __call__(self, window: WindowTranscript) -> None:
        self._done[window.index] = window
        now = time.monotonic()
        shown = contiguous(self._done)
        # Only when the text shown grows (a window done after a gap shows nothing new), at
        # most every `interval_s` (Telegram's edit limits).
        grew = len(shown) > self._shown
        show = self._show and grew and now - self._last >= self._interval
        if show:
            self._last, self._shown = now, len(shown)
        share = shown[-1].end / self._claim.duration if shown and self._claim.duration else None
        stored = asyncio.run_coroutine_threadsafe(
            self._queue.store_window(self._claim, self._request, window, share=share, show=show),
            self._loop,
        )
        if not stored.result():
            # Deleted (/undo) or taken over by another worker: stop and touch nothing.
            self._control.stop_quietly()
            raise TranscriptionCancelled()


class WindowScheduler:
    """The worker slots of a process, handed out window by window: a free slot goes to the
    note holding the fewest slots (ties: the window that asked first). One long note gets
    every slot while it is alone, and another writer's note still gets the next free one.

    The work runs on reused daemon threads (bot/services/threads.py)."""

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self._lock = threading.Lock()
        self._free = self.slots
        self._held: Counter[int] = Counter()
        self._order = itertools.count()
        self._waiting: list[tuple[int, int, Callable[[], object], Future[object]]] = []

    def submit(self, key: int, work: Callable[[], T]) -> Future[T]:
        """Run `work` for note `key` when the scheduler gives it a slot."""
        future: Future[T] = Future()
        with self._lock:
            self._waiting.append((next(self._order), key, work, future))  # type: ignore[arg-type]
        self._dispatch()
        return future

    def held(self, key: int) -> int:
        """Slots note `key` holds now."""
        with self._lock:
            return self._held[key]

    def waiting(self, key: int) -> int:
        """Windows of note `key` waiting for a slot."""
        with self._lock:
            return sum(1 for w in self._waiting if w[1] == key)

    def _dispatch(self) -> None:
        while True:
            with self._lock:
                self._waiting = [w for w in self._waiting if not w[3].cancelled()]
                if not self._free or not self._waiting:
                    return
                pick = min(self._waiting, key=lambda w: (self._held[w[1]], w[0]))
                self._waiting.remove(pick)
                if not pick[3].set_running_or_notify_cancel():
                    continue
                self._free -= 1
                self._held[pick[1]] += 1
            start_in_daemon_thread(partial(self._run, pick[1], pick[2], pick[3]))

    def _run(self, key: int, work: Callable[[], object], future: Future[object]) -> None:
        try:
            result = work()
        except BaseException as exc:  # handed to the job through the future
            outcome: tuple[object, BaseException | None] = (None, exc)
        else:
            outcome = (result, None)
        with self._lock:
            self._free += 1
            self._held[key] -= 1
            if self._held[key] <= 0:
                del self._held[key]
        # The slot is free before the job hears of it: its next window can take it.
        if outcome[1] is not None:
            future.set_exception(outcome[1])
        else:
            future.set_result(outcome[0])
        self._dispatch()


def _discard(path: Path | None) -> None:
    """Remove a kept recording (a quick local unlink, fine on the event loop)."""
    if path is not None:
        path.unlink(missing_ok=True)
