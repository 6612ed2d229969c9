"""What the rest of the bot knows about speech recognition: a protocol and its results."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class TranscriptionError(Exception):
    """The audio could not be decoded or transcribed.

    `user_message`, when set, says why in words for the writer (safe to show in chat);
    without it the bot says the recording could not be read.
    """

    def __init__(self, reason: str, *, user_message: str | None = None) -> None:
        super().__init__(reason)
        self.user_message = user_message


class TranscriptionUnavailable(TranscriptionError):
    """The transcription service cannot take the recording now (outage, rate limit, key or
    quota); the recording itself is fine, so the note is kept and tried again later."""

    def __init__(self, reason: str, *, user_message: str) -> None:
        super().__init__(reason, user_message=user_message)
        self.user_message: str = user_message


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
