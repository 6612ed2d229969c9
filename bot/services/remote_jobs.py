"""Separate worker processes: workers claim notes from the database, the bot delivers results.

With SEPARATE_WORKERS, the bot process keeps the Telegram connection and transcribes nothing:
it stores each note (as always) and sends what the workers leave in the outbox. Each
`python -m bot worker` process, on this machine or another, claims unfinished notes one at a
time (see ClaimQueries), transcribes and files them with the same TranscriptionWorker code as
the bot, and writes the writer's message to the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import asdict
from datetime import timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import UNFINISHED_STATUSES
from bot.db.repository import ClaimQueries, OutboxQueries
from bot.domain import FiledPart, SuggestedSection, TranscriptionOutcome
from bot.services.transcription_jobs import (
    REMOVED,
    UNAVAILABLE_RETRY_S,
    Notifier,
    TranscriptionWorker,
)

log = logging.getLogger(__name__)

class TranscriptionQueue(Protocol):
    """What the chat handlers ask of transcription, whichever process does the work."""

    def enqueue(self, note_id: int, chat_id: int) -> None: ...

    def forget(self, note_id: int) -> bool:
        """The note was deleted; True if the transcriber will tell the writer itself."""
        ...

    async def cancel(self, owner_id: int) -> bool:
        """Stop the writer's running transcription; False if none is running."""
        ...


OUTCOME = "outcome"
PROGRESS = "progress"
OUTBOX_BATCH = 100
# A stopping worker lets a job that is filing or reporting finish for this long.
STOP_GRACE_S = 5.0


def encode_outcome(outcome: TranscriptionOutcome) -> str:
    return json.dumps(asdict(outcome), ensure_ascii=False)


def decode_outcome(payload: str) -> TranscriptionOutcome:
    data = json.loads(payload)
    data["parts"] = [FiledPart(**part) for part in data.get("parts", [])]
    data["suggestions"] = [SuggestedSection(**s) for s in data.get("suggestions", [])]
    return TranscriptionOutcome(**data)


class OutboxNotifier:
    """The Notifier of a worker process: what the writer should see goes to the outbox."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def deliver(self, outcome: TranscriptionOutcome) -> None:
        if not outcome.ok and outcome.failure == REMOVED:
            return  # /undo: the bot process already told the writer
        async with self._sessions.begin() as session:
            await OutboxQueries(session).add(outcome.note_id, OUTCOME, encode_outcome(outcome))

    async def progress(self, chat_id: int, ack_message_id: int, percent: int) -> None:
        payload = json.dumps({"chat_id": chat_id, "ack": ack_message_id, "percent": percent})
        async with self._sessions.begin() as session:
            outbox = OutboxQueries(session)
            note_id = await outbox.note_of_ack(chat_id, ack_message_id)
            if note_id is not None:
                await outbox.add(note_id, PROGRESS, payload)


class ClaimingWorker:
    """The loop of `python -m bot worker`: claim a note, transcribe it, repeat.

    `slots` notes are worked on at once (WHISPER_WORKERS). While a note is in work its claim
    is renewed every `poll_seconds`; the same beat notices /cancel and /undo from the bot,
    and a claim lost to another worker (this one was unreachable longer than the lease).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        jobs: TranscriptionWorker,
        name: str,
        *,
        slots: int = 1,
        lease_seconds: float = 60.0,
        poll_seconds: float = 1.0,
    ) -> None:
        self._sessions = sessions
        self._jobs = jobs
        self.name = name
        self._slots = slots
        self._lease = timedelta(seconds=lease_seconds)
        self._poll = poll_seconds
        self._tasks: list[asyncio.Task[None]] = []
        self._claimed: set[int] = set()
        self._stopping = False

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._slot(), name=f"claim-slot-{i}") for i in range(self._slots)
        ]

    async def stop(self, grace_seconds: float = STOP_GRACE_S) -> None:
        """Stop taking notes; notes in work are given back for another worker (or a restart).

        A job that is filing its note or writing to the outbox gets `grace_seconds` to finish,
        so a stop never leaves a note filed without its message.
        """
        self._stopping = True
        for note_id in list(self._claimed):
            self._jobs.abandon(note_id)
        if self._tasks:
            _, running = await asyncio.wait(self._tasks, timeout=grace_seconds)
            for task in running:
                task.cancel()
            for task in running:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks = []
        if self._claimed:
            async with self._sessions.begin() as session:
                for note_id in self._claimed:
                    await ClaimQueries(session).release(note_id, self.name)
            self._claimed.clear()

    async def run_once(self) -> bool:
        """Claim and process one note; False when none was waiting."""
        async with self._sessions.begin() as session:
            note_id = await ClaimQueries(session).claim_next(self.name, self._lease)
        if note_id is None:
            return False
        self._claimed.add(note_id)
        beat = asyncio.create_task(self._heartbeat(note_id), name=f"claim-beat-{note_id}")
        try:
            log.info("Worker %s transcribing note %s", self.name, note_id)
            await self._jobs.process(note_id)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        async with self._sessions.begin() as session:
            claims = ClaimQueries(session)
            if self._stopping:
                await claims.release(note_id, self.name)
            else:
                # Still unfinished: it waits for a transcription service that is down, so
                # nobody takes it before the retry time. (Filed or failed notes, or notes
                # another worker took over, are untouched: the update matches nothing.)
                await claims.hold(note_id, self.name, timedelta(seconds=UNAVAILABLE_RETRY_S))
        self._claimed.discard(note_id)
        return True

    async def _slot(self) -> None:
        while not self._stopping:
            try:
                worked = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The note stays unfinished; its claim runs out and it is tried again.
                log.exception("Worker %s: a job crashed", self.name)
                worked = False
            if not worked and not self._stopping:
                await asyncio.sleep(self._poll)

    async def _heartbeat(self, note_id: int) -> None:
        while True:
            await asyncio.sleep(self._poll)
            try:
                async with self._sessions.begin() as session:
                    ours, cancel = await ClaimQueries(session).renew(
                        note_id, self.name, self._lease
                    )
            except Exception:
                log.warning("Could not renew the claim on note %s", note_id, exc_info=True)
                continue
            if not ours:
                # Deleted with /undo, or another worker took it over: stop, touch nothing.
                log.info("Worker %s no longer holds note %s; stopping it", self.name, note_id)
                self._jobs.abandon(note_id)
                return
            if cancel:  # /cancel: the job ends as cancelled and tells the writer
                self._jobs.forget(note_id)
                return


