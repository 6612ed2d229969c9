"""A note's card: what the message that acknowledged a note shows, read from the note's state.

The outbox shows a note by its subject "note:<id>"; whenever it delivers, the card is built from
the database as it is then, so what the writer sees is never older than what is stored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Note, SectionSuggestion, WriterPreferences
from bot.db.repository import Repository
from bot.domain import FiledPart, NoteCard, SuggestedSection
from bot.notes.lifecycle import FailureCode, NoteState
from bot.notes.vocabulary import AUTO, LANGUAGES
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


# A writer's usual languages: the most frequent among this many of their latest recordings.
USUAL_LANGUAGES_FROM = 30
USUAL_LANGUAGES = 2
MAX_OTHER_LANGUAGES = 3


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
    session: AsyncSession,
    key: str,
    context: Mapping[str, Any],
    *,
    configured_languages: Sequence[str] = (),
) -> NoteCard | RemovedNote | None:
    """The card of note `key` as stored now; None when there is nothing left to show.
    `configured_languages`: WHISPER_LANGUAGE and WHISPER_LANGUAGES, the languages expected."""
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
    instruction = await repo.revisions.instruction(note.id)
    instruction_for = numbers.get(instruction.section_id) if instruction is not None else None
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
        language=note.language if note.state == NoteState.FILED and note.file_id else None,
        other_languages=await _other_languages(session, note, configured_languages),
        instruction_for=instruction_for,
    )


async def _other_languages(
    session: AsyncSession, note: Note, configured: Sequence[str]
) -> tuple[str, ...]:
    """The languages to offer a filed recording again in: none when it came out in a
    language the writer was expected to speak (and detection was sure of it); else the
    expected ones: the writer's /language, the configured ones, their usual ones."""
    if note.state != NoteState.FILED or not note.file_id or not note.language:
        return ()
    if note.requested_language:
        return ()  # the writer chose this language for this very note
    expected: list[str] = []
    chosen = await session.scalar(
        select(WriterPreferences.language).where(WriterPreferences.owner_id == note.owner_id)
    )
    usual = Counter(
        await session.scalars(
            select(Note.language)
            .where(
                Note.owner_id == note.owner_id,
                Note.state == NoteState.FILED,
                Note.file_id.is_not(None),
                Note.language.is_not(None),
                Note.language_unsure.is_(False),
                Note.id != note.id,
            )
            .order_by(Note.id.desc())
            .limit(USUAL_LANGUAGES_FROM)
        )
    )
    candidates = [chosen, *configured, *(code for code, _ in usual.most_common(USUAL_LANGUAGES))]
    for code in candidates:
        if code and code != AUTO and code in LANGUAGES and code not in expected:
            expected.append(code)
    if note.language in expected and not note.language_unsure:
        return ()
    if not expected:
        expected = ["en"]  # nothing known of the writer yet: English is whisper's best
    return tuple(code for code in expected if code != note.language)[:MAX_OTHER_LANGUAGES]
