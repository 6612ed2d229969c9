"""Long notes: one 10-minute note through the bot's job against bare faster-whisper, and peak
memory of 1-, 10- and 40-minute notes.

    .venv/bin/python bench/long_notes.py speed [--minutes 10]
    .venv/bin/python bench/long_notes.py memory MINUTES

`speed` makes a 10-minute note of continuous speech (long_speech.ogg over and over, 3 s pauses
between), runs it through the bot's queue and transcription job with the bot's defaults (its
windows on the worker slots), and times the whole transcript and the first words the card
shows; then bare `WhisperModel.transcribe` on the same file with the same model and options
(beam, VAD, no conditioning on earlier text), with one thread and with every core, and takes
the faster. `memory` measures one note in a process of its own (tests/long_audio.py: VmHWM
after resetting it at rest, the model loaded and warmed up). Each prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    bench_settings,
    load_bench_transcriber,
    pipeline,
    tiny_model_path,
)
from tests.long_audio import long_recording, samples_of, silence, write_audio  # noqa: E402


def ten_minutes(path: Path, minutes: float) -> float:
    """`minutes` of continuous speech: long_speech.ogg over and over, 3 s pauses between."""
    said = samples_of("long_speech.ogg")
    pieces: list[Any] = []
    left = int(minutes * 60 * 16_000)
    while left > 0:
        piece = said[:left]
        pieces.append(piece)
        left -= len(piece)
        if left > 0:
            pause = silence(3.0)[:left]
            pieces.append(pause)
            left -= len(pause)
    return write_audio(path, pieces)


def bare_seconds(path: Path, threads: int, beam: int) -> tuple[float, float]:
    """Whole transcript and first segment, bare faster-whisper with the bot's options."""
    from faster_whisper import WhisperModel

    model = WhisperModel(tiny_model_path(), device="cpu", compute_type="int8", cpu_threads=threads)
    started = time.perf_counter()
    segments, _ = model.transcribe(
        str(path), beam_size=beam, vad_filter=True, condition_on_previous_text=False
    )
    first = 0.0
    for segment in segments:
        if not first and segment.text.strip():
            first = time.perf_counter() - started
    return time.perf_counter() - started, first


async def through_the_bot(path: Path) -> dict[str, float]:
    settings = bench_settings()
    workers, threads = settings.whisper_parallelism
    transcriber = load_bench_transcriber(settings)
    async with pipeline(transcriber, slots=workers) as bot:
        shown: list[float] = []
        store = bot.queue.store_window
        started = 0.0

        async def timed(claim: Any, request: str, window: Any, **kwargs: Any) -> bool:
            if kwargs.get("show") and not shown:
                shown.append(time.perf_counter() - started)
            return bool(await store(claim, request, window, **kwargs))

        bot.queue.store_window = timed  # type: ignore[method-assign]
        note_id = await bot.new_note(path, duration=int(ten_minutes_seconds(path)))
        started = time.perf_counter()
        await bot.process_next()
        whole = time.perf_counter() - started
        if not await bot.filed(note_id):
            raise RuntimeError("the note was not filed")
        words = await bot.transcript_words(note_id)
    return {
        "whole_s": whole,
        "first_words_s": shown[0] if shown else whole,
        "workers": workers,
        "threads": threads,
        "words": words,
    }


def ten_minutes_seconds(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        return float(container.duration or 0) / 1_000_000


def speed(minutes: float) -> dict[str, Any]:
    from bot.config import usable_cores

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "ten.ogg"
        seconds = ten_minutes(path, minutes)
        bot = asyncio.run(through_the_bot(path))
        settings = bench_settings()
        cores = usable_cores()
        bare = {
            threads: bare_seconds(path, threads, settings.whisper_beam_size)
            for threads in sorted({1, cores})
        }
    fastest = min(bare, key=lambda t: bare[t][0])
    return {
        "audio_s": seconds,
        **bot,
        "bare_threads": fastest,
        "bare_whole_s": bare[fastest][0],
        "bare_first_s": bare[fastest][1],
        "bare_by_threads": {str(t): v[0] for t, v in bare.items()},
    }


def memory(minutes: float) -> dict[str, Any]:
    settings = bench_settings()
    workers, _ = settings.whisper_parallelism
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "long.wav"
        seconds = long_recording(path, minutes)
        done = subprocess.run(
            [
                sys.executable,
                str(ROOT / "tests" / "long_audio.py"),
                tiny_model_path(),
                str(path),
                "--slots",
                str(workers),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["minutes"] = seconds / 60
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    fast = sub.add_parser("speed")
    fast.add_argument("--minutes", type=float, default=10)
    mem = sub.add_parser("memory")
    mem.add_argument("minutes", type=float)
    args = parser.parse_args()
    result = speed(args.minutes) if args.what == "speed" else memory(args.minutes)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
