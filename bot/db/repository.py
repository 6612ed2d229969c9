"""Queries; the caller owns the transaction.

`Repository` is the writer's view: every query through it is scoped by the owner. The queue,
the inbox and the outbox span all writers by design and have query classes of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import Insert as PGInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SQLiteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    Article,
    Base,
    DraftVersion,
    GlossaryTerm,
    InboxUpdate,
    LLMEndpoint,
    MessageView,
    Note,
    NotePart,
    NoteSource,
    OutboxMessage,
    Publication,
    Section,
    SectionDraft,
    SectionSuggestion,
    TelegraphAccount,
    TelegraphPage,
    UsageEvent,
    UsageKind,
    User,
    WriterPreferences,
    utcnow,
)
from bot.db.revisions import RevisionRepo
from bot.notes.lifecycle import UNFINISHED, NoteState


def _insert(session: AsyncSession, model: type[Base]) -> PGInsert | SQLiteInsert:
    """An INSERT that can skip duplicates (ON CONFLICT DO NOTHING) on either database."""
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    return pg_insert(model) if dialect == "postgresql" else sqlite_insert(model)


class _Scoped:
    def __init__(self, session: AsyncSession, owner_id: int) -> None:
        self.session = session
        self.owner_id = owner_id


class UserRepo(_Scoped):
    """The writer's own row."""

    async def ensure(self, chat_id: int | None = None) -> User:
        user = await self.session.get(User, self.owner_id)
        if user is None:
            user = User(id=self.owner_id, chat_id=chat_id)
            self.session.add(user)
            await self.session.flush()
        elif chat_id is not None and user.chat_id != chat_id:
            user.chat_id = chat_id
        return user


class ArticleRepo(_Scoped):
    """The writer's articles; at most one is active."""

    async def all(self) -> Sequence[Article]:
        result = await self.session.scalars(
            select(Article).where(Article.owner_id == self.owner_id).order_by(Article.id)
        )
        return result.all()

    async def active(self) -> Article | None:
        return await self.session.scalar(
            select(Article).where(Article.owner_id == self.owner_id, Article.is_active)
        )

    async def get(self, article_id: int) -> Article | None:
        return await self.session.scalar(
            select(Article).where(Article.owner_id == self.owner_id, Article.id == article_id)
        )

    async def add(self, title: str) -> Article:
        await self.session.execute(
            update(Article).where(Article.owner_id == self.owner_id).values(is_active=False)
        )
        article = Article(owner_id=self.owner_id, title=title, is_active=True)
        self.session.add(article)
        await self.session.flush()
        return article

    async def activate(self, article: Article) -> None:
        await self.session.execute(
            update(Article)
            .where(Article.owner_id == self.owner_id, Article.id != article.id)
            .values(is_active=False)
        )
        await self.session.flush()
        article.is_active = True
        await self.session.flush()

    async def note_counts(self) -> dict[int, int]:
        rows = await self.session.execute(
            select(Note.article_id, func.count(Note.id))
            .where(Note.owner_id == self.owner_id, Note.state == NoteState.FILED)
            .group_by(Note.article_id)
        )
        return {article_id: count for article_id, count in rows}


class SectionRepo(_Scoped):
    """Sections of the writer's articles; at most one per article is active."""

    async def of_article(self, article_id: int) -> Sequence[Section]:
        result = await self.session.scalars(
            select(Section)
            .join(Article)
            .where(Article.owner_id == self.owner_id, Section.article_id == article_id)
            .order_by(Section.position)
        )
        return result.all()

    async def get(self, section_id: int) -> Section | None:
        return await self.session.scalar(
            select(Section)
            .join(Article)
            .where(Article.owner_id == self.owner_id, Section.id == section_id)
        )

    async def add(self, article_id: int, position: int, title: str) -> Section:
        section = Section(article_id=article_id, position=position, title=title)
        self.session.add(section)
        await self.session.flush()
        return section

    async def activate(self, section: Section) -> None:
        await self.session.execute(
            update(Section)
            .where(Section.article_id == section.article_id, Section.id != section.id)
            .values(is_active=False)
        )
        await self.session.flush()
        section.is_active = True
        await self.session.flush()

    async def delete(self, section: Section) -> None:
        await self.session.delete(section)
        await self.session.flush()

    async def note_counts(self, article_id: int) -> dict[int, int]:
        """How many distinct notes are filed under each section of the article."""
        rows = await self.session.execute(
            select(NotePart.section_id, func.count(func.distinct(NotePart.note_id)))
            .join(Note, Note.id == NotePart.note_id)
            .where(Note.owner_id == self.owner_id, Note.article_id == article_id)
            .group_by(NotePart.section_id)
        )
        return {section_id: count for section_id, count in rows}


