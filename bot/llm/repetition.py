"""Notice, while an answer streams in, that the model is going round in circles.

Small models under a JSON grammar often loop: the same block again and again, or whitespace
until the output limit. Waiting for the limit costs minutes on a CPU server and gives nothing
more, so the stream is cut as soon as the loop is plain.
"""

from __future__ import annotations

import re

# The same "text" value this many times is a loop, not a style.
MAX_SAME_TEXT = 3
# A tail made of this many copies of one stretch (at least MIN_PERIOD characters) is a loop.
MIN_COPIES = 4
MIN_PERIOD = 16
MAX_PERIOD = 1200
# Whitespace a JSON grammar allows between tokens; no answer needs this much of it at once.
MAX_WHITESPACE_RUN = 200
# Look at the text again after this many new characters, not after every token.
CHECK_EVERY = 64

_TEXT_VALUE = re.compile(r'"text"\s*:\s*"((?:[^"\\]|\\.){12,}?)"')


class RepetitionGuard:
    """Feed it the streamed text; it says when the answer has become a loop."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._length = 0
        self._checked_at = 0
        self._whitespace_run = 0
        self.reason = ""

    def feed(self, delta: str) -> bool:
        """Add a piece of the answer; True once the answer is looping."""
        for char in delta:
            self._whitespace_run = self._whitespace_run + 1 if char.isspace() else 0
        self._text.append(delta)
        self._length += len(delta)
        if self._whitespace_run >= MAX_WHITESPACE_RUN:
            self.reason = "whitespace"
            return True
        if self._length - self._checked_at < CHECK_EVERY:
            return False
        self._checked_at = self._length
        text = "".join(self._text)
        self._text = [text]
        if _repeated_text_value(text) or _periodic_tail(text):
            self.reason = "repetition"
            return True
        return False


def _repeated_text_value(text: str) -> bool:
    seen: dict[str, int] = {}
    for match in _TEXT_VALUE.finditer(text):
        key = " ".join(match.group(1).casefold().split())
        seen[key] = seen.get(key, 0) + 1
        if seen[key] >= MAX_SAME_TEXT:
            return True
    return False


def _periodic_tail(text: str) -> bool:
    """The end of the text is one stretch repeated MIN_COPIES times or more."""
    longest = min(MAX_PERIOD, len(text) // MIN_COPIES)
    for period in range(MIN_PERIOD, longest + 1):
        unit = text[-period:]
        if all(
            text[-(copy + 1) * period : -copy * period] == unit for copy in range(1, MIN_COPIES)
        ):
            return True
    return False
