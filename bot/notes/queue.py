"""The transcription queue: the notes table, claimed one note at a time, each chat in order.

Every job holds a claim (`claimed_by`, renewed until `claim_expires_at`, on the database's
clock). Every change of a note's state goes through `advance` (bot/notes/lifecycle.py) and is
written in one transaction with the outbox row that tells the writer about it. A worker that
lost its claim (it was cut off longer than the lease and another worker took the note over)
changes nothing: every write checks the claim under the note's row lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Note, NoteWindow, UsageKind, utcnow
from bot.db.repository import QueueQueries, Repository
from bot.domain import NoteKind, Notice, NoticeKind, UserError
from bot.drafting.citations import quote_in
from bot.notes.cards import RETRYABLE, show_note
from bot.notes.filing import file_transcript
from bot.notes.lifecycle import FailureCode, NoteEvent, NoteState, advance
from bot.notes.vocabulary import whisper_vocabulary
from bot.notes.windows import forget_windows, row_of, window_of
from bot.services.outbox import post_notice
from bot.services.outline import clean_title, normalise_title
from bot.timing import Timing
from bot.transcription.base import WindowTranscript

log = logging.getLogger(__name__)

# A note whose claim ran out this often (its transcription kept killing the worker) is set
# aside; so is a note a transcription service refused this often.
MAX_CRASHES = 3
MAX_SERVICE_TRIES = 3
# New headings offered per note: a few buttons, never a wall of them.
MAX_SUGGESTIONS = 3


@dataclass(frozen=True)
class SectionRef:
    id: int
    title: str


@dataclass(frozen=True)
class Claim:
    """A worker's hold on one note, with what the job needs to transcribe it."""

    note_id: int
    worker: str
    owner_id: int
    chat_id: int
    kind: NoteKind
    file_id: str
    duration: int | None
    audio_path: Path | None
    created_at: datetime
    article_title: str
    outline: list[SectionRef]  # the article's sections when the claim was taken
    vocabulary: list[str] = field(default_factory=list)  # the writer's words, for whisper
    language: str | None = None  # the writer's /language; None: WHISPER_LANGUAGE


@dataclass(frozen=True)
class Renewal:
    ours: bool  # False: the note was deleted, or another worker has it now
    cancel: bool  # the writer sent /cancel


