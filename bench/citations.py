"""Citation checks of one section with many notes and paraphrased quotes: the matcher the
bot uses (rapidfuzz, in a worker thread) against the old one (difflib, on the event loop),
side by side in one run: median seconds per check, and the event loop's worst wake-up delay
while a check runs (a 10 ms timer).

.venv/bin/python bench/citations.py [--notes 300] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from difflib import SequenceMatcher
from unittest import mock

from bot.drafting import citations
from bot.drafting.citations import SourceIndex, check_citations
from bot.drafting.model import Block, Citation, Source
from bot.services.threads import run_in_daemon_thread


def difflib_quote_in(quote: str, note_text: str) -> bool:
    """The matcher before rapidfuzz (bot/drafting/citations.py on main)."""
    q, n = citations.normalise(quote), citations.normalise(note_text)
    if not q:
        return False
    if q in n:
        return True
    matcher = SequenceMatcher(None, n, q, autojunk=False)
    matched = sum(block.size for block in matcher.get_matching_blocks())
    longest = matcher.find_longest_match(0, len(n), 0, len(q)).size
    return matched / len(q) >= 0.85 and longest >= len(q) * 0.5


def section(notes: int) -> tuple[list[Block], SourceIndex]:
    sources = []
    blocks = []
    for i in range(notes):
        text = (
            f"Note {i}: we moved the reporting pipeline number {i} to the new warehouse, "
            f"because the old cluster {i % 17} was slow and far too expensive for analysts."
        )
        sources.append(Source(i + 1, (i + 1,), (text,), datetime.now(UTC), "text"))
        words = re.findall(r"\w+", text)[:6]
        paraphrase = " ".join(f"{w}ish" for w in reversed(words))
        blocks.append(
            Block(
                kind="paragraph",
                text=f"Drafted from note {i}.",
                citations=(Citation(part_id=i + 1, quote=paraphrase),),
            )
        )
    return blocks, SourceIndex(sources)


async def lag_during(run: Callable[[], object], in_thread: bool) -> tuple[float, float]:
    """(seconds the check took, worst extra delay of a 10 ms timer meanwhile)."""
    worst = 0.0
    done = asyncio.Event()

    async def probe() -> None:
        nonlocal worst
        while not done.is_set():
            start = time.perf_counter()
            await asyncio.sleep(0.01)
            worst = max(worst, time.perf_counter() - start - 0.01)

    task = asyncio.create_task(probe())
    await asyncio.sleep(0.02)
    start = time.perf_counter()
    if in_thread:
        await run_in_daemon_thread(run)
    else:
        run()
    took = time.perf_counter() - start
    done.set()
    await task
    return took, worst


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notes", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    blocks, index = section(args.notes)
    results: dict[str, list[tuple[float, float]]] = {"difflib, on the loop": [], "bot": []}
    for _ in range(args.runs):  # interleaved, so both see the same machine
        citations.normalise.cache_clear()
        with mock.patch.object(citations, "quote_in", difflib_quote_in):
            results["difflib, on the loop"].append(
                await lag_during(lambda: check_citations(blocks, index), in_thread=False)
            )
        citations.normalise.cache_clear()
        results["bot"].append(
            await lag_during(lambda: check_citations(blocks, index), in_thread=True)
        )
    print(f"{args.notes} notes, {args.notes} paraphrased quotes, {args.runs} runs (medians)")
    print(f"{'matcher':<34} {'check s':>8} {'worst loop delay s':>19}")
    rows = {
        "difflib, on the loop": "difflib, on the event loop (main)",
        "bot": "rapidfuzz, worker thread (this)",
    }
    medians = {}
    for key, label in rows.items():
        took = statistics.median(t for t, _ in results[key])
        lag = statistics.median(w for _, w in results[key])
        medians[key] = (took, lag)
        print(f"{label:<34} {took:>8.3f} {lag:>19.3f}")
    old, new = medians["difflib, on the loop"], medians["bot"]
    speedup = old[0] / new[0]
    calmer = old[1] / max(new[1], 1e-4)
    print(f"check {speedup:.0f}x faster; worst loop delay {calmer:.0f}x lower")


if __name__ == "__main__":
    asyncio.run(main())
