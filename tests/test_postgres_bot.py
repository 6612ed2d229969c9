"""The whole bot on PostgreSQL (DATABASE_URL=postgresql+asyncpg://...), not only the services:
`python -m bot migrate` on an empty database, and the running bot filing, listing and undoing
notes. Skipped, with the reason, where no PostgreSQL server is reachable."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from alembic import command
from sqlalchemy import inspect, select

from bot.db.migrate import alembic_config
from bot.db.models import Note
from bot.db.session import create_engine, create_session_factory
from bot.notes.lifecycle import NoteState
from tests.conftest import AUDIO, StartBot
from tests.fakes.telegram_server import FakeTelegram
from tests.processes import ROOT, BotLauncher, bot_env
from tests.test_chat_e2e import WRITER, say


async def notes_in(database_url: str) -> list[Note]:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            return list((await session.scalars(select(Note).order_by(Note.id))).all())
    finally:
        await engine.dispose()


async def table_names(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


def test_python_m_bot_migrate_creates_the_schema_on_postgresql(
    postgres_url: str, telegram: FakeTelegram, tmp_path: Path, tiny_model_path: str
) -> None:
    command.downgrade(alembic_config(postgres_url), "base")
    assert asyncio.run(table_names(postgres_url)) <= {"alembic_version"}

    env = bot_env(telegram, tmp_path / "data", tiny_model_path)
    env["DATABASE_URL"] = postgres_url
    for _ in range(2):  # the second run finds nothing to do
        done = subprocess.run(
            [sys.executable, "-m", "bot", "migrate"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "Database is up to date" in done.stderr
    assert {"users", "articles", "sections", "notes", "note_parts"} <= asyncio.run(
        table_names(postgres_url)
    )
    assert not (tmp_path / "data" / "bot.db").exists(), "SQLite was not touched"


async def test_the_bot_files_lists_and_undoes_notes_on_postgresql(
    telegram: FakeTelegram, start_bot: StartBot, postgres_url: str
) -> None:
    async with start_bot(database_url=postgres_url):
        await say(telegram, "/new Book club\n", "Book club")
        await say(telegram, "/outline\nReading list\nSnacks", "Outline of")
        data = (AUDIO / "book_club.ogg").read_bytes()
        telegram.send_voice(WRITER, telegram.add_file(data), duration=5, file_size=len(data))
        filed = await telegram.wait_for_text(WRITER, "Filed under", timeout=60)
        assert "Reading list" in filed.text
        await say(telegram, "Bring two copies of the novel", "Filed under")
        listing = await say(telegram, "/notes", "Bring two copies")
        assert "book club" in listing.lower()
        await say(telegram, "/undo", "Removed your last note")

    [voice] = await notes_in(postgres_url)
    assert voice.state == NoteState.FILED
    assert "book club" in (voice.transcript or "").lower()


def test_python_m_bot_runs_on_postgresql(
    telegram: FakeTelegram, bots: BotLauncher, postgres_url: str
) -> None:
    """The real command: migrate, start, take a note, stop on SIGTERM."""
    bots.env["DATABASE_URL"] = postgres_url
    bot = bots.start()
    telegram.send_text(WRITER, "A note kept in PostgreSQL")
    bots.wait_for(
        bot,
        lambda: any("Filed under" in t for t in telegram.sent_texts(WRITER)),
        "the note to be filed",
        timeout=90,
    )
    assert bot.stop(timeout=30) == 0
    assert not bots.db_path.exists(), "SQLite was not touched"
