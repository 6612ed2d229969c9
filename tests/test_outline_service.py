"""Outline, sections and articles against a real SQLite database."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import UserError
from bot.notes.intake import IntakeService
from bot.services.outline import OutlineService

WRITER, OTHER, CHAT = 1001, 2002, 1001


@pytest.fixture
def outline(sessions: async_sessionmaker[AsyncSession]) -> OutlineService:
    return OutlineService(sessions)


@pytest.fixture
def intake(sessions: async_sessionmaker[AsyncSession]) -> IntakeService:
    return IntakeService(sessions)


async def test_new_article_becomes_active_and_replaces_previous(outline: OutlineService) -> None:
    await outline.new_article(WRITER, CHAT, "First")
    second = await outline.new_article(WRITER, CHAT, "  Second   one ")
    assert second.article.title == "Second one"
    articles = await outline.articles(WRITER)
    assert [(a.title, a.is_active) for a in articles] == [("First", False), ("Second one", True)]


async def test_outline_numbers_sections_and_keeps_notes_of_existing_titles(
    outline: OutlineService, intake: IntakeService
) -> None:
    await outline.new_article(WRITER, CHAT, "Book club")
    await outline.set_outline(WRITER, CHAT, ["Reading list", "Schedule", "Snacks"])
    await outline.choose_section_by_number(WRITER, 2)
    await intake.receive_text(WRITER, CHAT, 10, "We meet on Thursdays.")

    # Reordered, one renamed by case only, one dropped, one added.
    result = await outline.set_outline(WRITER, CHAT, ["snacks", "SCHEDULE", "Venue"])
    assert [(s.number, s.title, s.note_count) for s in result.sections] == [
        (1, "snacks", 0),
        (2, "SCHEDULE", 1),
        (3, "Venue", 0),
    ]
    assert result.active_section is not None and result.active_section.title == "SCHEDULE"


async def test_outline_never_drops_a_section_that_holds_notes(
    outline: OutlineService, intake: IntakeService
) -> None:
    await outline.new_article(WRITER, CHAT, "Book club")
    await intake.receive_text(WRITER, CHAT, 11, "A note filed under the default section")
    result = await outline.set_outline(WRITER, CHAT, ["Intro", "Outro"])
    assert [s.title for s in result.sections] == ["Intro", "Outro", "Notes"]
    assert result.kept_for_notes == ["Notes"]
    assert result.sections[2].note_count == 1


async def test_outline_strips_numbering_and_ignores_blank_and_duplicate_lines(
    outline: OutlineService,
) -> None:
    await outline.new_article(WRITER, CHAT, "X")
    result = await outline.set_outline(WRITER, CHAT, ["1. Intro", "", "- Body", "intro!"])
    assert [s.title for s in result.sections] == ["Intro", "Body"]


async def test_a_separator_line_in_a_pasted_outline_is_skipped_not_refused(
    outline: OutlineService,
) -> None:
    await outline.new_article(WRITER, CHAT, "X")
    result = await outline.set_outline(WRITER, CHAT, ["Intro", "---", "***", "Body", "— —"])
    assert [s.title for s in result.sections] == ["Intro", "Body"]


async def test_empty_outline_is_a_user_error(outline: OutlineService) -> None:
    with pytest.raises(UserError, match="one a line"):
        await outline.set_outline(WRITER, CHAT, ["", "   "])


async def test_section_number_out_of_range(outline: OutlineService) -> None:
    await outline.new_article(WRITER, CHAT, "X")
    await outline.set_outline(WRITER, CHAT, ["A", "B"])
    with pytest.raises(UserError, match="pick 1 to 2"):
        await outline.choose_section_by_number(WRITER, 3)


async def test_another_writer_cannot_pick_my_section_by_id(outline: OutlineService) -> None:
    mine = await outline.new_article(WRITER, CHAT, "Mine")
    await outline.new_article(OTHER, OTHER, "Theirs")
    with pytest.raises(UserError, match="no longer exists"):
        await outline.choose_section_by_id(OTHER, mine.sections[0].id)
    assert (await outline.outline(OTHER)).article.title == "Theirs"  # type: ignore[union-attr]


async def test_use_switches_article(outline: OutlineService) -> None:
    await outline.new_article(WRITER, CHAT, "One")
    await outline.new_article(WRITER, CHAT, "Two")
    switched = await outline.use_article(WRITER, 1)
    assert switched.article.title == "One"
    current = await outline.outline(WRITER)
    assert current is not None and current.article.title == "One"


async def test_first_note_without_article_creates_default(intake: IntakeService) -> None:
    result = await intake.receive_text(WRITER, CHAT, 5, "hello")
    assert result.created_default_article
    assert (result.article_title, result.section_title) == ("Untitled draft", "Notes")
    again = await intake.receive_text(WRITER, CHAT, 6, "second")
    assert not again.created_default_article


async def test_redelivered_message_is_stored_once(
    intake: IntakeService, outline: OutlineService
) -> None:
    first = await intake.receive_text(WRITER, CHAT, 7, "same message")
    second = await intake.receive_text(WRITER, CHAT, 7, "same message")
    assert first.is_new and not second.is_new and first.note_id == second.note_id
    current = await outline.outline(WRITER)
    assert current is not None and current.sections[0].note_count == 1
