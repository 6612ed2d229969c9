"""The transcript archive format writers already keep: YAML-ish front matter, then the text.

---
source: telegram_voice
date: 2026-02-17T08:19:52+00:00
audio_file: 20260217_081952_msg1857.ogg
---
The transcript...
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import FiledPart, NoteKind, Outline, UserError

if TYPE_CHECKING:  # intake imports this module
    from bot.notes.intake import IntakeService

_FRONT_MATTER = re.compile(r"^\ufeff?---\s*\n(.*?)\n---\s*\n?(.*)$", re.DOTALL)
# A word hyphenated at a hard line wrap ("дата-\nинженер", "AI-\nинженерию"): the hyphen
# is part of the word, so the lines join without a space. A spaced dash ("so -\nnext") is not.
_WRAPPED_HYPHEN = re.compile(r"(?<=\w)-[ \t]*\r?\n\s*(?=\w)")
MAX_ARCHIVE_CHARS = 200_000
# Files in an archive folder that are not transcripts.
NOT_TRANSCRIPTS = {"outline.txt", "readme.md"}


@dataclass(frozen=True)
class ArchivedNote:
    key: int  # stable per file, so importing the same file twice stores it once
    created_at: datetime
    kind: NoteKind
    text: str


def parse_archived_note(name: str, raw: str) -> ArchivedNote:
    """Parse one archived transcript; without front matter the whole file is the text."""
    if len(raw) > MAX_ARCHIVE_CHARS:
        raise UserError(f"{name} is too long to import (at most {MAX_ARCHIVE_CHARS} characters).")
    fields: dict[str, str] = {}
    body = raw
    match = _FRONT_MATTER.match(raw)
    if match:
        header, body = match.groups()
        for line in header.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip().lower()] = value.strip().strip("'\"")
    text = " ".join(_WRAPPED_HYPHEN.sub("-", body).split())
    if not text:
        raise UserError(f"{name} holds no text to import.")
    try:
        created_at = _parse_date(fields.get("date", "")) or datetime.now(UTC)
    except OverflowError:
        # "9999-12-31T23:59-23:59" parses, but is past the last moment a datetime holds in UTC.
        raise UserError(f"{name} has a date out of range ({fields['date'][:40]}).") from None
    source = fields.get("source", "")
    kind = NoteKind.VOICE if "voice" in source or fields.get("audio_file") else NoteKind.TEXT
    # The same file imported twice is one note; two files that merely share a name are not.
    digest = hashlib.sha256(f"{name}\n{fields.get('date', '')}\n{text}".encode()).digest()
    key = int.from_bytes(digest[:7], "big")  # positive, fits a BIGINT message id
    return ArchivedNote(key=key, created_at=created_at, kind=kind, text=text)


def _parse_date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    # Stored as UTC: SQLite keeps no offset, so "08:19+03:00" must become 05:19 first.
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class OutlineFile:
    title: str | None  # from a first line "# Title"
    sections: list[str]


def read_outline_file(path: Path) -> OutlineFile:
    """One section title a line; a first line `# Title` names the article (blocking)."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"No such file: {path}") from None
    except (OSError, UnicodeDecodeError):
        raise UserError(f"Cannot read {path} as UTF-8 text.") from None
    lines = [line.strip() for line in raw.splitlines()]
    lines = [line for line in lines if line]
    title = None
    if lines and lines[0].startswith("# "):
        title = lines.pop(0)[2:].strip() or None
    return OutlineFile(title, lines)


def transcript_files(directory: Path) -> list[Path]:
    """The transcripts (*.txt, *.md) of an archive folder, by name (blocking)."""
    if not directory.is_dir():
        raise UserError(f"{directory} is not a folder.")
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and p.suffix in {".txt", ".md"} and p.name.lower() not in NOT_TRANSCRIPTS
    )


def read_archived_note(path: Path) -> ArchivedNote:
    """Read and parse one transcript file (blocking)."""
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path.name} is not UTF-8 text.") from None
    except OSError:
        raise UserError(f"Cannot read {path}.") from None
    return parse_archived_note(path.name, raw)


