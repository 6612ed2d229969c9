"""What the LLM must return, validated by pydantic (and sent as a JSON schema)."""

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


class LostPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note_id: str
    point: str = Field(description="The lost or changed point, in a few words.")
    restoration: str = Field(description="One or two sentences that put the point back.")


class CitationVerdict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    block: int = Field(description="The block's number, as in [B3].")
    note_id: str
    supported: bool


class CoverageReport(BaseModel):
    """The check pass: how many points the notes make, which the draft lost, which cites fail."""

    model_config = ConfigDict(extra="forbid")

    points_total: int
    lost: list[LostPoint]
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
