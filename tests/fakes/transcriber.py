"""An in-process transcriber with a history and queued answers, for fast tests of the job
and the queue (the real one is faster-whisper; tests of it use the tiny.en model)."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.transcription.base import (
    AUTO,
    AudioWindow,
    ProgressCallback,
    Segment,
    Transcript,
    TranscriptionCancelled,
    TranscriptionError,
    WindowStream,
    WindowTranscript,
    transcribe_in_windows,
)


@dataclass
class Call:
    audio_path: Path
    vocabulary: list[str]
    language: str | None


@dataclass
class FakeTranscriber:
    """Answers with queued transcripts (or raises queued errors), else `default`."""

    default: Transcript = field(default_factory=lambda: Transcript("A transcript.", "en", 5.0, 4.0))
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


@dataclass
class WindowCall:
    recording: str  # the audio file's name
    index: int


class FakeWindowedTranscriber:
    """A windowed backend for fast tests of long notes, through the bot's own windowed loop.

    A "recording" is a JSON file: a list of window texts, each window WINDOW_S seconds of
    speech followed by PAUSE_S of pause (`write_recording`). Each window waits for its gate
    (`release`, or `open_all`) unless the fake is open, so a test decides when (and in which
    order) windows finish; `started` and `finished` say what ran, in order, on which note.
    """

    WINDOW_S = 40.0
    PAUSE_S = 2.0

    def __init__(self, *, gated: bool = False) -> None:
        self._lock = threading.Lock()
        self._gates: dict[tuple[str, int], threading.Event] = {}
        self.open_all = threading.Event()
        if not gated:
            self.open_all.set()
        self.started: list[WindowCall] = []
        self.finished: list[WindowCall] = []
        self.running: dict[str, int] = {}
        self.most_at_once = 0

    @staticmethod
    def write_recording(path: Path, windows: Sequence[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(list(windows)))

    def release(self, recording: str, index: int) -> None:
        self._gate(recording, index).set()

    def _gate(self, recording: str, index: int) -> threading.Event:
        with self._lock:
            return self._gates.setdefault((recording, index), threading.Event())

    def windows(self, audio_path: Path, *, cancel: threading.Event | None = None) -> WindowStream:
        try:
            texts = json.loads(audio_path.read_text())
        except (OSError, ValueError) as exc:
            raise TranscriptionError("not a fake recording") from exc
        step = self.WINDOW_S + self.PAUSE_S
        stream = WindowStream()
        stream.duration_hint = step * len(texts)

        def cut() -> Iterator[AudioWindow]:
            for index, text in enumerate(texts):
                start = index * step
                stream.duration = start + step
                # The file name and the text ride along where real speech samples would.
                yield AudioWindow(
                    index, start, start + self.WINDOW_S, (), (audio_path.name, text), self.WINDOW_S
                )

        stream.windows = cut()
        return stream

    def choose_language(
        self, window: AudioWindow, requested: str | None
    ) -> tuple[str | None, bool]:
        return (requested if requested not in (None, AUTO) else "en"), False

    def transcribe_window(
        self,
        window: AudioWindow,
        *,
        vocabulary: Sequence[str] = (),
        language: str | None = None,
        cancel: threading.Event | None = None,
    ) -> WindowTranscript:
        recording, text = window.speech
        call = WindowCall(recording, window.index)
        gate = self._gate(recording, window.index)
        with self._lock:
            self.started.append(call)
            self.running[recording] = self.running.get(recording, 0) + 1
            self.most_at_once = max(self.most_at_once, sum(self.running.values()))
        try:
            while not (gate.is_set() or self.open_all.is_set()):
                if cancel is not None and cancel.is_set():
                    raise TranscriptionCancelled()
                gate.wait(0.01)
        finally:
            with self._lock:
                self.running[recording] -= 1
                self.finished.append(call)
        segments = (Segment(window.start, window.end, text),) if text else ()
        return WindowTranscript(
            window.index, window.start, window.end, segments, window.speech_seconds
        )

    def transcribe(
        self,
        audio_path: Path,
        *,
        vocabulary: Sequence[str] = (),
        language: str | None = None,
        cancel: threading.Event | None = None,
        progress: ProgressCallback | None = None,
    ) -> Transcript:
        return transcribe_in_windows(
            self,
            audio_path,
            vocabulary=vocabulary,
            language=language,
            cancel=cancel,
            progress=progress,
        )
