"""SQLAlchemy 2.0 typed models: the whole schema of the bot."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.domain import NoteKind


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class NoteStatus(enum.StrEnum):
    RECEIVED = "received"
    DOWNLOADED = "downloaded"
    TRANSCRIBED = "transcribed"
    FAILED = "failed"


UNFINISHED_STATUSES = (NoteStatus.RECEIVED, NoteStatus.DOWNLOADED)

# Without AUTOINCREMENT, SQLite hands a deleted row's id to the next row: a note removed by
# /undo would pass its id (and a queued job or an old button) to the next note.
_NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


class User(Base):
    __tablename__ = "users"

    # The Telegram user id: every other row is scoped by it.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Article(Base):
    __tablename__ = "articles"
    __table_args__ = (
        # At most one active article per writer.
        Index(
            "uq_articles_one_active",
            "owner_id",
            unique=True,
            sqlite_where=text("is_active"),
            postgresql_where=text("is_active"),
        ),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    sections: Mapped[list[Section]] = relationship(
        back_populates="article", order_by="Section.position", cascade="all, delete-orphan"
    )


class Section(Base):
    __tablename__ = "sections"
    __table_args__ = (
        Index(
            "uq_sections_one_active",
            "article_id",
            unique=True,
            sqlite_where=text("is_active"),
            postgresql_where=text("is_active"),
        ),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    article: Mapped[Article] = relationship(back_populates="sections")


class Note(Base):
    """One message of the writer: a recording or a text, as it came from Telegram."""

    __tablename__ = "notes"
    __table_args__ = (
        # A redelivered update maps to the same row.
        UniqueConstraint("chat_id", "message_id", name="uq_notes_chat_message"),
        Index("ix_notes_status", "status"),
        Index("ix_notes_chat_id_id", "chat_id", "id"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    # The section that was active when the note came in.
    section_id: Mapped[int | None] = mapped_column(
        ForeignKey("sections.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[NoteKind] = mapped_column(
        Enum(NoteKind, name="note_kind", values_callable=lambda e: [m.value for m in e])
    )
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)
    ack_message_id: Mapped[int | None] = mapped_column(BigInteger)
    file_id: Mapped[str | None] = mapped_column(String(255))
    file_unique_id: Mapped[str | None] = mapped_column(String(255))
    duration: Mapped[int | None] = mapped_column(Integer)
    size: Mapped[int | None] = mapped_column(BigInteger)
    audio_path: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[NoteStatus] = mapped_column(
        Enum(NoteStatus, name="note_status", values_callable=lambda e: [m.value for m in e])
    )
    transcript: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    transcribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Separate worker processes (SEPARATE_WORKERS): who transcribes the note, until when the
    # claim holds (renewed while it works; a dead worker's claim runs out and another takes
    # the note), and whether the writer asked to stop it (/cancel).
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claim_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_requested: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )

    parts: Mapped[list[NotePart]] = relationship(
        back_populates="note", order_by="NotePart.position", cascade="all, delete-orphan"
    )


class NotePart(Base):
    """A piece of a note's text filed under one section.

    A note usually has one part; a recording that walks through several sections is split
    into one part per section. Section note counts and drafts are built from parts.
    """

    __tablename__ = "note_parts"
    __table_args__ = (_NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"), index=True)
    # RESTRICT: a section holding notes can never be deleted along with them.
    section_id: Mapped[int] = mapped_column(
        ForeignKey("sections.id", ondelete="RESTRICT"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    text: Mapped[str] = mapped_column(Text)

    note: Mapped[Note] = relationship(back_populates="parts")


class SectionSuggestion(Base):
    """A heading the writer spoke that is not in the outline yet, offered as a new section."""

    __tablename__ = "section_suggestions"
    __table_args__ = (_NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SectionDraft(Base):
    """A drafted piece of an article, reused while its notes, prompt and model stay the same.

    section_id is empty for the introduction, which is drafted from the whole article.
    """

    __tablename__ = "section_drafts"
    __table_args__ = (
        UniqueConstraint("article_id", "cache_key", name="uq_section_drafts_key"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    section_id: Mapped[int | None] = mapped_column(
        ForeignKey("sections.id", ondelete="CASCADE"), index=True
    )
    cache_key: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)  # JSON of the validated draft
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DraftVersion(Base):
    """The assembled article each time a /draft changed something."""

    __tablename__ = "draft_versions"
    __table_args__ = (_NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    markdown: Mapped[str] = mapped_column(Text)
    sections_regenerated: Mapped[int] = mapped_column(Integer, default=0)
    model: Mapped[str] = mapped_column(String(200), default="")
    # JSON: points of the notes kept and restored, citations checked and removed.
    figures: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OutboxMessage(Base):
    """A message for a writer that a worker process produced and the bot process sends.

    Only the bot process talks to Telegram's update stream; worker processes leave what the
    writer should see here (a transcript, a failure, progress) and the bot delivers it.
    No foreign key: a note deleted with /undo meanwhile must not take its message along.
    """

    __tablename__ = "outbox"
    __table_args__ = (_NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    note_id: Mapped[int] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(20))  # "outcome" or "progress"
    payload: Mapped[str] = mapped_column(Text)  # JSON
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UsageKind(enum.StrEnum):
    TRANSCRIPTION = "transcription"
    DRAFTING = "drafting"
    CHECKING = "checking"
    ROUTING = "routing"


class UsageEvent(Base):
    """What one writer spent: a transcribed recording's audio, or one LLM request's tokens."""

    __tablename__ = "usage_events"
    __table_args__ = (
        # /usage sums one writer's events of one month.
        Index("ix_usage_events_owner_created", "owner_id", "created_at"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[UsageKind] = mapped_column(
        Enum(
            UsageKind,
            name="usage_kind",
            values_callable=lambda e: [m.value for m in e],
            # Stored as text: a new kind later needs no ALTER TYPE on PostgreSQL.
            native_enum=False,
            length=20,
        )
    )
    model: Mapped[str] = mapped_column(String(200), default="", server_default="")
    audio_seconds: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    input_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    output_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The endpoint sent no token counts: these are our estimate.
    estimated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TelegraphAccount(Base):
    """A writer's Telegraph account on one Telegraph server, made on their first publish.

    The access token edits every page of the account: it is never logged or shown.
    """

    __tablename__ = "telegraph_accounts"
    __table_args__ = (
        UniqueConstraint("owner_id", "api_url", name="uq_telegraph_accounts_owner_api"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # A token is only good on the server that issued it (TELEGRAPH_API_URL).
    api_url: Mapped[str] = mapped_column(String(300))
    access_token: Mapped[str] = mapped_column(String(200))
    author_name: Mapped[str] = mapped_column(String(128), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TelegraphPage(Base):
    """A page an article is published on; a long article has several parts, linked."""

    __tablename__ = "telegraph_pages"
    __table_args__ = (
        UniqueConstraint("account_id", "article_id", "part", name="uq_telegraph_pages_part"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("telegraph_accounts.id", ondelete="CASCADE")
    )
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    part: Mapped[int] = mapped_column(Integer)  # 1 = the page the article opens on
    path: Mapped[str] = mapped_column(String(300))
    url: Mapped[str] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Publication(Base):
    """What was last published of an article to one target (git or Telegraph)."""

    __tablename__ = "publications"
    __table_args__ = (
        UniqueConstraint("article_id", "target", name="uq_publications_article_target"),
        Index("ix_publications_target_destination", "target", "destination"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    target: Mapped[str] = mapped_column(String(20))  # "git" or "telegraph"
    # Where it went: the file in the repository, or the first page's URL.
    destination: Mapped[str] = mapped_column(String(500))
    draft_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("draft_versions.id", ondelete="SET NULL")
    )
    version_number: Mapped[int] = mapped_column(Integer)
    # The commit's hash, or the page's URL.
    reference: Mapped[str] = mapped_column(String(500), default="", server_default="")
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
