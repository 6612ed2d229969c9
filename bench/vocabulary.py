"""Vocabulary without echo: ways of giving whisper the writer's words, side by side.

    .venv/bin/python bench/vocabulary.py [--runs 1] [--language ru]

On the mixed Russian/English fixtures (tests/fixtures/audio/ru_*.ogg) with the multilingual
whisper `base` of the tests (assembled from its two PyPI packages), each candidate gets the
same vocabulary: the article's title, its three English section titles and two glossary terms.
Printed per candidate and fixture: character error rate against the spoken text, the spoken
titles found, echoes (outline titles in the transcript that the recording does not speak),
the transcript's length against the run without vocabulary, and the median time.

Candidates: no vocabulary; the prompt the bot used before (article and titles as sentences,
every window); faster-whisper's `hotwords`; the bot's guarded prompt (first window only,
checked for echo and redone without it), with the titles in the prompt and as the bot does it
(`WhisperTranscriber`: English titles left out of the prompt for speech in another language).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.notes.titles import SectionTitle, split_by_spoken_titles  # noqa: E402
from bot.transcription import whisper  # noqa: E402
from bot.transcription.whisper import WhisperTranscriber  # noqa: E402
from tests.speech_metrics import character_error_rate, normalise  # noqa: E402
from tests.whisper_base import assemble  # noqa: E402

AUDIO = ROOT / "tests" / "fixtures" / "audio"
ARTICLE = "Moving off the legacy database"
TITLES = [
    "Why we left stored procedures",
    "What broke in the first month",
    "How we test migrations now",
]
GLOSSARY = ["billing", "observability"]
# Which titles each fixture speaks.
SPOKEN = {"ru_two_titles": {1, 2}, "ru_no_titles": set()}


def titles_in(text: str) -> set[int]:
    """Outline titles the splitter finds in a transcript (as the bot would file it)."""
    sections = [SectionTitle(n, t) for n, t in enumerate(TITLES, start=1)]
    return {p.section_id for p in split_by_spoken_titles(text, sections, 0) if p.title_spoken}


def titles_written(text: str) -> set[int]:
    """Outline titles written out nearly verbatim anywhere (an echo shows up here)."""
    flat = normalise(text)
    return {n for n, t in enumerate(TITLES, start=1) if normalise(t) in flat}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--language", default="ru")
    args = parser.parse_args()
    transcriber = WhisperTranscriber(str(assemble()), cpu_threads=2)
    model = transcriber._model  # the same loaded weights for the bare candidates
    sentences = ". ".join([ARTICLE, *TITLES, *GLOSSARY]) + "."

    def bare(**options: object) -> Callable[[Path], str]:
        def run(path: Path) -> str:
            segments, _ = model.transcribe(
                str(path),
                beam_size=5,
                language=args.language,
                vad_filter=True,
                condition_on_previous_text=False,
                **options,
            )
            return " ".join(s.text.strip() for s in segments)

        return run

    def guarded(vocabulary: list[str], keep_titles: bool = False) -> Callable[[Path], str]:
        def run(path: Path) -> str:
            # keep_titles: the guard alone, without leaving English titles out of the prompt
            # for speech in another language (what the bot does, see prompt_terms).
            original = whisper.prompt_terms
            if keep_titles:
                whisper.prompt_terms = lambda terms, language: list(terms)
            try:
                return transcriber.transcribe(
                    path, vocabulary=vocabulary, language=args.language
                ).text
            finally:
                whisper.prompt_terms = original

        return run

    candidates: dict[str, Callable[[Path], str]] = {
        "no vocabulary": guarded([]),
        "prompt (before)": bare(initial_prompt=sentences),
        "hotwords": bare(hotwords=", ".join([*TITLES, *GLOSSARY])),
        "guarded, titles in prompt": guarded([*GLOSSARY, *TITLES], keep_titles=True),
        "bot: guarded, glossary": guarded([*GLOSSARY, *TITLES]),
    }
    print(f"whisper base int8, beam 5, language {args.language}, {args.runs} run(s), medians")
    header = (
        f"{'candidate':<26} {'fixture':<14} {'CER':>6} {'titles':>7} {'echoes':>6} "
        f"{'length':>7} {'s':>6}"
    )
    print(header)
    print("-" * len(header))
    baseline: dict[str, int] = {}
    totals: dict[str, list[float]] = {}
    for label, run in candidates.items():
        for name, spoken in SPOKEN.items():
            path = AUDIO / f"{name}.ogg"
            reference = (AUDIO / f"{name}.txt").read_text(encoding="utf-8")
            timings: list[float] = []
            text = ""
            for _ in range(args.runs):
                started = time.perf_counter()
                text = run(path)
                timings.append(time.perf_counter() - started)
            cer = character_error_rate(reference, text)
            found = titles_in(text) & spoken
            echoes = (titles_written(text) | titles_in(text)) - spoken
            length = len(normalise(text))
            baseline.setdefault(name, length)
            ratio = length / baseline[name] if baseline[name] else 0.0
            seconds = statistics.median(timings)
            totals.setdefault(label, []).append(seconds)
            print(
                f"{label:<26} {name:<14} {cer:>6.3f} {len(found):>3}/{len(spoken):<3} "
                f"{len(echoes):>6} {ratio:>6.2f}x {seconds:>6.1f}"
            )
    print()
    for label, seconds in totals.items():
        print(f"{label:<26} total {sum(seconds):.1f} s")


if __name__ == "__main__":
    main()
