"""TRANSCRIBE_BACKEND=openai: recordings go to an OpenAI-compatible transcription endpoint
(the fake OpenAI server, real HTTP), with the same checks as local whisper."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from bot.notes import transcribe
from bot.notes.lifecycle import NoteState
from bot.transcription import hosted
from bot.transcription.base import (
    TranscriptionError,
    TranscriptionUnavailable,
    UnavailableReason,
)
from bot.transcription.hosted import OpenAITranscriber
from tests.conftest import AUDIO, StartBot
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.telegram_server import FakeTelegram
from tests.test_chat_e2e import WRITER, notes_in_db, say

KEY = "sk-transcribe-secret-4242424242"
BOOK_CLUB = "The book club meets on Thursday to discuss the new novel."


@pytest.fixture
def speech_api() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as server:
        yield server


@pytest.fixture
def transcriber(speech_api: FakeOpenAI) -> Iterator[OpenAITranscriber]:
    client = OpenAITranscriber(model="whisper-large-v3", api_key=KEY, base_url=speech_api.base_url)
    yield client
    client.close()


def hosted_settings(speech_api: FakeOpenAI) -> dict[str, object]:
    return {
        "transcribe_backend": "openai",
        "transcribe_base_url": speech_api.base_url,
        "transcribe_api_key": KEY,
        "transcribe_model": "whisper-large-v3",
        # No model is loaded with the hosted backend: a path that does not exist proves it.
        "whisper_model": "/nonexistent/whisper-model",
    }


async def send_book_club(telegram: FakeTelegram) -> int:
    data = (AUDIO / "book_club.ogg").read_bytes()
    telegram.send_voice(WRITER, telegram.add_file(data), duration=5, file_size=len(data))
    return (await telegram.wait_for_text(WRITER, "Transcribing for")).message_id


async def test_voice_note_is_transcribed_by_the_endpoint_and_filed(
    telegram: FakeTelegram,
    start_bot: StartBot,
    speech_api: FakeOpenAI,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with start_bot(**hosted_settings(speech_api)):
        await say(telegram, "/new Book club", "Book club")
        ack_id = await send_book_club(telegram)
        done = await telegram.wait_for_text(WRITER, "Filed under", timeout=60)

    assert done.message_id == ack_id and BOOK_CLUB in done.text
    [request] = speech_api.transcriptions
    assert request.fields["model"] == "whisper-large-v3"
    assert request.fields["response_format"] == "verbose_json"
    assert request.fields["prompt"] == "Notes.", "the outline's titles are the vocabulary"
    # Kept recordings are named *.audio; the service needs the real format in the name.
    assert request.filename == "note.ogg"
    assert request.size == len((AUDIO / "book_club.ogg").read_bytes())
    [note] = await notes_in_db(tmp_path)
    assert note.state == NoteState.FILED and note.transcript == BOOK_CLUB
    assert note.language == "en", "verbose_json names the language; the bot stores its code"
    assert KEY not in caplog.text


async def test_an_outage_gives_one_message_and_the_note_is_tried_again(
    telegram: FakeTelegram,
    start_bot: StartBot,
    speech_api: FakeOpenAI,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The first try and both of the SDK's retries meet a 503.
    speech_api.fail_next("unavailable", times=1 + hosted.MAX_RETRIES)
    caplog.set_level(logging.DEBUG)
    async with start_bot(**hosted_settings(speech_api)):
        await say(telegram, "/new Book club", "Book club")
        ack_id = await send_book_club(telegram)
        waiting = await telegram.wait_for_text(WRITER, "isn't answering", timeout=60)
        assert waiting.message_id == ack_id
        [note] = await notes_in_db(tmp_path)
        if note.state != NoteState.FILED:  # the retry may already have run
            assert note.state == NoteState.QUEUED, "kept for the retry, not failed"
            assert note.audio_path and os.path.exists(note.audio_path)  # noqa: ASYNC240
        done = await telegram.wait_for_text(WRITER, "Filed under", timeout=60)

    assert done.message_id == ack_id and BOOK_CLUB in done.text
    outage_texts = [t for t in [*done.edits, done.text] if "isn't answering" in t]
    assert len(outage_texts) == 1, "one clear message for the outage"
    assert "kept" in outage_texts[0] and "503" not in outage_texts[0]
    assert [r.status for r in speech_api.transcriptions] == [503, 503, 503, 200]
    [note] = await notes_in_db(tmp_path)
    assert note.state == NoteState.FILED
    assert KEY not in caplog.text


async def test_a_note_waiting_for_the_service_keeps_its_place_in_the_chat(
    telegram: FakeTelegram,
    start_bot: StartBot,
    speech_api: FakeOpenAI,
    tmp_path: Path,
) -> None:
    speech_api.fail_next("unavailable", times=1 + hosted.MAX_RETRIES)
    async with start_bot(**hosted_settings(speech_api)):
        await say(telegram, "/new Book club", "Book club")
        await send_book_club(telegram)
        await telegram.wait_for_text(WRITER, "isn't answering", timeout=60)
        await send_book_club(telegram)  # sent while the first one waits for its retry

        def both_filed() -> bool:
            return sum("Filed under" in t for t in telegram.sent_texts(WRITER)) == 2

        await telegram.wait_for(both_filed, timeout=60)
    first, second = sorted(await notes_in_db(tmp_path), key=lambda n: n.id)
    assert first.transcribed_at is not None and second.transcribed_at is not None
    assert first.transcribed_at < second.transcribed_at, "transcripts in the order sent"


def test_a_wrong_key_is_refused_without_showing_the_key(speech_api: FakeOpenAI) -> None:
    client = OpenAITranscriber(
        model="whisper-1", api_key="sk-wrong-key-0000000", base_url=speech_api.base_url
    )
    try:
        with pytest.raises(TranscriptionUnavailable) as refused:
            client.transcribe(AUDIO / "book_club.ogg")
    finally:
        client.close()
    assert refused.value.why == UnavailableReason.REFUSED
    assert "sk-wrong" not in str(refused.value)
    assert [r.status for r in speech_api.transcriptions] == [401], "a refusal is not retried"


def test_exhausted_quota_is_reported_as_refused(
    speech_api: FakeOpenAI, transcriber: OpenAITranscriber
) -> None:
    speech_api.fail_next("quota")
    with pytest.raises(TranscriptionUnavailable) as refused:
        transcriber.transcribe(AUDIO / "book_club.ogg")
    assert refused.value.why == UnavailableReason.REFUSED


def test_a_timeout_counts_as_an_outage(speech_api: FakeOpenAI) -> None:
    speech_api.hang_seconds = 5.0
    speech_api.fail_next("timeout", times=1 + hosted.MAX_RETRIES)
    client = OpenAITranscriber(
        model="whisper-1", api_key=KEY, base_url=speech_api.base_url, timeout=0.3
    )
    try:
        with pytest.raises(TranscriptionUnavailable) as outage:
            client.transcribe(AUDIO / "book_club.ogg")
    finally:
        client.close()
    assert outage.value.why == UnavailableReason.DOWN


def test_a_server_without_verbose_json_falls_back_to_json_and_local_duration(
    speech_api: FakeOpenAI, transcriber: OpenAITranscriber
) -> None:
    speech_api.verbose_json = False
    first = transcriber.transcribe(AUDIO / "book_club.ogg")
    second = transcriber.transcribe(AUDIO / "pipelines.ogg")

    assert first.text == BOOK_CLUB and first.language is None
    # No duration from the server: measured locally (book_club.ogg is about 4.4 s).
    assert 4.0 < first.duration < 5.0 and first.speech_duration == first.duration
    assert 5.5 < second.duration < 6.5
    formats = [r.fields["response_format"] for r in speech_api.transcriptions]
    assert formats == ["verbose_json", "json", "json"], "learnt once, not asked every time"


def test_a_cut_off_recording_reports_its_real_length(
    speech_api: FakeOpenAI, transcriber: OpenAITranscriber
) -> None:
    speech_api.verbose_json = False
    transcript = transcriber.transcribe(AUDIO / "truncated.ogg")
    # Telegram says 4 s; the worker compares and tells the writer the file is cut off.
    assert transcript.duration < 4 * transcribe.MIN_DECODED_SHARE - 1


def test_text_invented_on_silence_is_dropped(
    speech_api: FakeOpenAI, transcriber: OpenAITranscriber
) -> None:
    speech_api.transcript_text = "Thank you."
    speech_api.transcript_no_speech_prob = 0.92
    speech_api.transcript_avg_logprob = -1.4
    transcript = transcriber.transcribe(AUDIO / "silence.ogg")
    assert transcript.text == "" and transcript.speech_duration == 0.0
    assert 2.5 < transcript.duration < 3.5


def test_damaged_or_oversized_files_are_refused_before_any_upload(
    speech_api: FakeOpenAI, transcriber: OpenAITranscriber, tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged.audio"
    damaged.write_bytes(b"this is not audio" * 100)
    with pytest.raises(TranscriptionError) as unreadable:
        transcriber.transcribe(damaged)
    assert not isinstance(unreadable.value, TranscriptionUnavailable)
    assert not unreadable.value.too_large, "the bot's usual 'couldn't read' message"

    huge = tmp_path / "huge.audio"
    with huge.open("wb") as handle:
        handle.truncate(hosted.MAX_UPLOAD_BYTES + 1)
    with pytest.raises(TranscriptionError) as too_large:
        transcriber.transcribe(huge)
    assert too_large.value.too_large
    assert speech_api.transcriptions == []


def test_the_hosted_backend_loads_no_whisper_model_and_needs_an_endpoint(
    speech_api: FakeOpenAI, tmp_path: Path
) -> None:
    from bot.app import load_transcriber

    settings = load_settings(_env_file=None, data_dir=tmp_path, **hosted_settings(speech_api))
    loaded = load_transcriber(settings)
    assert isinstance(loaded, OpenAITranscriber)
    loaded.close()
    assert KEY in settings.secrets, "the key is redacted from every log line"

    with pytest.raises(ConfigError, match="TRANSCRIBE_API_KEY"):
        load_settings(_env_file=None, transcribe_backend="openai")
    with pytest.raises(ConfigError, match="TRANSCRIBE_BACKEND"):
        load_settings(_env_file=None, transcribe_backend="cloud")
