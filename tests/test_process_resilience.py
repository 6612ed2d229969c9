"""Process-level resilience: the real `python -m bot` killed, terminated and restarted.

Each test runs the bot as a child process against the in-process FakeTelegram server (real
HTTP) with a DATA_DIR in tmp_path, so the SQLite file and the fake's update queue outlive
every bot process, as Telegram and the disk outlive a crashed container.

Timings measured on the 2-core CI box with tiny.en (beam 5): long_speech.ogg (78 s) takes
about 4 s to transcribe, book_club.ogg about 0.5 s, and a bot process is polling about 2 s
after it is started.
"""

from __future__ import annotations

import signal
import time

from tests.conftest import AUDIO
from tests.fakes.telegram_server import FakeTelegram
from tests.processes import BotLauncher, BotProcess, message_calls

WRITER = 1001
STARTUP_S = 60.0  # python start, migrations, whisper load, first poll (about 2 s here)
TRANSCRIBE_LONG_S = 60.0  # long_speech.ogg takes about 4 s
SHUTDOWN_LIMIT_S = 10.0
FILED = "Filed under"
ACK = "Transcribing for"
SOMETHING_WRONG = "something went wrong"
# faster-whisper logs this (at INFO) once VAD is done, right before it starts decoding.
WHISPER_DECODING = "s of speech (of "


# -- helpers --------------------------------------------------------------------------------


def send_recording(server: FakeTelegram, audio: bytes, duration: int) -> tuple[str, int]:
    """A voice note from the writer; returns (file_id, message_id)."""
    file_id = server.add_file(audio)
    update = server.send_voice(WRITER, file_id, duration=duration, file_size=len(audio))
    return file_id, int(update["message"]["message_id"])


def wait_transcribing(bots: BotLauncher, bot: BotProcess, message_id: int) -> int:
    """Wait until the note is acknowledged, downloaded and whisper is decoding it; its id."""

    def in_progress() -> int | None:
        rows = bots.notes_for_message(WRITER, message_id)
        acked = message_calls(bots.server, WRITER, ACK)
        if len(rows) == 1 and rows[0][1] == "transcribing" and rows[0][2] is not None and acked:
            # Past audio decoding and VAD: whisper's beam search is running.
            return rows[0][0] if WHISPER_DECODING in bot.log() else None
        return None

    what = "the ack, state 'transcribing' and whisper decoding"
    return bots.wait_for(bot, in_progress, what, STARTUP_S)


def wait_resumed(bots: BotLauncher, bot: BotProcess) -> str:
    def resumed() -> str | None:
        return next((t for t in bots.server.sent_texts(WRITER) if "resuming" in t), None)

    return bots.wait_for(bot, resumed, "the 'resuming' message after the restart", STARTUP_S)


def wait_filed(bots: BotLauncher, bot: BotProcess, message_id: int, timeout: float) -> int:
    """Wait until the note is transcribed in the DB and its ack says "Filed under"; ack id."""

    def filed() -> int | None:
        rows = bots.notes_for_message(WRITER, message_id)
        if len(rows) != 1 or rows[0][1] != "filed" or rows[0][2] is None:
            return None
        ack_id = rows[0][2]
        ack = [m for m in bots.server.sent_messages(WRITER) if m.message_id == ack_id]
        return ack_id if ack and FILED in ack[0].text else None

    return bots.wait_for(bot, filed, f"the transcript of message {message_id}", timeout)


def flush_worker(bots: BotLauncher, bot: BotProcess) -> int:
    """Send a short voice note and wait for its transcript; returns its ack message id.

    A chat's notes are transcribed in order: once this note is filed, every note of the
    writer queued before it (a duplicate of an earlier note included) has been processed, so
    "exactly once" can be asserted without sleeping.
    """
    audio = (AUDIO / "book_club.ogg").read_bytes()
    _, message_id = send_recording(bots.server, audio, duration=5)
    return wait_filed(bots, bot, message_id, timeout=30)


def assert_filed_exactly_once(
    bots: BotLauncher, message_id: int, sentinel_ack_id: int
) -> tuple[int, str]:
    """One note row, transcribed, one part, and one "Filed under" for it; (note id, text)."""
    server = bots.server
    rows = bots.notes_for_message(WRITER, message_id)
    assert len(rows) == 1, f"one note row for the Telegram message, got {rows}"
    note_id, state, ack_id = rows[0]
    assert state == "filed"
    assert ack_id is not None
    assert bots.part_count(note_id) == 1, "the transcript is filed as exactly one part"

    filed_calls = message_calls(server, WRITER, FILED)
    for_note = [c for c in filed_calls if c.params.get("message_id") == ack_id]
    others = [c for c in filed_calls if c.params.get("message_id") != sentinel_ack_id]
    assert len(for_note) == 1 and len(others) == 1, (
        "the transcript is delivered once, as an edit of the acknowledgement: "
        f"{[(c.method, c.params.get('message_id'), c.error_code) for c in filed_calls]}"
    )
    messages = [m for m in server.sent_messages(WRITER) if FILED in m.text]
    assert [m.message_id for m in messages] == sorted([ack_id, sentinel_ack_id])
    ack = next(m for m in messages if m.message_id == ack_id)
    assert sum(FILED in e for e in ack.edits) == 1
    return note_id, ack.text