class NoteQueue:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        timing: Timing,
        *,
        on_outbox: Callable[[], None] = lambda: None,
        on_instruction: Callable[[], None] = lambda: None,
    ) -> None:
        """`on_outbox`: called after a transaction added outbox rows (wakes the delivery);
        `on_instruction`: a spoken instruction for a section was transcribed (revise it)."""
        self._sessions = sessions
        self._timing = timing
        self._on_outbox = on_outbox
        self._on_instruction = on_instruction
        self._lease = timedelta(seconds=timing.lease_s)

    async def claim(self, worker: str) -> Claim | None:
        """Take the next note that is due, or None. A note whose previous holder died counts
        a crash; after MAX_CRASHES it is set aside (FAILED, kept for /retry) instead."""
        told = False
        try:
            async with self._sessions.begin() as session:
                queue = QueueQueries(session)
                now = await queue.now()
                while True:
                    note = await queue.next_claimable(now)
                    if note is None:
                        return None
                    if note.state == NoteState.TRANSCRIBING:
                        note.crashes += 1
                        log.warning(
                            "Note %s: the claim of %s ran out (crash %d of %d)",
                            note.id,
                            note.claimed_by,
                            note.crashes,
                            MAX_CRASHES,
                        )
                        if note.crashes >= MAX_CRASHES:
                            _set_aside(note, FailureCode.GAVE_UP)
                            await show_note(session, note)
                            told = True
                            await session.flush()
                            continue
                    note.state = advance(note.state, NoteEvent.CLAIM)
                    note.claimed_by, note.claimed_at = worker, now
                    note.claim_expires_at = now + self._lease
                    note.cancel_requested = False
                    note.progress = None
                    return await _claim_of(session, note, worker)
        finally:
            if told:
                self._on_outbox()

    async def renew(self, claim: Claim) -> Renewal:
        async with self._sessions.begin() as session:
            queue = QueueQueries(session)
            note = await queue.locked(claim.note_id)
            if note is None or not _held(note, claim):
                return Renewal(ours=False, cancel=False)
            note.claim_expires_at = await queue.now() + self._lease
            return Renewal(ours=True, cancel=note.cancel_requested)

    async def release(self, claim: Claim) -> None:
        """Give the note back untouched (a graceful stop): it is queued again at once and
        this does not count as a crash."""
        async with self._sessions.begin() as session:
            note = await QueueQueries(session).locked(claim.note_id)
            if note is not None and _held(note, claim):
                note.state = advance(note.state, NoteEvent.RELEASE)
                note.claim_expires_at = None
                note.progress = None

    async def crashed(self, claim: Claim) -> None:
        """The job failed unexpectedly: a crash like a dead worker's, so a note that always
        fails this way is set aside after MAX_CRASHES instead of looping."""
        told = False
        async with self._sessions.begin() as session:
            note = await QueueQueries(session).locked(claim.note_id)
            if note is None or not _held(note, claim):
                return
            note.crashes += 1
            if note.crashes >= MAX_CRASHES:
                _set_aside(note, FailureCode.GAVE_UP)
                await show_note(session, note)
                told = True
            else:
                note.state = advance(note.state, NoteEvent.RELEASE)
                note.claim_expires_at = None
                note.progress = None
        if told:
            self._on_outbox()

    async def record_audio(self, claim: Claim, path: Path) -> bool:
        """The recording is on disk: a retry need not download it again. False: not ours."""
        async with self._sessions.begin() as session:
            note = await QueueQueries(session).locked(claim.note_id)
            if note is None or not _held(note, claim):
                return _lost(claim)
            note.audio_path = str(path)
            return True

    async def report_progress(self, claim: Claim, share: float) -> None:
        async with self._sessions.begin() as session:
            note = await QueueQueries(session).locked(claim.note_id)
            if note is None or not _held(note, claim):
                return
            note.progress = max(0.0, min(share, 0.99))
            await show_note(session, note)
        self._on_outbox()

    async def windows_of(self, claim: Claim, request: str) -> dict[int, WindowTranscript]:
        """The windows of the note transcribed before (by an earlier holder that died, or
        before a stop) with the same `request`; windows made otherwise are forgotten."""
        async with self._sessions.begin() as session:
            note = await QueueQueries(session).locked(claim.note_id)
            if note is None or not _held(note, claim):
                return {}
            await session.execute(
                delete(NoteWindow).where(
                    NoteWindow.note_id == note.id, NoteWindow.request != request
                )
            )
            rows = await session.scalars(select(NoteWindow).where(NoteWindow.note_id == note.id))
            return {row.position: window_of(row) for row in rows}

    async def store_window(
        self,
        claim: Claim,
        request: str,
        window: WindowTranscript,
        *,
        share: float | None = None,
        show: bool = False,
    ) -> bool:
        """Keep a transcribed window (a resumed note will not transcribe it again) and, with
        `show`, have the card show the transcript so far. False when the note is not ours."""
        async with self._sessions.begin() as session:
            note = await QueueQueries(session).locked(claim.note_id)
            if note is None or not _held(note, claim):
                return _lost(claim)
            known = await session.scalar(
                select(NoteWindow.id).where(
                    NoteWindow.note_id == note.id, NoteWindow.position == window.index
                )
            )
            if known is None:
                session.add(row_of(note.id, request, window))
            if share is not None:
                note.progress = max(0.0, min(share, 0.99))
            if show:
                await show_note(session, note)
        if show:
            self._on_outbox()
        return True

    async def hold(self, claim: Claim, reason: FailureCode) -> bool:
        """A service (hosted transcription, Telegram's file download) is down: the note is
        tried again in `service_retry_s`, first of its chat (the chat's later notes wait,
        so transcripts still come in order); after MAX_SERVICE_TRIES it is set aside.
        True when the note is set aside."""
        async with self._sessions.begin() as session:
            queue = QueueQueries(session)
            note = await queue.locked(claim.note_id)
            if note is None or not _held(note, claim):
                return _lost(claim)
            note.service_tries += 1
            gave_up = note.service_tries >= MAX_SERVICE_TRIES
            if gave_up:
                _set_aside(note, reason)
            else:
                note.state = advance(note.state, NoteEvent.RELEASE)
                note.claim_expires_at = None
                note.progress = None
                note.failure = reason
                note.not_before = await queue.now() + timedelta(
                    seconds=self._timing.service_retry_s
                )
            await show_note(session, note)
        self._on_outbox()
        return gave_up

    async def fail(self, claim: Claim, reason: FailureCode) -> bool:
        """The recording cannot be filed (no speech, damaged, cancelled): FAILED with the
        reason, and the writer is told. False when the note is not ours (or gone)."""
        async with self._sessions.begin() as session:
            note = await QueueQueries(session).locked(claim.note_id)
            if note is None or not _held(note, claim):
                return _lost(claim)
            note.state = advance(note.state, NoteEvent.FAIL)
            note.failure = reason
            note.claim_expires_at = None
            note.progress = None
            if reason not in RETRYABLE:
                note.audio_path = None  # the caller removes the file: nothing will retry it
                await forget_windows(session, note.id)
            await show_note(session, note)
        self._on_outbox()
        return True

    async def file(
        self,
        claim: Claim,
        text: str,
        *,
        language: str | None,
        language_unsure: bool = False,
        audio_seconds: float,
        routed_section: int | None = None,
        new_headings: Sequence[str] = (),
    ) -> bool:
        """Store the transcript and file it under the article's sections, in the transaction
        that marks the note FILED and tells the writer. `routed_section`: the LLM routing's
        1-based section (in `claim.outline`) for a note that speaks no title;
        `new_headings`: headings it spoke that are not in the outline, offered as sections.
        False when the note is not ours any more (deleted, or taken over)."""
        async with self._sessions.begin() as session:
            note = await QueueQueries(session).locked(claim.note_id)
            if note is None or not _held(note, claim):
                return _lost(claim)
            repo = Repository(session, claim.owner_id)
            note.state = advance(note.state, NoteEvent.FILE)
            note.transcript, note.language = text, language
            note.language_unsure = language_unsure
            note.transcribed_at = utcnow()
            note.failure = None
            note.claim_expires_at = None
            note.progress = None
            note.audio_path = None  # the caller removes the file
            await forget_windows(session, note.id)  # the transcript has them now
            # Counted in the transaction that files the note: once, and only when filed.
            await repo.usage.add(UsageKind.TRANSCRIPTION, audio_seconds=audio_seconds)
            # The LLM numbered the outline as it was when the job started; the writer may
            # have changed it since, so the number is resolved against that outline's ids.
            unnamed = (
                claim.outline[routed_section - 1].id
                if routed_section is not None and 1 <= routed_section <= len(claim.outline)
                else None
            )
            # What the writer typed under the recording is their words too: filed with it.
            words = f"{note.caption}\n\n{text}" if note.caption else text
            # A voice note replying to a section of the draft is an instruction: never filed.
            instruction = await repo.revisions.instruction(note.id)
            if instruction is not None:
                instruction.state = "ready"
                new_headings = ()
            else:
                await file_transcript(repo, note, words, unnamed_section_id=unnamed)
            sections = await repo.sections.of_article(note.article_id)
            known = {normalise_title(s.title) for s in sections}
            offered = 0
            for heading in new_headings:
                title = _heading_title(heading)
                key = normalise_title(title)
                # Only headings really spoken in this note, new to the outline, offered once.
                if not key or key in known or not quote_in(title, text):
                    continue
                if offered == MAX_SUGGESTIONS:
                    break
                known.add(key)
                offered += 1
                await repo.suggestions.add(note.article_id, note.id, title)
            await show_note(session, note)
        self._on_outbox()
        if instruction is not None:
            self._on_instruction()
        return True

    # for the writer ------------------------------------------------------------------------
    async def request_cancel(self, owner_id: int) -> bool:
        """Ask the worker transcribing the writer's note to stop; False if none is running."""
        async with self._sessions.begin() as session:
            queue = QueueQueries(session)
            return await queue.request_cancel(owner_id, await queue.now()) > 0

    async def retry(self, owner_id: int, note_id: int | None = None) -> int:
        """Queue the writer's set-aside notes again (`note_id`: only that one); how many."""
        async with self._sessions.begin() as session:
            query = select(Note).where(
                Note.owner_id == owner_id,
                Note.state == NoteState.FAILED,
                Note.failure.in_(RETRYABLE),
                Note.file_id.is_not(None),
            )
            if note_id is not None:
                query = query.where(Note.id == note_id)
            notes = list(await session.scalars(query.order_by(Note.id).with_for_update()))
            for note in notes:
                note.state = advance(note.state, NoteEvent.RETRY)
                note.failure = None
                note.crashes = note.service_tries = 0
                note.not_before = None
                note.cancel_requested = False
                await show_note(session, note)
        if notes:
            self._on_outbox()
        return len(notes)

    async def transcribe_again(self, owner_id: int, note_id: int, language: str) -> bool:
        """Queue a filed recording again, to be transcribed in `language` (the detection
        guessed wrong). Its parts and offered sections go; it is filed anew. False when the
        note is not the writer's filed recording (deleted meanwhile, or still in work)."""
        async with self._sessions.begin() as session:
            note = await session.scalar(
                select(Note)
                .where(
                    Note.id == note_id,
                    Note.owner_id == owner_id,
                    Note.state == NoteState.FILED,
                    Note.file_id.is_not(None),
                )
                .with_for_update()
            )
            if note is None:
                return False
            repo = Repository(session, owner_id)
            await repo.parts.remove_of_note(note.id)
            await repo.suggestions.remove_of_note(note.id)
            note.state = advance(note.state, NoteEvent.RETRY)
            note.requested_language = language
            note.crashes = note.service_tries = 0
            note.not_before = None
            note.cancel_requested = False
            await show_note(session, note)
        self._on_outbox()
        return True

    async def announce_resumed(self) -> int:
        """At the bot's start: tell each chat how many of its notes an earlier run left
        unfinished (they are in the queue, so they are transcribed now); how many in all."""
        async with self._sessions.begin() as session:
            counts = await QueueQueries(session).unfinished_by_chat()
            for chat_id, count in counts.items():
                await post_notice(session, chat_id, Notice(NoticeKind.RESUMED, count))
        if counts:
            self._on_outbox()
        return sum(counts.values())

    async def expire_claims_of(self, prefix: str) -> int:
        """At start: claims an earlier run of this process held when it died run out now."""
        async with self._sessions.begin() as session:
            queue = QueueQueries(session)
            return await queue.expire_claims_of(prefix, await queue.now())