class NoteRepo(_Scoped):
    """The writer's notes, as they came from Telegram."""

    async def insert_once(self, values: dict[str, object]) -> tuple[int, bool]:
        """Insert a note unless (chat_id, message_id) exists; return its id and if it is new."""
        stmt = (
            _insert(self.session, Note)
            .values(owner_id=self.owner_id, **values)
            .on_conflict_do_nothing(index_elements=["chat_id", "message_id"])
            .returning(Note.id)
        )
        new_id = await self.session.scalar(stmt)
        if new_id is not None:
            return new_id, True
        existing = await self.session.scalar(
            select(Note.id).where(
                Note.owner_id == self.owner_id,
                Note.chat_id == values["chat_id"],
                Note.message_id == values["message_id"],
            )
        )
        if existing is None:
            # The pair belongs to another owner: impossible with real Telegram ids.
            raise LookupError("message already stored for another user")
        return existing, False

    async def get(self, note_id: int, *, lock: bool = False) -> Note | None:
        """`lock`: hold the row until the transaction ends (no worker claims it meanwhile)."""
        query = select(Note).where(Note.owner_id == self.owner_id, Note.id == note_id)
        if lock:
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def by_message(self, chat_id: int, message_id: int) -> Note | None:
        return await self.session.scalar(
            select(Note).where(
                Note.owner_id == self.owner_id,
                Note.chat_id == chat_id,
                Note.message_id == message_id,
            )
        )

    async def latest(self) -> Note | None:
        return await self.session.scalar(
            select(Note).where(Note.owner_id == self.owner_id).order_by(Note.id.desc()).limit(1)
        )

    async def delete(self, note: Note) -> None:
        await self.session.execute(delete(NotePart).where(NotePart.note_id == note.id))
        await self.session.delete(note)
        await self.session.flush()

    async def unfinished_count(self, article_id: int) -> int:
        count = await self.session.scalar(
            select(func.count(Note.id)).where(
                Note.owner_id == self.owner_id,
                Note.article_id == article_id,
                Note.state.in_(UNFINISHED),
            )
        )
        return int(count or 0)


class PartRepo(_Scoped):
    """Pieces of notes filed under sections."""

    async def add(self, note: Note, section_id: int, text: str, position: int = 0) -> NotePart:
        part = NotePart(note_id=note.id, section_id=section_id, position=position, text=text)
        self.session.add(part)
        await self.session.flush()
        return part

    async def get(self, part_id: int) -> tuple[NotePart, Note] | None:
        row = (
            await self.session.execute(
                select(NotePart, Note)
                .join(Note, Note.id == NotePart.note_id)
                .where(Note.owner_id == self.owner_id, NotePart.id == part_id)
            )
        ).first()
        return (row[0], row[1]) if row else None

    async def of_note(self, note_id: int) -> list[NotePart]:
        result = await self.session.scalars(
            select(NotePart)
            .join(Note, Note.id == NotePart.note_id)
            .where(Note.owner_id == self.owner_id, NotePart.note_id == note_id)
            .order_by(NotePart.position)
        )
        return list(result.all())

    async def delete(self, part: NotePart) -> None:
        await self.session.delete(part)
        await self.session.flush()

    async def remove_of_note(self, note_id: int) -> None:
        for part in await self.of_note(note_id):
            await self.session.delete(part)
        await self.session.flush()

    async def of_article(self, article_id: int) -> Sequence[tuple[NotePart, Note]]:
        rows = await self.session.execute(
            select(NotePart, Note)
            .join(Note, Note.id == NotePart.note_id)
            .where(Note.owner_id == self.owner_id, Note.article_id == article_id)
            .order_by(Note.created_at, Note.id, NotePart.position)
        )
        return [(part, note) for part, note in rows]


