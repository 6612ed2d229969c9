"""Hosted speech recognition: an OpenAI-compatible /audio/transcriptions endpoint.

For machines too small for a local model. The recording leaves the machine; the result is
checked like a local one (duration for cut-off files, speech for silence).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import openai

from bot.transcription.base import (
    AUTO,
    ProgressCallback,
    Segment,
    Transcript,
    TranscriptionCancelled,
    TranscriptionError,
    TranscriptionUnavailable,
    UnavailableReason,
    vocabulary_prompt,
)

log = logging.getLogger(__name__)

# OpenAI refuses uploads over 25 MB; checking first saves uploading them for nothing.
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
# The SDK retries rate limits, 5xx, timeouts and dropped connections this often, with backoff.
MAX_RETRIES = 2
# Whisper's own rule for a segment that is silence, not speech.
NO_SPEECH_PROB = 0.6
NO_SPEECH_LOGPROB = -1.0

# The service guesses the format from the file name; kept recordings are named `*.audio`.
_EXTENSIONS = {
    "ogg": ".ogg",
    "mp3": ".mp3",
    "wav": ".wav",
    "flac": ".flac",
    "matroska": ".webm",
    "mov": ".mp4",
}


@dataclass(frozen=True)
class _Probe:
    extension: str
    duration: float


class OpenAITranscriber:
    """Sends each recording to an OpenAI-compatible transcription endpoint (sync client:
    `transcribe` runs in a worker thread)."""

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str = "",
        timeout: float = 300.0,
        language: str = "",
    ) -> None:
        self._client = openai.OpenAI(
            # Self-hosted servers often need no key, but the SDK insists on one.
            api_key=api_key or "unused",
            base_url=base_url or None,
            timeout=timeout,
            max_retries=MAX_RETRIES,
        )
        self._model = model
        self._language = "" if language == AUTO else language
        # Some compatible servers only answer plain json; learnt at the first refusal.
        self._verbose = True

    def close(self) -> None:
        self._client.close()

    def transcribe(
        self,
        audio_path: Path,
        *,
        vocabulary: Sequence[str] = (),
        language: str | None = None,
        cancel: threading.Event | None = None,
        progress: ProgressCallback | None = None,
    ) -> Transcript:
        if audio_path.stat().st_size > MAX_UPLOAD_BYTES:
            raise TranscriptionError("over the upload limit", too_large=True)
        probe = _probe(audio_path)
        if cancel is not None and cancel.is_set():
            raise TranscriptionCancelled()
        wanted = self._language if language is None else ("" if language == AUTO else language)
        # Hosted models (whisper-large) echo a short list of terms far less than a small local
        # model; the service gives no window-level signals to check it with anyway.
        response = self._request(audio_path, probe, vocabulary_prompt(vocabulary), wanted)
        # No progress to report: the service answers once, with the whole transcript.
        if cancel is not None and cancel.is_set():
            raise TranscriptionCancelled()
        return _transcript(response, probe)

    def _request(
        self, audio_path: Path, probe: _Probe, prompt: str, language: str
    ) -> dict[str, Any]:
        if self._verbose:
            try:
                return self._post(audio_path, probe, prompt, language, "verbose_json")
            except openai.BadRequestError:
                # Either the server has no verbose_json or the audio is bad: plain json tells.
                result = self._post(audio_path, probe, prompt, language, "json")
                log.info("The transcription endpoint has no verbose_json; using json")
                self._verbose = False
                return result
        return self._post(audio_path, probe, prompt, language, "json")

    def _post(
        self,
        audio_path: Path,
        probe: _Probe,
        prompt: str,
        language: str,
        response_format: Literal["json", "verbose_json"],
    ) -> dict[str, Any]:
        try:
            with audio_path.open("rb") as audio:
                response = self._client.audio.transcriptions.create(
                    file=(f"note{probe.extension}", audio),
                    model=self._model,
                    response_format=response_format,
                    prompt=prompt or openai.omit,
                    language=language or openai.omit,
                )
        except openai.BadRequestError:
            if response_format == "verbose_json":
                raise
            raise TranscriptionError("the service could not read the audio") from None
        except openai.RateLimitError as exc:
            if exc.code == "insufficient_quota" or exc.type == "insufficient_quota":
                log.error("Transcription endpoint: the account is out of quota")
                raise TranscriptionUnavailable("quota", why=UnavailableReason.REFUSED) from None
            raise TranscriptionUnavailable("rate limited", why=UnavailableReason.DOWN) from None
        except (
            openai.AuthenticationError,
            openai.PermissionDeniedError,
            openai.NotFoundError,
        ) as exc:
            log.error(
                "Transcription endpoint refused the request (HTTP %s): check "
                "TRANSCRIBE_API_KEY, TRANSCRIBE_BASE_URL and TRANSCRIBE_MODEL",
                exc.status_code,
            )
            raise TranscriptionUnavailable("refused", why=UnavailableReason.REFUSED) from None
        except openai.APIStatusError as exc:
            if exc.status_code == 413:
                raise TranscriptionError("too large", too_large=True) from None
            if exc.status_code >= 500:
                raise TranscriptionUnavailable(
                    f"HTTP {exc.status_code}", why=UnavailableReason.DOWN
                ) from None
            raise TranscriptionError(f"HTTP {exc.status_code}") from None
        except openai.APIConnectionError as exc:  # also timeouts
            raise TranscriptionUnavailable(type(exc).__name__, why=UnavailableReason.DOWN) from None
        return _as_dict(response)


def _as_dict(response: object) -> dict[str, Any]:
    if isinstance(response, str):
        return {"text": response}
    dump = getattr(response, "model_dump", None)
    if callable(dump):
        result = dump()
        if isinstance(result, dict):
            return result
    raise TranscriptionError("unexpected response from the transcription service")


def _transcript(response: dict[str, Any], probe: _Probe) -> Transcript:
    text = str(response.get("text") or "").strip()
    duration = response.get("duration")
    # The local measurement is the fallback when the server reports no duration.
    reported = isinstance(duration, int | float) and duration > 0
    total = float(duration) if reported and duration is not None else probe.duration
    segments = response.get("segments")
    timed: list[Segment] = []
    if isinstance(segments, list) and segments:
        # Whisper invents words on silence; such segments are marked, as locally, and dropped.
        kept = [s for s in segments if isinstance(s, dict) and not _is_silence(s)]
        timed = [
            Segment(float(s.get("start", 0)), float(s.get("end", 0)), str(s["text"]).strip())
            for s in kept
            if str(s.get("text") or "").strip()
        ]
        text = " ".join(s.text for s in timed).strip()
        speech = sum(max(0.0, float(s.get("end", 0)) - float(s.get("start", 0))) for s in kept)
    else:
        speech = total if text else 0.0
    language = response.get("language")
    return Transcript(
        text=text,
        language=_language_code(str(language)) if language else None,
        duration=total,
        speech_duration=speech,
        segments=tuple(timed),
    )


# verbose_json names the language in words ("russian"); the bot stores codes.
_LANGUAGE_NAMES = {
    "english": "en",
    "russian": "ru",
    "ukrainian": "uk",
    "german": "de",
    "french": "fr",
    "spanish": "es",
    "italian": "it",
    "portuguese": "pt",
    "polish": "pl",
}


def _language_code(reported: str) -> str:
    name = reported.strip().lower()
    return _LANGUAGE_NAMES.get(name, name[:16])


def _is_silence(segment: dict[str, Any]) -> bool:
    no_speech = float(segment.get("no_speech_prob") or 0.0)
    logprob = float(segment.get("avg_logprob") or 0.0)
    return no_speech > NO_SPEECH_PROB and logprob < NO_SPEECH_LOGPROB


def _probe(audio_path: Path) -> _Probe:
    """The container format (for the file name) and the audio's real length, read locally."""
    import av

    try:
        with av.open(str(audio_path)) as container:
            names = str(container.format.name).split(",")
            extension = next((_EXTENSIONS[n] for n in names if n in _EXTENSIONS), "")
            if not extension:
                raise TranscriptionError(f"unsupported container {names[0]}")
            if not container.streams.audio:
                raise TranscriptionError("no audio stream")
            seconds = 0.0
            # Decoding (not the header) gives the true length, also of a cut-off file.
            try:
                for frame in container.decode(audio=0):
                    seconds += frame.samples / frame.sample_rate
            except av.error.FFmpegError:
                if not seconds:
                    raise
                # A cut-off file decodes up to where it ends: the worker's length check
                # then tells the writer, as with local whisper.
    except TranscriptionError:
        raise
    except Exception as exc:  # av raises many types for damaged input
        raise TranscriptionError(f"cannot decode audio: {type(exc).__name__}") from exc
    return _Probe(extension, seconds)
