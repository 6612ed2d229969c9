"""A source note's acknowledgement, read from the database as it is when it is delivered."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Note, NoteSource
from bot.db.repository import Repository
from bot.sources.model import SourceCard, SourceFailure, SourceKind, SourceRef, SourceStatus

# Where a draft's figures live, beside its .md in the /export zip.
IMAGES_DIR = "images"
# A document's opening shown in its acknowledgement.
PREVIEW_CHARS = 300


async def load_source_card(
    session: AsyncSession, key: str, context: Mapping[str, Any]
) -> SourceCard | None:
    """The card of source note `key`; None when the note is gone (nothing to show)."""
    note = await session.get(Note, int(key))
    if note is None:
        return None
    repo = Repository(session, note.owner_id)
    row = await repo.sources.of_note(note.id)
    if row is None:
        return None
    sections = list(await repo.sections.of_article(note.article_id))
    numbers = {s.id: (n, s.title) for n, s in enumerate(sections, start=1)}
    parts = await repo.parts.of_note(note.id)
    part = parts[0] if parts else None
    number, title = numbers.get(part.section_id if part else note.section_id or -1, (1, ""))
    kind = SourceKind(row.kind)
    description = row.text or ""
    if kind is SourceKind.DOCUMENT and len(description) > PREVIEW_CHARS:
        description = description[:PREVIEW_CHARS].rsplit(" ", 1)[0] + "…"
    if kind is SourceKind.LINK:
        description = ""  # the page's text is long: its title names it
    started = context.get("started_article")
    return SourceCard(
        note_id=note.id,
        kind=kind,
        status=SourceStatus(row.status),
        failure=SourceFailure(row.failure) if row.failure else None,
        section_number=number,
        section_title=title,
        part_id=part.id if part else None,
        url=row.url,
        title=row.title,
        caption=row.caption or "",
        description=description,
        origin=row.origin,
        origin_url=row.origin_url,
        file_name=row.file_name,
        started_article=str(started) if started else None,
    )


def source_ref(row: NoteSource) -> SourceRef:
    """How the draft's Sources list, its figures and the notes export name a source."""
    kind = SourceKind(row.kind)
    if kind is SourceKind.LINK:
        title = row.title or row.url or "Link"
    elif kind is SourceKind.IMAGE:
        title = row.caption or "Image"
    elif kind is SourceKind.DOCUMENT:
        title = row.file_name or "Document"
    else:
        title = row.origin or "Forwarded post"
    url = row.origin_url if kind is SourceKind.POST else row.url
    return SourceRef(
        note_id=row.note_id,
        kind=kind.value,
        title=title,
        url=url,
        origin=row.origin,
        image_file=f"{IMAGES_DIR}/{PurePath(row.image_path).name}" if row.image_path else None,
        caption=row.caption or "",
    )