class SuggestionRepo(_Scoped):
    """Spoken headings offered as new sections."""

    async def add(self, article_id: int, note_id: int, title: str) -> int:
        suggestion = SectionSuggestion(article_id=article_id, note_id=note_id, title=title)
        self.session.add(suggestion)
        await self.session.flush()
        return suggestion.id

    async def get(self, suggestion_id: int) -> SectionSuggestion | None:
        return await self.session.scalar(
            select(SectionSuggestion)
            .join(Article, Article.id == SectionSuggestion.article_id)
            .where(Article.owner_id == self.owner_id, SectionSuggestion.id == suggestion_id)
        )

    async def delete(self, suggestion: SectionSuggestion) -> None:
        await self.session.delete(suggestion)
        await self.session.flush()

    async def remove_of_note(self, note_id: int) -> None:
        suggestions = await self.session.scalars(
            select(SectionSuggestion)
            .join(Article, Article.id == SectionSuggestion.article_id)
            .where(Article.owner_id == self.owner_id, SectionSuggestion.note_id == note_id)
        )
        for suggestion in suggestions.all():
            await self.session.delete(suggestion)
        await self.session.flush()


class DraftRepo(_Scoped):
    """Cached section drafts and the assembled draft versions."""

    async def cached(self, article_id: int, cache_key: str) -> SectionDraft | None:
        return await self.session.scalar(
            select(SectionDraft)
            .join(Article, Article.id == SectionDraft.article_id)
            .where(
                Article.owner_id == self.owner_id,
                SectionDraft.article_id == article_id,
                SectionDraft.cache_key == cache_key,
            )
        )

    async def cached_all(self, article_id: int) -> dict[str, str]:
        rows = await self.session.execute(
            select(SectionDraft.cache_key, SectionDraft.content)
            .join(Article, Article.id == SectionDraft.article_id)
            .where(Article.owner_id == self.owner_id, SectionDraft.article_id == article_id)
        )
        return {key: content for key, content in rows}

    async def save_cached(
        self, article_id: int, section_id: int | None, cache_key: str, content: str
    ) -> None:
        if await self.cached(article_id, cache_key) is None:
            self.session.add(
                SectionDraft(
                    article_id=article_id,
                    section_id=section_id,
                    cache_key=cache_key,
                    content=content,
                )
            )
            await self.session.flush()

    async def latest_version(self, article_id: int) -> DraftVersion | None:
        return await self.session.scalar(
            select(DraftVersion)
            .join(Article, Article.id == DraftVersion.article_id)
            .where(Article.owner_id == self.owner_id, DraftVersion.article_id == article_id)
            .order_by(DraftVersion.id.desc())
            .limit(1)
        )

    async def version_number(self, article_id: int, version_id: int) -> int:
        """1 for an article's first stored draft, 2 for the next…"""
        count = await self.session.scalar(
            select(func.count(DraftVersion.id))
            .join(Article, Article.id == DraftVersion.article_id)
            .where(
                Article.owner_id == self.owner_id,
                DraftVersion.article_id == article_id,
                DraftVersion.id <= version_id,
            )
        )
        return int(count or 0)

    async def add_version(
        self, article_id: int, markdown: str, sections_regenerated: int, model: str, figures: str
    ) -> DraftVersion:
        version = DraftVersion(
            article_id=article_id,
            markdown=markdown,
            sections_regenerated=sections_regenerated,
            model=model,
            figures=figures,
        )
        self.session.add(version)
        await self.session.flush()
        return version


