"""Memory: peak RSS with the model loaded, and RSS growth over many consecutive notes.

    .venv/bin/python bench/memory.py [--notes 100]

Run in a process of its own (bench/run.py starts it) so nothing else counts; prints one JSON
line. Notes go through the bot's queue and transcription job one after another (SQLite, the
short speech fixtures in turn). Growth compares the median RSS after the first ten notes with
that after the last ten.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    AUDIO,
    SPEECH_FIXTURES,
    bench_settings,
    load_bench_transcriber,
    pipeline,
)


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_mb() -> float:
    return _status_mb("VmRSS")


def peak_mb() -> float:
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over exec, so a child of a
    # big process would report its parent's size.
    return _status_mb("VmHWM")


async def run(notes: int) -> dict[str, float]:
    settings = bench_settings()
    transcriber = load_bench_transcriber(settings)
    figures = {"peak_after_load_mb": peak_mb()}
    short = SPEECH_FIXTURES[:-1]
    after_each: list[float] = []
    async with pipeline(transcriber) as bot:
        for n in range(notes):
            note_id = await bot.new_note(AUDIO / short[n % len(short)])
            await bot.process_next()
            if not await bot.filed(note_id):
                raise RuntimeError(f"note {n} was not filed")
            after_each.append(rss_mb())
    # RSS moves by a few percent from note to note (buffers sized by each recording), so the
    # first ten notes are compared with the last ten: a leak grows steadily, noise does not.
    window = max(1, min(10, notes // 4))
    figures["rss_first_notes_mb"] = statistics.median(after_each[:window])
    figures["rss_last_notes_mb"] = statistics.median(after_each[-window:])
    figures["window"] = window
    figures["peak_mb"] = peak_mb()
    figures["growth"] = figures["rss_last_notes_mb"] / figures["rss_first_notes_mb"] - 1
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notes", type=int, default=100)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.notes))))


if __name__ == "__main__":
    main()
