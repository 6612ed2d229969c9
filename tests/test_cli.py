"""`python -m bot transcribe|import|draft|export` end to end: the configured SQLite database,
real tiny.en whisper, the fake OpenAI server over HTTP; and what the CLI imports in the chat."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.db.session import create_engine, create_session_factory
from bot.services.usage import UsageService
from tests.conftest import AUDIO, StartBot
from tests.fakes.drafting_model import DraftingModel
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.telegram_server import FakeTelegram
from tests.test_chat_e2e import WRITER, say, wer

EVAL_DIR = Path(__file__).parent / "fixtures" / "eval"  # transcripts in the archive format
ARTICLE = "From backend to ML engineering"


@pytest.fixture
def llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        server.set_responder(DraftingModel())
        yield server


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_path: str) -> Path:
    """The CLI's settings come from the environment, as in production (no .env here)."""
    monkeypatch.chdir(tmp_path)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.setenv("ALLOWED_USER_IDS", str(WRITER))
    monkeypatch.setenv("WHISPER_MODEL", tiny_model_path)
    monkeypatch.setenv("WHISPER_CPU_THREADS", "2")
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return data_dir


def use_llm(monkeypatch: pytest.MonkeyPatch, llm: FakeOpenAI) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", llm.api_key)
    monkeypatch.setenv("OPENAI_MODEL", "fake-model")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