class UsageRepo(_Scoped):
    """What the writer spent: audio seconds and LLM tokens."""

    async def add(
        self,
        kind: UsageKind,
        *,
        model: str = "",
        audio_seconds: float = 0.0,
        input_tokens: int = 0,
        output_tokens: int = 0,
        estimated: bool = False,
    ) -> None:
        self.session.add(
            UsageEvent(
                owner_id=self.owner_id,
                kind=kind,
                model=model,
                audio_seconds=audio_seconds,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                estimated=estimated,
            )
        )
        await self.session.flush()

    async def totals(
        self, start: datetime, end: datetime
    ) -> Sequence[tuple[UsageKind, str, bool, int, float, int, int]]:
        """Per kind, model and estimated flag: events, audio seconds, input and output tokens."""
        rows = await self.session.execute(
            select(
                UsageEvent.kind,
                UsageEvent.model,
                UsageEvent.estimated,
                func.count(UsageEvent.id),
                func.coalesce(func.sum(UsageEvent.audio_seconds), 0.0),
                func.coalesce(func.sum(UsageEvent.input_tokens), 0),
                func.coalesce(func.sum(UsageEvent.output_tokens), 0),
            )
            .where(
                UsageEvent.owner_id == self.owner_id,
                UsageEvent.created_at >= start,
                UsageEvent.created_at < end,
            )
            .group_by(UsageEvent.kind, UsageEvent.model, UsageEvent.estimated)
            .order_by(UsageEvent.kind, UsageEvent.model)
        )
        return [
            (kind, model, bool(estimated), int(count), float(seconds), int(inp), int(out))
            for kind, model, estimated, count, seconds, inp, out in rows
        ]


class PublishingRepo(_Scoped):
    """The writer's Telegraph accounts and pages, and what was last published where."""

    async def telegraph_account(self, api_url: str) -> TelegraphAccount | None:
        return await self.session.scalar(
            select(TelegraphAccount).where(
                TelegraphAccount.owner_id == self.owner_id, TelegraphAccount.api_url == api_url
            )
        )

    async def add_telegraph_account(
        self, api_url: str, access_token: str, author_name: str
    ) -> TelegraphAccount:
        account = TelegraphAccount(
            owner_id=self.owner_id,
            api_url=api_url,
            access_token=access_token,
            author_name=author_name,
        )
        self.session.add(account)
        await self.session.flush()
        return account

    async def forget_telegraph_account(self, account_id: int) -> None:
        """An account whose token Telegraph no longer takes, with its pages."""
        await self.session.execute(
            delete(TelegraphPage).where(
                TelegraphPage.account_id == account_id,
                TelegraphPage.account_id.in_(
                    select(TelegraphAccount.id).where(TelegraphAccount.owner_id == self.owner_id)
                ),
            )
        )
        await self.session.execute(
            delete(TelegraphAccount).where(
                TelegraphAccount.id == account_id, TelegraphAccount.owner_id == self.owner_id
            )
        )

    async def telegraph_pages(self, account_id: int, article_id: int) -> list[TelegraphPage]:
        result = await self.session.scalars(
            select(TelegraphPage)
            .join(TelegraphAccount, TelegraphAccount.id == TelegraphPage.account_id)
            .where(
                TelegraphAccount.owner_id == self.owner_id,
                TelegraphPage.account_id == account_id,
                TelegraphPage.article_id == article_id,
            )
            .order_by(TelegraphPage.part)
        )
        return list(result.all())

    async def save_telegraph_page(
        self, account_id: int, article_id: int, part: int, path: str, url: str
    ) -> None:
        page = await self.session.scalar(
            select(TelegraphPage)
            .join(TelegraphAccount, TelegraphAccount.id == TelegraphPage.account_id)
            .where(
                TelegraphAccount.owner_id == self.owner_id,
                TelegraphPage.account_id == account_id,
                TelegraphPage.article_id == article_id,
                TelegraphPage.part == part,
            )
        )
        if page is None:
            self.session.add(
                TelegraphPage(
                    account_id=account_id, article_id=article_id, part=part, path=path, url=url
                )
            )
        else:
            page.path, page.url, page.updated_at = path, url, utcnow()
        await self.session.flush()

    async def last_publication(self, article_id: int, target: str) -> Publication | None:
        return await self.session.scalar(
            select(Publication)
            .join(Article, Article.id == Publication.article_id)
            .where(
                Article.owner_id == self.owner_id,
                Publication.article_id == article_id,
                Publication.target == target,
            )
        )

    async def record_publication(
        self,
        article_id: int,
        target: str,
        destination: str,
        version_id: int,
        version_number: int,
        reference: str,
    ) -> None:
        publication = await self.last_publication(article_id, target)
        if publication is None:
            publication = Publication(article_id=article_id, target=target)
            self.session.add(publication)
        publication.destination = destination
        publication.draft_version_id = version_id
        publication.version_number = version_number
        publication.reference = reference
        publication.published_at = utcnow()
        await self.session.flush()


