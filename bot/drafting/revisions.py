"""Talking to the draft: revise a section by instruction, undo or keep it, its history, the
author's TODOs and what is still thin. Each use case reads in one transaction, calls the LLM
with none open, and stores what came out in one more: nothing half-written is ever stored."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Note, SpokenInstruction
from bot.db.repository import Repository
from bot.db.revisions import ready_instructions
from bot.domain import UserError
from bot.drafting.markdown import Piece
from bot.drafting.model import Block
from bot.drafting.service import (
    NO_LLM,
    ArticleSnapshot,
    DraftService,
    SnapshotSection,
    assemble,
)
from bot.drafting.versions import (
    CAUSE_REVISION,
    CAUSE_UNDO,
    NewVersion,
    Tick,
    VersionInfo,
    current_of,
    is_ticked,
    notes_key,
)
from bot.services.usage import llm_usage_recorded

log = logging.getLogger(__name__)

NO_DRAFT_YET = "Section {number} has no draft yet: send /draft first, then revise it."
NOT_CURRENT = (
    "That revision is not the section's current text any more, so it cannot be undone from "
    "here. /history shows its versions."
)
ALREADY_UNDONE = "That revision was already undone."
NO_SUCH_VERSION = "That version does not exist (any more)."
EMPTY_ANSWER = "The model returned no text for this section, so I kept the current one."
EMPTY_INSTRUCTION = "Tell me what to change, for example: /revise 2 make it shorter."


@dataclass(frozen=True)
class SectionRef:
    id: int
    number: int
    title: str


@dataclass(frozen=True)
class Revised:
    """A section's new current text, after a revision or an undo."""

    section: SectionRef
    version_id: int
    version_number: int  # 1 for the section's first version
    cause: str
    change: str
    pieces: tuple[Piece, ...]  # the section alone, with its footnotes
    article_id: int
    # Spoken instructions: where the writer is, and the voice note to answer.
    chat_id: int = 0
    reply_to: int | None = None
    instruction: str = ""


@dataclass(frozen=True)
class HistoryLine:
    section_number: int
    section_title: str
    version_number: int
    cause: str
    created_at: datetime
    instruction: str | None
    change: str | None
    undone: bool
    current: bool


@dataclass(frozen=True)
class TodoItem:
    number: int
    section_number: int
    section_title: str
    text: str
    done: bool


@dataclass(frozen=True)
class SectionStatus:
    number: int
    title: str
    notes: int
    words: int
    drafted: bool
    versions: int
    open_todos: int
    thin: str | None  # "no_notes", "no_draft", "stale" (a draft older than its notes)


@dataclass(frozen=True)
class FailedInstruction:
    """A spoken instruction whose revision failed: the writer is told why."""

    chat_id: int
    reply_to: int | None
    message: str  # user-safe (a UserError's message), or "" for an unexpected failure


