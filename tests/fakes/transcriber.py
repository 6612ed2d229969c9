"""An in-process transcriber with a history and queued answers, for fast tests of the job
and the queue (the real one is faster-whisper; tests of it use the tiny.en model)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.transcription.base import ProgressCallback, Transcript, TranscriptionCancelled


@dataclass
class Call:
    audio_path: Path
    vocabulary: list[str]
    language: str | None


@dataclass
class FakeTranscriber:
    """Answers with queued transcripts (or raises queued errors), else `default`."""

    default: Transcript = field(
        default_factory=lambda: Transcript("A transcript.", "en", 5.0, 4.0)
    )
    history: list[Call] = field(default_factory=list)
    _answers: deque[Transcript | Exception] = field(default_factory=deque)
    # Set to hold every call until released (or cancelled).
    gate: threading.Event | None = None

    def answer(self, *answers: Transcript | Exception) -> None:
        self._answers.extend(answers)

    def transcribe(
        self,
        audio_path: Path,
        *,
        vocabulary: Sequence[str] = (),
        language: str | None = None,
        cancel: threading.Event | None = None,
        progress: ProgressCallback | None = None,
    ) -> Transcript:
        self.history.append(Call(audio_path, list(vocabulary), language))
        while self.gate is not None and not self.gate.wait(0.01):
            if cancel is not None and cancel.is_set():
                raise TranscriptionCancelled()
        if cancel is not None and cancel.is_set():
            raise TranscriptionCancelled()
        answer = self._answers.popleft() if self._answers else self.default
        if isinstance(answer, Exception):
            raise answer
        return answer
