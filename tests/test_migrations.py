"""Migrations reach head and describe exactly what the models say."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from bot.db.migrate import upgrade_to_head
from bot.db.models import Base


def test_upgrade_to_head_matches_models(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "m.db"
    upgrade_to_head(f"sqlite+aiosqlite:///{path}")
    upgrade_to_head(f"sqlite+aiosqlite:///{path}")  # idempotent: a restart migrates nothing
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        tables = set(inspect(connection).get_table_names())
    engine.dispose()
    assert diff == []
    assert {"users", "articles", "sections", "notes", "note_parts", "alembic_version"} <= tables
