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

from bot.domain import NoteKind, UserError

_FRONT_MATTER = re.compile(r"^\ufeff?---\s*\n(.*?)\n---\s*\n?(.*)$", re.DOTALL)
MAX_ARCHIVE_CHARS = 200_000


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
