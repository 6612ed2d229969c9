"""The draft service with an in-process writer: what the check pass may change, what an empty
section says, and which part of a split note a footnote quotes. Real SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Note
from bot.db.repository import Repository
from bot.drafting.model import Block, Citation, CitationVerdict, ClaimedPoint
from bot.drafting.service import DraftService
from bot.notes.intake import IntakeService
from bot.services.outline import OutlineService
from bot.telegram import texts
from tests.fakes.draft_writer import FakeDraftWriter

WRITER = 3003
NOTE_1 = "A data engineer prepares data for analysts and for machine learning teams."
NOTE_2 = "Knowledge bases need ingestion pipelines, which is classic data engineering work."


@pytest.fixture
async def article(sessions: async_sessionmaker[AsyncSession]) -> None:
    outline, intake = OutlineService(sessions), IntakeService(sessions)
    await outline.new_article(WRITER, WRITER, "Data to AI")
    await outline.set_outline(WRITER, WRITER, ["Where it ends", "Skill gaps", "Stories"])
    await outline.choose_section_by_number(WRITER, 1)
    await intake.receive_text(WRITER, WRITER, 1, NOTE_1)
    await intake.receive_text(WRITER, WRITER, 2, NOTE_2)


async def part_ids(sessions: async_sessionmaker[AsyncSession]) -> list[int]:
    async with sessions.begin() as session:
        article = await Repository(session, WRITER).articles.active()
        assert article is not None
        return [p.id for p, _ in await Repository(session, WRITER).parts.of_article(article.id)]


def section(markdown: str, title: str) -> str:
    return markdown.split(f"## {title}", 1)[1].split("\n## ", 1)[0].split("\n---\n", 1)[0]


async def test_a_restored_point_needs_a_quote_that_verifies_and_only_verified_points_count(
    sessions: async_sessionmaker[AsyncSession], article: None
) -> None:
    first, second = await part_ids(sessions)
    writer = FakeDraftWriter()
    writer.queue_draft(
        Block(
            kind="paragraph",
            text="Data engineers feed analysts.",
            citations=(Citation(part_id=first, quote="prepares data for analysts"),),
        ),
    )
    writer.queue_check(
        points=[
            ClaimedPoint(first, "prepares data for analysts", "feeds analysts", True),
            ClaimedPoint(first, "prepares data for analysts", "the same point again", True),
            # Lost, and anchored in the note: restored, cited with that quote.
            ClaimedPoint(
                second,
                "Knowledge bases need ingestion pipelines",
                "ingestion",
                False,
                "Knowledge bases need ingestion pipelines, and that is data engineering.",
            ),
            # Lost, but its quote is in no note: not restored, not counted.
            ClaimedPoint(
                second,
                "vector databases replace warehouses",
                "invented",
                False,
                "Vector databases will replace every warehouse.",
            ),
            # Anchored, but a weak model's "restoration": not prose, not inserted.
            ClaimedPoint(second, "classic data engineering work", "classic", False, "true"),
        ]
    )
    result = await DraftService(sessions, writer).draft(WRITER)
    body = section(result.markdown, "Where it ends")
    assert "Knowledge bases need ingestion pipelines, and that is data engineering.[^" in body
    assert "Vector databases" not in result.markdown
    assert "true" not in body.split()
    footnotes = dict(re.findall(r"^\[\^(\d+)\]: (.+)$", result.markdown, re.MULTILINE))
    assert any("“Knowledge bases need ingestion pipelines”" in f for f in footnotes.values())
    figures = result.figures
    # Three distinct anchored points (the repeated quote counts once); one claim ignored.
    assert (figures.points_total, figures.points_kept, figures.points_restored) == (3, 1, 1)
    assert figures.claims_ignored == 1
    summary = texts.draft_summary(result)
    assert "Kept 1/3 verified points, restored 1" in summary
    assert "Ignored 1 claim(s)" in summary


async def test_a_checker_answer_that_verifies_nothing_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], article: None
) -> None:
    first, second = await part_ids(sessions)
    unchecked = FakeDraftWriter()
    plain = (await DraftService(sessions, unchecked, check=False).draft(WRITER)).markdown

    writer = FakeDraftWriter(check_version="c2")
    writer.queue_check(
        points=[
            ClaimedPoint(first, "true", "true", False, "false"),
            ClaimedPoint(second, "everything is lost here", "all", False, "Everything is lost."),
        ],
        # It also calls every citation unsupported: not believed either.
        verdicts=[CitationVerdict(1, first, False), CitationVerdict(2, second, False)],
    )
    result = await DraftService(sessions, writer).draft(WRITER)
    assert section(result.markdown, "Where it ends") == section(plain, "Where it ends")
    assert result.figures.points_total == 0 and result.figures.citations_removed == 0
    assert result.figures.inconclusive == 1 and result.figures.claims_ignored == 2
    assert "changed nothing" in texts.coverage(result)


async def test_an_empty_answer_says_so_and_is_asked_again_while_introductions_are_named(
    sessions: async_sessionmaker[AsyncSession], article: None
) -> None:
    intake, outline = IntakeService(sessions), OutlineService(sessions)
    await outline.choose_section_by_number(WRITER, 3)
    await intake.receive_text(WRITER, WRITER, 3, "This article is for data engineers.")
    writer = FakeDraftWriter()
    writer.queue_draft()  # section 1: the model returned nothing
    writer.queue_draft(Block(kind="introduction", text="I write this for data engineers."))
    result = await DraftService(sessions, writer).draft(WRITER)
    md = result.markdown
    assert "The model returned nothing for this section" in section(md, "Where it ends")
    assert "/draft 1" in section(md, "Where it ends")
    assert "about the whole article: see the introduction" in section(md, "Stories")
    assert "I write this for data engineers." in md.split("## Where it ends", 1)[0]
    assert "the model returned nothing for this section" in texts.draft_summary(result)
    assert "/draft 1" in texts.draft_summary(result)

    # Not cached as a draft: the next /draft (or /draft 1) asks the model again.
    asked = len(writer.asked("draft"))
    again = await DraftService(sessions, writer).draft(WRITER, 1)
    assert len(writer.asked("draft")) == asked + 1
    assert "From N" in again.markdown


async def test_a_split_notes_footnotes_quote_the_part_each_section_cites(
    sessions: async_sessionmaker[AsyncSession], article: None
) -> None:
    intake = IntakeService(sessions)
    await intake.receive_text(WRITER, WRITER, 9, "Opening words of the first part about roles.")
    async with sessions.begin() as session:
        repo = Repository(session, WRITER)
        note = await repo.notes.by_message(WRITER, 9)
        assert isinstance(note, Note)
        article_id = note.article_id
        sections = await repo.sections.of_article(article_id)
        await repo.parts.add(note, sections[1].id, "Second part names the skill gaps to close.", 1)
        await repo.parts.add(note, sections[2].id, "Third part tells a transition story.", 2)
    writer = FakeDraftWriter(check_version="c3")
    md = (await DraftService(sessions, writer, check=False).draft(WRITER)).markdown
    footnotes = dict(re.findall(r"^\[\^(\d+)\]: (.+)$", md, re.MULTILINE))
    for title, words in (("Skill gaps", "Second part names"), ("Stories", "Third part tells")):
        refs = re.findall(r"\[\^(\d+)\]", section(md, title))
        assert refs, title
        shown = footnotes[refs[0]]
        assert f"“{words}" in shown and "part " in shown and " of 3" in shown, shown
    first = re.findall(r"\[\^(\d+)\]", section(md, "Where it ends"))
    assert any("“Opening words of the" in footnotes[r] for r in first)
    assert not any("Second part" in footnotes[r] or "Third part" in footnotes[r] for r in first)
