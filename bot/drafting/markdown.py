"""Drafts and notes rendered as markdown files (the format the writer exports and edits)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.llm.schemas import DraftPiece

KIND_NAMES = {"voice": "Voice note", "audio": "Audio", "video": "Video note", "text": "Text note"}
EMPTY_SECTION = "_No notes for this section yet._"
# A section whose notes all spoke about the whole article: their text opens the draft.
IN_INTRODUCTION = "_This section's notes are about the whole article: see the introduction._"


@dataclass(frozen=True)
class NoteRef:
    label: str
    created_at: datetime
    kind: str
    text: str


def stamp(moment: datetime) -> str:
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; they are stored in UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def slugify(title: str) -> str:
    """A file name from a title; Cyrillic and other scripts are kept as letters."""
    text = unicodedata.normalize("NFKC", title).casefold()
    slug = re.sub(r"[^\w]+", "-", text).strip("-_")
    return slug[:60].rstrip("-") or "article"


class _Footnotes:
    """Numbers footnotes in order of first use; one footnote per cited note."""

    def __init__(self, notes: Mapping[str, NoteRef]) -> None:
        self._notes = notes
        self._numbers: dict[str, int] = {}
        self._quotes: dict[str, str] = {}

    def ref(self, label: str, quote: str) -> str:
        if label not in self._notes:
            return ""
        if label not in self._numbers:
            self._numbers[label] = len(self._numbers) + 1
        if quote and label not in self._quotes:
            self._quotes[label] = quote
        return f"[^{self._numbers[label]}]"

    def render(self) -> list[str]:
        lines = []
        for label, number in self._numbers.items():
            note = self._notes[label]
            quote = self._quotes.get(label)
            if quote:
                shown = f"“{quote}”"
            else:
                words = note.text.split()
                shown = "begins “" + " ".join(words[:10]) + ("…”" if len(words) > 10 else "”")
            kind = KIND_NAMES.get(note.kind, "Note")
            lines.append(f"[^{number}]: {kind}, {stamp(note.created_at)}: {shown}")
        return lines


def _piece_lines(piece: DraftPiece, footnotes: _Footnotes) -> list[str]:
    lines: list[str] = []
    for block in piece.blocks:
        refs = "".join(footnotes.ref(c.note_id, c.quote) for c in block.citations)
        text = " ".join(block.text.split()) if block.kind == "todo" else block.text.strip()
        if block.kind == "todo":
            lines.append(f"**TODO:** {text}{refs}")
        else:
            lines.append(f"{text}{refs}")
        lines.append("")
    return lines


def render_article(
    title: str,
    introduction: DraftPiece | None,
    sections: Sequence[tuple[str, DraftPiece | None]],
    notes: Mapping[str, NoteRef],
) -> str:
    """The whole draft: title, introduction, a heading per section in order, footnotes."""
    footnotes = _Footnotes(notes)
    lines = [f"# {title}", ""]
    if introduction is not None and introduction.blocks:
        lines += _piece_lines(introduction, footnotes)
    for section_title, piece in sections:
        lines += [f"## {section_title}", ""]
        if piece is None:
            lines += [EMPTY_SECTION, ""]
        elif not piece.blocks:
            lines += [IN_INTRODUCTION, ""]
        else:
            lines += _piece_lines(piece, footnotes)
    notes_lines = footnotes.render()
    if notes_lines:
        lines += ["---", "", *notes_lines]
    return "\n".join(lines).rstrip() + "\n"


def render_notes_export(
    title: str, sections: Sequence[tuple[str, Sequence[NoteRef]]], unfinished: int
) -> str:
    """Every transcript, grouped by section, with its time: the writer's backup."""
    lines = [f"# {title}: notes", ""]
    for section_title, notes in sections:
        lines += [f"## {section_title}", ""]
        if not notes:
            lines += ["_No notes._", ""]
        for note in notes:
            kind = KIND_NAMES.get(note.kind, "Note")
            lines += [f"**{stamp(note.created_at)}** · {kind}", "", note.text.strip(), ""]
    if unfinished:
        lines += [f"_{unfinished} more note(s) are still being transcribed._", ""]
    return "\n".join(lines).rstrip() + "\n"
