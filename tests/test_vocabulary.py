"""/language, /glossary and /fix as services, on SQLite and PostgreSQL; archive import fixes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import UserError
from bot.drafting.service import DraftService
from bot.notes.archive import ArchiveImporter, parse_archived_note, read_archive_folder
from bot.notes.intake import IntakeService
from bot.notes.vocabulary import VocabularyService, parse_fix, phrase_pattern, replace_phrase
from bot.services.outline import OutlineService

WRITER = 1001
Sessions = async_sessionmaker[AsyncSession]


def test_fix_replaces_whole_words_in_any_case_and_cyrillic() -> None:
    pattern = phrase_pattern("рагам")
    text, count = replace_phrase("Доступ к рагам и Рагам, но не к драгамам.", pattern, "RAG")
    assert (text, count) == ("Доступ к RAG и RAG, но не к драгамам.", 2)
    text, count = replace_phrase(
        "Инжешн делать. Мы делаем инжешн.", phrase_pattern("инжешн"), "ingestion"
    )
    assert text == "Ingestion делать. Мы делаем ingestion." and count == 2
    text, _ = replace_phrase(
        "sword  procedures", phrase_pattern("sword procedures"), "stored procedures"
    )
    assert text == "stored procedures"
    assert replace_phrase("ещё", phrase_pattern("еще"), "x") == ("x", 1)
    assert parse_fix("рак → RAG") == ("рак", "RAG") == parse_fix("рак -> RAG")
    with pytest.raises(UserError):
        parse_fix("рак RAG")


async def _article_with_notes(sessions: Sessions) -> None:
    outline = OutlineService(sessions)
    await outline.new_article(WRITER, WRITER, "Data to AI")
    await outline.set_outline(WRITER, WRITER, ["Where it ends", "Skill gaps"])
    intake = IntakeService(sessions)
    await intake.receive_text(WRITER, WRITER, 1, "Через рак агенты получают базу знаний.")
    await outline.choose_section_by_number(WRITER, 2)
    await intake.receive_text(WRITER, WRITER, 2, "Инжешн делать умеют дата-инженеры.")


async def test_fix_changes_stored_notes_the_export_and_the_glossary(sessions: Sessions) -> None:
    await _article_with_notes(sessions)
    vocabulary = VocabularyService(sessions, "")
    result = await vocabulary.fix(WRITER, WRITER, "рак -> RAG")
    assert (result.notes_changed, result.replacements) == (1, 1)
    assert result.sections == [(1, "Where it ends")] and result.added_to_glossary
    _, exported = await DraftService(sessions, None).notes_export(WRITER)
    assert "Через RAG агенты" in exported and "рак" not in exported
    assert "Инжешн" in exported
    assert await vocabulary.glossary(WRITER) == ["RAG"]
    again = await vocabulary.fix(WRITER, WRITER, "рак -> RAG")
    assert again.notes_changed == 0 and not again.added_to_glossary


async def test_glossary_add_remove_and_language(sessions: Sessions) -> None:
    vocabulary = VocabularyService(sessions, "ru")
    change = await vocabulary.add_terms(WRITER, WRITER, "RAG, ingestion\nDLT")
    assert change.added == ["RAG", "ingestion", "DLT"] and change.glossary == change.added
    change = await vocabulary.add_terms(WRITER, WRITER, "rag, Airflow")
    assert change.added == ["Airflow"] and change.already == ["rag"]
    removed, remaining = await vocabulary.remove_term(WRITER, "INGESTION")
    assert removed == "ingestion" and remaining == ["RAG", "DLT", "Airflow"]
    with pytest.raises(UserError):
        await vocabulary.remove_term(WRITER, "nothing")

    assert (await vocabulary.language(WRITER)).effective == "ru"  # WHISPER_LANGUAGE
    assert (await vocabulary.set_language(WRITER, WRITER, "English")).effective == "en"
    assert (await vocabulary.language(WRITER)).chosen == "en"
    assert (await vocabulary.set_language(WRITER, WRITER, "auto")).effective == "auto"
    with pytest.raises(UserError):
        await vocabulary.set_language(WRITER, WRITER, "klingon")


def test_archive_joins_a_word_hyphenated_at_a_line_wrap() -> None:
    raw = (
        "---\ndate: 2026-02-17T08:28:07+00:00\n---\n"
        "Это дата-\nинженер, а это AI-\n  инженерию. Так -\nдальше.\n"
    )
    note = parse_archived_note("n.txt", raw)
    assert note.text == "Это дата-инженер, а это AI-инженерию. Так - дальше."


def test_archive_date_out_of_range_is_a_clear_error() -> None:
    raw = "---\ndate: 9999-12-31T23:59:00-23:59\n---\nТекст заметки.\n"
    with pytest.raises(UserError, match=r"bad\.txt has a date out of range"):
        parse_archived_note("bad.txt", raw)


async def test_folder_import_skips_and_names_a_bad_file(
    sqlite_sessions: Sessions, tmp_path: Path
) -> None:
    (tmp_path / "good.txt").write_text("---\ndate: 2026-02-17T08:00:00Z\n---\nХорошая заметка.\n")
    (tmp_path / "bad.txt").write_text("---\ndate: 9999-12-31T23:59:00-23:59\n---\nПлохая.\n")
    (tmp_path / "outline.txt").write_text("# Imported\nFirst\nSecond\n")
    folder = read_archive_folder(tmp_path)
    assert [n.text for n in folder.notes] == ["Хорошая заметка."]
    assert folder.skipped == ["bad.txt has a date out of range (9999-12-31T23:59:00-23:59)."]
    report = await ArchiveImporter(sqlite_sessions).import_notes(
        WRITER, WRITER, folder.title or "", folder.sections, folder.notes
    )
    assert report.new_notes == 1 and report.created_article
