"""section suggestions

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "section_suggestions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("note_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["note_id"], ["notes.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("section_suggestions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_section_suggestions_article_id"), ["article_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_section_suggestions_note_id"), ["note_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("section_suggestions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_section_suggestions_note_id"))
        batch_op.drop_index(batch_op.f("ix_section_suggestions_article_id"))

    op.drop_table("section_suggestions")
