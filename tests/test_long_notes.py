"""Long notes: windows transcribed in parallel on the worker slots, stitched back in order,
shared fairly between writers, stopped by /cancel between windows, resumed after a crash
without transcribing a stored window again, and shown on the card as the transcript grows.

The fast tests use a windowed fake backend that goes through the bot's own windowed loop
(bot/transcription/base.py); the last tests run the real whisper model (tiny.en) on long
recordings made from the fixtures (tests/long_audio.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Note, NotePart, NoteWindow
from bot.domain import IncomingMedia, NoteCard, NoteKind
from bot.notes.cards import load_note_card
from bot.notes.intake import IntakeService
from bot.notes.lifecycle import FailureCode, NoteState
from bot.notes.queue import NoteQueue
from bot.notes.transcribe import JobControl, TranscriptionJob, WindowScheduler
from bot.notes.worker import TranscriptionWorker
from bot.services.outline import OutlineService
from bot.telegram import texts
from bot.transcription.base import Span, WindowPlan
from bot.transcription.whisper import WhisperTranscriber
from tests.conftest import AUDIO, FAST, eventually
from tests.fakes.telegram_server import FakeTelegram
from tests.fakes.transcriber import FakeWindowedTranscriber
from tests.long_audio import RATE as RATE_HZ
from tests.long_audio import ROOT, long_recording, samples_of, silence, write_audio
from tests.processes import BotLauncher

Sessions = async_sessionmaker[AsyncSession]
RATE = 100  # samples a second, for the window plan's arithmetic


class ScriptedAudio:
    """Downloads write the fake recording named by the file_id: one text per window."""

    def __init__(self) -> None:
        self.recordings: dict[str, list[str]] = {}
        self.downloads = 0

    async def download(self, file_id: str, destination: Path) -> None:
        self.downloads += 1
        FakeWindowedTranscriber.write_recording(destination, self.recordings[file_id])


def texts_of(n: int, tag: str = "w") -> list[str]:
    return [f"{tag.capitalize()} window {i} says {tag}{i}." for i in range(n)]


async def voice(
    sessions: Sessions, user: int, message_id: int, file_id: str, audio: ScriptedAudio
) -> int:
    """Queue a voice note of the recording `file_id` (as long as Telegram would say)."""
    step = FakeWindowedTranscriber.WINDOW_S + FakeWindowedTranscriber.PAUSE_S
    duration = int(step * len(audio.recordings[file_id]))
    media = IncomingMedia(NoteKind.VOICE, file_id, None, duration, 1000)
    return (await IntakeService(sessions).receive_media(user, user, message_id, media)).note_id


async def stored(sessions: Sessions, note_id: int) -> Note:
    async with sessions.begin() as session:
        note = await session.get(Note, note_id)
        assert note is not None
        return note


async def windows_stored(sessions: Sessions, note_id: int) -> int:
    async with sessions.begin() as session:
        count = await session.scalar(
            select(func.count()).select_from(NoteWindow).where(NoteWindow.note_id == note_id)
        )
        return int(count or 0)


async def has_windows(sessions: Sessions, note_id: int, count: int) -> bool:
    return await windows_stored(sessions, note_id) == count


async def card(sessions: Sessions, note_id: int) -> NoteCard:
    async with sessions.begin() as session:
        view = await load_note_card(session, str(note_id), {})
    assert isinstance(view, NoteCard)
    return view


def job_of(
    sessions: Sessions,
    fake: FakeWindowedTranscriber,
    audio: ScriptedAudio,
    tmp_path: Path,
    *,
    slots: int = 2,
) -> tuple[NoteQueue, TranscriptionJob]:
    queue = NoteQueue(sessions, FAST)
    job = TranscriptionJob(
        queue, fake, audio, tmp_path / "audio", FAST, sessions=sessions, slots=slots
    )
    return queue, job


# The plan ------------------------------------------------------------------------------------


def spans(*pairs: tuple[float, float]) -> list[Span]:
    return [Span(int(a * RATE), int(b * RATE)) for a, b in pairs]


def cut_all(found: Sequence[Span]) -> list[tuple[float, float]]:
    plan = WindowPlan(RATE, min_speech_s=30, max_speech_s=60)
    windows = [w for span in found for w in plan.add(span)] + plan.finish()
    assert [s for w in windows for s in w] == list(found), "every span once, in order"
    return [(w[0].start / RATE, w[-1].end / RATE) for w in windows]


def test_windows_are_cut_at_the_longest_pause_between_30_and_60_s_of_speech() -> None:
    # Ten-second spans; pauses of 1 s, except 3 s after 40 s of speech and 5 s after 70 s
    # of speech (past the window's 60 s, so not a cut for the first window); the 50 s left
    # after the first cut make one window.
    found = spans(
        (0, 10), (11, 21), (22, 32), (33, 43), (46, 56), (57, 67), (68, 78), (83, 93), (94, 104)
    )
    assert cut_all(found) == [(0, 43), (46, 104)]
    # Speech without any pause is still cut within the window's bounds.
    running = spans(*[(10 * i, 10 * i + 10) for i in range(13)])
    windows = cut_all(running)
    assert all(30 <= end - start <= 60 for start, end in windows[:-1]), windows


# The scheduler -------------------------------------------------------------------------------


def test_a_free_slot_goes_to_the_note_holding_the_fewest() -> None:
    scheduler = WindowScheduler(2)
    gates: dict[str, threading.Event] = {}
    started: list[str] = []
    lock = threading.Lock()

    def work(name: str) -> str:
        with lock:
            started.append(name)
        gates.setdefault(name, threading.Event()).wait(10)
        return name

    for name in ("a0", "a1", "a2", "b0"):
        gates[name] = threading.Event()
    futures: list[Future[str]] = []
    futures += [scheduler.submit(1, lambda n=n: work(n)) for n in ("a0", "a1", "a2")]
    futures.append(scheduler.submit(2, lambda: work("b0")))

    def wait_started(count: int) -> None:
        for _ in range(1000):
            with lock:
                if len(started) >= count:
                    return
            threading.Event().wait(0.005)
        raise AssertionError(started)

    wait_started(2)
    assert sorted(started) == ["a0", "a1"], "one note alone takes both slots"
    gates["a0"].set()
    wait_started(3)
    # Note 1 still holds a slot and note 2 none: note 2's window goes first, though note 1's
    # third window asked earlier.
    assert started[2] == "b0"
    for gate in gates.values():
        gate.set()
    assert sorted(f.result(10) for f in futures) == ["a0", "a1", "a2", "b0"]
    assert started[3] == "a2"


# The job -------------------------------------------------------------------------------------


async def test_windows_run_side_by_side_and_are_stitched_in_order(
    sqlite_sessions: Sessions, tmp_path: Path
) -> None:
    fake = FakeWindowedTranscriber(gated=True)
    audio = ScriptedAudio()
    audio.recordings["long"] = texts_of(5)
    note_id = await voice(sqlite_sessions, 1, 1, "long", audio)
    queue, job = job_of(sqlite_sessions, fake, audio, tmp_path)
    claim = await queue.claim("w")
    assert claim is not None
    run = asyncio.create_task(job.run(claim, JobControl()))
    await eventually(lambda: len(fake.started) == 2)
    # The later windows finish first: the transcript is still in the recording's order.
    fake.release("note-1.audio", 1)
    await eventually(lambda: len(fake.started) == 3)
    for index in (4, 3, 2, 0):
        fake.release("note-1.audio", index)
    await asyncio.wait_for(run, 10)

    assert fake.most_at_once == 2, "one note's windows on both slots"
    note = await stored(sqlite_sessions, note_id)
    assert note.state == NoteState.FILED
    # A pause between windows is a paragraph break, as a pause inside one is.
    assert note.transcript == "\n\n".join(texts_of(5))
    assert sorted(c.index for c in fake.started) == [0, 1, 2, 3, 4], "each window once"
    assert await windows_stored(sqlite_sessions, note_id) == 0, "forgotten once filed"


async def test_the_card_shows_the_transcript_as_it_grows(
    sqlite_sessions: Sessions, tmp_path: Path
) -> None:
    fake = FakeWindowedTranscriber(gated=True)
    audio = ScriptedAudio()
    audio.recordings["long"] = texts_of(4)
    note_id = await voice(sqlite_sessions, 1, 1, "long", audio)
    queue, job = job_of(sqlite_sessions, fake, audio, tmp_path)
    claim = await queue.claim("w")
    assert claim is not None
    run = asyncio.create_task(job.run(claim, JobControl()))
    await eventually(lambda: len(fake.started) == 2)
    fake.release("note-1.audio", 1)
    await eventually(lambda: windows_stored(sqlite_sessions, note_id))
    # Window 1 is done, window 0 is not: nothing is shown out of order.
    assert (await card(sqlite_sessions, note_id)).partial == ""
    fake.release("note-1.audio", 0)
    await eventually(lambda: has_windows(sqlite_sessions, note_id, 2))
    shown = await card(sqlite_sessions, note_id)
    assert shown.partial == "\n\n".join(texts_of(2))
    assert shown.progress is not None and 0 < shown.progress < 1
    html = texts.note_card(shown)
    assert html.startswith("🎙 Transcribing…") and "W window 1 says w1." in html
    assert "w2" not in html
    fake.open_all.set()
    await asyncio.wait_for(run, 10)
    final = await card(sqlite_sessions, note_id)
    assert final.state == NoteState.FILED and final.partial == ""
    assert texts.note_card(final).startswith("✅ Filed under <b>1. Notes</b>")


async def test_two_writers_share_the_slots(sqlite_sessions: Sessions, tmp_path: Path) -> None:
    fake = FakeWindowedTranscriber(gated=True)
    audio = ScriptedAudio()
    audio.recordings["first"] = texts_of(6, "a")
    audio.recordings["second"] = texts_of(2, "b")
    first = await voice(sqlite_sessions, 1, 1, "first", audio)
    queue, job = job_of(sqlite_sessions, fake, audio, tmp_path)
    worker = TranscriptionWorker(queue, job, "w", slots=2, timing=FAST)
    worker.start()
    try:
        await eventually(lambda: len(fake.started) == 2)
        assert {c.recording for c in fake.started} == {f"note-{first}.audio"}
        second = await voice(sqlite_sessions, 2, 1, "second", audio)
        # The other writer's note is claimed by the free worker slot and waits for a window
        # slot, behind the first note's next window.
        await eventually(lambda: job._scheduler.waiting(second))
        fake.release(f"note-{first}.audio", 0)
        await eventually(lambda: len(fake.started) == 3)
        assert fake.started[2].recording == f"note-{second}.audio", fake.started
        fake.open_all.set()
        for note_id in (first, second):
            await eventually(lambda n=note_id: _state_is(sqlite_sessions, n, NoteState.FILED))
        assert (await stored(sqlite_sessions, second)).transcript == "\n\n".join(texts_of(2, "b"))
    finally:
        fake.open_all.set()
        await worker.stop()


async def test_cancel_stops_a_long_note_between_windows(
    sqlite_sessions: Sessions, tmp_path: Path
) -> None:
    fake = FakeWindowedTranscriber(gated=True)
    audio = ScriptedAudio()
    audio.recordings["long"] = texts_of(8)
    note_id = await voice(sqlite_sessions, 1, 1, "long", audio)
    queue, job = job_of(sqlite_sessions, fake, audio, tmp_path, slots=1)
    worker = TranscriptionWorker(queue, job, "w", slots=1, timing=FAST)
    worker.start()
    try:
        await eventually(lambda: len(fake.started) == 1)
        fake.release("note-1.audio", 0)
        await eventually(lambda: windows_stored(sqlite_sessions, note_id))
        assert await queue.request_cancel(1)
        # The window in work lets go at the cancel; no window starts after it.
        note = await eventually(
            lambda: _state_is(sqlite_sessions, note_id, NoteState.FAILED), within=10
        )
        assert note.failure == FailureCode.CANCELLED
        assert len(fake.started) <= 2, fake.started
        assert "cancelled" in texts.note_card(await card(sqlite_sessions, note_id))
    finally:
        fake.open_all.set()
        await worker.stop()


async def _state_is(sessions: Sessions, note_id: int, state: NoteState) -> Note | None:
    note = await stored(sessions, note_id)
    return note if note.state == state else None


async def test_a_note_taken_over_after_a_crash_reuses_its_windows(
    sessions: Sessions, tmp_path: Path
) -> None:
    fake = FakeWindowedTranscriber(gated=True)
    audio = ScriptedAudio()
    audio.recordings["long"] = texts_of(5)
    note_id = await voice(sessions, 1, 1, "long", audio)
    queue, job = job_of(sessions, fake, audio, tmp_path)
    dead = await queue.claim("dead")
    assert dead is not None
    control = JobControl()
    run = asyncio.create_task(job.run(dead, control))
    await eventually(lambda: len(fake.started) == 2)
    fake.release("note-1.audio", 0)
    fake.release("note-1.audio", 1)
    await eventually(lambda: has_windows(sessions, note_id, 2))
    # The worker "dies": its claim runs out and another worker takes the note over.
    assert await queue.expire_claims_of("dead") == 1
    alive = await queue.claim("alive")
    assert alive is not None and alive.note_id == note_id
    before = len(fake.started)
    fake.open_all.set()
    await asyncio.wait_for(job.run(alive, JobControl()), 10)
    await asyncio.wait_for(run, 10)  # the dead worker's job touches nothing

    note = await stored(sessions, note_id)
    assert (note.state, note.crashes) == (NoteState.FILED, 1)
    assert note.transcript == "\n\n".join(texts_of(5)), "nothing lost, nothing twice"
    again = [c.index for c in fake.started[before:]]
    assert 0 not in again and 1 not in again, f"stored windows transcribed again: {again}"
    async with sessions.begin() as session:
        parts = list(await session.scalars(select(NotePart).where(NotePart.note_id == note_id)))
    assert [p.text for p in parts] == [note.transcript]


async def test_windows_of_another_request_are_not_reused(
    sqlite_sessions: Sessions, tmp_path: Path
) -> None:
    """A note queued again in another language starts afresh."""
    fake = FakeWindowedTranscriber(gated=True)
    audio = ScriptedAudio()
    audio.recordings["long"] = texts_of(3)
    note_id = await voice(sqlite_sessions, 1, 1, "long", audio)
    queue, job = job_of(sqlite_sessions, fake, audio, tmp_path)
    first = await queue.claim("one")
    assert first is not None
    run = asyncio.create_task(job.run(first, JobControl()))
    await eventually(lambda: len(fake.started) == 2)
    fake.release("note-1.audio", 0)
    await eventually(lambda: has_windows(sqlite_sessions, note_id, 1))
    await queue.expire_claims_of("one")
    second = await queue.claim("two")
    assert second is not None
    fake.open_all.set()
    await asyncio.wait_for(run, 10)
    other = type(second)(**{**second.__dict__, "language": "ru"})
    await asyncio.wait_for(job.run(other, JobControl()), 10)
    assert [c.index for c in fake.started].count(0) == 2


async def test_a_title_spoken_at_a_windows_edge_is_found(
    sqlite_sessions: Sessions, tmp_path: Path
) -> None:
    outline = OutlineService(sqlite_sessions)
    await outline.new_article(1, 1, "Skills")
    await outline.set_outline(1, 1, ["Where it starts", "The key skill gaps to close"])
    fake = FakeWindowedTranscriber()
    audio = ScriptedAudio()
    audio.recordings["long"] = [
        "So that is where it starts for me.",
        "Next. The key skill gaps to close. The first gap is testing.",
    ]
    note_id = await voice(sqlite_sessions, 1, 1, "long", audio)
    queue, job = job_of(sqlite_sessions, fake, audio, tmp_path)
    claim = await queue.claim("w")
    assert claim is not None
    await job.run(claim, JobControl())
    shown = await card(sqlite_sessions, note_id)
    assert [(p.section_number, p.text) for p in shown.parts] == [
        (1, "So that is where it starts for me."),
        (2, "The first gap is testing."),
    ]


# Real whisper (tiny.en) --------------------------------------------------------------------

LIBRARY = "long_speech.ogg"


class FileAudio:
    """Downloads copy the file named by the file_id."""

    async def download(self, file_id: str, destination: Path) -> None:
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(Path(file_id).read_bytes())  # noqa: ASYNC240


def edge_recording(path: Path) -> float:
    """52 s of the library note, then sections_spoken.ogg cut after "Next. Meeting times." (at
    5.1 s) by a 3 s pause: past 60 s of speech, so the window is cut at that pause; the first
    window ends on the spoken title, and what it heads is all in the second window."""
    said, spoken = samples_of(LIBRARY), samples_of("sections_spoken.ogg")
    split = int(5.1 * RATE_HZ)
    return write_audio(path, [said[: 52 * RATE_HZ], spoken[:split], silence(3.0), spoken[split:]])


async def test_whisper_finds_a_title_at_a_windows_edge(
    sqlite_sessions: Sessions, tmp_path: Path, whisper: WhisperTranscriber
) -> None:
    recording = tmp_path / "edge.wav"
    seconds = edge_recording(recording)
    cut = [(w.start, w.end) for w in whisper.windows(recording)]
    assert len(cut) == 2 and 57 <= cut[1][0] <= 61, cut  # cut right after the title

    outline = OutlineService(sqlite_sessions)
    await outline.new_article(1, 1, "Libraries")
    await outline.set_outline(1, 1, ["Libraries", "Meeting times", "Snacks and drinks"])
    media = IncomingMedia(NoteKind.VOICE, str(recording), None, int(seconds), 1000)
    note_id = (await IntakeService(sqlite_sessions).receive_media(1, 1, 1, media)).note_id
    queue = NoteQueue(sqlite_sessions, FAST)
    job = TranscriptionJob(
        queue, whisper, FileAudio(), tmp_path / "audio", FAST, sessions=sqlite_sessions, slots=2
    )
    claim = await queue.claim("w")
    assert claim is not None
    await job.run(claim, JobControl())
    shown = await card(sqlite_sessions, note_id)
    assert shown.state == NoteState.FILED, shown
    assert [p.section_number for p in shown.parts] == [1, 2, 3], shown.parts
    assert "librar" in shown.parts[0].text.lower()
    assert "reading list" in shown.parts[0].text.lower()
    assert "thursday" in shown.parts[1].text.lower()
    assert "share" in shown.parts[2].text.lower()


def _whole_file(model: object, path: Path) -> str:
    """Bare faster-whisper on the whole file, with the bot's options (the "before")."""
    segments, _ = model.transcribe(  # type: ignore[attr-defined]
        str(path), beam_size=5, vad_filter=True, condition_on_previous_text=False
    )
    return " ".join(s.text.strip() for s in segments)