class RevisionService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], drafts: DraftService) -> None:
        self._sessions = sessions
        self._drafts = drafts

    # which message shows which section ----------------------------------------------------
    async def remember_messages(
        self, owner_id: int, chat_id: int, article_id: int, shown: list[tuple[int, int]]
    ) -> None:
        """(section id, message id) of messages just sent, all in one transaction."""
        if not shown:
            return
        async with self._sessions.begin() as session:
            await Repository(session, owner_id).revisions.remember_messages(
                article_id, chat_id, shown
            )

    async def section_of_message(
        self, owner_id: int, chat_id: int, message_id: int
    ) -> SectionRef | None:
        """The section a message shows, if the message shows one."""
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            section = await repo.revisions.section_of_message(chat_id, message_id)
            if section is None:
                return None
            ids = [s.id for s in await repo.sections.of_article(section.article_id)]
            return SectionRef(section.id, ids.index(section.id) + 1, section.title)

    # revising -------------------------------------------------------------------------------
    async def revise(
        self,
        owner_id: int,
        instruction: str,
        *,
        section_number: int | None = None,
        section_id: int | None = None,
    ) -> Revised:
        """Apply the writer's instruction to a section's current text: a new version."""
        instruction = " ".join(instruction.split())
        if not instruction:
            raise UserError(EMPTY_INSTRUCTION)
        if not self._drafts.can_revise:
            raise UserError(NO_LLM)
        async with self._drafts.locks[owner_id], llm_usage_recorded(self._sessions, owner_id):
            snapshot, section, current = await self._current(
                owner_id, section_number=section_number, section_id=section_id
            )
            revised, change = await self._drafts.revise_blocks(
                snapshot, section, current.blocks, instruction
            )
            if revised is None:
                raise UserError(EMPTY_ANSWER)
            new = NewVersion(
                section.id,
                CAUSE_REVISION,
                revised,
                # Made from the same draft: a draft older than its notes stays so (/status)
                # until /draft redrafts it and applies this revision again.
                current.draft_key,
                current.notes_key,
                instruction=instruction,
                change=change,
            )
            return await self._store(owner_id, snapshot, section, new)

    async def undo(self, owner_id: int, version_id: int) -> Revised:
        """Back to the version before a revision: a new "undo" version with that text."""
        async with self._drafts.locks[owner_id]:
            async with self._sessions.begin() as session:
                target = await Repository(session, owner_id).revisions.version(version_id)
                if target is None:
                    raise UserError(NO_SUCH_VERSION)
                article_id = target.article_id
            snapshot = await self._drafts.snapshot(owner_id, article_id)
            versions = [v for v in snapshot.versions if v.section_id == target.section_id]
            current = versions[-1] if versions else None
            chosen = next((v for v in versions if v.id == version_id), None)
            section = snapshot.section(target.section_id)
            if chosen is None or section is None or chosen.cause != CAUSE_REVISION:
                raise UserError(NO_SUCH_VERSION)
            if chosen.undone:
                raise UserError(ALREADY_UNDONE)
            if current is None or current.id != chosen.id:
                raise UserError(NOT_CURRENT)
            before = versions[-2]  # a revision always follows a version
            new = NewVersion(
                section.id,
                CAUSE_UNDO,
                before.blocks,
                before.draft_key,
                before.notes_key,
                change=None,
            )
            undone = [chosen.id] + ([chosen.repeats_id] if chosen.repeats_id else [])
            return await self._store(owner_id, snapshot, section, new, undone=undone)

    async def keep(self, owner_id: int, version_id: int) -> SectionRef:
        """The writer keeps a revision (its buttons go); kept or not, a revision not undone
        is applied again after a redraft."""
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            version = await repo.revisions.version(version_id)
            if version is None or version.cause != CAUSE_REVISION:
                raise UserError(NO_SUCH_VERSION)
            if version.undone:
                raise UserError(ALREADY_UNDONE)
            version.kept = True
            sections = list(await repo.sections.of_article(version.article_id))
            number = next(n for n, s in enumerate(sections, 1) if s.id == version.section_id)
            return SectionRef(version.section_id, number, sections[number - 1].title)

    # spoken instructions --------------------------------------------------------------------
    async def next_spoken(self) -> tuple[int, int] | None:
        """Claim the next transcribed spoken instruction: (owner id, note id), or None. A
        claim is taken once (ready → done), so two runners never revise twice."""
        async with self._sessions.begin() as session:
            for owner_id, note_id in await ready_instructions(session):
                claimed = await session.execute(
                    update(SpokenInstruction)
                    .where(SpokenInstruction.note_id == note_id, SpokenInstruction.state == "ready")
                    .values(state="done")
                )
                if getattr(claimed, "rowcount", 0):
                    return owner_id, note_id
        return None

    async def revise_spoken(
        self, owner_id: int, note_id: int
    ) -> Revised | FailedInstruction | None:
        """Revise the section a voice note replied to, by what the writer said (None: the
        note was deleted meanwhile)."""
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            instruction = await repo.revisions.instruction(note_id)
            note = await session.get(Note, note_id)
            if instruction is None or note is None:
                return None
            said = "\n".join(t for t in (note.caption, note.transcript) if t)
            chat_id, reply_to, section_id = note.chat_id, note.message_id, instruction.section_id
        try:
            revised = await self.revise(owner_id, said, section_id=section_id)
        except UserError as exc:
            return FailedInstruction(chat_id, reply_to, exc.message)
        except Exception:
            log.exception("Spoken revision of note %s failed", note_id)
            return FailedInstruction(chat_id, reply_to, "")
        return replace(revised, chat_id=chat_id, reply_to=reply_to, instruction=said)

    # reading ------------------------------------------------------------------------------
    async def history(self, owner_id: int, section_number: int | None = None) -> list[HistoryLine]:
        """The versions of the article, or of section n, oldest first."""
        snapshot = await self._drafts.snapshot(owner_id, with_cache=False)
        if section_number is not None:
            _section_by_number(snapshot, section_number)
        current = current_of(snapshot.versions)
        counts: dict[int, int] = {}
        lines: list[HistoryLine] = []
        for version in snapshot.versions:
            section = snapshot.section(version.section_id)
            if section is None:
                continue
            counts[section.id] = counts.get(section.id, 0) + 1
            if section_number is not None and section.number != section_number:
                continue
            lines.append(
                HistoryLine(
                    section.number,
                    section.title,
                    counts[section.id],
                    version.cause,
                    version.created_at,
                    version.instruction,
                    version.change,
                    version.undone,
                    current[section.id].id == version.id,
                )
            )
        return lines

    async def todos(self, owner_id: int) -> list[TodoItem]:
        """The author's TODOs of the current draft, numbered, each with its section."""
        snapshot = await self._drafts.snapshot(owner_id, with_cache=False)
        current = current_of(snapshot.versions)
        items: list[TodoItem] = []
        for section in snapshot.sections:
            version = current.get(section.id)
            if version is None:
                continue
            for block in version.blocks:
                if block.kind == "todo":
                    items.append(
                        TodoItem(
                            len(items) + 1,
                            section.number,
                            section.title,
                            " ".join(block.text.split()),
                            is_ticked(section.id, block.text, snapshot.ticks),
                        )
                    )
        return items

    async def done(self, owner_id: int, number: int) -> TodoItem:
        """Tick TODO n of /todo; it stays ticked in later drafts (matched by its text)."""
        items = await self.todos(owner_id)
        if not items:
            raise UserError("There are no TODOs in the current draft.")
        if not 1 <= number <= len(items):
            raise UserError(f"There is no TODO {number}: pick 1 to {len(items)}.")
        item = items[number - 1]
        if item.done:
            return item
        async with self._drafts.locks[owner_id]:
            snapshot = await self._drafts.snapshot(owner_id)
            section = _section_by_number(snapshot, item.section_number)
            ticked = replace(snapshot, ticks=[*snapshot.ticks, Tick(section.id, item.text)])
            async with self._sessions.begin() as session:
                repo = Repository(session, owner_id)
                await repo.revisions.add_tick(section.id, item.text)
                # The stored draft shows it done too (/export, /publish), in the same go.
                if snapshot.latest_markdown is not None:
                    blocks = {sid: v.blocks for sid, v in current_of(snapshot.versions).items()}
                    await self._store_article(repo, ticked, blocks)
        return replace(item, done=True)

    async def status(self, owner_id: int) -> tuple[str, list[SectionStatus]]:
        """Per section: notes, words of notes, drafted, open TODOs, and what is thin."""
        snapshot = await self._drafts.snapshot(owner_id, with_cache=False)
        current = current_of(snapshot.versions)
        counts: dict[int, int] = {}
        for each in snapshot.versions:
            counts[each.section_id] = counts.get(each.section_id, 0) + 1
        rows: list[SectionStatus] = []
        for section in snapshot.sections:
            version = current.get(section.id)
            todos = [b for b in version.blocks if b.kind == "todo"] if version else []
            open_todos = sum(1 for b in todos if not is_ticked(section.id, b.text, snapshot.ticks))
            if not section.sources:
                thin: str | None = "no_notes"
            elif version is None:
                thin = "no_draft"
            elif version.notes_key != notes_key(section.sources):
                thin = "stale"
            else:
                thin = None
            rows.append(
                SectionStatus(
                    section.number,
                    section.title,
                    len(section.sources),
                    sum(len(s.text.split()) for s in section.sources),
                    version is not None,
                    counts.get(section.id, 0),
                    open_todos,
                    thin,
                )
            )
        return snapshot.title, rows

    # helpers ------------------------------------------------------------------------------
    async def _current(
        self, owner_id: int, *, section_number: int | None, section_id: int | None
    ) -> tuple[ArticleSnapshot, SnapshotSection, VersionInfo]:
        article_id: int | None = None
        if section_id is not None:  # a reply may be to a section of another article
            async with self._sessions.begin() as session:
                found_row = await Repository(session, owner_id).sections.get(section_id)
                article_id = found_row.article_id if found_row is not None else None
        snapshot = await self._drafts.snapshot(owner_id, article_id)
        if section_id is not None:
            found = snapshot.section(section_id)
            if found is None:
                raise UserError(
                    "That section is not in the outline any more: /sections shows the outline."
                )
            section = found
        else:
            assert section_number is not None
            section = _section_by_number(snapshot, section_number)
        current = current_of(snapshot.versions).get(section.id)
        if current is None:
            raise UserError(NO_DRAFT_YET.format(number=section.number))
        return snapshot, section, current

    async def _store(
        self,
        owner_id: int,
        snapshot: ArticleSnapshot,
        section: SnapshotSection,
        new: NewVersion,
        *,
        undone: list[int] | None = None,
    ) -> Revised:
        """The new version, and the article re-rendered with it, in one transaction."""
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            if undone:
                await repo.revisions.mark_undone(undone)
            row = await repo.revisions.add_version(new.row(snapshot.article_id))
            blocks = {sid: v.blocks for sid, v in current_of(snapshot.versions).items()}
            blocks[section.id] = new.blocks
            await self._store_article(repo, snapshot, blocks)
            number = sum(1 for v in snapshot.versions if v.section_id == section.id) + 1
            # The section alone, with its footnotes (the title line stays out).
            alone = assemble(snapshot, blocks, [section], whole=False)[1:]
            shown = Piece(section.id, "\n".join(p.markdown for p in alone))
            return Revised(
                SectionRef(section.id, section.number, section.title),
                row.id,
                number,
                new.cause,
                new.change or "",
                (shown,),
                snapshot.article_id,
            )

    async def _store_article(
        self, repo: Repository, snapshot: ArticleSnapshot, blocks: dict[int, tuple[Block, ...]]
    ) -> None:
        """Store the article as it now stands, for /export and /publish."""
        pieces = assemble(snapshot, blocks, snapshot.sections, whole=True)
        markdown = "\n".join(p.markdown for p in pieces)
        if markdown != snapshot.latest_markdown:
            await repo.drafts.add_version(
                snapshot.article_id, markdown, 0, self._drafts.model, "{}"
            )


def _section_by_number(snapshot: ArticleSnapshot, number: int) -> SnapshotSection:
    sections = snapshot.sections
    if not 1 <= number <= len(sections):
        raise UserError(f"There is no section {number}: pick 1 to {len(sections)}.")
    return sections[number - 1]
