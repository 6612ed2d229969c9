"""The check pass: restore points a draft lost, drop citations the notes do not support."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from bot.drafting.citations import check_citations
from bot.llm.schemas import Block, Citation, CoverageReport, DraftPiece


class Figures(BaseModel):
    """What the check found, shown with the draft and stored with its version."""

    checked: bool = False
    points_total: int = 0
    points_restored: int = 0
    citations_checked: int = 0
    citations_removed: int = 0

    def __add__(self, other: Figures) -> Figures:
        return Figures(
            checked=self.checked or other.checked,
            points_total=self.points_total + other.points_total,
            points_restored=self.points_restored + other.points_restored,
            citations_checked=self.citations_checked + other.citations_checked,
            citations_removed=self.citations_removed + other.citations_removed,
        )


class StoredPiece(BaseModel):
    """A drafted section as cached: its blocks and what the check pass found."""

    piece: DraftPiece
    figures: Figures = Figures()


def apply_report(
    piece: DraftPiece, report: CoverageReport, notes: Mapping[str, str]
) -> tuple[DraftPiece, Figures]:
    """Remove unsupported citations and append the lost points, each citing its note."""
    unsupported = {
        (verdict.block, verdict.note_id.strip().upper())
        for verdict in report.citations
        if not verdict.supported
    }
    checked = removed = 0
    blocks: list[Block] = []
    for number, block in enumerate(piece.blocks, start=1):
        kept: list[Citation] = []
        for citation in block.citations:
            checked += 1
            if (number, citation.note_id.upper()) in unsupported:
                removed += 1
            else:
                kept.append(citation)
        blocks.append(Block(kind=block.kind, text=block.text, citations=kept))

    restored = 0
    for lost in report.lost:
        label = lost.note_id.strip().upper()
        if label in notes and lost.restoration.strip():
            blocks.append(
                Block(
                    kind="paragraph",
                    text=lost.restoration.strip(),
                    citations=[Citation(note_id=label, quote="")],
                )
            )
            restored += 1
    # Restored blocks go through the same citation check as everything else.
    final = check_citations(DraftPiece(blocks=blocks), notes, cite_single_note=False)
    total = max(report.points_total, restored)
    return final, Figures(
        checked=True,
        points_total=total,
        points_restored=restored,
        citations_checked=checked,
        citations_removed=removed,
    )