def test_windows_transcribe_as_well_as_the_whole_file(
    whisper: WhisperTranscriber, tmp_path: Path, tiny_model_path: str
) -> None:
    from faster_whisper import WhisperModel

    from tests.speech_metrics import word_error_rate

    library = (AUDIO / "long_speech.txt").read_text().strip()
    twice = tmp_path / "twice.wav"
    write_audio(twice, [samples_of(LIBRARY), silence(4.0), samples_of(LIBRARY)])
    cases = [
        (AUDIO / f"{name}.ogg", (AUDIO / f"{name}.txt").read_text().strip())
        for name in ("book_club", "pipelines", "sections_spoken", "long_speech")
    ]
    cases.append((twice, f"{library} {library}"))
    bare = WhisperModel(tiny_model_path, device="cpu", compute_type="int8", cpu_threads=2)
    windowed_errors, whole_errors = [], []
    for path, spoken in cases:
        windowed_errors.append(word_error_rate(spoken, whisper.transcribe(path).text))
        whole_errors.append(word_error_rate(spoken, _whole_file(bare, path)))
    windowed = sum(windowed_errors) / len(cases)
    whole = sum(whole_errors) / len(cases)
    print(
        f"WER windowed {windowed:.3f} vs whole file {whole:.3f}: {windowed_errors} {whole_errors}"
    )
    assert windowed <= whole + 0.01, (windowed_errors, whole_errors)


