"""A recording's transcribed windows as stored while it is in work (table note_windows).

Each window a worker finishes is kept at once, so a note taken up again after a crash or a
stop reuses what it had; the card shows the windows done so far as the transcript grows.
Filing the note (or failing it for good) forgets them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import NoteWindow
from bot.transcription.base import Segment, WindowTranscript


def window_request(language: str | None, vocabulary: Sequence[str]) -> str:
    """What a note's windows are transcribed with: windows of another request are not reused."""
    key = json.dumps([language, list(vocabulary)], ensure_ascii=False)
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def row_of(note_id: int, request: str, window: WindowTranscript) -> NoteWindow:
    return NoteWindow(
        note_id=note_id,
        position=window.index,
        request=request,
        start_s=window.start,
        end_s=window.end,
        speech_s=window.speech_seconds,
        language=window.language,
        language_unsure=window.language_unsure,
        vocabulary_dropped=window.vocabulary_dropped,
        segments=json.dumps([[s.start, s.end, s.text] for s in window.segments]),
    )


def window_of(row: NoteWindow) -> WindowTranscript:
    return WindowTranscript(
        index=row.position,
        start=row.start_s,
        end=row.end_s,
        segments=tuple(Segment(float(a), float(b), str(t)) for a, b, t in json.loads(row.segments)),
        speech_seconds=row.speech_s,
        language=row.language,
        language_unsure=row.language_unsure,
        vocabulary_dropped=row.vocabulary_dropped,
    )


async def stored_windows(session: AsyncSession, note_id: int) -> dict[int, WindowTranscript]:
    """The note's transcribed windows as stored now (its card shows them while it works)."""
    rows = await session.scalars(select(NoteWindow).where(NoteWindow.note_id == note_id))
    return {row.position: window_of(row) for row in rows}


async def forget_windows(session: AsyncSession, note_id: int) -> None:
    await session.execute(delete(NoteWindow).where(NoteWindow.note_id == note_id))
