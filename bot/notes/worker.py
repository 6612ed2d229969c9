"""Worker slots: claim a note from the queue, transcribe it, repeat.

The bot runs `WHISPER_WORKERS` slots itself; `python -m bot worker` runs the same class in
another process (or on another machine, sharing a PostgreSQL database). While a note is in
work its claim is renewed every `worker_poll_s`; the same beat notices /cancel and /undo, and a
claim lost to another worker (this one was cut off longer than the lease).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.notes.queue import Claim, NoteQueue
from bot.notes.transcribe import JobControl, TranscriptionJob
from bot.timing import Timing

log = logging.getLogger(__name__)


class TranscriptionWorker:
    def __init__(
        self, queue: NoteQueue, job: TranscriptionJob, name: str, *, slots: int, timing: Timing
    ) -> None:
        """`name` identifies this process's claims (unique per process)."""
        if slots < 1:
            raise ValueError("a worker needs at least one slot")
        self._queue = queue
        self._job = job
        self.name = name
        self._slots = slots
        self._timing = timing
        self._tasks: list[asyncio.Task[None]] = []
        self._running: dict[int, tuple[Claim, JobControl]] = {}
        self._wake = asyncio.Event()
        self._stopping = False

    def start(self) -> None:
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._slot(), name=f"{self.name}-slot-{n}")
            for n in range(1, self._slots + 1)
        ]

    def wake(self) -> None:
        """A note was queued in this process: look now instead of at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop taking notes. Notes in work stop at their next segment and are given back
        untouched (queued again, not counted as a crash); filing that is under way gets
        `stop_grace_s` to finish, so a stop never leaves a note filed without its message."""
        self._stopping = True
        for _, control in self._running.values():
            control.stop_quietly()
        self._wake.set()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=self._timing.stop_grace_s)
            for task in late:
                task.cancel()
            for task in late:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks = []
        for claim, _ in list(self._running.values()):
            with contextlib.suppress(Exception):
                await self._queue.release(claim)
        self._running.clear()

    async def run_once(self) -> bool:
        """Claim and work one note; False when none was due."""
        claim = await self._queue.claim(self.name)
        if claim is None:
            return False
        control = JobControl()
        self._running[claim.note_id] = (claim, control)
        done = asyncio.Event()
        beat = asyncio.create_task(
            self._heartbeat(claim, control, done), name=f"beat-{claim.note_id}"
        )
        try:
            log.info("%s transcribing note %s", self.name, claim.note_id)
            await self._job.run(claim, control)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug or a failure nobody foresaw: counted like a crash, so a note that always
            # fails this way is set aside after a few tries instead of looping.
            log.exception("Transcription of note %s failed unexpectedly", claim.note_id)
            await self._queue.crashed(claim)
        finally:
            # Ended, not cancelled: a beat in the middle of its transaction finishes it.
            done.set()
            with contextlib.suppress(Exception):
                await beat
        # Still in work only after a quiet stop: give it back (a no-op when it was filed,
        # failed, held, deleted or taken over meanwhile).
        await self._queue.release(claim)
        self._running.pop(claim.note_id, None)
        return True

    async def _slot(self) -> None:
        while not self._stopping:
            try:
                worked = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: claiming a note failed; trying again", self.name)
                worked = False
            if not worked and not self._stopping:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._timing.worker_poll_s)

    async def _heartbeat(self, claim: Claim, control: JobControl, done: asyncio.Event) -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), self._timing.worker_poll_s)
            if done.is_set():
                return
            try:
                renewal = await self._queue.renew(claim)
            except Exception:
                log.warning("Could not renew the claim on note %s", claim.note_id, exc_info=True)
                continue
            if not renewal.ours:
                # Deleted with /undo, or another worker took it over: stop, touch nothing.
                log.info("%s no longer holds note %s; stopping it", self.name, claim.note_id)
                control.stop_quietly()
                return
            if renewal.cancel:  # /cancel: the job ends as cancelled and tells the writer
                control.cancel.set()
                return