def test_a_40_minute_note_stays_within_150_mb_of_rest(tmp_path: Path, tiny_model_path: str) -> None:
    """Measured in a process of its own (tests/long_audio.py): the model loaded and warmed up
    is the rest; the peak is the high-water mark while the windows run on two slots."""
    recording = tmp_path / "forty.wav"
    seconds = long_recording(recording, 40)
    assert seconds == 2400
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "long_audio.py"), tiny_model_path, str(recording)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(figures)
    assert abs(figures["duration_s"] - 2400) < 1
    assert figures["windows"] >= 8 and figures["words"] > 8 * 150, figures  # all of it said
    assert figures["growth_mb"] <= 150, figures


def test_kill_9_mid_note_resumes_without_repeating_or_losing_windows(
    bots: BotLauncher, tmp_path: Path
) -> None:
    """The real `python -m bot`: killed once some windows of a long note are stored, it
    transcribes only the others after the restart, and files the whole note once."""
    import re
    import signal

    from tests.processes import message_calls

    recording = tmp_path / "three.wav"
    said = samples_of(LIBRARY)
    seconds = write_audio(recording, [said, silence(3.0), said, silence(3.0), said])
    server = bots.server
    writer = 1001
    first = bots.start()
    data = recording.read_bytes()
    update = server.send_voice(
        writer, server.add_file(data), duration=int(seconds), file_size=len(data)
    )
    message_id = int(update["message"]["message_id"])

    def windows_done() -> list[int] | None:
        rows = bots.query("SELECT position FROM note_windows ORDER BY position")
        return [r[0] for r in rows] if rows else None

    before = bots.wait_for(first, windows_done, "a stored window", 180)
    first.signal(signal.SIGKILL)
    assert first.wait_exit(10) == -signal.SIGKILL
    before = windows_done() or []  # what the killed process had stored, in the end
    assert bots.state_of(writer, message_id) == "transcribing"

    second = bots.start()

    def filed() -> str | None:
        rows = bots.query("SELECT state, transcript FROM notes")
        return rows[0][1] if rows and rows[0][0] == "filed" else None

    transcript = bots.wait_for(second, filed, "the note filed after the restart", 300)
    log = second.log()
    again = {int(n) for n in re.findall(r"Decoding window (\d+):", log)}
    assert f"reusing {len(before)} window(s)" in log, log[-3000:]
    assert not again & set(before), f"stored windows {before} transcribed again: {again}"
    assert again, "the rest was transcribed after the restart"
    # Nothing lost: the library note is in it three times, beginning to end.
    assert transcript.lower().count("small town libraries") == 3, transcript
    assert transcript.lower().count("keep it short and simple") == 3, transcript
    assert bots.query("SELECT count(*) FROM note_windows") == [(0,)]
    # The card is delivered after the note is filed (the outbox): wait for it.
    filed_calls = bots.wait_for(
        second, lambda: message_calls(server, writer, "Filed under"), "the filed card", 60
    )
    assert len({c.params.get("message_id") for c in filed_calls}) == 1
    assert second.stop() == 0


