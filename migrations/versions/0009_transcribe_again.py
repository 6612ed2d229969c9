"""transcribe a note again in another language: the language asked for, an unsure detection

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN: a batch operation would rebuild the table on SQLite and drop its
    # AUTOINCREMENT, so ids of deleted notes could come back.
    op.add_column("notes", sa.Column("requested_language", sa.String(length=16), nullable=True))
    op.add_column(
        "notes",
        sa.Column("language_unsure", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table(
        "notes", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.drop_column("language_unsure")
        batch_op.drop_column("requested_language")
