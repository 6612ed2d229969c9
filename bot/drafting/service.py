"""/draft and /export: notes become a structured draft, incrementally, and files to send."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Article
from bot.db.repository import Repository
from bot.domain import UserError
from bot.drafting.citations import SourceIndex, check_citations
from bot.drafting.coverage import apply_report
from bot.drafting.markdown import (
    NoteRef,
    PartRef,
    Piece,
    SectionView,
    render_notes_export,
    render_pieces,
    slugify,
)
from bot.drafting.model import (
    Block,
    CheckReport,
    Figures,
    Revision,
    SectionDraft,
    Source,
    WrittenSection,
)
from bot.drafting.versions import (
    CAUSE_DRAFT,
    CAUSE_REVISION,
    NewVersion,
    Tick,
    VersionInfo,
    current_of,
    kept_instructions,
    notes_key,
    ticked_positions,
    verify_revision,
    version_info,
)
from bot.notes.lifecycle import NoteState
from bot.services.outline import require_article
from bot.services.threads import run_in_daemon_thread
from bot.services.usage import llm_usage_recorded
from bot.sources.cards import source_ref
from bot.sources.model import SourceKind, SourceRef, SourceStatus

log = logging.getLogger(__name__)

NO_LLM = (
    "Drafting needs an LLM endpoint: set OPENAI_API_KEY (and OPENAI_BASE_URL for servers other "
    "than OpenAI) and restart the bot. Your notes are safe; /export notes sends them as markdown."
)


class DraftWriter(Protocol):
    """Writes and checks one section's draft (the LLM, or a fake in tests)."""

    @property
    def model(self) -> str: ...
    @property
    def language(self) -> str: ...
    @property
    def section_version(self) -> str: ...
    @property
    def check_version(self) -> str: ...

    async def draft_section(
        self,
        article_title: str,
        outline: Sequence[str],
        section_title: str,
        sources: Sequence[Source],
        glossary: Sequence[str] = (),
    ) -> WrittenSection: ...

    async def check_section(
        self, section_title: str, sources: Sequence[Source], blocks: Sequence[Block]
    ) -> CheckReport: ...


class SectionReviser(Protocol):
    """Writes a section again by the writer's instruction (the LLM, or a fake in tests)."""

    @property
    def model(self) -> str: ...

    async def revise_section(
        self,
        article_title: str,
        section_title: str,
        sources: Sequence[Source],
        blocks: Sequence[Block],
        instruction: str,
        glossary: Sequence[str] = (),
    ) -> Revision: ...


@dataclass(frozen=True)
class SectionReport:
    number: int
    title: str
    notes: int
    regenerated: bool
    figures: Figures
    # Some answer was cut off, so the section went to the model in `answers` smaller pieces.
    cut_off: bool = False
    answers: int = 0
    # The model returned nothing for a section with notes (not cached: /draft n retries).
    empty: bool = False


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
    # Sources whose page, image or document is still being read: only their links are in.
    pending_sources: int = 0
    # What the chat shows, a section a stretch of messages of its own.
    pieces: tuple[Piece, ...] = ()
    article_id: int = 0
    # Kept revisions applied again to sections new notes made redraft.
    revisions_reapplied: int = 0


@dataclass(frozen=True)
class SnapshotSection:
    id: int
    number: int
    title: str
    sources: list[Source]


@dataclass(frozen=True)
class ArticleSnapshot:
    article_id: int
    title: str
    sections: list[SnapshotSection]
    parts: dict[int, PartRef]  # every filed part, for footnotes
    cached: dict[str, str]  # cache key -> stored JSON
    latest_markdown: str | None
    unfinished: int  # notes still being transcribed, so not in this draft
    glossary: list[str]  # the writer's spelling of names and terms (/glossary)
    versions: list[VersionInfo]  # every section version, oldest first
    ticks: list[Tick]  # TODOs the writer ticked (/done)
    # Outside material (links, images, documents, posts) by note id.
    sources: dict[int, SourceRef] = field(default_factory=dict)
    pending_sources: int = 0

    def section(self, section_id: int) -> SnapshotSection | None:
        return next((s for s in self.sections if s.id == section_id), None)


# Bumped when what is cached changes shape: older rows are then never read, and each section
# is redrafted once.
CACHE_FORMAT = "section-v2"


