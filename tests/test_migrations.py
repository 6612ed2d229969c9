"""Migrations reach head and describe exactly what the models say, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from bot.db.migrate import upgrade_to_head
from bot.db.models import Base
from bot.db.session import create_engine


async def test_upgrade_to_head_matches_models(database_url: str) -> None:
    upgrade_to_head(database_url)  # idempotent: a restart migrates nothing
    engine = create_engine(database_url)

    def diff_and_tables(connection: Any) -> tuple[list[Any], set[str]]:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        return diff, set(inspect(connection).get_table_names())

    try:
        async with engine.connect() as connection:
            diff, tables = await connection.run_sync(diff_and_tables)
    finally:
        await engine.dispose()
    assert diff == []
    assert {
        "users",
        "articles",
        "sections",
        "notes",
        "note_parts",
        "section_drafts",
        "draft_versions",
        "usage_events",
        "alembic_version",
    } <= tables


def test_downgrade_to_base_and_upgrade_again(database_url: str) -> None:
    from alembic import command

    from bot.db.migrate import alembic_config

    command.downgrade(alembic_config(database_url), "base")
    upgrade_to_head(database_url)


def test_upgrading_and_downgrading_keeps_the_writers_notes(database_url: str) -> None:
    """Migrations after the first run on databases full of notes: nothing may be lost,
    including rows that only refer to a table SQLite rebuilds to alter it."""
    import asyncio

    from alembic import command
    from sqlalchemy import text

    from bot.db.migrate import alembic_config

    rows = [
        "INSERT INTO users (id, chat_id, created_at) VALUES (1, 1, CURRENT_TIMESTAMP)",
        "INSERT INTO articles (id, owner_id, title, is_active, created_at) "
        "VALUES (1, 1, 'A', true, CURRENT_TIMESTAMP)",
        "INSERT INTO sections (id, article_id, position, title, is_active) "
        "VALUES (1, 1, 0, 'S', true)",
        "INSERT INTO notes (id, owner_id, article_id, section_id, kind, chat_id, message_id, "
        "status, transcript, attempts, created_at) "
        "VALUES (1, 1, 1, 1, 'voice', 1, 1, 'transcribed', 'hello', 1, CURRENT_TIMESTAMP)",
        "INSERT INTO note_parts (id, note_id, section_id, position, text) "
        "VALUES (1, 1, 1, 0, 'hello')",
        "INSERT INTO section_suggestions (id, article_id, note_id, title, created_at) "
        "VALUES (1, 1, 1, 'New', CURRENT_TIMESTAMP)",
    ]
    counts = (
        "SELECT (SELECT count(*) FROM notes), (SELECT count(*) FROM note_parts), "
        "(SELECT count(*) FROM section_suggestions)"
    )

    async def run(statements: list[str]) -> tuple[int, ...]:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as connection:
                for statement in statements:
                    await connection.execute(text(statement))
                return tuple((await connection.execute(text(counts))).one())
        finally:
            await engine.dispose()

    config = alembic_config(database_url)
    command.downgrade(config, "base")
    command.upgrade(config, "0002")
    assert asyncio.run(run(rows)) == (1, 1, 1)
    command.upgrade(config, "head")
    assert asyncio.run(run([])) == (1, 1, 1)
    command.downgrade(config, "0002")
    assert asyncio.run(run([])) == (1, 1, 1)
    upgrade_to_head(database_url)
