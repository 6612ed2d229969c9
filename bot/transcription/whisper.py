"""faster-whisper behind the Transcriber protocol; the model is loaded once.

Two things here go beyond calling `WhisperModel.transcribe`:

* **Vocabulary without echo.** Whisper reads a prompt as text it has already written, and a
  multilingual model given the writer's section titles as a prompt will often write the titles
  instead of the speech ("Why we left stored procedures. What broke in the first month." over
  fifteen seconds of Russian), or loop on one of them. So the vocabulary is a prompt for the
  first 30-second window only, decoded once without temperature fallback, and that window is
  checked: if whisper's own quality signals fail (a repetitive or improbable decode) or a
  segment reproduces the vocabulary (a term repeated, several titles in one segment, a term
  stretched over seconds of speech), the window is transcribed again without the prompt.
  Later windows never see the prompt. `bench/vocabulary.py` compares this with the
  alternatives on the multilingual fixtures.
* **Language.** A language per call; with `auto`, it is detected over up to three windows of
  speech and, when WHISPER_LANGUAGES names the writer's languages, only among them (mixed
  Russian and English is otherwise easily taken for Latin or Lithuanian).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.transcription.base import (
    AUTO,
    AudioWindow,
    ProgressCallback,
    Segment,
    Span,
    Transcript,
    TranscriptionCancelled,
    TranscriptionError,
    WindowPlan,
    WindowStream,
    WindowTranscript,
    transcribe_in_windows,
    vocabulary_prompt,
    words,
)

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
WINDOW_SECONDS = 30.0
# Whisper's own limits for a decode it does not trust (past them it falls back to sampling).
MAX_COMPRESSION_RATIO = 2.4
MIN_AVG_LOGPROB = -1.0
# An echo loops until the token limit; speech, even fast Russian, needs far fewer tokens a
# second. The cap makes a looping prompted window cheap to throw away.
MAX_TOKENS_PER_SECOND = 10
# A segment holding a vocabulary term at fewer characters per second of speech than this has
# swallowed speech (people say 10-15 characters a second, in Russian as in English).
MIN_ECHO_CHARS_PER_SECOND = 5.0
MIN_ECHO_SEGMENT_SECONDS = 4.0
# Terms of this many words are titles: two of them in one segment is an echo, not speech.
TITLE_WORDS = 3
# Left after the prompted window, less than this is not worth another decode.
MIN_TAIL_SECONDS = 1.0
# The recording is decoded this much at a time: memory holds a block and a window of speech,
# never the whole file.
DECODE_BLOCK_SECONDS = 10.0
# Speech without a pause is split after at most this long, at its quietest 100 ms after
# MIN_SPAN_SAMPLES (between words, as a rule).
MAX_SPAN_SAMPLES = 20 * SAMPLE_RATE
MIN_SPAN_SAMPLES = 10 * SAMPLE_RATE
QUIET_FRAME_SAMPLES = SAMPLE_RATE // 10
# Language detection looks at up to this many windows of speech.
DETECTION_WINDOWS = 3
# Below this share of the probability among the candidate languages, detection is unsure.
SURE_LANGUAGE_SHARE = 0.75


def _count(needle: list[str], haystack: list[str]) -> int:
    n = len(needle)
    return sum(1 for i in range(len(haystack) - n + 1) if haystack[i : i + n] == needle)


def echo_reason(segments: Sequence[Any], vocabulary: Sequence[str]) -> str | None:
    """Why the segments of a prompted window look like an echo of the vocabulary, or None.

    `segments` are faster-whisper segments of one window, decoded once (no fallback), with
    times on the speech-only timeline (voice activity detection already cut the pauses).
    """
    terms = [w for w in (words(t) for t in vocabulary) if w]
    window_words: list[str] = []
    for segment in segments:
        if segment.compression_ratio > MAX_COMPRESSION_RATIO:
            return f"repetitive decode (compression ratio {segment.compression_ratio:.1f})"
        if segment.avg_logprob < MIN_AVG_LOGPROB:
            return f"improbable decode (average log-probability {segment.avg_logprob:.2f})"
        said = words(segment.text)
        window_words += said
        found = [t for t in terms if _count(t, said)]
        if sum(1 for t in found if len(t) >= TITLE_WORDS) >= 2:
            return "several titles in one segment"
        seconds = float(segment.end - segment.start)
        chars = len(segment.text.strip())
        if (
            found
            and seconds >= MIN_ECHO_SEGMENT_SECONDS
            and chars / seconds < MIN_ECHO_CHARS_PER_SECOND
        ):
            return f"a term stretched over {seconds:.0f} s of speech"
    for term in terms:
        if _count(term, window_words) >= 2:
            return f"the term {' '.join(term)!r} repeated"
    return None


def prompt_terms(vocabulary: Sequence[str], language: str | None) -> list[str]:
    """The terms worth a prompt for speech in `language`.

    Sentence-long terms in Latin letters (English section titles) only for English speech:
    before Russian speech whisper base echoed them in every run of bench/vocabulary.py, and
    the window had to be transcribed again (2.7x the time for nothing), while for English
    they keep a spoken title its own sentence ("Reading list. We start…"). Short terms (the
    glossary: "RAG", "observability") help in any language.
    """
    if language in (None, "en"):
        return list(vocabulary)
    return [term for term in vocabulary if not (term.isascii() and len(words(term)) >= TITLE_WORDS)]


@dataclass(frozen=True)
class _Language:
    code: str | None
    unsure: bool = False


class WhisperTranscriber:
    """Local speech recognition with faster-whisper (CTranslate2)."""

    def __init__(
        self,
        model: str,
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        beam_size: int = 5,
        language: str = "",
        languages: Sequence[str] = (),
        cpu_threads: int = 0,
        workers: int = 1,
        download_root: Path | None = None,
    ) -> None:
        """`language`: the default (WHISPER_LANGUAGE; empty = detect); `languages`: the
        writer's likely languages (WHISPER_LANGUAGES), the only ones detection picks from."""
        from faster_whisper import WhisperModel

        _return_big_buffers_to_the_os()
        log.info(
            "Loading whisper model %s on %s (%s, %d worker(s) x %s thread(s))",
            model,
            device,
            compute_type,
            workers,
            cpu_threads or "auto",
        )
        # One model in memory; `num_workers` lets that many threads transcribe with it at once
        # (CTranslate2 runs them in parallel instead of one after another).
        self._model = WhisperModel(
            model,
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=workers,
            download_root=str(download_root) if download_root else None,
        )
        # Windows run side by side, but the two steps with big transient buffers run one
        # window at a time: the features (about 60 MB for 60 s of speech) and the encoder
        # (its attention over a 30 s chunk, about 50 MB with tiny). They are quick next to
        # the beam search, which still runs in parallel; the peak stays one window's worth.
        heavy = threading.Lock()
        self._model.feature_extractor = _OneAtATime(self._model.feature_extractor, heavy)
        self._model.encode = _OneAtATime(self._model.encode, heavy)
        self._workers = workers
        self._beam_size = beam_size
        self._multilingual = bool(self._model.model.is_multilingual)
        self._language = language if language and language != AUTO else None
        self._languages = [code for code in languages if code]
        # English-only models (*.en) accept no language but English.
        if not self._multilingual:
            self._language = None

    @property
    def multilingual(self) -> bool:
        return self._multilingual

    def warm_up(self) -> None:
        """Run each worker once on a second of synthetic audio, so the first note isn't slow.

        The first call pays for memory allocation and kernel selection; doing it at start-up,
        on every worker at once, keeps that cost off the writer's first recording.
        """
        import numpy as np

        rate = SAMPLE_RATE
        t = np.arange(rate, dtype=np.float32) / rate
        # A voice-like chord with some noise: enough to make the encoder and decoder run.
        rng = np.random.default_rng(0)
        audio = (
            0.3 * np.sin(2 * np.pi * 220 * t)
            + 0.2 * np.sin(2 * np.pi * 440 * t)
            + 0.05 * rng.standard_normal(rate)
        ).astype(np.float32)

        def once() -> None:
            segments, _ = self._model.transcribe(
                audio,
                beam_size=self._beam_size,
                language=self._language or ("en" if self._multilingual else None),
                vad_filter=False,
                condition_on_previous_text=False,
            )
            for _ in segments:
                pass

        from faster_whisper.vad import VadOptions, get_speech_timestamps

        # Voice activity detection runs on every block of every note: loaded once (cached)
        # and run once on a block's worth, so its first allocations are paid now too.
        block = np.tile(audio, int(DECODE_BLOCK_SECONDS))
        get_speech_timestamps(block, VadOptions())
        threads = [threading.Thread(target=once, daemon=True) for _ in range(self._workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def transcribe(
        self,
        audio_path: Path,
        *,
        vocabulary: Sequence[str] = (),
        language: str | None = None,
        cancel: threading.Event | None = None,
        progress: ProgressCallback | None = None,
    ) -> Transcript:
        """The whole recording, window after window in this thread (the bot's job runs the
        windows of a note on its worker slots instead, through the same loop)."""
        return transcribe_in_windows(
            self,
            audio_path,
            vocabulary=vocabulary,
            language=language,
            cancel=cancel,
            progress=progress,
        )

    def windows(self, audio_path: Path, *, cancel: threading.Event | None = None) -> WindowStream:
        stream = WindowStream()
        stream.windows = self._cut(audio_path, stream, cancel)
        return stream

    def _cut(
        self, audio_path: Path, stream: WindowStream, cancel: threading.Event | None
    ) -> Iterator[AudioWindow]:
        """Decode in blocks of DECODE_BLOCK_SECONDS, find the speech in each (voice activity
        detection: whisper invents words on silence), and cut windows at pauses: the whole
        recording is never in memory, only a window of speech and a block."""
        import numpy as np
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        plan = WindowPlan(SAMPLE_RATE)
        samples: dict[Span, Any] = {}
        index = 0
        decoded = 0

        def cut(spans: list[Span]) -> AudioWindow:
            nonlocal index
            speech = np.concatenate([samples.pop(span) for span in spans])
            window = AudioWindow(
                index,
                spans[0].start / SAMPLE_RATE,
                spans[-1].end / SAMPLE_RATE,
                tuple(spans),
                speech,
                len(speech) / SAMPLE_RATE,
            )
            index += 1
            return window

        # Speech that runs on over a block's edge is one span, split at its quietest moment
        # once it gets long (a speaker who never pauses two seconds): a window is never cut
        # mid-word at a block's edge.
        open_start, open_len = 0, 0
        open_parts: list[Any] = []

        def close(length: int) -> Iterator[AudioWindow]:
            nonlocal open_start, open_parts, open_len
            joined = np.concatenate(open_parts)
            span = Span(open_start, open_start + length)
            samples[span] = joined[:length].copy()
            rest = joined[length:]
            open_start, open_len = span.end, len(rest)
            open_parts = [rest] if len(rest) else []
            for spans in plan.add(span):
                yield cut(spans)

        for block in _decode_blocks(audio_path, stream):
            if cancel is not None and cancel.is_set():
                raise TranscriptionCancelled()
            for found in get_speech_timestamps(block, VadOptions()):
                start, end = int(found["start"]), int(found["end"])
                if end <= start:
                    continue
                if open_len and not (start == 0 and open_start + open_len == decoded):
                    yield from close(open_len)
                if not open_len:
                    open_start, open_parts = decoded + start, []
                open_parts.append(block[start:end])
                open_len += end - start
                while open_len > MAX_SPAN_SAMPLES:
                    yield from close(_quietest(np.concatenate(open_parts)))
                if end < len(block) and open_len:
                    yield from close(open_len)
            decoded += len(block)
            stream.duration = decoded / SAMPLE_RATE
        if open_len:
            yield from close(open_len)
        for spans in plan.finish():
            yield cut(spans)
        if index:
            log.info("Decoded %.1f s of audio into %d window(s)", stream.duration, index)

    def choose_language(
        self, window: AudioWindow, requested: str | None
    ) -> tuple[str | None, bool]:
        chosen = self._choose_language(window.speech, requested)
        return chosen.code, chosen.unsure

    def transcribe_window(
        self,
        window: AudioWindow,
        *,
        vocabulary: Sequence[str] = (),
        language: str | None = None,
        cancel: threading.Event | None = None,
    ) -> WindowTranscript:
        from faster_whisper.vad import SpeechTimestampsMap

        speech = window.speech
        timeline = SpeechTimestampsMap(
            [{"start": span.start, "end": span.end} for span in window.spans], SAMPLE_RATE
        )
        log.info(
            "Decoding window %d: %.1f s of speech (of %.1f-%.1f s recorded)",
            window.index,
            window.speech_seconds,
            window.start,
            window.end,
        )
        # The vocabulary is a prompt for the first window only (see the module's docstring).
        terms = prompt_terms(vocabulary, language) if window.index == 0 else []
        prompt = vocabulary_prompt(terms)
        dropped = False
        kept: list[Segment] = []
        try:
            decoded: Iterable[Any]
            if prompt:
                first, dropped = self._prompted_window(speech, language, prompt, terms)
                resume = float(first[-1].end) if first else 0.0
                decoded = first
                if window.speech_seconds - resume >= MIN_TAIL_SECONDS:
                    decoded = _chain(first, self._decode(speech, language, start=resume))
            else:
                decoded = self._decode(speech, language)
            # Segments are produced lazily: consuming them here, in this thread, is where
            # the actual decoding happens.
            for segment in decoded:
                if cancel is not None and cancel.is_set():
                    raise TranscriptionCancelled()
                start = float(timeline.get_original_time(float(segment.start)))
                end = float(timeline.get_original_time(float(segment.end), is_end=True))
                text = segment.text.strip()
                if text:
                    kept.append(Segment(start, end, text))
        except TranscriptionCancelled:
            raise
        except Exception as exc:
            raise TranscriptionError(f"decoding failed: {type(exc).__name__}") from exc
        return WindowTranscript(
            index=window.index,
            start=window.start,
            end=window.end,
            segments=tuple(kept),
            speech_seconds=window.speech_seconds,
            language=language,
            vocabulary_dropped=dropped,
        )

    def _decode(
        self,
        speech: Any,
        language: str | None,
        *,
        start: float = 0.0,
        end: float | None = None,
        prompt: str | None = None,
        fallback: bool = True,
    ) -> Iterator[Any]:
        """Lazily decoded segments of `speech` (between `start` and `end`, in seconds)."""
        options: dict[str, Any] = {}
        if start or end is not None:
            stop = end if end is not None else len(speech) / SAMPLE_RATE
            options["clip_timestamps"] = [start, stop]
        if not fallback:
            options["temperature"] = 0.0
            stop = end if end is not None else len(speech) / SAMPLE_RATE
            options["max_new_tokens"] = int(MAX_TOKENS_PER_SECOND * (stop - start)) + 20
        segments, _ = self._model.transcribe(
            speech,
            beam_size=self._beam_size,
            language=language,
            vad_filter=False,  # done once, before
            initial_prompt=prompt,
            # Conditioning on earlier text makes whisper repeat itself on long notes.
            condition_on_previous_text=False,
            **options,
        )
        return iter(segments)

    def _prompted_window(
        self, speech: Any, language: str | None, prompt: str, vocabulary: Sequence[str]
    ) -> tuple[list[Any], bool]:
        """The first window decoded with the vocabulary as prompt, or, if that echoed the
        vocabulary, without it; and whether the vocabulary was dropped."""
        window_end = min(WINDOW_SECONDS, len(speech) / SAMPLE_RATE)
        # Only the first decode (seek 0) sees the prompt; whatever follows it is decoded
        # afterwards, with fallback, from where that decode ended.
        first = _first_decode(
            self._decode(speech, language, end=window_end, prompt=prompt, fallback=False)
        )
        reason = echo_reason(first, vocabulary)
        if reason is None:
            return first, False
        log.info("Whisper echoed the vocabulary (%s): transcribing without it", reason)
        return _first_decode(self._decode(speech, language, end=window_end)), True

    def _choose_language(self, speech: Any, requested: str | None) -> _Language:
        """The language to transcribe in: the one asked for, the default, or detected."""
        if not self._multilingual:
            return _Language("en")
        wanted = self._language if requested is None else requested
        if wanted and wanted != AUTO:
            return _Language(wanted)
        return self._detect(speech)

    def _detect(self, speech: Any) -> _Language:
        """Sum the language probabilities over the first windows of speech; among the
        writer's languages only, when they are configured."""
        from faster_whisper.transcribe import pad_or_trim

        features = self._model.feature_extractor(speech)
        frames = self._model.feature_extractor.nb_max_frames
        totals: dict[str, float] = {}
        for window in range(DETECTION_WINDOWS):
            chunk = features[..., window * frames : (window + 1) * frames]
            if window and chunk.shape[-1] < frames // 3:
                break  # a short rest: the windows before decide
            encoded = self._model.encode(pad_or_trim(chunk))
            for token, probability in self._model.model.detect_language(encoded)[0]:
                code = token[2:-2]
                if not self._languages or code in self._languages:
                    totals[code] = totals.get(code, 0.0) + probability
        if not totals:
            return _Language(self._languages[0] if self._languages else None, unsure=True)
        code, best = max(totals.items(), key=lambda item: item[1])
        share = best / sum(totals.values())
        log.info("Detected language %s (%.0f%% among the candidates)", code, 100 * share)
        return _Language(code, unsure=share < SURE_LANGUAGE_SHARE)


def _first_decode(segments: Iterator[Any]) -> list[Any]:
    """The segments of the first decoded window (seek 0); the rest is never decoded."""
    first: list[Any] = []
    for segment in segments:
        if segment.seek != 0:
            break
        first.append(segment)
    return first


def _chain(first: Iterable[Any], rest: Iterator[Any]) -> Iterator[Any]:
    yield from first
    yield from rest


def _decode_blocks(audio_path: Path, stream: WindowStream) -> Iterator[Any]:
    """The recording as 16 kHz mono float32 blocks of about DECODE_BLOCK_SECONDS, decoded as
    they are read (PyAV, as faster-whisper's decode_audio does, without keeping it all)."""
    import av
    import numpy as np

    block = int(DECODE_BLOCK_SECONDS * SAMPLE_RATE)
    try:
        container = av.open(str(audio_path), mode="r", metadata_errors="ignore")
    except Exception as exc:  # av raises many types for damaged input
        raise TranscriptionError(f"cannot decode audio: {type(exc).__name__}") from exc
    with container:
        if container.duration:
            stream.duration_hint = container.duration / 1_000_000
        resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        parts: list[Any] = []
        held = 0
        try:
            if not container.streams.audio:
                raise TranscriptionError("no audio stream")
            frames = container.decode(audio=0)
            while True:
                try:
                    frame = next(frames)
                except StopIteration:
                    frame = None
                except av.error.InvalidDataError:
                    continue  # a damaged packet: skipped, as decode_audio does
                if frame is not None:
                    frame.pts = None  # resample what comes, gaps in timestamps or not
                for out in resampler.resample(frame):
                    array = out.to_ndarray().reshape(-1)
                    parts.append(array)
                    held += len(array)
                while held >= block:
                    joined = np.concatenate(parts)
                    yield joined[:block].astype(np.float32) / 32768.0
                    parts, held = [joined[block:]], len(joined) - block
                if frame is None:
                    break
        except TranscriptionError:
            raise
        except TranscriptionCancelled:
            raise
        except Exception as exc:
            raise TranscriptionError(f"cannot decode audio: {type(exc).__name__}") from exc
        if held:
            yield np.concatenate(parts).astype(np.float32) / 32768.0


def _quietest(speech: Any) -> int:
    """Where to split speech that runs on: the middle of its quietest 100 ms frame between
    MIN_SPAN_SAMPLES and MAX_SPAN_SAMPLES."""
    import numpy as np

    frame = QUIET_FRAME_SAMPLES
    region = speech[MIN_SPAN_SAMPLES:MAX_SPAN_SAMPLES]
    frames = len(region) // frame
    if frames < 1:
        return min(len(speech), MAX_SPAN_SAMPLES)
    energy = np.square(region[: frames * frame].reshape(frames, frame)).mean(axis=1)
    return MIN_SPAN_SAMPLES + int(np.argmin(energy)) * frame + frame // 2


def _return_big_buffers_to_the_os() -> None:
    """Have glibc hand every buffer over 128 KB straight back to the OS when it is freed.

    By default glibc raises that threshold to the size of the largest buffer freed so far, so
    after the first window a window's transient buffers (its features, about 60 MB for 60 s
    of speech) stay in the heap of whichever thread made them, and the process grows by a
    window's worth per worker thread (bench/long_notes.py measures it). No-op elsewhere.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return  # not glibc
    m_mmap_threshold = -3
    mallopt(ctypes.c_int(m_mmap_threshold), ctypes.c_int(128 * 1024))


class _OneAtATime:
    """A callable (faster-whisper's feature extractor, the model's encoder) called by one
    thread at a time, under `lock`; its attributes as they are."""

    def __init__(self, wrapped: Any, lock: threading.Lock) -> None:
        self._wrapped = wrapped
        self._lock = lock

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self._wrapped(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)