class VocabularyRepo(_Scoped):
    """The writer's spoken language and glossary."""

    async def language(self) -> str | None:
        preferences = await self.session.get(WriterPreferences, self.owner_id)
        return preferences.language if preferences is not None else None

    async def set_language(self, language: str | None) -> None:
        preferences = await self.session.get(WriterPreferences, self.owner_id)
        if preferences is None:
            self.session.add(WriterPreferences(owner_id=self.owner_id, language=language))
        else:
            preferences.language = language
        await self.session.flush()

    async def glossary(self) -> list[str]:
        """The terms in the order they were added."""
        result = await self.session.scalars(
            select(GlossaryTerm.term)
            .where(GlossaryTerm.owner_id == self.owner_id)
            .order_by(GlossaryTerm.id)
        )
        return list(result.all())

    async def add_term(self, term: str, key: str) -> bool:
        """Add a term unless one with the same key is there; whether it was added."""
        exists = await self.session.scalar(
            select(GlossaryTerm.id).where(
                GlossaryTerm.owner_id == self.owner_id, GlossaryTerm.term_key == key
            )
        )
        if exists is not None:
            return False
        self.session.add(GlossaryTerm(owner_id=self.owner_id, term=term, term_key=key))
        await self.session.flush()
        return True

    async def remove_term(self, key: str) -> str | None:
        """Remove the term with this key; the term as it was stored, or None."""
        found = await self.session.scalar(
            select(GlossaryTerm).where(
                GlossaryTerm.owner_id == self.owner_id, GlossaryTerm.term_key == key
            )
        )
        if found is None:
            return None
        await self.session.delete(found)
        await self.session.flush()
        return found.term


class Repository:
    """Data access for one writer, one repository per aggregate; other writers' rows are
    invisible through it. The caller owns the transaction."""

    def __init__(self, session: AsyncSession, owner_id: int) -> None:
        self.session = session
        self.owner_id = owner_id
        self.users = UserRepo(session, owner_id)
        self.articles = ArticleRepo(session, owner_id)
        self.sections = SectionRepo(session, owner_id)
        self.notes = NoteRepo(session, owner_id)
        self.parts = PartRepo(session, owner_id)
        self.suggestions = SuggestionRepo(session, owner_id)
        self.drafts = DraftRepo(session, owner_id)
        self.usage = UsageRepo(session, owner_id)
        self.vocabulary = VocabularyRepo(session, owner_id)
        self.publishing = PublishingRepo(session, owner_id)
        self.sources = SourceRepo(session, owner_id)
        self.revisions = RevisionRepo(session, owner_id)


