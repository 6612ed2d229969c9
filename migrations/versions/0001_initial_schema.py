"""initial schema

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "articles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_articles_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(
            "uq_articles_one_active",
            ["owner_id"],
            unique=True,
            sqlite_where=sa.text("is_active"),
            postgresql_where=sa.text("is_active"),
        )

    op.create_table(
        "draft_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("markdown", sa.Text(), nullable=False),
        sa.Column("sections_regenerated", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("figures", sa.Text(), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("draft_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_draft_versions_article_id"), ["article_id"], unique=False
        )

    op.create_table(
        "sections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("sections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sections_article_id"), ["article_id"], unique=False)
        batch_op.create_index(
            "uq_sections_one_active",
            ["article_id"],
            unique=True,
            sqlite_where=sa.text("is_active"),
            postgresql_where=sa.text("is_active"),
        )

    op.create_table(
        "notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("section_id", sa.Integer(), nullable=True),
        sa.Column(
            "kind", sa.Enum("voice", "audio", "video", "text", name="note_kind"), nullable=False
        ),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("ack_message_id", sa.BigInteger(), nullable=True),
        sa.Column("file_id", sa.String(length=255), nullable=True),
        sa.Column("file_unique_id", sa.String(length=255), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("audio_path", sa.String(length=500), nullable=True),
        sa.Column(
            "status",
            sa.Enum("received", "downloaded", "transcribed", "failed", name="note_status"),
            nullable=False,
        ),
        sa.Column("transcript", sa.Text(), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("transcribed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["section_id"], ["sections.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chat_id", "message_id", name="uq_notes_chat_message"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notes_article_id"), ["article_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_notes_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_notes_section_id"), ["section_id"], unique=False)
        batch_op.create_index("ix_notes_status", ["status"], unique=False)

    op.create_table(
        "section_drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("section_id", sa.Integer(), nullable=True),
        sa.Column("cache_key", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["section_id"], ["sections.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("article_id", "cache_key", name="uq_section_drafts_key"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("section_drafts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_section_drafts_article_id"), ["article_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_section_drafts_section_id"), ["section_id"], unique=False
        )

    op.create_table(
        "note_parts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("note_id", sa.Integer(), nullable=False),
        sa.Column("section_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["note_id"], ["notes.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["section_id"], ["sections.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("note_parts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_note_parts_note_id"), ["note_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_note_parts_section_id"), ["section_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("note_parts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_note_parts_section_id"))
        batch_op.drop_index(batch_op.f("ix_note_parts_note_id"))

    op.drop_table("note_parts")
    with op.batch_alter_table("section_drafts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_section_drafts_section_id"))
        batch_op.drop_index(batch_op.f("ix_section_drafts_article_id"))

    op.drop_table("section_drafts")
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.drop_index("ix_notes_status")
        batch_op.drop_index(batch_op.f("ix_notes_section_id"))
        batch_op.drop_index(batch_op.f("ix_notes_owner_id"))
        batch_op.drop_index(batch_op.f("ix_notes_article_id"))

    op.drop_table("notes")
    with op.batch_alter_table("sections", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_sections_one_active",
            sqlite_where=sa.text("is_active"),
            postgresql_where=sa.text("is_active"),
        )
        batch_op.drop_index(batch_op.f("ix_sections_article_id"))

    op.drop_table("sections")
    with op.batch_alter_table("draft_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_draft_versions_article_id"))

    op.drop_table("draft_versions")
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_articles_one_active",
            sqlite_where=sa.text("is_active"),
            postgresql_where=sa.text("is_active"),
        )
        batch_op.drop_index(batch_op.f("ix_articles_owner_id"))

    op.drop_table("articles")
    op.drop_table("users")
    # PostgreSQL keeps enum types after their tables are gone; drop them so upgrade works again.
    sa.Enum(name="note_status").drop(op.get_bind(), checkfirst=True)
    sa.Enum(name="note_kind").drop(op.get_bind(), checkfirst=True)
