"""What the rest of the bot knows about speech recognition: a protocol and its results."""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

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


# Windows -----------------------------------------------------------------------------------
# A recording is decoded and transcribed in windows of speech cut at pauses, never whole: memory
# stays flat whatever its length, and the windows of one long note can run side by side.

# A window holds this much speech (seconds, pauses cut), cut at the longest pause in between.
WINDOW_MIN_SPEECH_S = 30.0
WINDOW_MAX_SPEECH_S = 60.0
# A pause this long before a segment becomes a paragraph break in the transcript's text: where
# whisper leaves out punctuation, the spoken-title splitter still sees the heading's boundary.
PARAGRAPH_PAUSE_SECONDS = 1.5


@dataclass(frozen=True)
class Span:
    """Speech found by voice activity detection: samples `start`..`end` of the recording."""

    start: int
    end: int


@dataclass(frozen=True, eq=False)
class AudioWindow:
    """One window of a recording: its speech spans and their samples (pauses cut), in order.

    `start`/`end`: seconds in the recording. `speech`: the spans' samples joined (a numpy
    array at the backend's sample rate), None for a backend that reads the file itself.
    """

    index: int
    start: float
    end: float
    spans: tuple[Span, ...] = ()
    speech: Any = None
    speech_seconds: float = 0.0


@dataclass(frozen=True)
class WindowTranscript:
    """What one window said: segments on the recording's clock, and how it was transcribed."""

    index: int
    start: float
    end: float
    segments: tuple[Segment, ...]
    speech_seconds: float
    language: str | None = None
    language_unsure: bool = False
    vocabulary_dropped: bool = False


class WindowPlan:
    """Cuts speech spans, given in order as they are found, into windows of
    WINDOW_MIN_SPEECH_S..WINDOW_MAX_SPEECH_S seconds of speech, each cut at the longest pause
    between spans in that range (spans are never longer than one decoding block)."""

    def __init__(
        self,
        rate: int,
        *,
        min_speech_s: float = WINDOW_MIN_SPEECH_S,
        max_speech_s: float = WINDOW_MAX_SPEECH_S,
    ) -> None:
        self._rate = rate
        self._min = min_speech_s * rate
        self._max = max_speech_s * rate
        self._pending: list[Span] = []
        self._speech = 0

    def add(self, span: Span) -> list[list[Span]]:
        """Take one span; the windows it completed (usually none)."""
        self._pending.append(span)
        self._speech += span.end - span.start
        done: list[list[Span]] = []
        while self._speech >= self._max:
            done.append(self._cut())
        return done

    def finish(self) -> list[list[Span]]:
        """The recording ended: the windows of what is left."""
        done: list[list[Span]] = []
        while self._speech > self._max:
            done.append(self._cut())
        if self._pending:
            done.append(self._pending)
        self._pending, self._speech = [], 0
        return done

    def _cut(self) -> list[Span]:
        best, best_gap, speech = len(self._pending), -1, 0
        for i, span in enumerate(self._pending[:-1]):
            speech += span.end - span.start
            if speech > self._max:
                break
            gap = self._pending[i + 1].start - span.end
            if speech >= self._min and gap > best_gap:
                best, best_gap = i + 1, gap
        if best_gap < 0:  # one span longer than a window (a backend with long blocks)
            best = max(1, best)
        window, self._pending = self._pending[:best], self._pending[best:]
        self._speech = sum(s.end - s.start for s in self._pending)
        return window


class WindowStream:
    """The windows of one recording as they are cut, and how much audio was decoded so far
    (`duration`: all of it once the windows ran out; `duration_hint`: what the file says)."""

    def __init__(self) -> None:
        self.duration = 0.0
        self.duration_hint = 0.0
        self.windows: Iterator[AudioWindow] = iter(())

    def __iter__(self) -> Iterator[AudioWindow]:
        return self.windows


@runtime_checkable
class WindowedTranscriber(Protocol):
    """A backend that transcribes a recording window by window (faster-whisper does)."""

    def windows(self, audio_path: Path, *, cancel: threading.Event | None = None) -> WindowStream:
        """Decode lazily: each window is cut as iteration reaches it. Blocking."""
        ...

    def choose_language(
        self, window: AudioWindow, requested: str | None
    ) -> tuple[str | None, bool]:
        """The language to transcribe the recording in, judged from its first window, and
        whether detection was unsure."""
        ...

    def transcribe_window(
        self,
        window: AudioWindow,
        *,
        vocabulary: Sequence[str] = (),
        language: str | None = None,
        cancel: threading.Event | None = None,
    ) -> WindowTranscript:
        """One window, blocking; safe to call from several threads at once."""
        ...


