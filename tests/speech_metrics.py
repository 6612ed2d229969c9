"""Error rates of a transcript against the text that was spoken, for any script.

Shared by the multilingual tests, `bench/vocabulary.py` and `scripts/make_audio_fixtures.py`,
so a bound in a test and a figure in a bench table mean the same thing.
"""

from __future__ import annotations

import re
import unicodedata

_NOT_WORD = re.compile(r"[^\w']+|_")


def normalise(text: str) -> str:
    """Case-folded words of any script ("ё" as "е"), punctuation dropped, spaces collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")
    return " ".join(_NOT_WORD.sub(" ", folded).split())


def character_error_rate(reference: str, hypothesis: str) -> float:
    """Edits per character of the normalised reference (jiwer's CER)."""
    import jiwer

    return float(jiwer.cer(normalise(reference), normalise(hypothesis)))


def word_error_rate(reference: str, hypothesis: str) -> float:
    import jiwer

    return float(jiwer.wer(normalise(reference), normalise(hypothesis)))
