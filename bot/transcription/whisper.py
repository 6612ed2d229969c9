"""faster-whisper behind the Transcriber protocol; the model is loaded once."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from bot.transcription.base import (
    ProgressCallback,
    Transcript,
    TranscriptionCancelled,
    TranscriptionError,
)

log = logging.getLogger(__name__)

# Whisper reads at most 224 prompt tokens; a long outline is cut to stay inside that.
MAX_PROMPT_CHARS = 600


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
        cpu_threads: int = 0,
        workers: int = 1,
        download_root: Path | None = None,
    ) -> None:
        from faster_whisper import WhisperModel

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
        self._workers = workers
        self._beam_size = beam_size
        self._language = language or None
        # English-only models (*.en) accept no language but English.
        if self._language and not self._model.model.is_multilingual:
            self._language = None

    def warm_up(self) -> None:
        """Run each worker once on a second of synthetic audio, so the first note isn't slow.

        The first call pays for memory allocation and kernel selection; doing it at start-up,
        on every worker at once, keeps that cost off the writer's first recording.
        """
        import numpy as np

        rate = 16000
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
                language=self._language or ("en" if self._model.model.is_multilingual else None),
                vad_filter=False,
                condition_on_previous_text=False,
            )
            for _ in segments:
                pass

        from faster_whisper.vad import get_vad_model

        get_vad_model()  # loaded once and cached: every note runs voice activity detection
        threads = [threading.Thread(target=once, daemon=True) for _ in range(self._workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def transcribe(
        self,
        audio_path: Path,
        *,
        prompt: str = "",
        cancel: threading.Event | None = None,
        progress: ProgressCallback | None = None,
    ) -> Transcript:
        try:
            segments, info = self._model.transcribe(
                str(audio_path),
                beam_size=self._beam_size,
                language=self._language,
                vad_filter=True,
                initial_prompt=prompt[:MAX_PROMPT_CHARS] or None,
                # Conditioning on earlier text makes whisper repeat itself on long notes.
                condition_on_previous_text=False,
            )
        except Exception as exc:  # av raises many types for damaged input
            raise TranscriptionError(f"cannot decode audio: {type(exc).__name__}") from exc

        texts: list[str] = []
        try:
            # Segments are produced lazily: consuming them here, in the worker thread,
            # is where the actual decoding happens.
            for segment in segments:
                if cancel is not None and cancel.is_set():
                    raise TranscriptionCancelled()
                text = segment.text.strip()
                if text:
                    texts.append(text)
                if progress is not None:
                    progress(float(segment.end), float(info.duration))
        except TranscriptionCancelled:
            raise
        except Exception as exc:
            raise TranscriptionError(f"decoding failed: {type(exc).__name__}") from exc

        speech = info.duration_after_vad if info.duration_after_vad is not None else info.duration
        return Transcript(
            text=" ".join(texts).strip(),
            language=info.language,
            duration=float(info.duration),
            speech_duration=float(speech),
        )