def join_segments(segments: Sequence[Segment]) -> str:
    """The transcript's text: segments joined by spaces, by a paragraph break after a pause."""
    text = ""
    for number, segment in enumerate(segments):
        if number:
            pause = segment.start - segments[number - 1].end
            text += "\n\n" if pause >= PARAGRAPH_PAUSE_SECONDS else " "
        text += segment.text
    return text.strip()


def stitch(windows: Iterable[WindowTranscript]) -> tuple[str, tuple[Segment, ...]]:
    """The windows' segments in the recording's order, and their text."""
    segments = tuple(
        segment for window in sorted(windows, key=lambda w: w.index) for segment in window.segments
    )
    return join_segments(segments), segments


def contiguous(windows: Mapping[int, WindowTranscript]) -> list[WindowTranscript]:
    """The windows from the first on, up to the first one missing (what can be shown)."""
    done: list[WindowTranscript] = []
    while len(done) in windows:
        done.append(windows[len(done)])
    return done


Submit = Callable[[Callable[[], WindowTranscript]], "Future[WindowTranscript]"]


def _inline(work: Callable[[], WindowTranscript]) -> Future[WindowTranscript]:
    future: Future[WindowTranscript] = Future()
    try:
        future.set_result(work())
    except BaseException as exc:  # handed to the caller through the future
        future.set_exception(exc)
    return future


def transcribe_in_windows(
    backend: WindowedTranscriber,
    audio_path: Path,
    *,
    vocabulary: Sequence[str] = (),
    language: str | None = None,
    cancel: threading.Event | None = None,
    progress: ProgressCallback | None = None,
    known: Mapping[int, WindowTranscript] | None = None,
    on_window: Callable[[WindowTranscript], None] | None = None,
    submit: Submit | None = None,
    ahead: int = 1,
) -> Transcript:
    """The windowed loop, the one place it is written: cut the recording into windows as it
    is decoded, transcribe each (through `submit`, e.g. onto worker slots, at most `ahead`
    windows decoded and not yet done; inline by default), and stitch them back in order.

    `known`: windows transcribed before (a resumed note), reused when the same window is cut
    again, never transcribed twice. `on_window`: called with each newly transcribed window,
    in the calling thread (where it is stored). `cancel` stops it between windows (and the
    backend within one); windows in work are let finish, none is started after.
    """
    known = dict(known or {})
    run = submit or _inline
    done: dict[int, WindowTranscript] = {}
    pending: dict[Future[WindowTranscript], AudioWindow] = {}
    stream = backend.windows(audio_path, cancel=cancel)
    chosen: tuple[str | None, bool] | None = None
    earlier = next((w for w in known.values() if w.index == 0), None)
    if earlier is not None:
        chosen = (earlier.language, earlier.language_unsure)

    def stop_if_cancelled() -> None:
        if cancel is not None and cancel.is_set():
            raise TranscriptionCancelled()

    def collect(wait_for_all: bool) -> None:
        while pending and (wait_for_all or len(pending) >= ahead):
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=lambda f: pending[f].index):
                pending.pop(future)
                result = future.result()  # a failed window fails the recording
                done[result.index] = result
                if on_window is not None:
                    on_window(result)
            if progress is not None:
                shown = contiguous(done)
                total = stream.duration_hint or stream.duration
                if shown and total:
                    progress(min(shown[-1].end, total), total)

    try:
        for window in stream:
            stop_if_cancelled()
            if chosen is None:
                chosen = backend.choose_language(window, language)
            same = known.get(window.index)
            if same is not None and abs(same.start - window.start) < 0.05:
                done[window.index] = same  # a resumed note: this window was filed before
                continue
            code, unsure = chosen

            def work(
                window: AudioWindow = window, code: str | None = code, unsure: bool = unsure
            ) -> WindowTranscript:
                if cancel is not None and cancel.is_set():
                    raise TranscriptionCancelled()
                result = backend.transcribe_window(
                    window, vocabulary=vocabulary, language=code, cancel=cancel
                )
                return replace(result, language=code, language_unsure=unsure)

            pending[run(work)] = window
            collect(wait_for_all=False)
            stop_if_cancelled()
        collect(wait_for_all=True)
    except BaseException:
        for future in pending:
            future.cancel()
        raise
    stop_if_cancelled()
    text, segments = stitch(done.values())
    first = done.get(0)
    return Transcript(
        text=text,
        language=chosen[0] if chosen else None,
        duration=stream.duration,
        speech_duration=sum(w.speech_seconds for w in done.values()),
        segments=segments,
        language_unsure=bool(chosen and chosen[1]),
        vocabulary_dropped=bool(first and first.vocabulary_dropped),
    )
