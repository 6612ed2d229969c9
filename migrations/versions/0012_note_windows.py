"""note windows: the transcribed windows of a recording in work, reused after a crash

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "note_windows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("note_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("request", sa.String(length=64), nullable=False),
        sa.Column("start_s", sa.Float(), nullable=False),
        sa.Column("end_s", sa.Float(), nullable=False),
        sa.Column("speech_s", sa.Float(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("language_unsure", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("vocabulary_dropped", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("segments", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["note_id"], ["notes.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("note_id", "position", name="uq_note_windows_position"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("note_windows", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_note_windows_note_id"), ["note_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("note_windows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_note_windows_note_id"))
    op.drop_table("note_windows")
