"""/publish and /export html|docx in the chat, and `python -m bot publish`: the real bot
against the fake Bot API, the fake LLM and the fake Telegraph server over HTTP, and a real git
repository with a bare remote."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docx
import pytest

from bot.cli import main
from tests.conftest import StartBot
from tests.fakes.drafting_model import DraftingModel
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.telegram_server import FakeTelegram
from tests.fakes.telegraph_server import FakeTelegraph, find_nodes, node_text
from tests.test_chat_e2e import WRITER, say
from tests.test_draft_e2e import documents, draft
from tests.test_publish import Repos, git
from tests.test_publish import repos as repos


@pytest.fixture
def llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        server.set_responder(DraftingModel())
        yield server


@pytest.fixture
def telegraph() -> Iterator[FakeTelegraph]:
    with FakeTelegraph() as server:
        yield server


def publishing_settings(
    repos: Repos, telegraph: FakeTelegraph, llm: FakeOpenAI
) -> dict[str, object]:
    return {
        "openai_base_url": llm.base_url,
        "openai_api_key": llm.api_key,
        "openai_model": "fake-model",
        "publish_git_dir": str(repos.work),
        "publish_git_subdir": "posts",
        "publish_git_push": True,
        "publish_git_author": "Article Bot <bot@example.org>",
        "telegraph_api_url": telegraph.api_url,
    }


@pytest.fixture
async def bot(
    telegram: FakeTelegram,
    llm: FakeOpenAI,
    telegraph: FakeTelegraph,
    repos: Repos,
    start_bot: StartBot,
) -> AsyncIterator[FakeTelegram]:
    async with start_bot(**publishing_settings(repos, telegraph, llm)):
        await say(telegram, "/new Book club", "Book club")
        await say(telegram, "/outline\nReading list\nSnacks", "Outline of")
        await say(telegram, "This article is about our little book club.", "Filed under")
        yield telegram


async def publish(telegram: FakeTelegram, command: str = "/publish") -> str:
    before = len(telegram.sent_messages(WRITER))
    telegram.send_text(WRITER, command)

    def report() -> str | None:
        # The "Publishing…" status is edited into the report (or into why not).
        new = telegram.sent_messages(WRITER)[before:]
        done = [m.text for m in new if m.text.startswith(("📤 “", "⚠️")) or "/publish" in m.text]
        return done[0] if done else None

    return await telegram.wait_for(report, timeout=20)


async def test_publish_to_both_targets_then_again_then_a_new_version(
    bot: FakeTelegram,
    repos: Repos,
    telegraph: FakeTelegraph,
) -> None:
    no_draft = await publish(bot)
    assert "send /draft first" in no_draft

    await draft(bot)
    first = await publish(bot)
    assert "“<b>Book club</b>”, draft version 1" in first
    short = git(repos.work, "rev-parse", "--short", "HEAD").strip()
    assert f"✅ Git: committed <code>{short}</code> (<code>posts/book-club.md</code>)" in first
    assert "pushed to origin/main" in first
    assert repos.remote_head() == repos.head()
    page = telegraph.pages[0]
    assert f'<a href="{telegraph.api_url}/{page.path}">' in first and "new page" in first
    assert page.author_name == "Writer", "the writer's Telegram name signs the page"
    assert "Reading list" in [node_text(h) for h in find_nodes(page.content, "h3")]
    markdown = (repos.work / "posts" / "book-club.md").read_text()
    assert markdown == documents(bot)[-1][1], "the committed file is the draft sent as .md"

    again = await publish(bot)
    assert f"✅ Git: nothing new since commit <code>{short}</code>, so no commit." in again
    assert "✅ Telegraph (updated)" in again
    assert repos.head().startswith(short) and len(telegraph.pages) == 1

    await say(bot, "/section 2", "now go to")
    await say(bot, "Everyone brings something small to share.", "Filed under")
    await draft(bot)
    only_git = await publish(bot, "/publish git")
    assert "draft version 2" in only_git and "✅ Git: committed" in only_git
    assert "Telegraph" not in only_git
    assert git(repos.work, "log", "-1", "--format=%s") == "Publish “Book club” (draft version 2)\n"
    only_page = await publish(bot, "/publish telegraph")
    assert "Git" not in only_page and "✅ Telegraph (updated)" in only_page
    assert "small to share" in node_text(telegraph.pages[0].content).lower()

    assert "/publish git" in await publish(bot, "/publish somewhere")


async def test_a_failed_push_is_one_clear_message(
    bot: FakeTelegram,
    repos: Repos,
) -> None:
    await draft(bot)
    git(repos.work, "remote", "set-url", "origin", str(repos.root / "gone.git"))
    head = repos.head()
    report = await publish(bot, "/publish git")
    assert "⚠️ Git: pushing failed" in report and "Nothing was changed" in report
    assert "fatal" not in report and str(repos.root) not in report, "no git output shown"
    assert repos.head() == head and git(repos.work, "status", "--porcelain") == ""


async def test_export_html_and_docx_are_sent_as_files(bot: FakeTelegram) -> None:
    await draft(bot)
    before = len(bot.sent_documents(WRITER))
    bot.send_text(WRITER, "/export html")
    bot.send_text(WRITER, "/export docx")
    await bot.wait_for(lambda: len(bot.sent_documents(WRITER)) >= before + 2)
    sent = {c.params["document_filename"]: c for c in bot.sent_documents(WRITER)[before:]}
    page = sent["book-club.html"].params["document"].decode()
    assert page.startswith("<!DOCTYPE html>") and "<title>Book club</title>" in page
    assert 'href="#fn1"' in page and 'id="fn1"' in page
    word = docx.Document(io.BytesIO(sent["book-club.docx"].params["document"]))
    assert [p.text for p in word.paragraphs if p.style.name == "Heading 1"] == [
        "Reading list",
        "Snacks",
    ]
    assert "Word or Google Docs" in sent["book-club.docx"].params["caption"]


async def test_with_nothing_configured_publish_says_how(
    telegram: FakeTelegram, llm: FakeOpenAI, start_bot: StartBot
) -> None:
    async with start_bot(telegraph_enabled=False):
        await say(telegram, "/new Book club", "Book club")
        reply = await publish(telegram)
    assert "PUBLISH_GIT_DIR" in reply and "TELEGRAPH_ENABLED" in reply


def test_cli_publish_same_as_the_chat(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    repos: Repos,
    telegraph: FakeTelegraph,
    llm: FakeOpenAI,
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    values = {
        "DATA_DIR": str(tmp_path / "data"),
        "ALLOWED_USER_IDS": str(WRITER),
        **{k.upper(): str(v) for k, v in publishing_settings(repos, telegraph, llm).items()},
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    article = tmp_path / "notes"
    article.mkdir()
    (article / "outline.txt").write_text("# Book club\nReading list\n")
    (article / "n1.md").write_text(
        "---\nsource: telegram_voice\ndate: 2026-02-17 08:19:52\n---\nWe read one book a month.\n"
    )
    assert main(["import", str(article)]) == 0
    assert main(["publish", "Book club"]) == 1, "no draft yet"
    assert "send /draft first" in capsys.readouterr().err
    assert main(["draft", "Book club"]) == 0
    capsys.readouterr()

    assert main(["publish", "Book club", "--git"]) == 0
    out = capsys.readouterr().out
    assert "✅ Git: committed" in out and "<code>" not in out and "Telegraph" not in out
    assert (repos.work / "posts" / "book-club.md").exists()
    assert main(["publish", "1"]) == 0
    out = capsys.readouterr().out
    assert "nothing new since commit" in out and "✅ Telegraph (new page)" in out
    assert len(telegraph.pages) == 1

    out_file = tmp_path / "book.docx"
    assert main(["export", "Book club", "--format", "docx", "-o", str(out_file)]) == 0
    assert docx.Document(str(out_file)).paragraphs[0].text == "Book club"
    assert main(["export", "Book club", "--format", "html"]) == 0
    assert "<title>Book club</title>" in capsys.readouterr().out
