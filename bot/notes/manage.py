"""Managing filed notes: list a section's notes, move or delete them, undo, edit text notes."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.repository import Repository
from bot.domain import FiledPart, NoteKind, SectionInfo, UserError
from bot.notes.cards import note_subject
from bot.notes.lifecycle import UNFINISHED, NoteState
from bot.notes.titles import SectionTitle, split_by_spoken_titles
from bot.services.outbox import post_view
from bot.services.outline import MAX_SECTIONS, clean_title, normalise_title, require_article
from bot.sources.links import MAX_LINKS_PER_MESSAGE, find_urls, words_around
from bot.sources.model import LINK_STRIDE

PREVIEW_WORDS = 12
# Words can be long (a URL): a preview is cut at this many characters too.
PREVIEW_CHARS = 90


@dataclass(frozen=True)
class FiledNote:
    """One note as filed in one section (a part of a recording, or a whole note)."""

    part_id: int
    note_id: int
    kind: NoteKind
    created_at: datetime
    preview: str


@dataclass(frozen=True)
class SectionNotes:
    section: SectionInfo
    notes: list[FiledNote]
    sections: list[SectionInfo]  # the whole outline, for "move to" buttons


@dataclass(frozen=True)
class Undone:
    note_id: int
    preview: str  # empty while the note was still being transcribed
    pending: bool
    failed: bool  # it had not been filed (no speech, damaged audio…)


@dataclass(frozen=True)
class AcceptedSection:
    section: SectionInfo
    parts: list[FiledPart]  # the note, filed again with the new section in the outline


@dataclass(frozen=True)
class Moved:
    preview: str
    from_section: SectionInfo
    to_section: SectionInfo


def preview(text: str) -> str:
    words = text.split()
    shown = " ".join(words[:PREVIEW_WORDS])
    if len(shown) > PREVIEW_CHARS:
        return shown[: PREVIEW_CHARS - 1].rstrip() + "…"
    return shown + ("…" if len(words) > PREVIEW_WORDS else "")


class NotesService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        on_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        """`on_outbox`: a message for the writer was added (wakes the delivery)."""
        self._sessions = sessions
        self._on_outbox = on_outbox

    async def section_notes(self, owner_id: int, number: int | None) -> SectionNotes:
        """The notes of section `number` (default: the active section), oldest first."""
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            article = await require_article(repo)
            outline = await _section_infos(repo, article.id)
            if number is None:
                section = next((s for s in outline if s.is_active), outline[0] if outline else None)
            elif 1 <= number <= len(outline):
                section = outline[number - 1]
            else:
                section = None
            if section is None:
                raise UserError(
                    f"There is no section {number}: pick 1 to {len(outline)} (see /sections)."
                )
            return await _page(repo, article.id, section, outline)

    async def section_notes_by_id(self, owner_id: int, section_id: int) -> SectionNotes:
        """The same, for a section named by id (a page button under /notes)."""
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            found = await repo.sections.get(section_id)
            if found is None:
                raise UserError("That section no longer exists. Send /notes again.")
            outline = await _section_infos(repo, found.article_id)
            section = next(s for s in outline if s.id == section_id)
            return await _page(repo, found.article_id, section, outline)

    async def move_targets(self, owner_id: int, part_id: int) -> tuple[str, list[SectionInfo]]:
        """A note's preview and the sections of its article, to pick where it goes."""
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            found = await repo.parts.get(part_id)
            if found is None:
                raise UserError("That note no longer exists. Send /notes again.")
            part, note = found
            outline = await _section_infos(repo, note.article_id)
            return preview(part.text), [s for s in outline if s.id != part.section_id]

    async def move_part(self, owner_id: int, part_id: int, section_id: int) -> Moved:
        """File a note (or one part of a recording) under another section."""
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            found = await repo.parts.get(part_id)
            target = await repo.sections.get(section_id)
            if found is None or target is None:
                raise UserError("That note or section no longer exists. Send /notes again.")
            part, note = found
            if target.article_id != note.article_id:
                raise UserError("Notes can only move between sections of the same article.")
            origin_id = part.section_id
            # The drafts of both sections are keyed by their notes, so both get redrafted.
            part.section_id = target.id
            await session.flush()
            by_id = {s.id: s for s in await _section_infos(repo, note.article_id)}
            return Moved(preview(part.text), by_id[origin_id], by_id[target.id])

    async def delete_part(self, owner_id: int, part_id: int) -> str:
        """Remove a note from its section; a recording with no parts left is removed whole."""
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            found = await repo.parts.get(part_id)
            if found is None:
                raise UserError("That note was already deleted.")
            part, note = found
            text = preview(part.text)
            image = None
            await repo.parts.delete(part)
            if not await repo.parts.of_note(note.id):
                image = await _kept_image(repo, note.id)
                await repo.notes.delete(note)
        if image is not None:  # only once the note is gone for good (the deletion committed)
            image.unlink(missing_ok=True)
        return text

    async def undo_last(self, owner_id: int) -> Undone:
        """Delete the writer's most recent note, whatever became of it."""
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            note = await repo.notes.latest()
            if note is None:
                raise UserError("There is no note to undo.")
            undone = Undone(
                note_id=note.id,
                preview=preview(note.transcript or ""),
                pending=note.state in UNFINISHED,
                failed=note.state == NoteState.FAILED,
            )
            audio = Path(note.audio_path) if note.audio_path else None
            image = await _kept_image(repo, note.id)
            if undone.pending:
                # Its card says "Transcribing…": it now says the note is gone. A worker that
                # has it notices at its next beat and stops without a word.
                await post_view(session, note.chat_id, note_subject(note.id), removed=True)
            await repo.notes.delete(note)
        if undone.pending:
            self._on_outbox()
        if audio is not None:  # a downloaded recording nobody will transcribe now
            audio.unlink(missing_ok=True)
        if image is not None:  # a photo source's kept image: no draft can show it now
            image.unlink(missing_ok=True)
        return undone

    async def accept_suggestion(self, owner_id: int, suggestion_id: int) -> AcceptedSection:
        """Add a spoken heading as the article's last section; what follows it moves there.

        Only the part that holds the heading is cut: the rest of the note stays where the
        writer (or the routing) put it.
        """
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            suggestion = await repo.suggestions.get(suggestion_id)
            if suggestion is None:
                raise UserError("That suggestion was already used or has expired.")
            sections = list(await repo.sections.of_article(suggestion.article_id))
            key = normalise_title(suggestion.title)
            section = next((s for s in sections if normalise_title(s.title) == key), None)
            if section is None:
                if len(sections) >= MAX_SECTIONS:
                    raise UserError(f"An outline can have at most {MAX_SECTIONS} sections.")
                section = await repo.sections.add(
                    suggestion.article_id, len(sections) + 1, clean_title(suggestion.title)
                )
            parts = await repo.parts.of_note(suggestion.note_id)
            for part in parts:
                before, after = cut_at_heading(part.text, suggestion.title)
                if after is None:
                    continue
                note = await repo.notes.get(suggestion.note_id)
                assert note is not None  # its parts exist
                for later in parts:
                    if later.position > part.position:
                        later.position += 1
                if before:
                    part.text = before
                    await repo.parts.add(note, section.id, after, part.position + 1)
                else:  # the part began with the heading: all of it moves
                    part.text, part.section_id = after, section.id
                break
            await repo.suggestions.delete(suggestion)
            await session.flush()
            outline = await _section_infos(repo, suggestion.article_id)
            by_id = {s.id: s for s in outline}
            filed = [
                FiledPart(p.id, by_id[p.section_id].number, by_id[p.section_id].title, p.text)
                for p in await repo.parts.of_note(suggestion.note_id)
            ]
            return AcceptedSection(by_id[section.id], filed)

    async def edit_text_note(
        self, owner_id: int, chat_id: int, message_id: int, new_text: str
    ) -> str | None:
        """An edited text message updates its note; returns the section title, if any. In a
        message whose links were filed as sources, the note keeps the words around the URLs
        (as intake cut them), never the URLs; its sources stay as they were."""
        new_text = new_text.strip()
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            note = await repo.notes.by_message(chat_id, message_id)
            if note is None or note.kind != NoteKind.TEXT or note.state != NoteState.FILED:
                return None
            if await _filed_links(repo, chat_id, message_id):
                new_text = words_around(new_text, find_urls(new_text))
            if not new_text:
                raise UserError("An edited note can't be empty; use /undo or /notes to delete it.")
            parts = await repo.parts.of_note(note.id)
            note.transcript = new_text
            for extra in parts[1:]:
                await repo.parts.delete(extra)
            if parts:
                parts[0].text = new_text
                section = await repo.sections.get(parts[0].section_id)
                return section.title if section else None
            return None


