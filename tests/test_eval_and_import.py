"""The archive format: importing transcripts, and `python -m bot eval` on a fixture folder."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli import main
from bot.domain import NoteKind, UserError
from bot.notes.archive import parse_archived_note
from bot.notes.intake import IntakeService
from bot.notes.manage import NotesService
from bot.services.outline import OutlineService
from tests.fakes.drafting_model import DraftingModel
from tests.fakes.openai_server import FakeOpenAI

EVAL_DIR = Path(__file__).parent / "fixtures" / "eval"


def test_archive_front_matter_is_parsed() -> None:
    raw = (EVAL_DIR / "20260301_091500_writer_msg11_transcript.txt").read_text()
    note = parse_archived_note("msg11.txt", raw)
    assert note.kind == NoteKind.VOICE
    assert note.created_at.isoformat() == "2026-03-01T09:15:00+00:00"
    assert note.text.startswith("Так, ну вот, why backend engineers have an edge.")
    assert "\n" not in note.text and "---" not in note.text
    assert parse_archived_note("msg11.txt", raw).key == note.key  # stable: re-import is a no-op
    shifted = parse_archived_note("x.txt", "---\ndate: 2026-02-17T08:19:52+03:00\n---\nHi")
    assert shifted.created_at.isoformat() == "2026-02-17T05:19:52+00:00"
    same_name = parse_archived_note("transcript.txt", "Another idea")
    assert same_name.key != parse_archived_note("transcript.txt", "A third idea").key
    plain = parse_archived_note("idea.md", "Just a typed idea.\n")
    assert plain.kind == NoteKind.TEXT and plain.text == "Just a typed idea."
    with pytest.raises(UserError, match="no text"):
        parse_archived_note("empty.txt", "---\ndate: 2026-01-01\n---\n\n")


async def test_import_splits_at_spoken_titles_and_is_idempotent(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    outline = OutlineService(sessions)
    lines = (EVAL_DIR / "outline.txt").read_text().splitlines()[1:]
    await outline.new_article(7, 7, "Backend to ML")
    await outline.set_outline(7, 7, lines)
    intake = IntakeService(sessions)
    raw = (EVAL_DIR / "20260301_091500_writer_msg11_transcript.txt").read_text()
    note = parse_archived_note("msg11.txt", raw)
    created, parts = await intake.import_archived(7, 7, note)
    assert created
    assert [(p.section_number, p.title_spoken) for p in parts] == [(1, True), (2, True)]
    assert parts[0].text.startswith("Бэкендеры уже умеют")
    assert parts[1].text.startswith("Честно, линейной алгебры")
    again, _ = await intake.import_archived(7, 7, note)
    assert not again
    page = await NotesService(sessions).section_notes(7, 2)
    assert len(page.notes) == 1


@pytest.fixture
def llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        model = DraftingModel(
            lost=[("N2", "monitoring is most of the work")], reject_citations_to={"N3"}
        )
        server.set_responder(model)
        yield server


def test_eval_prints_coverage_and_citation_figures_and_never_touches_the_bot_database(
    llm: FakeOpenAI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    data_dir = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", llm.api_key)
    monkeypatch.setenv("OPENAI_MODEL", "fake-model")
    out = tmp_path / "draft.md"
    assert main(["eval", str(EVAL_DIR), "--out", str(out)]) == 0
    report = capsys.readouterr().out
    assert "model: fake-model; notes: 3; sections: 3" in report
    rows = re.findall(r"^ ?(\d)  (.{44}) +(\d+) +(\d+) +(\d+) +(\d+) +(\d+)$", report, re.M)
    assert [(n, title.strip()) for n, title, *_ in rows] == [
        ("1", "Why backend engineers have an edge"),
        ("2", "The math you actually need"),
        ("3", "Building a first ML project"),
    ]
    assert all(int(notes) >= 1 for _, _, notes, *_ in rows)
    assert re.search(
        r"coverage: \d+/\d+ verified points kept by the first draft \(\d+%\), [1-9]\d* restored",
        report,
    )
    assert re.search(r"citations: \d+/\d+ supported \(\d+%\), [1-9]\d* removed", report)
    draft = out.read_text()
    assert draft.startswith("# From backend to ML engineering")
    assert "Restored: monitoring is most of the work." in draft
    assert not data_dir.exists(), "eval works on a copy, never the bot's database"


def test_eval_without_outline_explains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unused")
    assert main(["eval", str(tmp_path)]) == 1
    assert "no outline.txt" in capsys.readouterr().err
