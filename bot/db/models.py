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
from bot.notes.lifecycle import FailureCode, NoteState


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


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


def _text_enum(enum_class: type[enum.StrEnum], name: str, length: int = 30) -> Enum:
    # Stored as text: a new member later needs no ALTER TYPE on PostgreSQL.
    return Enum(
        enum_class,
        name=name,
        values_callable=lambda e: [m.value for m in e],
        native_enum=False,
        create_constraint=False,
        length=length,
    )


class Note(Base):
    """One message of the writer: a recording or a text, as it came from Telegram.

    The notes table is also the transcription queue: a QUEUED note is work for a worker, which
    claims it (`claimed_by`, renewed until `claim_expires_at`); see bot/notes/lifecycle.py.
    """

    __tablename__ = "notes"
    __table_args__ = (
        # A redelivered update maps to the same row.
        UniqueConstraint("chat_id", "message_id", name="uq_notes_chat_message"),
        Index("ix_notes_state", "state"),
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
    file_id: Mapped[str | None] = mapped_column(String(255))
    file_unique_id: Mapped[str | None] = mapped_column(String(255))
    duration: Mapped[int | None] = mapped_column(Integer)
    size: Mapped[int | None] = mapped_column(BigInteger)
    # What the writer typed under a recording: kept with the note, drafted with it.
    caption: Mapped[str | None] = mapped_column(Text)
    audio_path: Mapped[str | None] = mapped_column(String(500))
    state: Mapped[NoteState] = mapped_column(_text_enum(NoteState, "note_state"))
    # FAILED: why. QUEUED: what held it back last (a service that was down), else empty.
    failure: Mapped[FailureCode | None] = mapped_column(_text_enum(FailureCode, "failure_code"))
    transcript: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(16))
    # The detection picked `language` without being sure of it (the card offers others).
    language_unsure: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # "Transcribe again in …": the language the writer asked for, over their /language.
    requested_language: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    transcribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The queue: who works on the note and until when the claim holds (renewed while it
    # works; a dead worker's claim runs out and another takes the note over).
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claim_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # No worker takes the note before this (a transcription service was down).
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_requested: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # Claims that ran out because the worker died (never a graceful stop), and tries a
    # transcription service refused: after a few of either the note is set aside.
    crashes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    service_tries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Share of the recording transcribed so far (shown while it works).
    progress: Mapped[float | None] = mapped_column(Float)

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


class NoteWindow(Base):
    """One transcribed window of a recording in work (bot/transcription/base.py), kept until
    the note is filed: a note taken up again after a crash reuses the windows it had.

    `request`: what the windows were transcribed with (language, vocabulary); a note queued
    again with other settings starts afresh.
    """

    __tablename__ = "note_windows"
    __table_args__ = (
        UniqueConstraint("note_id", "position", name="uq_note_windows_position"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    request: Mapped[str] = mapped_column(String(64))
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    speech_s: Mapped[float] = mapped_column(Float)
    language: Mapped[str | None] = mapped_column(String(16))
    language_unsure: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    vocabulary_dropped: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    segments: Mapped[str] = mapped_column(Text)  # JSON: [[start, end, text], ...]


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


class InboxUpdate(Base):
    """A Telegram update, stored before Telegram is told it arrived (see bot/services/inbox.py).

    Polling confirms an update (the next getUpdates offset) only once its row is committed;
    a webhook answers 200 only then. `handled_at` is set once the handlers ran, so a crash in
    between leaves it to be handled at the next start.
    """

    __tablename__ = "inbox"
    __table_args__ = (
        # Telegram may deliver an update twice; it is handled once.
        UniqueConstraint("bot_id", "update_id", name="uq_inbox_bot_update"),
        Index("ix_inbox_unhandled", "handled_at", "id"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bot_id: Mapped[int] = mapped_column(BigInteger)
    update_id: Mapped[int] = mapped_column(BigInteger)
    # Updates of one chat are handled in order, chats side by side.
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[str] = mapped_column(Text)  # the update's JSON as Telegram sent it
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    handled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutboxMessage(Base):
    """Something to tell a writer, kept until Telegram accepted it (bot/services/outbox.py).

    Whoever changes a note (the bot, a worker process) adds a row in the same transaction;
    the bot process delivers each chat's rows in order, retrying with backoff. A row with a
    `subject` ("note:17") shows that subject's current state: the messages that show it are
    edited in place (see MessageView), and older rows of the same subject are superseded.
    No foreign key: a note deleted meanwhile must not take its message along.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_chat_id_id", "chat_id", "id"), _NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    subject: Mapped[str | None] = mapped_column(String(60))
    kind: Mapped[str] = mapped_column(String(30))
    payload: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")  # JSON
    # The writer's message the first message of the view replies to.
    reply_to: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MessageView(Base):
    """Which Telegram message shows which part of a subject (a note's card, in pieces when it
    is longer than one message), so a new state edits those messages instead of adding more."""

    __tablename__ = "message_views"
    __table_args__ = (
        UniqueConstraint("chat_id", "subject", "position", name="uq_message_views_piece"),
        Index("ix_message_views_message", "chat_id", "message_id"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    subject: Mapped[str] = mapped_column(String(60))
    position: Mapped[int] = mapped_column(Integer)
    message_id: Mapped[int] = mapped_column(BigInteger)


class UsageKind(enum.StrEnum):
    TRANSCRIPTION = "transcription"
    DRAFTING = "drafting"
    CHECKING = "checking"
    ROUTING = "routing"
    VISION = "vision"  # a photo described (bot/sources/)


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


class WriterPreferences(Base):
    """What a writer set for their notes: the spoken language (/language)."""

    __tablename__ = "writer_preferences"

    owner_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    # A whisper language code, or "auto" to detect; no row or NULL: WHISPER_LANGUAGE applies.
    language: Mapped[str | None] = mapped_column(String(16))


class GlossaryTerm(Base):
    """A name or term the writer spells their way (/glossary, /fix): it reaches whisper as
    vocabulary and the drafting prompt as the right spelling of what recognition garbles."""

    __tablename__ = "glossary_terms"
    __table_args__ = (
        # One writer's term once, whatever its case.
        UniqueConstraint("owner_id", "term_key", name="uq_glossary_terms_owner_key"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    term: Mapped[str] = mapped_column(String(100))
    term_key: Mapped[str] = mapped_column(String(100))  # casefolded, spaces collapsed
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LLMEndpoint(Base):
    """What an OpenAI-compatible endpoint and model accept, learned once and remembered.

    One row per (endpoint, model): the structured-output mode that worked (json_schema, JSON
    mode with the schema, or JSON mode with the schema only in the prompt) and whether
    streaming works, so a restart does not pay for failed requests again.
    """

    __tablename__ = "llm_endpoints"
    __table_args__ = (
        UniqueConstraint("endpoint", "model", name="uq_llm_endpoints_endpoint_model"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(500))
    model: Mapped[str] = mapped_column(String(200))
    output_mode: Mapped[str] = mapped_column(String(40))
    streaming: Mapped[bool] = mapped_column(Boolean, default=True)
    negotiated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


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
    account_id: Mapped[int] = mapped_column(ForeignKey("telegraph_accounts.id", ondelete="CASCADE"))
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


class NoteSource(Base):
    """Outside material a note holds: a page, an image, a document or a forwarded post
    (bot/sources/). Its note is a filed text note whose part is what drafting reads; this row
    says where the material came from, and whether its fetch, description or text
    extraction (done in the background) is still pending, done or failed."""

    __tablename__ = "note_sources"
    __table_args__ = (Index("ix_note_sources_status", "status"), _NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    note_id: Mapped[int] = mapped_column(
        ForeignKey("notes.id", ondelete="CASCADE"), unique=True
    )
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # link, image, document, post
    status: Mapped[str] = mapped_column(String(20))  # pending, ready, failed
    failure: Mapped[str | None] = mapped_column(String(40))
    url: Mapped[str | None] = mapped_column(String(2000))
    title: Mapped[str | None] = mapped_column(String(500))
    text: Mapped[str | None] = mapped_column(Text)  # main text, description or document text
    # A forwarded post's origin: "Channel title (@username)", a user's or chat's name.
    origin: Mapped[str | None] = mapped_column(String(300))
    origin_url: Mapped[str | None] = mapped_column(String(500))  # https://t.me/name/123
    file_id: Mapped[str | None] = mapped_column(String(255))
    file_name: Mapped[str | None] = mapped_column(String(255))
    mime_type: Mapped[str | None] = mapped_column(String(100))
    caption: Mapped[str | None] = mapped_column(Text)
    image_path: Mapped[str | None] = mapped_column(String(500))  # kept for figures
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    fetched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SectionVersion(Base):
    """One version of a section's text: drafted, revised by the writer's instruction, or an
    undo back to an earlier text. The newest row of a section is its current version."""

    __tablename__ = "section_versions"
    __table_args__ = (
        Index("ix_section_versions_section_id_id", "section_id", "id"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    section_id: Mapped[int] = mapped_column(ForeignKey("sections.id", ondelete="CASCADE"))
    cause: Mapped[str] = mapped_column(String(20))  # draft, revision, undo
    content: Mapped[str] = mapped_column(Text)  # JSON of the blocks (bot.drafting.model)
    # The drafted section it stems from (the draft cache key) and the notes it was written
    # from (a hash of their parts), to tell when new notes made it stale.
    draft_key: Mapped[str] = mapped_column(String(64))
    notes_key: Mapped[str] = mapped_column(String(64))
    instruction: Mapped[str | None] = mapped_column(Text)  # revision: the writer's words
    change: Mapped[str | None] = mapped_column(Text)  # revision: one line on what changed
    # A revision applied again after a redraft: the revision whose instruction it repeats.
    repeats_id: Mapped[int | None] = mapped_column(
        ForeignKey("section_versions.id", ondelete="SET NULL")
    )
    undone: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    kept: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SectionMessage(Base):
    """A chat message that shows one section, so a reply to it is an instruction for it."""

    __tablename__ = "section_messages"
    __table_args__ = (
        UniqueConstraint("chat_id", "message_id", name="uq_section_messages_chat_message"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    section_id: Mapped[int] = mapped_column(
        ForeignKey("sections.id", ondelete="CASCADE"), index=True
    )
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SpokenInstruction(Base):
    """A voice note that replied to a section's message: once transcribed it is an
    instruction for that section, never a note. `state`: waiting (not transcribed yet),
    ready (transcribed; the revision is due), done."""

    __tablename__ = "spoken_instructions"

    note_id: Mapped[int] = mapped_column(
        ForeignKey("notes.id", ondelete="CASCADE"), primary_key=True
    )
    section_id: Mapped[int] = mapped_column(
        ForeignKey("sections.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[str] = mapped_column(String(20), default="waiting", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TodoTick(Base):
    """A TODO of the draft the writer ticked (/done); matched to later drafts' TODOs by text."""

    __tablename__ = "todo_ticks"
    __table_args__ = (_NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    section_id: Mapped[int] = mapped_column(
        ForeignKey("sections.id", ondelete="CASCADE"), index=True
    )
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
