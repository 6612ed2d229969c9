"""The check pass: restore points a draft lost, drop citations the notes do not support.

The checker is an LLM, and a weak one answers anything ("true", 102 points for one note). So
nothing it says is taken on trust: a point counts only when it comes with a quote that
verifies against the notes (as citations do), a restored point goes in only with such a quote,
and an answer that verifies nothing changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.drafting.citations import SourceIndex, check_citations, normalise
from bot.drafting.model import Block, CheckReport, Citation, Figures

# A restoration must be prose: a weak model's "true" or "null" is not one.
MIN_RESTORATION_WORDS = 3
_LITERAL = re.compile(r"^\W*(true|false|null|none|n/?a|yes|no)\W*$", re.IGNORECASE)


def _usable(restoration: str) -> bool:
    text = restoration.strip()
    return len(text.split()) >= MIN_RESTORATION_WORDS and not _LITERAL.match(text)


def apply_report(
    blocks: Sequence[Block], report: CheckReport, index: SourceIndex
) -> tuple[list[Block], Figures]:
    """Verify the checker's answer; remove unsupported citations and restore lost points."""
    citations_total = sum(len(b.citations) for b in blocks)
    if not report.answered:
        return list(blocks), Figures()

    verified: dict[tuple[int, str], tuple[bool, str, str]] = {}
    ignored = 0
    for claim in report.points:
        part = index.find(claim.quote, claim.part_id)
        if part is None:
            ignored += 1
            continue
        key = (part, normalise(claim.quote))
        if key in verified:  # the same quote twice is one point
            continue
        verified[key] = (claim.in_draft, claim.quote.strip(), claim.restoration.strip())

    if not verified:
        # Nothing the checker said could be anchored in the notes: trust none of it.
        return list(blocks), Figures(
            checked=True,
            claims_ignored=ignored,
            citations_checked=citations_total,
            inconclusive=1,
        )

    unsupported = {(v.block, v.part_id) for v in report.verdicts if not v.supported}
    removed = 0
    kept_blocks: list[Block] = []
    for number, block in enumerate(blocks, start=1):
        kept: list[Citation] = []
        for citation in block.citations:
            if (number, citation.part_id) in unsupported:
                removed += 1
            else:
                kept.append(citation)
        kept_blocks.append(Block(kind=block.kind, text=block.text, citations=tuple(kept)))

    restored_blocks: list[Block] = []
    kept_points = 0
    for (part, _), (in_draft, quote, restoration) in verified.items():
        if in_draft:
            kept_points += 1
        elif _usable(restoration):
            citation = Citation(part_id=part, quote=quote)
            restored_blocks.append(Block(kind="paragraph", text=restoration, citations=(citation,)))
    # Restored blocks carry verified quotes; the whole section is checked once more anyway.
    final = check_citations(kept_blocks + restored_blocks, index, cite_single_part=False)
    return final, Figures(
        checked=True,
        points_total=len(verified),
        points_kept=kept_points,
        points_restored=len(restored_blocks),
        claims_ignored=ignored,
        citations_checked=citations_total,
        citations_removed=removed,
    )
