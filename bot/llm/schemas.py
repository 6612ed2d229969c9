"""The wire schema: what the LLM must return, validated by pydantic (and sent as a JSON schema).

These types are the LLM's side of the edge only; `bot/llm/writer.py` converts them to the
draft's domain model (`bot/drafting/model.py`), which is what is stored and rendered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Citation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note_id: str = Field(description='The cited note\'s id, like "N12".')
    quote: str = Field(description="3 to 12 words copied exactly from that note.")


class Block(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # "introduction": prose about the article as a whole; it is moved to open the article.
    kind: Literal["paragraph", "todo", "introduction"]
    text: str = Field(description="A paragraph of prose, or a short task for the writer.")
    citations: list[Citation]


class DraftPiece(BaseModel):
    """A drafted section (or the introduction): blocks in reading order."""

    model_config = ConfigDict(extra="forbid")

    blocks: list[Block]


class RevisedBlock(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["paragraph", "todo"]
    text: str = Field(description="A paragraph of prose, or a short task for the writer.")
    citations: list[Citation]


class RevisedSection(BaseModel):
    """A section written again by the writer's instruction, and what changed."""

    model_config = ConfigDict(extra="forbid")

    blocks: list[RevisedBlock]
    change: str = Field(description="One short sentence on what changed.")


class CheckedPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note_id: str = Field(description='The note the point comes from, like "N12".')
    quote: str = Field(description="3 to 12 words copied exactly from that note that make it.")
    point: str = Field(description="The point, in a few words.")
    in_draft: bool = Field(description="Whether the draft keeps this point.")
    restoration: str = Field(
        description='When the draft lost it: one or two sentences that put it back; else "".'
    )


class CitationVerdict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    block: int = Field(description="The block's number, as in [B3].")
    note_id: str
    supported: bool


class CoverageReport(BaseModel):
    """The check pass: every point of the notes (quoted), and which citations fail."""

    model_config = ConfigDict(extra="forbid")

    points: list[CheckedPoint]
    citations: list[CitationVerdict]


class RoutingAdvice(BaseModel):
    """Where a note that names no section belongs, and new headings it speaks."""

    model_config = ConfigDict(extra="forbid")

    section_number: int | None = Field(
        description="1-based outline section for the note, or null if none fits."
    )
    new_headings: list[str] = Field(
        description="Headings spoken aloud that are not in the outline."
    )


@dataclass(frozen=True)
class NoteForDraft:
    """A note as the LLM sees it."""

    label: str  # "N12": how the LLM cites the note
    created_at: datetime
    kind: str
    text: str
