"""Drafts and notes rendered as markdown files (the format the writer exports and edits)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.drafting.model import Block
from bot.sources.model import SourceRef

KIND_NAMES = {
    "voice": "Voice note",
    "audio": "Audio",
    "video": "Video note",
    "text": "Text note",
    # Outside material (bot/sources/).
    "link": "Link",
    "image": "Image",
    "document": "Document",
    "post": "Forwarded post",
}
EMPTY_SECTION = "_No notes for this section yet._"
# A section whose notes all spoke about the whole article: their text opens the draft.
IN_INTRODUCTION = "_This section's notes are about the whole article: see the introduction._"


def model_returned_nothing(number: int) -> str:
    return (
        "_The model returned nothing for this section. Your notes are kept; "
        f"send /draft {number} to try again._"
    )


@dataclass(frozen=True)
class NoteRef:
    """A note's text in one section, for the notes export."""

    label: str
    created_at: datetime
    kind: str
    text: str
    # A source's URL or channel, shown above its text.
    origin: str = ""


@dataclass(frozen=True)
class PartRef:
    """What a footnote shows about one cited note part."""

    created_at: datetime
    kind: str
    text: str
    part_number: int = 1
    parts_in_note: int = 1


@dataclass(frozen=True)
class SectionView:
    """One section as rendered: its blocks, or why it has none."""

    number: int
    title: str
    blocks: Sequence[Block]
    has_notes: bool
    # Its draft had only passages about the whole article, which now open the draft.
    went_to_introduction: bool = False
    # Images filed in the section, shown as figures after its text.
    figures: Sequence[SourceRef] = ()
    # Positions (in `blocks`) of TODOs the writer ticked with /done.
    done: frozenset[int] = frozenset()
    section_id: int | None = None


@dataclass(frozen=True)
class Piece:
    """A stretch of a rendered draft: the title and introduction, one section (its id), the
    Sources list, or the footnotes. The chat shows each section in messages of its own."""

    section_id: int | None
    markdown: str


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
    """Numbers footnotes in order of first use; one footnote per cited note part.

    A recording split over several sections is cited per part, so each footnote quotes (or
    shows the opening words of) the part it cites, not another part of the same recording.
    """

    def __init__(self, parts: Mapping[int, PartRef]) -> None:
        self._parts = parts
        self._numbers: dict[int, int] = {}
        self._quotes: dict[int, str] = {}

    def ref(self, part_id: int | None, quote: str) -> str:
        if part_id is None or part_id not in self._parts:
            return ""
        if part_id not in self._numbers:
            self._numbers[part_id] = len(self._numbers) + 1
        if quote and part_id not in self._quotes:
            self._quotes[part_id] = quote
        return f"[^{self._numbers[part_id]}]"

    def render(self) -> list[str]:
        lines = []
        for part_id, number in self._numbers.items():
            part = self._parts[part_id]
            quote = self._quotes.get(part_id)
            if quote:
                shown = f"“{quote}”"
            else:
                words = part.text.split()
                shown = "begins “" + " ".join(words[:10]) + ("…”" if len(words) > 10 else "”")
            kind = KIND_NAMES.get(part.kind, "Note")
            where = (
                f", part {part.part_number} of {part.parts_in_note}"
                if part.parts_in_note > 1
                else ""
            )
            lines.append(f"[^{number}]: {kind}, {stamp(part.created_at)}{where}: {shown}")
        return lines


def _block_lines(
    blocks: Sequence[Block], footnotes: _Footnotes, done: frozenset[int] = frozenset()
) -> list[str]:
    lines: list[str] = []
    for position, block in enumerate(blocks):
        refs = "".join(footnotes.ref(c.part_id, c.quote) for c in block.citations)
        text = " ".join(block.text.split()) if block.kind == "todo" else block.text.strip()
        if block.kind == "todo" and position in done:
            lines.append(f"**Done:** {text}{refs}")
        elif block.kind == "todo":
            lines.append(f"**TODO:** {text}{refs}")
        else:
            lines.append(f"{text}{refs}")
        lines.append("")
    return lines


def render_article(
    title: str,
    introduction: Sequence[Block],
    sections: Sequence[SectionView],
    parts: Mapping[int, PartRef],
    sources: Sequence[SourceRef] = (),
) -> str:
    """The whole draft: title, introduction, a heading per section in order (with its
    figures), the Sources list of every outside source the notes hold, footnotes."""
    pieces = render_pieces(title, introduction, sections, parts, sources)
    return "\n".join(p.markdown for p in pieces)


def render_pieces(
    title: str | None,
    introduction: Sequence[Block],
    sections: Sequence[SectionView],
    parts: Mapping[int, PartRef],
    sources: Sequence[SourceRef] = (),
) -> list[Piece]:
    """The draft in pieces (joined with a newline they are the whole draft); no title line
    when `title` is None (one section shown on its own)."""
    footnotes = _Footnotes(parts)
    pieces: list[Piece] = []
    if title is not None:
        head = [f"# {title}", "", *_block_lines(introduction, footnotes)]
        pieces.append(Piece(None, "\n".join(head).rstrip() + "\n"))
    figure = 0
    for section in sections:
        lines = [f"## {section.title}", ""]
        if not section.has_notes:
            lines += [EMPTY_SECTION, ""]
        elif section.blocks:
            lines += _block_lines(section.blocks, footnotes, section.done)
        elif section.went_to_introduction:
            lines += [IN_INTRODUCTION, ""]
        else:
            lines += [model_returned_nothing(section.number), ""]
        for image in section.figures:
            if image.image_file:
                figure += 1
                caption = _one_line(image.caption) or f"Figure {figure}"
                lines += [f"![{_alt(caption)}]({image.image_file})", ""]
                lines += [f"*Figure {figure}: {caption}*", ""]
        pieces.append(Piece(section.section_id, "\n".join(lines).rstrip() + "\n"))
    if sources:
        listed = [f"{n}. {source.citation()}" for n, source in enumerate(sources, start=1)]
        pieces.append(Piece(None, "\n".join(["## Sources", "", *listed]) + "\n"))
    notes_lines = footnotes.render()
    if notes_lines:
        pieces.append(Piece(None, "\n".join(["---", "", *notes_lines]).rstrip() + "\n"))
    return pieces


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _alt(text: str) -> str:
    return text.replace("[", "(").replace("]", ")")


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
            origin = f" · {note.origin}" if note.origin else ""
            lines += [f"**{stamp(note.created_at)}** · {kind}{origin}", "", note.text.strip(), ""]
    if unfinished:
        lines += [f"_{unfinished} more note(s) are still being transcribed._", ""]
    return "\n".join(lines).rstrip() + "\n"