class PublishedFiles:
    """Which article publishes to a file of the shared git repository, whoever wrote it: two
    articles with the same title must not overwrite each other's file."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def article_at(self, destination: str) -> int | None:
        return await self.session.scalar(
            select(Publication.article_id)
            .where(Publication.target == "git", Publication.destination == destination)
            .order_by(Publication.id)
            .limit(1)
        )


async def database_now(session: AsyncSession) -> datetime:
    """The database's clock (PostgreSQL), so processes on machines whose clocks differ agree
    on leases; SQLite lives on one machine, whose clock it is."""
    if session.get_bind().dialect.name == "postgresql":
        value: datetime | None = await session.scalar(select(func.now()))
        if value is not None:
            return value
    return utcnow()
class EndpointQueries:
    """What each LLM endpoint and model accept: shared by every writer, like the endpoint."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, endpoint: str, model: str) -> LLMEndpoint | None:
        return await self.session.scalar(
            select(LLMEndpoint).where(LLMEndpoint.endpoint == endpoint, LLMEndpoint.model == model)
        )

    async def remember(self, endpoint: str, model: str, output_mode: str, streaming: bool) -> None:
        """Insert or update the row of (endpoint, model); two processes may race to do it."""
        values = {"output_mode": output_mode, "streaming": streaming, "negotiated_at": utcnow()}
        stmt = _insert(self.session, LLMEndpoint).values(endpoint=endpoint, model=model, **values)
        await self.session.execute(
            stmt.on_conflict_do_update(index_elements=["endpoint", "model"], set_=values)
        )


