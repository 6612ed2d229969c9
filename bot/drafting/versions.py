"""Section versions: what a section's text was after each draft, revision and undo.

The newest version of a section is its current text, the one the chat, /export and /publish
show. A revision is the writer's instruction applied to the current text; the instructions
of revisions not undone are applied again, in order, when new notes make the section redraft,
so new notes never silently undo the writer's edits.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rapidfuzz import fuzz

from bot.db.models import SectionVersion
from bot.drafting.citations import SourceIndex, check_citations, normalise
from bot.drafting.model import Block, SectionDraft, Source

CAUSE_DRAFT = "draft"
CAUSE_REVISION = "revision"
CAUSE_UNDO = "undo"
# How alike a TODO of a later draft must be to a ticked one (0-100) to count as ticked: the
# model rewords a TODO slightly when it redrafts a section.
TODO_MATCH_SCORE = 85.0
# What a revision says where the model wrote prose the notes do not support.
UNSUPPORTED = "The notes do not support this part of your instruction “{instruction}”: " + (
    "dictate or type a note with it (or find a source), then revise again."
)


@dataclass(frozen=True)
class VersionInfo:
    id: int
    section_id: int
    cause: str
    blocks: tuple[Block, ...]
    draft_key: str
    notes_key: str
    instruction: str | None
    change: str | None
    repeats_id: int | None
    undone: bool
    kept: bool
    created_at: datetime


@dataclass(frozen=True)
class NewVersion:
    """A version to store once the LLM work is done."""

    section_id: int
    cause: str
    blocks: tuple[Block, ...]
    draft_key: str
    notes_key: str
    instruction: str | None = None
    change: str | None = None
    repeats_id: int | None = None

    def row(self, article_id: int) -> SectionVersion:
        return SectionVersion(
            article_id=article_id,
            section_id=self.section_id,
            cause=self.cause,
            content=SectionDraft(blocks=self.blocks).model_dump_json(),
            draft_key=self.draft_key,
            notes_key=self.notes_key,
            instruction=self.instruction,
            change=self.change,
            repeats_id=self.repeats_id,
        )


@dataclass(frozen=True)
class Tick:
    section_id: int
    text: str


def version_info(row: SectionVersion) -> VersionInfo:
    return VersionInfo(
        id=row.id,
        section_id=row.section_id,
        cause=row.cause,
        blocks=SectionDraft.model_validate_json(row.content).blocks,
        draft_key=row.draft_key,
        notes_key=row.notes_key,
        instruction=row.instruction,
        change=row.change,
        repeats_id=row.repeats_id,
        undone=row.undone,
        kept=row.kept,
        created_at=row.created_at,
    )


def notes_key(sources: Sequence[Source]) -> str:
    """What a section's notes are now: a version made from other notes is older than them."""
    raw = json.dumps([(s.part_ids, s.text) for s in sources], ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def current_of(versions: Sequence[VersionInfo]) -> dict[int, VersionInfo]:
    """Each section's newest version (versions come oldest first)."""
    current: dict[int, VersionInfo] = {}
    for version in versions:
        current[version.section_id] = version
    return current


def kept_instructions(versions: Sequence[VersionInfo], section_id: int) -> list[tuple[int, str]]:
    """(revision id, instruction) of the section's revisions the writer did not undo, in the
    order they were given; a revision applied again after a redraft repeats one of them."""
    return [
        (v.id, v.instruction)
        for v in versions
        if v.section_id == section_id
        and v.cause == CAUSE_REVISION
        and v.repeats_id is None
        and not v.undone
        and v.instruction
    ]


def verify_revision(
    before: Sequence[Block], revised: Sequence[Block], index: SourceIndex, instruction: str
) -> list[Block]:
    """A revised section as it may be shown: citations checked as drafting checks them, and
    no prose the notes do not support.

    A paragraph kept word for word keeps its checked citations. A new or reworded paragraph
    must carry a quote that verifies against the section's notes; one that does not is
    replaced by one TODO saying the notes do not support the instruction (the model's
    invented prose is never shown).
    """
    earlier = {normalise(b.text): b for b in before}
    checked = check_citations(revised, index, cite_single_part=False)
    out: list[Block] = []
    unsupported = False
    for block in checked:
        same = earlier.get(normalise(block.text))
        if same is not None and same.kind == block.kind:
            out.append(same)
            continue
        if block.kind == "paragraph" and not any(c.quote for c in block.citations):
            if not unsupported:
                unsupported = True
                text = UNSUPPORTED.format(instruction=" ".join(instruction.split())[:300])
                out.append(Block(kind="todo", text=text))
            continue
        out.append(block)
    return out


def is_ticked(section_id: int, text: str, ticks: Sequence[Tick]) -> bool:
    """Whether a TODO of the section is one the writer ticked: worded alike (a redraft may
    reword it a little), and with the same numbers ("the 2019 figures" is not "2020")."""
    key = normalise(text)
    numbers = re.findall(r"\d+", key)
    return any(
        t.section_id == section_id
        and re.findall(r"\d+", normalise(t.text)) == numbers
        and fuzz.token_sort_ratio(key, normalise(t.text), score_cutoff=TODO_MATCH_SCORE) > 0
        for t in ticks
    )


def ticked_positions(
    blocks: Sequence[Block], section_id: int, ticks: Sequence[Tick]
) -> frozenset[int]:
    return frozenset(
        n for n, b in enumerate(blocks) if b.kind == "todo" and is_ticked(section_id, b.text, ticks)
    )