async def _filed_links(repo: Repository, chat_id: int, message_id: int) -> bool:
    """Whether the message's links were filed as sources (each its own note, its id the
    message's plus k * LINK_STRIDE; any of them may have been deleted since)."""
    for number in range(1, MAX_LINKS_PER_MESSAGE + 1):
        if await repo.notes.by_message(chat_id, message_id + number * LINK_STRIDE) is not None:
            return True
    return False


async def _kept_image(repo: Repository, note_id: int) -> Path | None:
    """The image file a photo source keeps for figures, to remove with its note."""
    source = await repo.sources.of_note(note_id)
    return Path(source.image_path) if source is not None and source.image_path else None


async def _page(
    repo: Repository, article_id: int, section: SectionInfo, outline: list[SectionInfo]
) -> SectionNotes:
    notes = [
        FiledNote(part.id, note.id, note.kind, note.created_at, preview(part.text))
        for part, note in await repo.parts.of_article(article_id)
        if part.section_id == section.id
    ]
    return SectionNotes(section, notes, outline)


async def _section_infos(repo: Repository, article_id: int) -> list[SectionInfo]:
    counts = await repo.sections.note_counts(article_id)
    return [
        SectionInfo(s.id, n, s.title, counts.get(s.id, 0), s.is_active)
        for n, s in enumerate(await repo.sections.of_article(article_id), start=1)
    ]


def cut_at_heading(text: str, heading: str) -> tuple[str, str | None]:
    """Split text where the heading is spoken: (before, after), or (text, None) if absent."""
    routed = split_by_spoken_titles(text, [SectionTitle(1, heading)], 0)
    if any(p.section_id == 1 for p in routed):
        before = " ".join(p.text for p in routed if p.section_id == 0)
        after = " ".join(p.text for p in routed if p.section_id == 1)
        return before, after
    # Spoken mid-sentence, where the splitter is careful: cut at the words themselves.
    match = re.search(r"\W+".join(map(re.escape, heading.split())), text, re.IGNORECASE)
    if match is None:
        return text, None
    after = text[match.end() :].lstrip(" .,:;!?-–—")
    return text[: match.start()].rstrip(" ,:;-–—"), after or None
