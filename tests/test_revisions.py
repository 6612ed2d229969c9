"""The revision service with an in-process reviser, on real SQLite and PostgreSQL: versions,
undo, what another writer cannot touch, a spoken instruction revised once however many
runners look, and a failure that stores nothing."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import DraftVersion, Note, NotePart, SectionVersion, SpokenInstruction
from bot.domain import UserError
from bot.drafting.model import Block, Citation, Revision, Source
from bot.drafting.revisions import RevisionService
from bot.drafting.service import DraftService
from bot.drafting.versions import Tick, is_ticked
from bot.llm.client import LLMError
from bot.notes.intake import IntakeService
from bot.services.outline import OutlineService
from tests.fakes.draft_writer import FakeDraftWriter

WRITER, OTHER = 4004, 4005
NOTE = "We vote on the next book by a show of hands every month."


@dataclass
class FakeReviser:
    """Answers queued revisions (or raises queued errors); records every instruction."""

    model: str = "fake-reviser"
    history: list[str] = field(default_factory=list)
    answers: deque[Revision | Exception] = field(default_factory=deque)

    async def revise_section(
        self,
        article_title: str,
        section_title: str,
        sources: Sequence[Source],
        blocks: Sequence[Block],
        instruction: str,
        glossary: Sequence[str] = (),
    ) -> Revision:
        self.history.append(instruction)
        answer = self.answers.popleft()
        if isinstance(answer, Exception):
            raise answer
        return answer


def revision(part_id: int, text: str) -> Revision:
    quote = Citation(part_id=part_id, quote="show of hands every month")
    return Revision(blocks=[Block(kind="paragraph", text=text, citations=(quote,))], change="ok")


@pytest.fixture
async def service(
    sessions: async_sessionmaker[AsyncSession],
) -> tuple[RevisionService, FakeReviser, int]:
    outline, intake = OutlineService(sessions), IntakeService(sessions)
    await outline.new_article(WRITER, WRITER, "Book club")
    await outline.set_outline(WRITER, WRITER, ["Voting", "Snacks"])
    await outline.choose_section_by_number(WRITER, 1)
    await intake.receive_text(WRITER, WRITER, 1, NOTE)
    reviser = FakeReviser()
    drafts = DraftService(sessions, FakeDraftWriter(), check=False, reviser=reviser)
    await drafts.draft(WRITER)
    async with sessions() as session:
        part = (await session.scalars(select(NotePart))).one()
    return RevisionService(sessions, drafts), reviser, part.id


async def latest_markdown(sessions: async_sessionmaker[AsyncSession]) -> str:
    async with sessions() as session:
        row = await session.scalar(select(DraftVersion).order_by(DraftVersion.id.desc()))
        assert row is not None
        return row.markdown


async def test_revise_undo_history_and_another_writer(
    sessions: async_sessionmaker[AsyncSession], service: tuple[RevisionService, FakeReviser, int]
) -> None:
    revisions, reviser, part = service
    reviser.answers.append(revision(part, "We vote by a show of hands, every month."))
    revised = await revisions.revise(WRITER, "  make it   crisp ", section_number=1)
    assert reviser.history == ["make it crisp"]
    assert revised.version_number == 2 and revised.section.title == "Voting"
    assert "We vote by a show of hands, every month." in await latest_markdown(sessions)

    with pytest.raises(UserError):
        await revisions.undo(OTHER, revised.version_id)  # not theirs: never found
    with pytest.raises(UserError):
        await revisions.revise(WRITER, "shorter", section_number=2)  # no draft there yet

    back = await revisions.undo(WRITER, revised.version_id)
    assert back.cause == "undo" and back.version_number == 3
    assert "show of hands, every month." not in await latest_markdown(sessions)
    with pytest.raises(UserError, match="already undone"):
        await revisions.undo(WRITER, revised.version_id)
    lines = await revisions.history(WRITER, 1)
    assert [(line.cause, line.undone, line.current) for line in lines] == [
        ("draft", False, False),
        ("revision", True, False),
        ("undo", False, True),
    ]
    with pytest.raises(UserError):
        await revisions.history(OTHER)  # another writer has no article, and sees none of it


async def test_a_failed_revision_stores_nothing(
    sessions: async_sessionmaker[AsyncSession], service: tuple[RevisionService, FakeReviser, int]
) -> None:
    revisions, reviser, _ = service
    before = await latest_markdown(sessions)
    reviser.answers.append(LLMError("The LLM is not answering.", kind="server"))
    with pytest.raises(LLMError):
        await revisions.revise(WRITER, "shorter", section_number=1)
    async with sessions() as session:
        assert len((await session.scalars(select(SectionVersion))).all()) == 1
    assert await latest_markdown(sessions) == before


async def test_a_spoken_instruction_is_claimed_once(
    sessions: async_sessionmaker[AsyncSession], service: tuple[RevisionService, FakeReviser, int]
) -> None:
    revisions, reviser, part = service
    async with sessions.begin() as session:
        note = (await session.scalars(select(Note))).one()
        voice = Note(
            owner_id=WRITER,
            article_id=note.article_id,
            section_id=note.section_id,
            kind=note.kind,
            chat_id=WRITER,
            message_id=99,
            state=note.state,
            transcript="open with the vote",
        )
        session.add(voice)
        await session.flush()
        session.add(SpokenInstruction(note_id=voice.id, section_id=note.section_id, state="ready"))
    claimed = await revisions.next_spoken()
    assert claimed == (WRITER, voice.id)
    assert await revisions.next_spoken() is None, "a second runner finds nothing"
    reviser.answers.append(revision(part, "The vote opens it: a show of hands every month."))
    outcome = await revisions.revise_spoken(*claimed)
    assert outcome is not None and not hasattr(outcome, "message")
    assert reviser.history == ["open with the vote"]
    status_title, rows = await revisions.status(WRITER)
    assert status_title == "Book club"
    assert [(r.number, r.notes, r.drafted, r.versions, r.thin) for r in rows] == [
        (1, 1, True, 2, None),
        (2, 0, False, 0, "no_notes"),
    ]


async def test_only_the_current_revision_can_be_undone(
    sessions: async_sessionmaker[AsyncSession], service: tuple[RevisionService, FakeReviser, int]
) -> None:
    revisions, reviser, part = service
    reviser.answers.append(revision(part, "First: a show of hands every month."))
    reviser.answers.append(revision(part, "Second: a show of hands every month."))
    first = await revisions.revise(WRITER, "one", section_number=1)
    await revisions.revise(WRITER, "two", section_number=1)
    with pytest.raises(UserError, match="not the section's current text"):
        await revisions.undo(WRITER, first.version_id)
    assert "Second: a show of hands" in await latest_markdown(sessions)


async def test_an_empty_answer_never_replaces_the_section(
    sessions: async_sessionmaker[AsyncSession], service: tuple[RevisionService, FakeReviser, int]
) -> None:
    revisions, reviser, _ = service
    before = await latest_markdown(sessions)
    reviser.answers.append(Revision(blocks=[], change="Removed everything."))
    with pytest.raises(UserError, match="returned no text"):
        await revisions.revise(WRITER, "delete it all", section_number=1)
    async with sessions() as session:
        assert len((await session.scalars(select(SectionVersion))).all()) == 1
    assert await latest_markdown(sessions) == before


def test_a_ticked_todo_is_found_again_reworded_but_not_with_other_numbers() -> None:
    ticked = [Tick(7, "Find a recipe for lemon cake.")]
    assert is_ticked(7, "Find a good recipe for the lemon cake.", ticked)
    assert not is_ticked(8, "Find a recipe for lemon cake.", ticked), "another section's"
    assert not is_ticked(7, "Ask Anna about the scones.", ticked)
    figures = [Tick(7, "Check the 2019 figures.")]
    assert is_ticked(7, "Check the 2019 figures", figures)
    assert not is_ticked(7, "Check the 2020 figures.", figures)
