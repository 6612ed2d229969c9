"""/draft and /export: notes become a structured draft, incrementally, and files to send."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Article
from bot.db.repository import Repository
from bot.domain import UserError
from bot.drafting.citations import check_citations
from bot.drafting.coverage import Figures, StoredPiece, apply_report
from bot.drafting.markdown import NoteRef, render_article, render_notes_export, slugify
from bot.llm.schemas import Block, CoverageReport, DraftPiece, NoteForDraft
from bot.notes.lifecycle import NoteState
from bot.services.outline import require_article
from bot.services.usage import llm_usage_recorded

log = logging.getLogger(__name__)

NO_LLM = (
    "Drafting needs an LLM endpoint: set OPENAI_API_KEY (and OPENAI_BASE_URL for servers other "
    "than OpenAI) and restart the bot. Your notes are safe; /export notes sends them as markdown."
)


class DraftWriter(Protocol):
    @property
    def model(self) -> str: ...
    @property
    def language(self) -> str: ...
    @property
    def section_version(self) -> str: ...

    async def draft_section(
        self,
        article_title: str,
        outline: Sequence[str],
        section_title: str,
        notes: Sequence[NoteForDraft],
        glossary: Sequence[str] = (),
    ) -> DraftPiece: ...

    @property
    def check_version(self) -> str: ...

    async def check_section(
        self, section_title: str, notes: Sequence[NoteForDraft], piece: DraftPiece
    ) -> CoverageReport: ...


@dataclass(frozen=True)
class SectionReport:
    number: int
    title: str
    notes: int
    regenerated: bool
    figures: Figures


@dataclass(frozen=True)
class DraftResult:
    markdown: str
    filename: str
    sections_total: int
    sections_with_notes: int
    sections_regenerated: int
    from_stored: bool  # nothing changed: the stored draft was sent again
    figures: Figures
    sections: list[SectionReport]
    unfinished_notes: int = 0
    section_number: int | None = None


@dataclass(frozen=True)
class _Section:
    id: int
    number: int
    title: str
    notes: list[NoteRef]


@dataclass(frozen=True)
class _Snapshot:
    article_id: int
    title: str
    sections: list[_Section]
    cached: dict[str, str]  # cache key -> stored JSON
    latest_markdown: str | None
    unfinished: int  # notes still being transcribed, so not in this draft
    glossary: list[str]  # the writer's spelling of names and terms (/glossary)


def _cache_key(kind: str, version: str, model: str, language: str, payload: object) -> str:
    raw = json.dumps([kind, version, model, language, payload], ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _for_llm(notes: Sequence[NoteRef]) -> list[NoteForDraft]:
    return [NoteForDraft(n.label, n.created_at, n.kind, n.text) for n in notes]


class DraftService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        writer: DraftWriter | None,
        *,
        check: bool = True,
    ) -> None:
        self._sessions = sessions
        self._writer = writer
        self._check = check
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def draft(
        self,
        owner_id: int,
        section_number: int | None = None,
        *,
        article_id: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> DraftResult:
        """Draft the article (or one section), calling the LLM only for what changed.

        The active article unless `article_id` names another of the writer's articles;
        `progress(done, total)` is called as sections are done. Tokens spent are stored as
        the writer's usage.
        """
        writer = self._writer
        if writer is None:
            raise UserError(NO_LLM)
        # A double /draft must not pay twice.
        async with self._locks[owner_id], llm_usage_recorded(self._sessions, owner_id):
            snapshot = await self._snapshot(owner_id, article_id)
            sections = snapshot.sections
            if section_number is not None:
                if not 1 <= section_number <= len(sections):
                    raise UserError(
                        f"There is no section {section_number}: pick 1 to {len(sections)}."
                    )
                sections = [sections[section_number - 1]]
            if not any(s.notes for s in snapshot.sections):
                raise UserError(
                    "There are no notes to draft yet. Send a voice note or a text first."
                )
            outline = [s.title for s in snapshot.sections]

            # No transaction is open while the LLM works; results are stored afterwards.
            new: dict[str, tuple[int | None, StoredPiece]] = {}
            pieces: dict[int, DraftPiece | None] = {}
            figures = Figures()
            reports: list[SectionReport] = []
            check_version = writer.check_version if self._check else "unchecked"
            for done, section in enumerate(sections):
                if progress is not None:
                    progress(done, len(sections))
                if not section.notes:
                    pieces[section.id] = None
                    reports.append(
                        SectionReport(section.number, section.title, 0, False, Figures())
                    )
                    continue
                key = _cache_key(
                    "section",
                    f"{writer.section_version}+{check_version}",
                    writer.model,
                    writer.language,
                    [snapshot.title, section.title, [(n.label, n.text) for n in section.notes]],
                )
                if key in snapshot.cached:
                    stored = StoredPiece.model_validate_json(snapshot.cached[key])
                else:
                    stored = await self._draft_section(
                        writer, snapshot.title, outline, section, snapshot.glossary
                    )
                    new[key] = (section.id, stored)
                pieces[section.id] = stored.piece
                figures += stored.figures
                reports.append(
                    SectionReport(
                        section.number,
                        section.title,
                        len(section.notes),
                        key in new,
                        stored.figures,
                    )
                )
            regenerated = len(new)
            if progress is not None:
                progress(len(sections), len(sections))

            introduction: DraftPiece | None = None
            if section_number is None:
                # The introduction is what the section drafts marked as being about the whole
                # article: no LLM call of its own, so a new note costs only its section.
                introduction = _move_introduction(sections, pieces)

            all_notes = {n.label: n for s in snapshot.sections for n in s.notes}
            markdown = render_article(
                snapshot.title,
                introduction,
                [(s.title, pieces.get(s.id)) for s in sections],
                all_notes,
            )
            from_stored = section_number is None and markdown == snapshot.latest_markdown
            await self._store(
                owner_id,
                snapshot.article_id,
                new,
                markdown if section_number is None and not from_stored else None,
                regenerated,
                writer.model,
                figures,
            )
            slug = slugify(snapshot.title)
            return DraftResult(
                markdown=markdown,
                filename=f"{slug}.md"
                if section_number is None
                else f"{slug}-section-{section_number}.md",
                sections_total=len(snapshot.sections),
                sections_with_notes=sum(1 for s in sections if s.notes),
                sections_regenerated=regenerated,
                from_stored=from_stored,
                figures=figures,
                sections=reports,
                unfinished_notes=snapshot.unfinished,
                section_number=section_number,
            )

    async def _draft_section(
        self,
        writer: DraftWriter,
        title: str,
        outline: list[str],
        section: _Section,
        glossary: list[str],
    ) -> StoredPiece:
        notes = {n.label: n.text for n in section.notes}
        drafted = await writer.draft_section(
            title, outline, section.title, _for_llm(section.notes), glossary
        )
        piece = check_citations(drafted, notes)
        if not self._check:
            return StoredPiece(piece=piece)
        report = await writer.check_section(section.title, _for_llm(section.notes), piece)
        checked, figures = apply_report(piece, report, notes)
        return StoredPiece(piece=checked, figures=figures)

    async def latest_draft(self, owner_id: int, article_id: int | None = None) -> tuple[str, str]:
        """The last stored draft as (filename, markdown)."""
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            article = await _article(repo, article_id)
            version = await repo.drafts.latest_version(article.id)
            if version is None:
                raise UserError(
                    "There is no draft yet: send /draft first. "
                    "/export notes sends your raw transcripts."
                )
            return f"{slugify(article.title)}.md", version.markdown

    async def notes_export(self, owner_id: int, article_id: int | None = None) -> tuple[str, str]:
        """Every transcript grouped by section, as (filename, markdown)."""
        snapshot = await self._snapshot(owner_id, article_id, with_cache=False)
        markdown = render_notes_export(
            snapshot.title, [(s.title, s.notes) for s in snapshot.sections], snapshot.unfinished
        )
        return f"{slugify(snapshot.title)}-notes.md", markdown

    async def _snapshot(
        self, owner_id: int, article_id: int | None = None, *, with_cache: bool = True
    ) -> _Snapshot:
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            article = await _article(repo, article_id)
            by_section: defaultdict[int, list[NoteRef]] = defaultdict(list)
            for part, note in await repo.parts.of_article(article.id):
                if note.state != NoteState.FILED:
                    continue
                notes = by_section[part.section_id]
                label = f"N{note.id}"
                if notes and notes[-1].label == label:  # two parts of one note, one section
                    last = notes[-1]
                    notes[-1] = NoteRef(
                        label, last.created_at, last.kind, f"{last.text}\n{part.text}"
                    )
                else:
                    notes.append(NoteRef(label, note.created_at, note.kind.value, part.text))
            sections = [
                _Section(s.id, n, s.title, by_section.get(s.id, []))
                for n, s in enumerate(await repo.sections.of_article(article.id), start=1)
            ]
            cached = await repo.drafts.cached_all(article.id) if with_cache else {}
            latest = await repo.drafts.latest_version(article.id) if with_cache else None
            return _Snapshot(
                article.id,
                article.title,
                sections,
                cached,
                latest.markdown if latest else None,
                await repo.notes.unfinished_count(article.id),
                await repo.vocabulary.glossary(),
            )

    async def _store(
        self,
        owner_id: int,
        article_id: int,
        new: dict[str, tuple[int | None, StoredPiece]],
        markdown: str | None,
        regenerated: int,
        model: str,
        figures: Figures,
    ) -> None:
        if not new and markdown is None:
            return
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            for key, (section_id, stored) in new.items():
                await repo.drafts.save_cached(article_id, section_id, key, stored.model_dump_json())
            if markdown is not None:
                await repo.drafts.add_version(
                    article_id, markdown, regenerated, model, figures.model_dump_json()
                )


async def _article(repo: Repository, article_id: int | None) -> Article:
    """The named article of this writer, or the active one."""
    if article_id is None:
        return await require_article(repo)
    article = await repo.articles.get(article_id)
    if article is None:
        raise UserError("That article does not exist (any more).")
    return article


def _move_introduction(
    sections: Sequence[_Section], pieces: dict[int, DraftPiece | None]
) -> DraftPiece:
    """Take the "introduction" blocks out of the section pieces, in outline order."""
    opening: list[Block] = []
    for section in sections:
        piece = pieces.get(section.id)
        if piece is None:
            continue
        opening += [
            b.model_copy(update={"kind": "paragraph"})
            for b in piece.blocks
            if b.kind == "introduction"
        ]
        pieces[section.id] = DraftPiece(
            blocks=[b for b in piece.blocks if b.kind != "introduction"]
        )
    return DraftPiece(blocks=opening)
