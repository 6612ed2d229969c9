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
