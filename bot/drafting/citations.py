"""Citations are checked against the notes, deterministically, before a draft is kept."""

from __future__ import annotations

import re
from collections.abc import Mapping
from difflib import SequenceMatcher

from bot.llm.schemas import Block, Citation, DraftPiece

# Share of a quote's characters that must match the note for it to count as found
# (tolerates small ASR variants and punctuation, not paraphrase).
QUOTE_MATCH_RATIO = 0.85


def _normalise(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


def quote_in(quote: str, note_text: str) -> bool:
    """True when the quote appears in the note, allowing small differences."""
    q, n = _normalise(quote), _normalise(note_text)
    if not q:
        return False
    if q in n:
        return True
    matcher = SequenceMatcher(None, n, q, autojunk=False)
    matched = sum(block.size for block in matcher.get_matching_blocks())
    longest = matcher.find_longest_match(0, len(n), 0, len(q)).size
    return matched / len(q) >= QUOTE_MATCH_RATIO and longest >= len(q) * 0.5


def check_citations(
    piece: DraftPiece, notes: Mapping[str, str], *, cite_single_note: bool = True
) -> DraftPiece:
    """Keep only citations to notes that exist; re-point a quote found in another note.

    `notes` maps each note label the LLM was given to that note's text. A citation whose
    label is unknown is dropped. A quote that is not in the cited note but is in another
    given note is moved to that note. A quote found nowhere keeps the citation to the note
    (the LLM was shown it) but loses the quote, so no invented words are shown as a quote.
    When a block is left without citations and only one note was given, it came from there
    (unless `cite_single_note` is off: after the check pass judged that citation unsupported).
    """
    checked: list[Block] = []
    for block in piece.blocks:
        citations: list[Citation] = []
        for citation in block.citations:
            label = citation.note_id.strip().upper()
            if not label.startswith("N"):
                label = f"N{label}"
            quote = citation.quote.strip()
            if label in notes and quote and quote_in(quote, notes[label]):
                fixed = Citation(note_id=label, quote=quote)
            else:
                elsewhere = next(
                    (other for other, text in notes.items() if quote and quote_in(quote, text)),
                    None,
                )
                if elsewhere is not None:
                    fixed = Citation(note_id=elsewhere, quote=quote)
                elif label in notes:
                    fixed = Citation(note_id=label, quote="")
                else:
                    continue  # a note that does not exist: never shown
            if all(c.note_id != fixed.note_id for c in citations):
                citations.append(fixed)
        if not citations and cite_single_note and len(notes) == 1:
            citations = [Citation(note_id=next(iter(notes)), quote="")]
        text = block.text.strip()
        if text:
            checked.append(Block(kind=block.kind, text=text, citations=citations))
    return DraftPiece(blocks=checked)