def _cache_key(kind: str, version: str, model: str, language: str, payload: object) -> str:
    raw = json.dumps([kind, version, model, language, payload], ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class DraftService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        writer: DraftWriter | None,
        *,
        check: bool = True,
        reviser: SectionReviser | None = None,
    ) -> None:
        """`reviser` applies the writer's kept revisions again to sections that new notes
        made redraft (none: a redraft starts from the fresh draft)."""
        self._sessions = sessions
        self._writer = writer
        self._check = check
        self._reviser = reviser
        # One writer's drafting and revising run one at a time (the revision service shares
        # these locks): a version is always made from the current one.
        self.locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

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
        async with self.locks[owner_id], llm_usage_recorded(self._sessions, owner_id):
            snapshot = await self.snapshot(owner_id, article_id)
            sections = snapshot.sections
            if section_number is not None:
                if not 1 <= section_number <= len(sections):
                    raise UserError(
                        f"There is no section {section_number}: pick 1 to {len(sections)}."
                    )
                sections = [sections[section_number - 1]]
            if not any(s.sources for s in snapshot.sections):
                raise UserError(
                    "There are no notes to draft yet. Send a voice note or a text first."
                )
            outline = [s.title for s in snapshot.sections]

            # No transaction is open while the LLM works; results are stored afterwards.
            new: dict[str, tuple[int | None, SectionDraft]] = {}
            drafted: dict[int, SectionDraft | None] = {}
            keys: dict[int, str] = {}
            figures = Figures()
            reports: list[SectionReport] = []
            check_version = writer.check_version if self._check else "unchecked"
            for done, section in enumerate(sections):
                if progress is not None:
                    progress(done, len(sections))
                if not section.sources:
                    drafted[section.id] = None
                    reports.append(
                        SectionReport(section.number, section.title, 0, False, Figures())
                    )
                    continue
                key = _cache_key(
                    CACHE_FORMAT,
                    f"{writer.section_version}+{check_version}",
                    writer.model,
                    writer.language,
                    [
                        snapshot.title,
                        section.title,
                        [(s.label, s.part_ids, s.text) for s in section.sources],
                    ],
                )
                keys[section.id] = key
                regenerated = key not in snapshot.cached
                if regenerated:
                    stored = await self._draft_section(
                        writer, snapshot.title, outline, section, snapshot.glossary
                    )
                    if stored.blocks:  # an empty answer is not kept: /draft n asks again
                        new[key] = (section.id, stored)
                else:
                    stored = SectionDraft.model_validate_json(snapshot.cached[key])
                drafted[section.id] = stored
                figures += stored.figures
                reports.append(
                    SectionReport(
                        section.number,
                        section.title,
                        len(section.sources),
                        regenerated,
                        stored.figures,
                        cut_off=stored.cut_off,
                        answers=stored.answers,
                        empty=not stored.blocks,
                    )
                )
            regenerated_count = sum(1 for r in reports if r.regenerated)
            if progress is not None:
                progress(len(sections), len(sections))

            # Versions: a section whose drafted text changed (new notes, another model or
            # prompt) gets a new "draft" version, and the writer's kept revision instructions
            # are applied to it again, in order; otherwise its current version stands.
            current = current_of(snapshot.versions)
            planned: list[NewVersion] = []
            final: dict[int, tuple[Block, ...]] = {sid: v.blocks for sid, v in current.items()}
            reapplied = 0
            for section in sections:
                stored_or_none = drafted.get(section.id)
                if stored_or_none is None or not stored_or_none.blocks:
                    final.pop(section.id, None)
                    continue
                key = keys[section.id]
                now = current.get(section.id)
                if now is not None and now.draft_key == key:
                    continue
                nkey = notes_key(section.sources)
                blocks = stored_or_none.blocks
                planned.append(NewVersion(section.id, CAUSE_DRAFT, blocks, key, nkey))
                for original_id, instruction in kept_instructions(snapshot.versions, section.id):
                    revised, change = await self.revise_blocks(
                        snapshot, section, blocks, instruction
                    )
                    if revised is None:
                        continue
                    blocks = revised
                    reapplied += 1
                    planned.append(
                        NewVersion(
                            section.id,
                            CAUSE_REVISION,
                            blocks,
                            key,
                            nkey,
                            instruction=instruction,
                            change=change,
                            repeats_id=original_id,
                        )
                    )
                final[section.id] = blocks

            shown = sections if section_number is not None else snapshot.sections
            pieces = assemble(snapshot, final, shown, whole=section_number is None)
            markdown = "\n".join(p.markdown for p in pieces)
            article_markdown = markdown
            if section_number is not None:
                # The article as it stands now, for /export, when every section with notes
                # has a text to show.
                if all(s.id in final for s in snapshot.sections if s.sources):
                    whole = assemble(snapshot, final, snapshot.sections, whole=True)
                    article_markdown = "\n".join(p.markdown for p in whole)
                else:
                    article_markdown = ""
            from_stored = section_number is None and markdown == snapshot.latest_markdown
            changed_article = bool(article_markdown) and (
                article_markdown != snapshot.latest_markdown
            )
            await self._store(
                owner_id,
                snapshot.article_id,
                new,
                article_markdown if changed_article else None,
                regenerated_count,
                writer.model,
                figures,
                planned,
            )
            slug = slugify(snapshot.title)
            return DraftResult(
                markdown=markdown,
                filename=f"{slug}.md"
                if section_number is None
                else f"{slug}-section-{section_number}.md",
                sections_total=len(snapshot.sections),
                sections_with_notes=sum(1 for s in sections if s.sources),
                sections_regenerated=regenerated_count,
                from_stored=from_stored,
                figures=figures,
                sections=reports,
                unfinished_notes=snapshot.unfinished,
                section_number=section_number,
                pending_sources=snapshot.pending_sources,
                pieces=tuple(pieces),
                article_id=snapshot.article_id,
                revisions_reapplied=reapplied,
            )

    @property
    def can_revise(self) -> bool:
        return self._reviser is not None

    @property
    def model(self) -> str:
        return self._reviser.model if self._reviser is not None else ""

    async def revise_blocks(
        self,
        snapshot: ArticleSnapshot,
        section: SnapshotSection,
        blocks: Sequence[Block],
        instruction: str,
    ) -> tuple[tuple[Block, ...] | None, str]:
        """The section's non-introduction blocks revised by `instruction`, citations
        verified against its notes; the introduction blocks stay as they are. (None, "")
        when there is no reviser, or the model returned no text for the section."""
        if self._reviser is None:
            return None, ""
        opening = [b for b in blocks if b.kind == "introduction"]
        body = [b for b in blocks if b.kind != "introduction"]
        revision = await self._reviser.revise_section(
            snapshot.title, section.title, section.sources, body, instruction, snapshot.glossary
        )
        index = SourceIndex(section.sources)
        checked = await run_in_daemon_thread(
            verify_revision, body, revision.blocks, index, instruction
        )
        if not checked:  # an empty answer never replaces the section's text
            return None, ""
        return (*opening, *checked), revision.change

    async def _draft_section(
        self,
        writer: DraftWriter,
        title: str,
        outline: list[str],
        section: SnapshotSection,
        glossary: Sequence[str],
    ) -> SectionDraft:
        written = await writer.draft_section(
            title, outline, section.title, section.sources, glossary
        )
        index = SourceIndex(section.sources)
        # Fuzzy matching over many notes is CPU work: off the event loop, so other writers
        # are answered meanwhile.
        blocks = await run_in_daemon_thread(check_citations, written.blocks, index)
        figures = Figures()
        if self._check and blocks:
            report = await writer.check_section(section.title, section.sources, blocks)
            blocks, figures = await run_in_daemon_thread(apply_report, blocks, report, index)
        return SectionDraft(
            blocks=tuple(blocks),
            answers=written.answers,
            cut_off=written.cut_off,
            figures=figures,
        )

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
        snapshot = await self.snapshot(owner_id, article_id, with_cache=False)
        markdown = render_notes_export(
            snapshot.title,
            [
                (
                    s.title,
                    [
                        NoteRef(x.label, x.created_at, x.kind, x.text, _origin(x, snapshot))
                        for x in s.sources
                    ],
                )
                for s in snapshot.sections
            ],
            snapshot.unfinished,
        )
        return f"{slugify(snapshot.title)}-notes.md", markdown

    async def snapshot(
        self, owner_id: int, article_id: int | None = None, *, with_cache: bool = True
    ) -> ArticleSnapshot:
        """The article as drafting sees it: sections with their notes, cache, versions."""
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            article = await _article(repo, article_id)
            rows = [
                (part, note)
                for part, note in await repo.parts.of_article(article.id)
                if note.state == NoteState.FILED
            ]
            source_rows = await repo.sources.of_article(article.id)
            outside = {note_id: source_ref(row) for note_id, row in source_rows.items()}
            parts_in_note: defaultdict[int, int] = defaultdict(int)
            for _, note in rows:
                parts_in_note[note.id] += 1
            by_section: defaultdict[int, list[Source]] = defaultdict(list)
            parts: dict[int, PartRef] = {}
            seen_in_note: defaultdict[int, int] = defaultdict(int)
            for part, note in rows:
                seen_in_note[note.id] += 1
                number, total = seen_in_note[note.id], parts_in_note[note.id]
                # A source reaches the prompt and the footnotes as what it is.
                kind = outside[note.id].kind if note.id in outside else note.kind.value
                parts[part.id] = PartRef(note.created_at, kind, part.text, number, total)
                sources = by_section[part.section_id]
                if sources and sources[-1].note_id == note.id:  # two parts of one note here
                    last = sources[-1]
                    sources[-1] = replace(
                        last,
                        part_ids=(*last.part_ids, part.id),
                        texts=(*last.texts, part.text),
                    )
                else:
                    sources.append(
                        Source(
                            note.id, (part.id,), (part.text,), note.created_at, kind, number, total
                        )
                    )
            sections = [
                SnapshotSection(s.id, n, s.title, by_section.get(s.id, []))
                for n, s in enumerate(await repo.sections.of_article(article.id), start=1)
            ]
            cached = await repo.drafts.cached_all(article.id) if with_cache else {}
            latest = await repo.drafts.latest_version(article.id) if with_cache else None
            versions = [
                version_info(v) for v in await repo.revisions.versions_of_article(article.id)
            ]
            ticks = [Tick(t.section_id, t.text) for t in await repo.revisions.ticks(article.id)]
            return ArticleSnapshot(
                article.id,
                article.title,
                sections,
                parts,
                cached,
                latest.markdown if latest else None,
                await repo.notes.unfinished_count(article.id),
                await repo.vocabulary.glossary(),
                versions,
                ticks,
                outside,
                sum(1 for row in source_rows.values() if row.status == SourceStatus.PENDING),
            )

    async def _store(
        self,
        owner_id: int,
        article_id: int,
        new: dict[str, tuple[int | None, SectionDraft]],
        markdown: str | None,
        regenerated: int,
        model: str,
        figures: Figures,
        versions: Sequence[NewVersion] = (),
    ) -> None:
        if not new and markdown is None and not versions:
            return
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            for key, (section_id, stored) in new.items():
                await repo.drafts.save_cached(article_id, section_id, key, stored.model_dump_json())
            for version in versions:
                await repo.revisions.add_version(version.row(article_id))
            if markdown is not None:
                await repo.drafts.add_version(
                    article_id, markdown, regenerated, model, figures.model_dump_json()
                )