class QueueQueries:
    """The transcription queue is the notes table: unfinished notes, claimed one at a time.

    A note is claimable when it is the oldest unfinished note of its chat (so each chat's notes
    are transcribed in order), nobody's claim on it still holds, and its retry time has come.
    Chats served least recently go first, so a writer who sent twenty notes does not starve
    one who sent one. On PostgreSQL the claim locks the row with FOR UPDATE SKIP LOCKED, so
    concurrent workers never wait for each other or take the same note; SQLite serialises
    writers (BEGIN IMMEDIATE) instead.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def now(self) -> datetime:
        return await database_now(self.session)

    async def next_claimable(self, now: datetime) -> Note | None:
        earlier = Note.__table__.alias("earlier")
        oldest_of_chat = (
            select(func.min(earlier.c.id))
            .where(earlier.c.chat_id == Note.chat_id, earlier.c.state.in_(UNFINISHED))
            .scalar_subquery()
        )
        served = Note.__table__.alias("served")
        last_served = (
            select(func.max(served.c.claimed_at))
            .where(served.c.chat_id == Note.chat_id)
            .scalar_subquery()
        )
        return await self.session.scalar(
            select(Note)
            .where(
                Note.state.in_(UNFINISHED),
                Note.file_id.is_not(None),
                Note.claim_expires_at.is_(None) | (Note.claim_expires_at < now),
                Note.not_before.is_(None) | (Note.not_before <= now),
                Note.id == oldest_of_chat,
            )
            .order_by(last_served.asc().nulls_first(), Note.id)
            .limit(1)
            .with_for_update(skip_locked=True, of=Note)
        )

    async def locked(self, note_id: int) -> Note | None:
        """The note, its row locked until the transaction ends (claims are checked on it)."""
        return await self.session.scalar(
            select(Note).where(Note.id == note_id).with_for_update()
        )

    async def request_cancel(self, owner_id: int, now: datetime) -> int:
        """Ask the workers transcribing the writer's notes to stop; how many were asked."""
        result = await self.session.execute(
            update(Note)
            .where(
                Note.owner_id == owner_id,
                Note.state == NoteState.TRANSCRIBING,
                Note.claim_expires_at >= now,
            )
            .values(cancel_requested=True)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def unfinished_by_chat(self) -> dict[int, int]:
        rows = await self.session.execute(
            select(Note.chat_id, func.count())
            .where(Note.state.in_(UNFINISHED))
            .group_by(Note.chat_id)
        )
        return {chat_id: count for chat_id, count in rows}

    async def expire_claims_of(self, prefix: str, now: datetime) -> int:
        """Claims held by workers named `prefix*` run out now: a restarted process's own
        claims from before its restart (it died holding them)."""
        result = await self.session.execute(
            update(Note)
            .where(
                Note.claimed_by.startswith(prefix, autoescape=True),
                Note.state == NoteState.TRANSCRIBING,
                Note.claim_expires_at >= now,
            )
            .values(claim_expires_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0)


class InboxQueries:
    """Updates stored before Telegram is told they arrived."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self, bot_id: int, update_id: int, chat_id: int | None, payload: str
    ) -> int | None:
        """Store an update once; its row id, or None when it was stored before."""
        stmt = (
            _insert(self.session, InboxUpdate)
            .values(
                bot_id=bot_id,
                update_id=update_id,
                chat_id=chat_id,
                payload=payload,
                received_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["bot_id", "update_id"])
            .returning(InboxUpdate.id)
        )
        row_id: int | None = await self.session.scalar(stmt)
        return row_id

    async def unhandled(self, bot_id: int) -> Sequence[InboxUpdate]:
        result = await self.session.scalars(
            select(InboxUpdate)
            .where(InboxUpdate.bot_id == bot_id, InboxUpdate.handled_at.is_(None))
            .order_by(InboxUpdate.id)
        )
        return result.all()

    async def get(self, row_id: int) -> InboxUpdate | None:
        return await self.session.get(InboxUpdate, row_id)

    async def mark_handled(self, row_ids: Sequence[int], when: datetime) -> None:
        await self.session.execute(
            update(InboxUpdate).where(InboxUpdate.id.in_(row_ids)).values(handled_at=when)
        )

    async def prune(self, handled_before: datetime) -> None:
        await self.session.execute(
            delete(InboxUpdate).where(
                InboxUpdate.handled_at.is_not(None), InboxUpdate.handled_at < handled_before
            )
        )


class OutboxQueries:
    """What is waiting to be told to writers, and which messages show which subject."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        chat_id: int,
        kind: str,
        *,
        subject: str | None = None,
        payload: str = "{}",
        reply_to: int | None = None,
    ) -> None:
        self.session.add(
            OutboxMessage(
                chat_id=chat_id, subject=subject, kind=kind, payload=payload, reply_to=reply_to
            )
        )
        await self.session.flush()

    async def waiting_chats(self) -> list[tuple[int, datetime | None]]:
        """Each chat with messages waiting, and when its first one may be sent."""
        first = (
            select(OutboxMessage.chat_id, func.min(OutboxMessage.id).label("first_id"))
            .group_by(OutboxMessage.chat_id)
            .subquery()
        )
        rows = await self.session.execute(
            select(OutboxMessage.chat_id, OutboxMessage.not_before).join(
                first, OutboxMessage.id == first.c.first_id
            )
        )
        return [(chat_id, not_before) for chat_id, not_before in rows]

    async def first_of_chat(self, chat_id: int) -> OutboxMessage | None:
        return await self.session.scalar(
            select(OutboxMessage)
            .where(OutboxMessage.chat_id == chat_id)
            .order_by(OutboxMessage.id)
            .limit(1)
        )

    async def latest_of_subject(self, chat_id: int, subject: str) -> OutboxMessage | None:
        return await self.session.scalar(
            select(OutboxMessage)
            .where(OutboxMessage.chat_id == chat_id, OutboxMessage.subject == subject)
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        )

    async def payloads_of_subject(self, chat_id: int, subject: str, last_id: int) -> list[str]:
        rows = await self.session.scalars(
            select(OutboxMessage.payload)
            .where(
                OutboxMessage.chat_id == chat_id,
                OutboxMessage.subject == subject,
                OutboxMessage.id <= last_id,
            )
            .order_by(OutboxMessage.id)
        )
        return list(rows)

    async def remove_subject_through(self, chat_id: int, subject: str, last_id: int) -> None:
        """Every message of the subject up to `last_id`: they were shown by one delivery."""
        await self.session.execute(
            delete(OutboxMessage).where(
                OutboxMessage.chat_id == chat_id,
                OutboxMessage.subject == subject,
                OutboxMessage.id <= last_id,
            )
        )

    async def remove(self, row_id: int) -> None:
        await self.session.execute(delete(OutboxMessage).where(OutboxMessage.id == row_id))

    async def postpone(self, row_id: int, until: datetime) -> None:
        await self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id)
            .values(not_before=until, attempts=OutboxMessage.attempts + 1)
        )

    async def pending_count(self) -> int:
        return int(await self.session.scalar(select(func.count(OutboxMessage.id))) or 0)

    # views -----------------------------------------------------------------------------
    async def views(self, chat_id: int, subject: str) -> dict[int, int]:
        """position -> message id of the messages that show the subject."""
        rows = await self.session.execute(
            select(MessageView.position, MessageView.message_id).where(
                MessageView.chat_id == chat_id, MessageView.subject == subject
            )
        )
        return {position: message_id for position, message_id in rows}

    async def set_views(self, chat_id: int, subject: str, views: dict[int, int]) -> None:
        await self.session.execute(
            delete(MessageView).where(
                MessageView.chat_id == chat_id, MessageView.subject == subject
            )
        )
        for position, message_id in sorted(views.items()):
            self.session.add(
                MessageView(
                    chat_id=chat_id, subject=subject, position=position, message_id=message_id
                )
            )
        await self.session.flush()

    async def subject_of_message(self, chat_id: int, message_id: int) -> str | None:
        """What a message of the bot shows (e.g. "note:17"), if it shows a subject."""
        return await self.session.scalar(
            select(MessageView.subject).where(
                MessageView.chat_id == chat_id, MessageView.message_id == message_id
            )
        )