def assert_no_apology(bots: BotLauncher) -> None:
    texts = bots.server.sent_texts(WRITER)
    assert not [t for t in texts if SOMETHING_WRONG in t.lower()], texts
    assert "Unhandled error" not in bots.log_path.read_text(errors="replace")


# -- tests ----------------------------------------------------------------------------------


def test_kill_9_mid_transcription_then_restart_files_the_note_once(bots: BotLauncher) -> None:
    server = bots.server
    first = bots.start()
    server.send_text(WRITER, "/new Small town libraries")
    bots.wait_for(
        first, lambda: any("Started" in t for t in server.sent_texts(WRITER)), "/new", STARTUP_S
    )
    audio = (AUDIO / "long_speech.ogg").read_bytes()
    file_id, message_id = send_recording(server, audio, duration=78)
    note_id = wait_transcribing(bots, first, message_id)

    first.signal(signal.SIGKILL)
    assert first.wait_exit(10) == -signal.SIGKILL
    # The kill landed while whisper was running: nothing was filed or said yet.
    assert bots.state_of(WRITER, message_id) == "transcribing"
    assert bots.part_count(note_id) == 0
    assert not message_calls(server, WRITER, FILED)

    second = bots.start()
    resumed = wait_resumed(bots, second)
    assert "resuming 1 unfinished note." in resumed, resumed
    wait_filed(bots, second, message_id, TRANSCRIBE_LONG_S)
    sentinel_ack_id = flush_worker(bots, second)

    _, text = assert_filed_exactly_once(bots, message_id, sentinel_ack_id)
    assert "librar" in text.lower(), text  # it is the transcript of long_speech.ogg
    assert len([t for t in server.sent_texts(WRITER) if "resuming" in t]) == 1
    # The voice update was neither redelivered into a second note nor acknowledged twice.
    assert len(message_calls(server, WRITER, ACK)) == 2  # the long note and the sentinel
    # The audio downloaded before the crash was reused, not fetched again.
    assert len([c for c in server.calls("getFile") if c.params.get("file_id") == file_id]) == 1
    assert_no_apology(bots)


def test_sigterm_during_long_transcription_exits_fast_and_resumes(
    bots: BotLauncher, very_long_recording: tuple[bytes, int]
) -> None:
    server = bots.server
    audio, seconds = very_long_recording
    first = bots.start()
    _, message_id = send_recording(server, audio, duration=seconds)
    note_id = wait_transcribing(bots, first, message_id)

    sent_at = time.monotonic()
    first.signal(signal.SIGTERM)
    code = first.wait_exit(30)
    took = time.monotonic() - sent_at
    print(f"SIGTERM during transcription: exit code {code} after {took:.2f}s")
    assert took < SHUTDOWN_LIMIT_S, f"shutdown took {took:.1f}s"
    assert code in (0, -signal.SIGTERM), code
    # Stopped, not failed or cancelled: the note is queued again for the next start.
    assert bots.state_of(WRITER, message_id) == "queued"
    assert bots.part_count(note_id) == 0
    assert not message_calls(server, WRITER, FILED)
    assert not [t for t in server.sent_texts(WRITER) if "⚠️" in t]

    second = bots.start()
    resumed = wait_resumed(bots, second)
    assert "resuming 1 unfinished note." in resumed, resumed
    wait_filed(bots, second, message_id, timeout=4 * TRANSCRIBE_LONG_S)
    sentinel_ack_id = flush_worker(bots, second)
    assert_filed_exactly_once(bots, message_id, sentinel_ack_id)
    assert_no_apology(bots)


def test_update_redelivered_after_restart_is_not_filed_twice(bots: BotLauncher) -> None:
    server = bots.server
    first = bots.start()
    update = server.send_text(WRITER, "Libraries are warm rooms in winter")
    message_id = int(update["message"]["message_id"])
    bots.wait_for(
        first, lambda: message_calls(server, WRITER, FILED), "the text note's reply", STARTUP_S
    )
    first.signal(signal.SIGTERM)
    assert first.wait_exit(SHUTDOWN_LIMIT_S) in (0, -signal.SIGTERM)

    server.redeliver(update)
    # Queued behind the redelivered update; a chat's updates are handled in order, so once
    # /sections is answered the redelivered update has been dealt with too.
    server.send_text(WRITER, "/sections")
    second = bots.start()
    outline = bots.wait_for(
        second,
        lambda: next((t for t in server.sent_texts(WRITER) if "Notes —" in t), None),
        "the /sections reply",
        STARTUP_S,
    )
    assert server.pending_updates() == 0, "the redelivered update was handed to the bot"
    assert "1. Notes — 1 note" in outline, outline
    assert len(message_calls(server, WRITER, FILED)) == 1, server.sent_texts(WRITER)
    rows = bots.notes_for_message(WRITER, message_id)
    assert len(rows) == 1 and rows[0][1] == "filed", rows
    assert bots.part_count(rows[0][0]) == 1
    assert bots.query("SELECT count(*) FROM notes")[0][0] == 1
    assert not [t for t in server.sent_texts(WRITER) if "resuming" in t]
    assert_no_apology(bots)
