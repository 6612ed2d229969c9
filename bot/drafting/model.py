"""What a draft is, apart from how any LLM is asked for one.

A draft is made of sections; a section's draft is blocks (a paragraph, a TODO for the writer,
or a passage about the whole article that opens it as its introduction); a block cites the
note *parts* it came from, each with a quote checked against that part's text. The LLM's wire
schema (`bot/llm/schemas.py`) is converted to these types at the edge, in `bot/llm/writer.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

BlockKind = Literal["paragraph", "todo", "introduction"]


@dataclass(frozen=True)
class Source:
    """One note as a section's draft sees it: the parts of that note filed in the section.

    A recording split over several sections has one Source in each of them; two parts of one
    note in the same section are read as one text. `label` ("N12") is how the LLM names it.
    """

    note_id: int
    part_ids: tuple[int, ...]
    texts: tuple[str, ...]  # one per part, in order
    created_at: datetime
    kind: str  # NoteKind value
    # Where these parts stand in the whole note: (first part's number, the note's part count).
    part_number: int = 1
    parts_in_note: int = 1

    @property
    def label(self) -> str:
        return f"N{self.note_id}"

    @property
    def text(self) -> str:
        return "\n".join(self.texts)


class Citation(BaseModel):
    """A block's reference to one part of one note, with a quote from that part.

    `part_id` None: the model named a note it was never given (resolved by quote or dropped).
    An empty quote means none could be verified: the footnote then shows how the part begins.
    """

    model_config = ConfigDict(frozen=True)

    part_id: int | None
    quote: str = ""


class Block(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: BlockKind
    text: str
    citations: tuple[Citation, ...] = ()


class Figures(BaseModel):
    """What the check pass found, shown with the draft and stored with its version.

    Only points the checker anchored in the notes with a quote that verifies are counted;
    `claims_ignored` counts those it could not anchor. `inconclusive`: it verified nothing,
    so its answer changed nothing.
    """

    checked: bool = False
    points_total: int = 0  # verified points of the notes
    points_kept: int = 0  # verified points the first draft had
    points_restored: int = 0  # verified points the draft had lost, now put back
    claims_ignored: int = 0  # points the checker claimed but could not quote from the notes
    citations_checked: int = 0
    citations_removed: int = 0
    inconclusive: int = 0  # sections whose check verified nothing

    def __add__(self, other: Figures) -> Figures:
        return Figures(
            checked=self.checked or other.checked,
            points_total=self.points_total + other.points_total,
            points_kept=self.points_kept + other.points_kept,
            points_restored=self.points_restored + other.points_restored,
            claims_ignored=self.claims_ignored + other.claims_ignored,
            citations_checked=self.citations_checked + other.citations_checked,
            citations_removed=self.citations_removed + other.citations_removed,
            inconclusive=self.inconclusive + other.inconclusive,
        )


class SectionDraft(BaseModel):
    """A drafted section, as cached: its blocks, how it was made, what the check found.

    `answers` is how many LLM answers it took; `cut_off` says some answer was cut off (the
    output limit, or a model repeating itself), so the notes were drafted in smaller pieces.
    """

    model_config = ConfigDict(frozen=True)

    blocks: tuple[Block, ...] = ()
    answers: int = 1
    cut_off: bool = False
    figures: Figures = Figures()

    @property
    def has_introduction(self) -> bool:
        return any(b.kind == "introduction" for b in self.blocks)


@dataclass(frozen=True)
class WrittenSection:
    """What a draft writer returns for one section, before citations are checked."""

    blocks: Sequence[Block]
    answers: int = 1
    cut_off: bool = False


@dataclass(frozen=True)
class Revision:
    """A section written again by the writer's instruction, before citations are checked."""

    blocks: Sequence[Block]
    change: str  # one line on what changed, in the model's words


@dataclass(frozen=True)
class ClaimedPoint:
    """A point of the notes as the checker reports it, with the quote that anchors it."""

    part_id: int | None
    quote: str
    point: str
    in_draft: bool
    restoration: str = ""  # prose that puts the point back, when the draft lost it


@dataclass(frozen=True)
class CitationVerdict:
    block: int  # 1-based, as the checker was shown the blocks
    part_id: int | None
    supported: bool


@dataclass(frozen=True)
class CheckReport:
    """The check pass's answer; nothing in it is trusted until verified against the notes."""

    points: Sequence[ClaimedPoint]
    verdicts: Sequence[CitationVerdict]
    # False when there was no usable answer (too long to check, or the answer was cut off).
    answered: bool = True


NOT_CHECKED = CheckReport(points=(), verdicts=(), answered=False)
