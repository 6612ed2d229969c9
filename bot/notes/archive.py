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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.domain import NoteKind, UserError

_FRONT_MATTER = re.compile(r"^\ufeff?---\s*\n(.*?)\n---\s*\n?(.*)$", re.DOTALL)
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
    text = " ".join(body.split())
    if not text:
        raise UserError(f"{name} holds no text to import.")
    created_at = _parse_date(fields.get("date", "")) or datetime.now(UTC)
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
