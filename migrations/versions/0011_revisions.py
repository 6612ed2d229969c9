"""revisions: section versions, the messages that show sections, spoken instructions, ticked TODOs

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "section_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("section_id", sa.Integer(), nullable=False),
        sa.Column("cause", sa.String(length=20), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("draft_key", sa.String(length=64), nullable=False),
        sa.Column("notes_key", sa.String(length=64), nullable=False),
        sa.Column("instruction", sa.Text(), nullable=True),
        sa.Column("change", sa.Text(), nullable=True),
        sa.Column("repeats_id", sa.Integer(), nullable=True),
        sa.Column("undone", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("kept", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["section_id"], ["sections.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["repeats_id"], ["section_versions.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("section_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_section_versions_article_id"), ["article_id"], unique=False
        )
        batch_op.create_index(
            "ix_section_versions_section_id_id", ["section_id", "id"], unique=False
        )
    op.create_table(
        "section_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("section_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["section_id"], ["sections.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chat_id", "message_id", name="uq_section_messages_chat_message"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("section_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_section_messages_article_id"), ["article_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_section_messages_section_id"), ["section_id"], unique=False
        )
    op.create_table(
        "spoken_instructions",
        sa.Column("note_id", sa.Integer(), nullable=False),
        sa.Column("section_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["note_id"], ["notes.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["section_id"], ["sections.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("note_id"),
    )
    with op.batch_alter_table("spoken_instructions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_spoken_instructions_section_id"), ["section_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_spoken_instructions_state"), ["state"], unique=False
        )
    op.create_table(
        "todo_ticks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("section_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["section_id"], ["sections.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("todo_ticks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_todo_ticks_section_id"), ["section_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("todo_ticks")
    op.drop_table("spoken_instructions")
    op.drop_table("section_messages")
    op.drop_table("section_versions")
