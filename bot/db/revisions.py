"""Queries of the revision loop: section versions, the messages that show sections, spoken
instructions and ticked TODOs. Scoped by the owner like `Repository`; the caller owns the
transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    Article,
    Note,
    Section,
    SectionMessage,
    SectionVersion,
    SpokenInstruction,
    TodoTick,
)


class RevisionRepo:
    def __init__(self, session: AsyncSession, owner_id: int) -> None:
        self.session = session
        self.owner_id = owner_id

    # versions ------------------------------------------------------------------------------
    async def versions_of_article(self, article_id: int) -> Sequence[SectionVersion]:
        """Every version of the article's sections, oldest first."""
        result = await self.session.scalars(
            select(SectionVersion)
            .join(Article, Article.id == SectionVersion.article_id)
            .where(Article.owner_id == self.owner_id, SectionVersion.article_id == article_id)
            .order_by(SectionVersion.id)
        )
        return result.all()

    async def version(self, version_id: int) -> SectionVersion | None:
        return await self.session.scalar(
            select(SectionVersion)
            .join(Article, Article.id == SectionVersion.article_id)
            .where(Article.owner_id == self.owner_id, SectionVersion.id == version_id)
        )

    async def add_version(self, version: SectionVersion) -> SectionVersion:
        self.session.add(version)
        await self.session.flush()
        return version

    async def mark_undone(self, version_ids: Sequence[int]) -> None:
        await self.session.execute(
            update(SectionVersion).where(SectionVersion.id.in_(version_ids)).values(undone=True)
        )

    # messages ------------------------------------------------------------------------------
    async def remember_messages(
        self, article_id: int, chat_id: int, shown: Sequence[tuple[int, int]]
    ) -> None:
        """(section id, message id) pairs: all in this one transaction."""
        known = set(
            (
                await self.session.scalars(
                    select(SectionMessage.message_id).where(
                        SectionMessage.chat_id == chat_id,
                        SectionMessage.message_id.in_([m for _, m in shown]),
                    )
                )
            ).all()
        )
        for section_id, message_id in shown:
            if message_id not in known:
                known.add(message_id)
                self.session.add(
                    SectionMessage(
                        article_id=article_id,
                        section_id=section_id,
                        chat_id=chat_id,
                        message_id=message_id,
                    )
                )
        await self.session.flush()

    async def section_of_message(self, chat_id: int, message_id: int) -> Section | None:
        """The section a message of the writer's chat shows, if it shows one."""
        return await self.session.scalar(
            select(Section)
            .join(SectionMessage, SectionMessage.section_id == Section.id)
            .join(Article, Article.id == Section.article_id)
            .where(
                Article.owner_id == self.owner_id,
                SectionMessage.chat_id == chat_id,
                SectionMessage.message_id == message_id,
            )
        )

    # spoken instructions -----------------------------------------------------------------
    async def add_instruction(self, note_id: int, section_id: int) -> None:
        self.session.add(SpokenInstruction(note_id=note_id, section_id=section_id))
        await self.session.flush()

    async def instruction(self, note_id: int) -> SpokenInstruction | None:
        return await self.session.scalar(
            select(SpokenInstruction)
            .join(Note, Note.id == SpokenInstruction.note_id)
            .where(Note.owner_id == self.owner_id, SpokenInstruction.note_id == note_id)
        )

    # TODOs ---------------------------------------------------------------------------------
    async def ticks(self, article_id: int) -> Sequence[TodoTick]:
        result = await self.session.scalars(
            select(TodoTick)
            .join(Section, Section.id == TodoTick.section_id)
            .join(Article, Article.id == Section.article_id)
            .where(Article.owner_id == self.owner_id, Section.article_id == article_id)
            .order_by(TodoTick.id)
        )
        return result.all()

    async def add_tick(self, section_id: int, text: str) -> None:
        self.session.add(TodoTick(section_id=section_id, text=text))
        await self.session.flush()


async def ready_instructions(session: AsyncSession) -> list[tuple[int, int]]:
    """(owner id, note id) of spoken instructions transcribed and waiting for their revision,
    all writers (the revision runner's own query)."""
    rows = await session.execute(
        select(Note.owner_id, SpokenInstruction.note_id)
        .join(Note, Note.id == SpokenInstruction.note_id)
        .where(SpokenInstruction.state == "ready")
        .order_by(SpokenInstruction.note_id)
    )
    return [(owner, note) for owner, note in rows]
