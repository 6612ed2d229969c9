"""A note's card: what the message that acknowledged a note shows, read from the note's state.

The outbox shows a note by its subject "note:<id>"; whenever it delivers, the card is built from
the database as it is then, so what the writer sees is never older than what is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Note, SectionSuggestion
from bot.db.repository import Repository
from bot.domain import FiledPart, NoteCard, SuggestedSection
from bot.notes.lifecycle import FailureCode, NoteState
from bot.notes.windows import stored_windows
from bot.services.outbox import post_view, subject
from bot.transcription.base import contiguous, stitch

NOTE = "note"
# Failures a second try may cure; the others are about the recording itself.
RETRYABLE = frozenset(
    {
        FailureCode.GAVE_UP,
        FailureCode.DOWNLOAD_FAILED,
        FailureCode.SERVICE_DOWN,
        FailureCode.SERVICE_REFUSED,
        FailureCode.CANCELLED,
    }
)


@dataclass(frozen=True)
class RemovedNote:
    """The note was deleted (/undo) before it was transcribed."""

    note_id: int


def note_subject(note_id: int) -> str:
    return subject(NOTE, note_id)


async def show_note(
    session: AsyncSession, note: Note, *, reply_to: int | None = None, **context: object
) -> None:
    """Have the note's card shown (or updated) once this transaction commits.

    Its first message replies to the writer's message, or to `reply_to` (an imported file's
    message: an import's own message id is made up).
    """
    if reply_to is None and note.message_id > 0:
        reply_to = note.message_id
    await post_view(session, note.chat_id, note_subject(note.id), reply_to=reply_to, **context)


async def load_note_card(
    session: AsyncSession, key: str, context: Mapping[str, Any]
) -> NoteCard | RemovedNote | None:
    """The card of note `key` as stored now; None when there is nothing left to show."""
    note_id = int(key)
    if context.get("removed"):
        return RemovedNote(note_id)
    note = await session.get(Note, note_id)
    if note is None:
        return None
    repo = Repository(session, note.owner_id)
    sections = list(await repo.sections.of_article(note.article_id))
    numbers = {s.id: (n, s.title) for n, s in enumerate(sections, start=1)}
    parts = [
        FiledPart(p.id, *numbers[p.section_id], p.text)
        for p in await repo.parts.of_note(note.id)
        if p.section_id in numbers
    ]
    target = numbers.get(note.section_id or -1)
    if target is None:
        active = next((s for s in sections if s.is_active), sections[0] if sections else None)
        target = numbers[active.id] if active is not None else (1, "")
    suggestions = [
        SuggestedSection(s.id, s.title)
        for s in await session.scalars(
            select(SectionSuggestion)
            .where(SectionSuggestion.note_id == note.id)
            .order_by(SectionSuggestion.id)
        )
    ]
    started = context.get("started_article")
    partial = ""
    if note.state == NoteState.TRANSCRIBING:
        # The windows done so far, from the first on: the transcript as it grows.
        partial, _ = stitch(contiguous(await stored_windows(session, note.id)))
    return NoteCard(
        note_id=note.id,
        kind=note.kind,
        state=note.state,
        section_number=target[0],
        section_title=target[1],
        parts=parts,
        transcript=note.transcript or "",
        caption=note.caption or "",
        failure=note.failure,
        progress=note.progress if note.state == NoteState.TRANSCRIBING else None,
        partial=partial,
        suggestions=suggestions if note.state == NoteState.FILED else [],
        started_article=str(started) if started else None,
        imported=bool(context.get("imported")),
        created_at=note.created_at,
        retryable=note.state == NoteState.FAILED and note.failure in RETRYABLE,
    )
