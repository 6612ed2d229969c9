"""Citations are checked against the notes, deterministically, before a draft is kept.

Fuzzy matching is rapidfuzz (C++, bit-parallel); the draft service runs whole checks in a
worker thread, so a /draft over hundreds of notes never stalls the event loop.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from rapidfuzz import fuzz

from bot.drafting.model import Block, Citation, Source

# Similarity (0-100) of a quote to the best-matching stretch of the note for it to count as
# found: tolerates small ASR variants and punctuation, not paraphrase.
QUOTE_MATCH_SCORE = 85.0
# A quote this short proves nothing ("and the", "да").
MIN_QUOTE_WORDS = 2


@lru_cache(maxsize=4096)
def normalise(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


def quote_in(quote: str, note_text: str) -> bool:
    """True when the quote appears in the note, allowing small differences."""
    q, n = normalise(quote), normalise(note_text)
    if not q:
        return False
    if q in n:
        return True
    if len(q) > len(n):
        return False
    return fuzz.partial_ratio(q, n, score_cutoff=QUOTE_MATCH_SCORE) > 0


def verified_quote(quote: str, text: str) -> bool:
    """A quote that proves something: long enough, and found in the text."""
    return len(normalise(quote).split()) >= MIN_QUOTE_WORDS and quote_in(quote, text)


class SourceIndex:
    """The parts a section's draft was written from, to resolve and verify citations."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self.sources = list(sources)
        self._by_part: dict[int, tuple[Source, int]] = {
            part_id: (source, index)
            for source in self.sources
            for index, part_id in enumerate(source.part_ids)
        }

    def text_of(self, part_id: int) -> str:
        source, index = self._by_part[part_id]
        return source.texts[index]

    def knows(self, part_id: int | None) -> bool:
        return part_id is not None and part_id in self._by_part

    def find(self, quote: str, preferred: int | None = None) -> int | None:
        """The part whose text holds the quote: the preferred part's note first, then any."""
        if not quote.strip():
            return None
        order: list[int] = []
        if preferred is not None and preferred in self._by_part:
            order = [preferred, *self._by_part[preferred][0].part_ids]
        order += list(self._by_part)
        order = list(dict.fromkeys(order))
        return next((p for p in order if verified_quote(quote, self.text_of(p))), None)

    def only_part(self) -> int | None:
        """The single part given, when exactly one was."""
        return next(iter(self._by_part)) if len(self._by_part) == 1 else None


def check_citations(
    blocks: Sequence[Block], index: SourceIndex, *, cite_single_part: bool = True
) -> list[Block]:
    """Keep only citations to parts that were given; re-point a quote found in another part.

    A citation naming a part it was not given is dropped unless its quote is found in one
    that was. A quote not in the cited part but in another given part is moved there. A quote
    found nowhere keeps the citation to the part (the LLM was shown it) but loses the quote,
    so no invented words are shown as a quote. When a block is left without citations and
    only one part was given, it came from there (unless `cite_single_part` is off: after the
    check pass judged that citation unsupported). Blocks without text are dropped.
    """
    checked: list[Block] = []
    for block in blocks:
        text = block.text.strip()
        if not text:
            continue
        citations: list[Citation] = []
        for citation in block.citations:
            quote = citation.quote.strip()
            found = index.find(quote, citation.part_id) if quote else None
            if found is not None:
                fixed = Citation(part_id=found, quote=quote)
            elif index.knows(citation.part_id):
                fixed = Citation(part_id=citation.part_id, quote="")
            else:
                continue  # a note it was never given: never shown
            if all(c.part_id != fixed.part_id for c in citations):
                citations.append(fixed)
        single = index.only_part()
        if not citations and cite_single_part and single is not None:
            citations = [Citation(part_id=single, quote="")]
        checked.append(Block(kind=block.kind, text=text, citations=tuple(citations)))
    return checked