async def test_the_chat_sees_the_transcript_grow_and_long_text_continue(
    telegram: FakeTelegram, tmp_path: Path, tiny_model_path: str
) -> None:
    """The real bot and the fake Bot API: the acknowledgement is edited with the text so far
    as windows finish, and a transcript over one message continues in a second one."""
    from bot.app import build_bot, running
    from bot.db.migrate import upgrade_to_head
    from tests.conftest import bot_settings

    fake = FakeWindowedTranscriber(gated=True)
    windows = [f"Window {i} begins. " + "All of this is spoken words. " * 25 for i in range(8)]
    settings = bot_settings(tmp_path, telegram, tiny_model_path, whisper_workers=2)
    upgrade_to_head(settings.database_url)
    data = json.dumps(windows).encode()
    async with running(build_bot(settings, fake, timing=FAST)):
        update = telegram.send_voice(1001, telegram.add_file(data), duration=8 * 42)
        message_id = int(update["message"]["message_id"])
        ack = await telegram.wait_for(lambda: telegram.reply_to(1001, message_id))
        await eventually(lambda: len(fake.started) == 2)
        fake.release(fake.started[0].recording, 0)
        so_far = await telegram.wait_for_text(1001, "So far", timeout=20)
        assert so_far.message_id == ack.message_id
        assert "Window 0 begins." in so_far.text and "Window 1" not in so_far.text
        fake.open_all.set()
        await telegram.wait_for_text(1001, "Filed under", timeout=30)
        shown = [m for m in telegram.sent_messages(1001) if m.message_id >= ack.message_id]
        # The acknowledgement and a continuation: the whole transcript, in order.
        assert len(shown) == 2, [m.text[:40] for m in shown]
        assert all(len(m.text) <= 4096 for m in shown)
        text = "".join(m.text for m in shown)
        assert [text.index(f"Window {i} begins.") for i in range(8)] == sorted(
            text.index(f"Window {i} begins.") for i in range(8)
        )