def _figures(section: SnapshotSection, outside: dict[int, SourceRef]) -> list[SourceRef]:
    """The section's images that can stand in the draft as figures."""
    refs = (outside.get(s.note_id) for s in section.sources)
    return [r for r in refs if r is not None and r.kind == SourceKind.IMAGE and r.image_file]


def _sources_list(
    sections: Sequence[SnapshotSection], outside: dict[int, SourceRef]
) -> list[SourceRef]:
    """Every source the drafted sections' notes hold, once, in the order they appear."""
    listed: dict[int, SourceRef] = {}
    for section in sections:
        for source in section.sources:
            ref = outside.get(source.note_id)
            if ref is not None and ref.note_id not in listed:
                listed[ref.note_id] = ref
    return list(listed.values())


def _origin(source: Source, snapshot: ArticleSnapshot) -> str:
    ref = snapshot.sources.get(source.note_id)
    if ref is None:
        return ""
    if ref.kind == SourceKind.POST:
        return " ".join(x for x in (ref.origin or "", ref.url or "") if x)
    return ref.url or ref.title

def assemble(
    snapshot: ArticleSnapshot,
    blocks_of: dict[int, tuple[Block, ...]],
    sections: Sequence[SnapshotSection],
    *,
    whole: bool,
) -> list[Piece]:
    """The draft from each section's current blocks. For the whole article, what a section
    marked as being about the whole article opens it as its introduction."""
    introduction: list[Block] = []
    views: list[SectionView] = []
    for section in sections:
        blocks = list(blocks_of.get(section.id, ()))
        moved = False
        if whole:
            opening = [b for b in blocks if b.kind == "introduction"]
            introduction += [b.model_copy(update={"kind": "paragraph"}) for b in opening]
            blocks = [b for b in blocks if b.kind != "introduction"]
            moved = bool(opening)
        views.append(
            SectionView(
                section.number,
                section.title,
                blocks,
                has_notes=bool(section.sources),
                went_to_introduction=moved and not blocks,
                figures=_figures(section, snapshot.sources),
                done=ticked_positions(blocks, section.id, snapshot.ticks),
                # Only a section with text to revise is remembered as shown.
                section_id=section.id if blocks else None,
            )
        )
    listed = _sources_list(sections, snapshot.sources)
    return render_pieces(snapshot.title, introduction, views, snapshot.parts, listed)


async def _article(repo: Repository, article_id: int | None) -> Article:
    """The named article of this writer, or the active one."""
    if article_id is None:
        return await require_article(repo)
    article = await repo.articles.get(article_id)
    if article is None:
        raise UserError("That article does not exist (any more).")
    return article
