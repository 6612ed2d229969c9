"""What the rest of the bot knows about speech recognition: a protocol and its results."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol


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
class Transcript:
    text: str
    language: str | None
    duration: float  # seconds of audio decoded
    speech_duration: float  # seconds left after voice activity detection


class ProgressCallback(Protocol):
    def __call__(self, done_seconds: float, total_seconds: float) -> None: ...


class Transcriber(Protocol):
    def transcribe(
        self,
        audio_path: Path,
        *,
        prompt: str = "",
        cancel: threading.Event | None = None,
        progress: ProgressCallback | None = None,
    ) -> Transcript:
        """Blocking: call it from a worker thread, never on the event loop."""
        ...