@dataclass(frozen=True)
class ArchiveFolder:
    notes: list[ArchivedNote]  # oldest first
    sections: list[str]  # from the outline file, if any
    skipped: list[str]  # why each unreadable file was left out, naming it
    title: str | None  # from the outline file's `# Title` line


def read_archive_folder(
    directory: Path, outline_path: Path | None = None, *, require_outline: bool = False
) -> ArchiveFolder:
    """The transcripts of a folder and its outline (`outline_path` or DIR/outline.txt);
    files that cannot be imported are skipped and named, not fatal (blocking)."""
    files = transcript_files(directory)
    if outline_path is None and (directory / "outline.txt").is_file():
        outline_path = directory / "outline.txt"
    if outline_path is None and require_outline:
        raise UserError(f"{directory} has no outline.txt (one section title a line).")
    sections: list[str] = []
    title = None
    if outline_path is not None:
        outline_file = read_outline_file(outline_path)
        sections, title = outline_file.sections, outline_file.title
    notes, skipped = [], []
    for path in files:
        try:
            notes.append(read_archived_note(path))
        except UserError as exc:
            skipped.append(exc.message)
    if not notes and not skipped:
        raise UserError(f"{directory} has no transcripts (*.txt or *.md).")
    notes.sort(key=lambda n: n.created_at)
    return ArchiveFolder(notes, sections, skipped, title)


@dataclass(frozen=True)
class ImportReport:
    outline: Outline
    new_notes: int
    already_there: int
    new_by_section: Counter[int]  # section number -> new notes filed there
    created_article: bool


class ArchiveImporter:
    """Archived transcripts into a writer's article: a folder (CLI, eval) or one file (chat),
    each note split at spoken section titles; importing the same file again adds nothing."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], intake: IntakeService | None = None
    ) -> None:
        """`intake`: the bot's own (it wakes the outbox); the CLI and eval need none."""
        from bot.notes.intake import IntakeService
        from bot.services.outline import OutlineService

        self._outlines = OutlineService(sessions)
        self._intake = intake or IntakeService(sessions)

    async def import_file(
        self, owner_id: int, chat_id: int, name: str, raw: str, *, reply_to: int
    ) -> tuple[bool, ArchivedNote, list[FiledPart]]:
        """One transcript sent in the chat (message `reply_to`) into the active article:
        (was it new, the note, its parts). A new one is announced through the outbox."""
        note = parse_archived_note(name, raw)
        created, parts = await self._intake.import_archived(
            owner_id, chat_id, note, reply_to=reply_to
        )
        return created, note, parts

    async def import_notes(
        self,
        owner_id: int,
        chat_id: int,
        title: str,
        sections: Sequence[str],
        notes: Sequence[ArchivedNote],
        on_note: Callable[[], None] = lambda: None,
    ) -> ImportReport:
        """Make `title` the writer's active article (created if missing), apply the outline,
        and import the notes into it."""
        from bot.services.outline import normalise_title

        existing = [
            a
            for a in await self._outlines.articles(owner_id)
            if normalise_title(a.title) == normalise_title(title)
        ]
        if len(existing) > 1:
            numbers = ", ".join(str(a.number) for a in existing)
            raise UserError(
                f"Several articles are called “{title}” ({numbers}); rename one first."
            )
        if existing:
            await self._outlines.use_article(owner_id, existing[0].number)
        else:
            await self._outlines.new_article(owner_id, chat_id, title)
        if sections:
            await self._outlines.set_outline(owner_id, chat_id, list(sections))
        new_notes, already_there = 0, 0
        new_by_section: Counter[int] = Counter()
        for note in notes:
            created, parts = await self._intake.import_archived(owner_id, chat_id, note)
            if created:
                new_notes += 1
                new_by_section.update({p.section_number for p in parts})
            else:
                already_there += 1
            on_note()
        outline = await self._outlines.outline(owner_id)
        assert outline is not None  # made active above
        return ImportReport(outline, new_notes, already_there, new_by_section, not existing)
