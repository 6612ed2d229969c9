"""separate workers: note claims and the outbox

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# SQLite may rebuild the table: keep ids never reused (see bot/db/models.py).
NOTES_TABLE = {"sqlite_autoincrement": True}


def upgrade() -> None:
    with op.batch_alter_table("notes", schema=None, table_kwargs=NOTES_TABLE) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            # A constant default: SQLite then adds the column in place, no table rebuild.
            sa.Column("cancel_requested", sa.Boolean(), server_default="0", nullable=False)
        )
        # Claims look for the oldest unfinished note of each chat.
        batch_op.create_index("ix_notes_chat_id_id", ["chat_id", "id"], unique=False)
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("note_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_note_id"), ["note_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_note_id"))
    op.drop_table("outbox")
    with op.batch_alter_table("notes", schema=None, table_kwargs=NOTES_TABLE) as batch_op:
        batch_op.drop_index("ix_notes_chat_id_id")
        batch_op.drop_column("cancel_requested")
        batch_op.drop_column("claim_expires_at")
        batch_op.drop_column("claimed_by")