def test_transcribe_prints_each_file_under_its_name(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(
        capsys, "transcribe", str(AUDIO / "book_club.ogg"), str(AUDIO / "pipelines.ogg")
    )
    assert status == 0, err
    first, second = re.split(r"^## pipelines\.ogg\n", out, flags=re.M)
    assert first.startswith("## book_club.ogg\n")
    assert wer((AUDIO / "book_club.txt").read_text(), first.split("\n", 1)[1]) <= 0.3
    assert wer((AUDIO / "pipelines.txt").read_text(), second) <= 0.3
    assert not env.exists(), "transcribe needs no database"

    status, out, err = run(capsys, "transcribe", str(AUDIO / "book_club.ogg"))
    assert status == 0 and not out.startswith("#"), "one file: no heading"


def test_transcribe_reports_bad_files_without_a_traceback(
    env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, err = run(capsys, "transcribe", str(tmp_path / "missing.ogg"))
    assert status == 1 and out == ""
    assert err.strip() == f"No such file: {tmp_path / 'missing.ogg'}"

    broken = tmp_path / "broken.ogg"
    broken.write_bytes(b"OggS" + b"\x00" * 200)
    status, out, err = run(
        capsys, "transcribe", str(AUDIO / "silence.ogg"), str(broken), str(AUDIO / "book_club.ogg")
    )
    assert status == 1
    assert "silence.ogg: no speech found." in err
    assert "broken.ogg: could not read it as audio." in err
    assert wer((AUDIO / "book_club.txt").read_text(), out.split("## book_club.ogg\n")[1]) <= 0.3


def test_import_reference_format_then_draft_and_export(
    env: Path,
    llm: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    # The eval fixture folder: outline.txt with "# Title", three archived voice transcripts.
    status, out, err = run(capsys, "import", str(EVAL_DIR), "--article", ARTICLE.upper())
    assert status == 0, err
    assert out.splitlines() == [
        f"Created article 1 “{ARTICLE.upper()}”: 3 new note(s) imported, 0 imported before.",
        "  1. Why backend engineers have an edge    2 notes (+2 new)",
        "  2. The math you actually need             1 note (+1 new)",
        "  3. Building a first ML project            1 note (+1 new)",
        "It is now the active article in the chat (see /sections).",
    ]

    # Idempotent: the same files (same name, date and text) are the same notes.
    status, out, _ = run(capsys, "import", str(EVAL_DIR), "--article", ARTICLE.lower())
    assert status == 0
    assert out.startswith(f"Updated article 1 “{ARTICLE.upper()}”: 0 new note(s) imported, 3 ")
    assert "(+" not in out

    use_llm(monkeypatch, llm)
    status, draft, err = run(capsys, "draft", ARTICLE.lower())
    assert status == 0, err
    assert draft.startswith(f"# {ARTICLE.upper()}\n")
    for heading in ("Why backend engineers have an edge", "Building a first ML project"):
        assert f"\n## {heading}\n" in draft
    assert re.search(r"^\[\^1\]: Voice note, 2026-03-01 09:\d\d UTC", draft, re.M)
    assert "Drafted “" in err and "3 of 3 section(s) with notes redrafted" in err
    calls = len(llm.calls)

    # Like /draft: incremental, and what it drafted is the stored version /export sends.
    out_file = tmp_path / "again.md"
    status, out, err = run(capsys, "draft", "1", "-o", str(out_file))
    assert status == 0 and out == "" and "Nothing new" in err
    assert len(llm.calls) == calls
    assert out_file.read_text() == draft
    status, exported, _ = run(capsys, "export", "#1")
    assert status == 0 and exported == draft

    status, notes, _ = run(capsys, "export", "1", "--notes")
    assert status == 0 and notes.startswith(f"# {ARTICLE.upper()}: notes\n")
    assert "Бэкендеры уже умеют" in notes and "**2026-03-01 09:15 UTC** · Voice note" in notes

    # The tokens of the CLI's draft count for the writer, as a chat /draft would.
    async def usage() -> tuple[int, int]:
        engine = create_engine(f"sqlite+aiosqlite:///{(env / 'bot.db').resolve()}")
        try:
            summary = await UsageService(create_session_factory(engine)).this_month(WRITER)
            return summary.input_tokens, sum(u.requests for u in summary.llm)
        finally:
            await engine.dispose()

    tokens, requests = asyncio.run(usage())
    assert tokens > 0 and requests == len(llm.completions())


def test_outline_option_and_skipped_files(
    env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text(
        "---\nsource: telegram_voice\ndate: 2026-02-17T08:19:52+00:00\n---\n"
        "Intro thoughts first. Next. Tools I use. A good editor and a notebook."
    )
    (folder / "empty.txt").write_text("---\ndate: 2026-02-17T09:00:00+00:00\n---\n\n")
    outline = tmp_path / "sections.txt"
    outline.write_text("Intro\nTools I use\n")
    status, out, err = run(
        capsys, "import", str(folder), "--article", "Tools", "--outline", str(outline)
    )
    assert status == 1, "a skipped file makes the exit status non-zero"
    assert "Skipped: empty.txt holds no text to import." in err
    assert re.search(r"^  1\. Intro +1 note \(\+1 new\)$", out, re.M), out
    assert re.search(r"^  2\. Tools I use +1 note \(\+1 new\)$", out, re.M), out


def test_errors_are_one_short_line(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "export", "Anything")
    assert (status, err.strip()) == (1, f"User {WRITER} has no articles yet.")

    assert run(capsys, "import", str(EVAL_DIR))[0] == 0  # the title comes from outline.txt
    status, _, err = run(capsys, "export", "Nope")
    assert status == 1
    assert err.strip() == f"No article “Nope” for user {WRITER}. Their articles:\n  1. {ARTICLE}"
    status, _, err = run(capsys, "export", "1")
    assert status == 1 and "There is no draft yet" in err
    status, _, err = run(capsys, "draft", "1")
    assert (status, err.strip()) == (
        1,
        "draft needs an LLM: set OPENAI_API_KEY and/or OPENAI_BASE_URL.",
    )
    status, _, err = run(capsys, "import", str(EVAL_DIR / "outline.txt"))
    assert status == 1 and "is not a folder" in err
    missing = EVAL_DIR / "no-such-outline.txt"
    status, _, err = run(capsys, "import", str(EVAL_DIR), "--outline", str(missing))
    assert (status, err.strip()) == (1, f"No such file: {missing}")

    monkeypatch.setenv("ALLOWED_USER_IDS", f"{WRITER},2002")
    status, _, err = run(capsys, "export", "1")
    assert (status, err.strip()) == (
        1,
        f"Which writer? Pass --user ID (ALLOWED_USER_IDS: {WRITER}, 2002).",
    )
    status, _, err = run(capsys, "export", "1", "--user", "2002")
    assert (status, err.strip()) == (1, "User 2002 has no articles yet.")


async def test_what_the_cli_imports_is_in_the_chat_and_the_reverse(
    env: Path, telegram: FakeTelegram, start_bot: StartBot, capsys: pytest.CaptureFixture[str]
) -> None:
    # start_bot keeps its database in tmp_path/data, the DATA_DIR the CLI uses here.
    assert await asyncio.to_thread(main, ["import", str(EVAL_DIR)]) == 0
    async with start_bot():
        sections = await say(telegram, "/sections", "Why backend")
        assert "1. Why backend engineers have an edge — 2 notes" in sections
        assert "3. Building a first ML project — 1 note" in sections
        await say(telegram, "/section 3", "now go to")
        await say(telegram, "Start with a tiny churn model.", "Filed under")
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["export", ARTICLE, "--notes"]) == 0
    assert "Start with a tiny churn model." in capsys.readouterr().out