class RemoteTranscription:
    """The bot process's side with separate workers: it transcribes nothing, it delivers.

    Offers the same calls the handlers use on TranscriptionWorker (enqueue, forget, cancel).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        notifier: Notifier,
        *,
        poll_seconds: float = 0.5,
    ) -> None:
        self._sessions = sessions
        self._notifier = notifier
        self._poll = poll_seconds
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._deliver_forever(), name="outbox-delivery")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def enqueue(self, note_id: int, chat_id: int) -> None:
        """Nothing to do: the note is in the database, where the workers look for work."""

    def forget(self, note_id: int) -> bool:
        # The worker notices the deletion at its next beat and stops without a message,
        # so the caller tells the writer itself.
        return False

    async def cancel(self, owner_id: int) -> bool:
        async with self._sessions.begin() as session:
            return await ClaimQueries(session).request_cancel(owner_id)

    async def resume_unfinished(self) -> dict[int, int]:
        """Unfinished notes per chat; the workers take them up on their own."""
        async with self._sessions.begin() as session:
            return await ClaimQueries(session).unfinished_by_chat()

    async def deliver_pending(self) -> int:
        """Send what the workers left in the outbox; returns how many messages were handled."""
        async with self._sessions.begin() as session:
            outbox = OutboxQueries(session)
            rows = [
                (row.id, row.note_id, row.kind, row.payload)
                for row in await outbox.pending(OUTBOX_BATCH)
            ]
            # Notes removed with /undo meanwhile are gone from here.
            statuses = await outbox.statuses(list({note_id for _, note_id, _, _ in rows}))
        if not rows:
            return 0
        finished = {note_id for _, note_id, kind, _ in rows if kind == OUTCOME}
        handled: list[int] = []
        for row_id, note_id, kind, payload in rows:
            status = statuses.get(note_id)
            try:
                if status is None:
                    pass  # removed with /undo meanwhile: the writer was told, no buttons to it
                elif kind == OUTCOME:
                    await self._deliver_outcome(decode_outcome(payload))
                elif note_id not in finished and status in UNFINISHED_STATUSES:
                    # Else progress would overwrite the result.
                    progress = json.loads(payload)
                    await self._notifier.progress(
                        progress["chat_id"], progress["ack"], progress["percent"]
                    )
            except Exception:
                # One bad message must not block the ones behind it.
                log.warning("Could not deliver outbox message %s", row_id, exc_info=True)
            handled.append(row_id)
        async with self._sessions.begin() as session:
            await OutboxQueries(session).remove(handled)
        return len(handled)

    async def _deliver_outcome(self, outcome: TranscriptionOutcome) -> None:
        if outcome.ack_message_id is None:
            # The worker may have claimed the note before the bot stored its acknowledgement.
            async with self._sessions.begin() as session:
                ack = await OutboxQueries(session).ack_message_id(outcome.note_id)
            if ack is not None:
                outcome = TranscriptionOutcome(**{**outcome.__dict__, "ack_message_id": ack})
        await self._notifier.deliver(outcome)

    async def _deliver_forever(self) -> None:
        while True:
            try:
                handled = await self.deliver_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("Outbox delivery failed; retrying", exc_info=True)
                handled = 0
            if handled < OUTBOX_BATCH:
                await asyncio.sleep(self._poll)
