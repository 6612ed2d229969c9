"""What the rest of the bot knows about speech recognition: a protocol and its results."""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

# `language=AUTO`: detect the language of this recording (among WHISPER_LANGUAGES when set).
AUTO = "auto"
# Whisper reads at most 224 prompt tokens; a long vocabulary is cut to stay inside that.
MAX_PROMPT_CHARS = 600

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Case-folded words of any script, "ё" as "е"."""
    folded = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")
    return _WORD.findall(folded)


def vocabulary_prompt(vocabulary: Iterable[str]) -> str:
    """The terms as whisper's prompt: each once, in order, as sentences, cut to fit.

    Whisper copies the prompt's style: terms ended by periods keep the spoken titles that
    follow a pause as sentences of their own ("Reading list. We start…"), where a comma list
    makes it glue them to the next sentence.
    """
    seen: set[str] = set()
    terms: list[str] = []
    used = 0
    for raw in vocabulary:
        term = " ".join(raw.split()).strip(" .,;:")
        key = " ".join(words(term))
        if not key or key in seen:
            continue
        if used + len(term) + 2 > MAX_PROMPT_CHARS:
            break
        seen.add(key)
        terms.append(term)
        used += len(term) + 2
    return ". ".join(terms) + "." if terms else ""


class TranscriptionError(Exception):
    """The audio could not be decoded or transcribed (`reason` is for the logs).

    `too_large`: a hosted service refuses recordings this big.
    """

    def __init__(self, reason: str, *, too_large: bool = False) -> None:
        super().__init__(reason)
        self.too_large = too_large


class UnavailableReason(StrEnum):
    DOWN = "down"  # an outage, a rate limit, a timeout
    REFUSED = "refused"  # the key, the model or the quota was refused


class TranscriptionUnavailable(TranscriptionError):
    """The transcription service cannot take the recording now; the recording itself is
    fine, so the note is kept and tried again later."""

    def __init__(self, reason: str, *, why: UnavailableReason) -> None:
        super().__init__(reason)
        self.why = why


class TranscriptionCancelled(Exception):
    """The writer (or a shutdown) asked to stop this transcription."""


@dataclass(frozen=True)
class Segment:
    """A stretch of the transcript with its place in the recording (seconds from the start)."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str | None  # the language the recording was transcribed in
    duration: float  # seconds of audio decoded
    speech_duration: float  # seconds left after voice activity detection
    # In order; the pause before a segment (its start minus the previous end) is heading
    # evidence for spoken section titles. Empty when the backend reports none.
    segments: tuple[Segment, ...] = ()
    # Detection picked the language but was not sure of it (a button may offer another).
    language_unsure: bool = False
    # The vocabulary made whisper echo it, so this transcript was made without it.
    vocabulary_dropped: bool = False


class ProgressCallback(Protocol):
    def __call__(self, done_seconds: float, total_seconds: float) -> None: ...


class Transcriber(Protocol):
    def transcribe(
        self,
        audio_path: Path,
        *,
        vocabulary: Sequence[str] = (),
        language: str | None = None,
        cancel: threading.Event | None = None,
        progress: ProgressCallback | None = None,
    ) -> Transcript:
        """Blocking: call it from a worker thread, never on the event loop.

        `vocabulary`: the writer's words (glossary terms, section titles) that recognition
        should spell their way; it never makes the transcript say what the recording does not.
        `language`: a language code, `AUTO` to detect it, or None for the configured default
        (WHISPER_LANGUAGE).
        """
        ...