def _lost(claim: Claim) -> bool:
    """The note was deleted or another worker took it over: change nothing. False."""
    log.info("%s no longer holds note %s; leaving it as it is", claim.worker, claim.note_id)
    return False


def _held(note: Note, claim: Claim) -> bool:
    """Whether the claim still stands: the note is in work, and by this worker. (A finished
    note keeps `claimed_by`: who worked on it last.)"""
    return note.state == NoteState.TRANSCRIBING and note.claimed_by == claim.worker


def _set_aside(note: Note, reason: FailureCode) -> None:
    """FAILED, keeping the recording and its file_id, so /retry can run it again."""
    note.state = advance(note.state, NoteEvent.FAIL)
    note.failure = reason
    note.claim_expires_at = None
    note.progress = None


async def _claim_of(session: AsyncSession, note: Note, worker: str) -> Claim:
    repo = Repository(session, note.owner_id)
    article = await repo.articles.get(note.article_id)
    sections = await repo.sections.of_article(note.article_id)
    assert note.file_id is not None  # only recordings are queued
    titles = [s.title for s in sections]
    return Claim(
        note_id=note.id,
        worker=worker,
        owner_id=note.owner_id,
        chat_id=note.chat_id,
        kind=note.kind,
        file_id=note.file_id,
        duration=note.duration,
        audio_path=Path(note.audio_path) if note.audio_path else None,
        created_at=note.created_at,
        article_title=article.title if article else "",
        outline=[SectionRef(s.id, s.title) for s in sections],
        vocabulary=whisper_vocabulary(await repo.vocabulary.glossary(), titles),
        language=note.requested_language or await repo.vocabulary.language(),
    )


def _heading_title(heading: str) -> str:
    """A spoken heading as a section title ("" when it cannot be one)."""
    try:
        return clean_title(heading.strip(" .,:;!?"), "section title")
    except UserError:
        return ""
