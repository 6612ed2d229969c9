"""Spoken-title routing speed on a long transcript: median milliseconds per call.

.venv/bin/python bench/routing.py [--words 1500] [--sections 20] [--runs 50]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from bot.notes.titles import SectionTitle, split_by_spoken_titles

FILLER = [
    *"ну вот значит данные пайплайн модель агент тесты мониторинг команда проект".split(" "),
    *"the data team pipeline knowledge base ingestion evaluation prompt engineering".split(" "),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--words", type=int, default=1500)
    parser.add_argument("--sections", type=int, default=20)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    rng = random.Random(7)
    titles = [
        SectionTitle(i, f"Section {i} about {' '.join(rng.sample(FILLER, 4))}")
        for i in range(1, args.sections + 1)
    ]
    words = [rng.choice(FILLER) for _ in range(args.words)]
    for title in titles[::4]:  # a few titles spoken as headings
        at = rng.randrange(len(words))
        words[at:at] = ["Дальше.", title.title + "."]
    transcript = " ".join(words)
    timings = []
    parts = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        parts = split_by_spoken_titles(transcript, titles, 0)
        timings.append((time.perf_counter() - t0) * 1000)
    print(f"{args.words} words, {args.sections} sections, {len(parts)} parts")
    print(f"median {statistics.median(timings):.1f} ms, min {min(timings):.1f} ms")


if __name__ == "__main__":
    main()
