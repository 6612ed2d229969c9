"""Queries, every one scoped by the owner; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    UNFINISHED_STATUSES,
    Article,
    DraftVersion,
    Note,
    NotePart,
    NoteStatus,
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
    utcnow,
)


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
            .where(Note.owner_id == self.owner_id, Note.status == NoteStatus.TRANSCRIBED)
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
        dialect = self.session.bind.dialect.name if self.session.bind else "sqlite"
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = (
            insert(Note)
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
                Note.status.in_(UNFINISHED_STATUSES),
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
        self.publishing = PublishingRepo(session, owner_id)


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


class JobQueries:
    """Queries for the background worker, which spans all writers by design."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def unfinished_notes(self) -> Sequence[Note]:
        result = await self.session.scalars(
            select(Note).where(Note.status.in_(UNFINISHED_STATUSES)).order_by(Note.id)
        )
        return result.all()

    async def owner_of(self, note_id: int) -> int | None:
        return await self.session.scalar(select(Note.owner_id).where(Note.id == note_id))


class ClaimQueries:
    """Note claims for separate worker processes: each unfinished note goes to one worker.

    A worker claims the oldest unfinished note of a chat, and only when no other worker holds
    an earlier note of that chat, so each chat's notes are transcribed in order. On PostgreSQL
    the claim takes the row with FOR UPDATE SKIP LOCKED, so concurrent workers never wait for
    each other or take the same note; SQLite serialises writers (BEGIN IMMEDIATE) instead.
    Lease times are the database's clock, so workers on machines whose clocks differ agree.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def now(self) -> datetime:
        if self.session.get_bind().dialect.name == "postgresql":
            value: datetime | None = await self.session.scalar(select(func.now()))
            if value is not None:
                return value
        return utcnow()  # SQLite: one machine, one clock

    async def claim_next(
        self,
        worker: str,
        lease: timedelta,
        *,
        now: datetime | None = None,
        ack_grace: timedelta = timedelta(seconds=10),
    ) -> int | None:
        now = now or await self.now()
        earlier = Note.__table__.alias("earlier")
        oldest_of_chat = (
            select(func.min(earlier.c.id))
            .where(earlier.c.chat_id == Note.chat_id, earlier.c.status.in_(UNFINISHED_STATUSES))
            .scalar_subquery()
        )
        note_id = await self.session.scalar(
            select(Note.id)
            .where(
                Note.status.in_(UNFINISHED_STATUSES),
                Note.file_id.is_not(None),
                (Note.claim_expires_at.is_(None)) | (Note.claim_expires_at < now),
                Note.id == oldest_of_chat,
                # Wait for the bot to store its acknowledgement, so the transcript edits it
                # (a note whose acknowledgement failed is taken after a few seconds anyway).
                Note.ack_message_id.is_not(None) | (Note.created_at < now - ack_grace),
            )
            .order_by(Note.id)
            .limit(1)
            .with_for_update(skip_locked=True, of=Note)
        )
        if note_id is None:
            return None
        await self.session.execute(
            update(Note)
            .where(Note.id == note_id)
            .values(claimed_by=worker, claim_expires_at=now + lease, cancel_requested=False)
        )
        return note_id

    async def renew(self, note_id: int, worker: str, lease: timedelta) -> tuple[bool, bool]:
        """Extend the claim; returns (still ours, cancel requested)."""
        row = (
            await self.session.execute(
                select(Note.claimed_by, Note.cancel_requested, Note.status)
                .where(Note.id == note_id)
                .with_for_update()
            )
        ).one_or_none()
        if row is None or row.claimed_by != worker or row.status not in UNFINISHED_STATUSES:
            return False, False
        until = await self.now() + lease
        await self.session.execute(
            update(Note).where(Note.id == note_id).values(claim_expires_at=until)
        )
        return True, bool(row.cancel_requested)

    async def release(self, note_id: int, worker: str) -> None:
        """Give the note back (this worker stops): the next worker may take it at once."""
        await self.session.execute(
            update(Note)
            .where(Note.id == note_id, Note.claimed_by == worker)
            .values(claimed_by=None, claim_expires_at=None)
        )

    async def hold(self, note_id: int, worker: str, delay: timedelta) -> None:
        """Keep an unfinished note from every worker for `delay` (a service is down); it is
        nobody's meanwhile, so /cancel does not pretend to stop it."""
        until = await self.now() + delay
        await self.session.execute(
            update(Note)
            .where(
                Note.id == note_id,
                Note.claimed_by == worker,
                Note.status.in_(UNFINISHED_STATUSES),
            )
            .values(claimed_by=None, claim_expires_at=until)
        )

    async def request_cancel(self, owner_id: int) -> bool:
        """Ask the worker transcribing one of the writer's notes to stop; False if none is."""
        result = await self.session.execute(
            update(Note)
            .where(
                Note.owner_id == owner_id,
                Note.status.in_(UNFINISHED_STATUSES),
                Note.claimed_by.is_not(None),
                Note.claim_expires_at >= await self.now(),
            )
            .values(cancel_requested=True)
        )
        return bool(getattr(result, "rowcount", 0))

    async def unfinished_by_chat(self) -> dict[int, int]:
        rows = await self.session.execute(
            select(Note.chat_id, func.count())
            .where(Note.status.in_(UNFINISHED_STATUSES))
            .group_by(Note.chat_id)
        )
        return {chat_id: count for chat_id, count in rows}


class OutboxQueries:
    """Messages from worker processes waiting for the bot process to send them."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, note_id: int, kind: str, payload: str) -> None:
        self.session.add(OutboxMessage(note_id=note_id, kind=kind, payload=payload))
        await self.session.flush()

    async def pending(self, limit: int) -> Sequence[OutboxMessage]:
        result = await self.session.scalars(
            select(OutboxMessage).order_by(OutboxMessage.id).limit(limit)
        )
        return result.all()

    async def note_of_ack(self, chat_id: int, ack_message_id: int) -> int | None:
        return await self.session.scalar(
            select(Note.id).where(Note.chat_id == chat_id, Note.ack_message_id == ack_message_id)
        )

    async def ack_message_id(self, note_id: int) -> int | None:
        return await self.session.scalar(select(Note.ack_message_id).where(Note.id == note_id))

    async def statuses(self, note_ids: Sequence[int]) -> dict[int, NoteStatus]:
        """The status of each note that still exists."""
        rows = await self.session.execute(
            select(Note.id, Note.status).where(Note.id.in_(note_ids))
        )
        return {note_id: status for note_id, status in rows}

    async def remove(self, ids: Sequence[int]) -> None:
        if ids:
            await self.session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids)))