class SourceRepo(_Scoped):
    """Outside material the writer's notes hold (bot/sources/)."""

    async def add(self, note_id: int, **values: object) -> NoteSource:
        row = NoteSource(note_id=note_id, owner_id=self.owner_id, **values)
        self.session.add(row)
        await self.session.flush()
        return row

    async def of_note(self, note_id: int) -> NoteSource | None:
        return await self.session.scalar(
            select(NoteSource).where(
                NoteSource.owner_id == self.owner_id, NoteSource.note_id == note_id
            )
        )

    async def of_article(self, article_id: int) -> dict[int, NoteSource]:
        """The article's sources by note id."""
        rows = await self.session.scalars(
            select(NoteSource)
            .join(Note, Note.id == NoteSource.note_id)
            .where(NoteSource.owner_id == self.owner_id, Note.article_id == article_id)
        )
        return {row.note_id: row for row in rows}

    async def counts(self, article_id: int) -> dict[int, int]:
        """How many distinct source notes are filed under each section of the article."""
        rows = await self.session.execute(
            select(NotePart.section_id, func.count(func.distinct(NotePart.note_id)))
            .join(Note, Note.id == NotePart.note_id)
            .join(NoteSource, NoteSource.note_id == Note.id)
            .where(Note.owner_id == self.owner_id, Note.article_id == article_id)
            .group_by(NotePart.section_id)
        )
        return {section_id: count for section_id, count in rows}


class SourceQueries:
    """The background step's view of sources: across writers, by design."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def pending(self, limit: int = 20) -> Sequence[NoteSource]:
        result = await self.session.scalars(
            select(NoteSource)
            .where(NoteSource.status == "pending")
            .order_by(NoteSource.id)
            .limit(limit)
        )
        return result.all()

    async def locked(self, source_id: int) -> NoteSource | None:
        return await self.session.scalar(
            select(NoteSource).where(NoteSource.id == source_id).with_for_update()
        )

    async def notes_with_sources(self, note_ids: Sequence[int]) -> set[int]:
        """Which of these notes still have a source row (the rest were deleted)."""
        found: set[int] = set()
        for start in range(0, len(note_ids), 500):
            rows = await self.session.scalars(
                select(NoteSource.note_id).where(
                    NoteSource.note_id.in_(note_ids[start : start + 500])
                )
            )
            found.update(rows)
        return found
