"""Articles and their outlines: create, list, pick the active article and section."""

from __future__ import annotations

import re

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Article, Section
from bot.db.repository import Repository
from bot.domain import ArticleInfo, Outline, SectionInfo, UserError

MAX_TITLE_CHARS = 200
MAX_SECTIONS = 50
DEFAULT_ARTICLE_TITLE = "Untitled draft"
DEFAULT_SECTION_TITLE = "Notes"


def normalise_title(title: str) -> str:
    """Comparable form of a title: case, punctuation and spacing ignored."""
    return " ".join(re.findall(r"\w+", title.casefold()))


def clean_title(raw: str, what: str = "title") -> str:
    title = " ".join(raw.split()).strip(" -–—*#•\t")
    title = re.sub(r"^\d+[.)]\s+", "", title)  # "2. Skills" pasted from a numbered list
    if not title:
        raise UserError(f"The {what} is empty.")
    if len(title) > MAX_TITLE_CHARS:
        raise UserError(f"That {what} is too long (at most {MAX_TITLE_CHARS} characters).")
    return title


class OutlineService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def new_article(self, owner_id: int, chat_id: int, raw_title: str) -> Outline:
        title = clean_title(raw_title)
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            await repo.users.ensure(chat_id)
            article = await repo.articles.add(title)
            section = await repo.sections.add(article.id, 1, DEFAULT_SECTION_TITLE)
            await repo.sections.activate(section)
            return await _outline(repo, article)

    async def set_outline(self, owner_id: int, chat_id: int, lines: list[str]) -> Outline:
        titles: list[str] = []
        seen: set[str] = set()
        for line in lines:
            if not re.search(r"\w", line):
                continue  # blank, or a separator such as "---" pasted with the list
            title = clean_title(line, "section title")
            key = normalise_title(title)
            if key and key not in seen:
                seen.add(key)
                titles.append(title)
        if not titles:
            raise UserError(
                "Send the section titles on the lines after /outline, one a line, e.g.\n"
                "/outline\nIntroduction\nWhat I learned\nWhat's next"
            )
        if len(titles) > MAX_SECTIONS:
            raise UserError(f"An outline can have at most {MAX_SECTIONS} sections.")

        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            await repo.users.ensure(chat_id)
            article = await repo.articles.active()
            if article is None:
                article = await repo.articles.add(DEFAULT_ARTICLE_TITLE)
            sections = await repo.sections.of_article(article.id)
            existing = {normalise_title(s.title): s for s in sections}
            counts = await repo.sections.note_counts(article.id)
            previously_active = next((s for s in existing.values() if s.is_active), None)

            ordered: list[Section] = []
            for title in titles:
                section = existing.pop(normalise_title(title), None)
                if section is None:
                    section = await repo.sections.add(article.id, 0, title)
                else:
                    section.title = title  # take the writer's new spelling
                ordered.append(section)
            # Sections dropped from the outline disappear only if they hold no notes:
            # nothing the writer said is ever deleted by re-outlining.
            kept: list[str] = []
            for section in existing.values():
                if counts.get(section.id, 0):
                    ordered.append(section)
                    kept.append(section.title)
                else:
                    await repo.sections.delete(section)
            # Positions are set after deletions so they stay 1..n without gaps.
            for position, section in enumerate(ordered, start=1):
                section.position = position
            await session.flush()
            if previously_active is None or previously_active not in ordered:
                await repo.sections.activate(ordered[0])
            return await _outline(repo, article, kept_for_notes=kept)

    async def outline(self, owner_id: int) -> Outline | None:
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            article = await repo.articles.active()
            return await _outline(repo, article) if article else None

    async def choose_section_by_number(self, owner_id: int, number: int) -> Outline:
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            article = await require_article(repo)
            sections = await repo.sections.of_article(article.id)
            if not 1 <= number <= len(sections):
                raise UserError(_no_such_section(number, len(sections)))
            await repo.sections.activate(sections[number - 1])
            return await _outline(repo, article)

    async def choose_section_by_id(self, owner_id: int, section_id: int) -> Outline:
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            section = await repo.sections.get(section_id)
            if section is None:
                raise UserError("That section no longer exists. Send /sections for a fresh list.")
            article = await repo.articles.get(section.article_id)
            assert article is not None  # the section's join already checked the owner
            if not article.is_active:
                await repo.articles.activate(article)
            await repo.sections.activate(section)
            return await _outline(repo, article)

    async def articles(self, owner_id: int) -> list[ArticleInfo]:
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            counts = await repo.articles.note_counts()
            return [
                ArticleInfo(a.id, n, a.title, a.is_active, counts.get(a.id, 0))
                for n, a in enumerate(await repo.articles.all(), start=1)
            ]

    async def use_article(self, owner_id: int, number: int) -> Outline:
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            articles = await repo.articles.all()
            if not articles:
                raise UserError("You have no articles yet. Start one with /new <title>.")
            if not 1 <= number <= len(articles):
                raise UserError(
                    f"There is no article {number}: pick 1 to {len(articles)} (see /articles)."
                )
            article = articles[number - 1]
            await repo.articles.activate(article)
            return await _outline(repo, article)


async def ensure_active_section(repo: Repository) -> tuple[Article, Section, bool]:
    """The writer's active article and section, creating a default article if there is none."""
    created = False
    article = await repo.articles.active()
    if article is None:
        article = await repo.articles.add(DEFAULT_ARTICLE_TITLE)
        created = True
    sections = await repo.sections.of_article(article.id)
    if not sections:
        section = await repo.sections.add(article.id, 1, DEFAULT_SECTION_TITLE)
        await repo.sections.activate(section)
        return article, section, created
    active = next((s for s in sections if s.is_active), None)
    if active is None:
        active = sections[0]
        await repo.sections.activate(active)
    return article, active, created


async def require_article(repo: Repository) -> Article:
    article = await repo.articles.active()
    if article is None:
        raise UserError("You have no article yet. Start one with /new <title>.")
    return article


async def _outline(
    repo: Repository, article: Article, kept_for_notes: list[str] | None = None
) -> Outline:
    sections = await repo.sections.of_article(article.id)
    counts = await repo.sections.note_counts(article.id)
    sources = await repo.sources.counts(article.id)
    numbers = {a.id: n for n, a in enumerate(await repo.articles.all(), start=1)}
    return Outline(
        article=ArticleInfo(
            article.id, numbers.get(article.id, 1), article.title, article.is_active
        ),
        sections=[
            SectionInfo(
                s.id, n, s.title, counts.get(s.id, 0), s.is_active, sources.get(s.id, 0)
            )
            for n, s in enumerate(sections, start=1)
        ],
        kept_for_notes=kept_for_notes or [],
    )


def _no_such_section(number: int, total: int) -> str:
    if total == 0:
        return "This article has no sections yet. Set them with /outline."
    return f"There is no section {number}: pick 1 to {total} (see /sections)."
