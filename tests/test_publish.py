"""/publish's service: a real git repository in a temporary folder (a bare repository as its
remote) and the fake Telegraph server over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.repository import Repository
from bot.domain import UserError
from bot.publish.git import GitFailure, GitTarget, PublishFile
from bot.publish.service import NO_DRAFT, NOTHING_CONFIGURED, PublishService, Target
from bot.publish.telegraph import CONTENT_LIMIT, TelegraphClient
from tests.fakes.telegraph_server import Failure, FakeTelegraph, find_nodes, node_text

WRITER = 1001
OTHER_WRITER = 2002
TITLE = "Where data engineering ends"

DRAFT_V1 = """\
# Where data engineering ends

This article answers a question from the webinar[^1].

## Where data engineering ends, AI engineering begins

A data engineer prepares data; see [Data Team Roles](https://example.org/roles)[^1].

- ingestion pipelines
- knowledge bases[^2]

**TODO:** look up the article about data roles[^2]

## The key skill gaps to close

_No notes for this section yet._

---

[^1]: Voice note, 2026-02-17 08:19 UTC: “a question from the webinar”
[^2]: Voice note, 2026-02-17 08:28 UTC: “look up that article”
"""

DRAFT_V2 = DRAFT_V1.replace(
    "_No notes for this section yet._", "Learn to call LLM providers and to test prompts[^2]."
)


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    done = subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env
    )
    return done.stdout


def commit_all(cwd: Path, message: str) -> None:
    git(cwd, "add", "-A")
    git(cwd, "-c", "user.name=Writer", "-c", "user.email=w@example.org", "commit", "-qm", message)


@dataclass
class Repos:
    work: Path
    remote: Path
    root: Path

    def head(self) -> str:
        return git(self.work, "rev-parse", "HEAD").strip()

    def remote_head(self) -> str:
        return git(self.remote, "rev-parse", "main").strip()

    def commits(self) -> int:
        return int(git(self.work, "rev-list", "--count", "HEAD"))

    def state(self) -> tuple[str, str, str, list[str]]:
        """Everything a failed publish must leave alone."""
        files = sorted(
            str(p.relative_to(self.work)) + ":" + p.read_text(errors="replace")
            for p in self.work.rglob("*")
            if p.is_file() and ".git" not in p.parts
        )
        index = git(self.work, "ls-files", "--stage")
        return self.head(), git(self.work, "status", "--porcelain"), index, files


@pytest.fixture
def repos(tmp_path: Path) -> Repos:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    work = tmp_path / "articles"
    git(tmp_path, "clone", "-q", str(remote), str(work))
    git(work, "checkout", "-q", "-b", "main")
    (work / "README.md").write_text("My articles\n")
    commit_all(work, "Start")
    git(work, "push", "-q", "-u", "origin", "main")
    return Repos(work, remote, tmp_path)


@pytest.fixture
def telegraph() -> Iterator[FakeTelegraph]:
    with FakeTelegraph() as server:
        yield server


async def add_draft(
    sessions: async_sessionmaker[AsyncSession],
    markdown: str,
    owner_id: int = WRITER,
    title: str = TITLE,
) -> int:
    async with sessions.begin() as session:
        repo = Repository(session, owner_id)
        await repo.users.ensure(owner_id)
        article = await repo.articles.active()
        if article is None or article.title != title:
            article = await repo.articles.add(title)
        await repo.drafts.add_version(article.id, markdown, 1, "fake-model", "{}")
        return article.id


def service(
    sessions: async_sessionmaker[AsyncSession],
    repos: Repos | None,
    telegraph: FakeTelegraph | None,
    *,
    push: bool = True,
    subdir: str = "posts",
    timeout: float = 5.0,
) -> PublishService:
    target = (
        GitTarget(repos.work, subdir=subdir, author="Bot <bot@example.org>", push=push)
        if repos
        else None
    )
    client = TelegraphClient(telegraph.api_url, timeout=timeout) if telegraph else None
    return PublishService(sessions, git=target, telegraph=client)


@pytest.fixture
async def publisher(
    sessions: async_sessionmaker[AsyncSession], repos: Repos, telegraph: FakeTelegraph
) -> AsyncIterator[PublishService]:
    publish = service(sessions, repos, telegraph)
    yield publish
    await publish.close()


async def test_first_publish_commits_pushes_and_makes_a_page(
    sessions: async_sessionmaker[AsyncSession],
    publisher: PublishService,
    repos: Repos,
    telegraph: FakeTelegraph,
) -> None:
    await add_draft(sessions, DRAFT_V1)
    before = repos.commits()

    report = await publisher.publish(WRITER, author_name="Alexey")

    assert report.version_number == 1 and report.article_title == TITLE
    git_result = report.git
    assert git_result is not None and git_result.outcome is not None
    outcome = git_result.outcome
    assert outcome.committed and outcome.pushed_to == "origin/main"
    assert repos.commits() == before + 1
    assert repos.remote_head() == repos.head()
    assert repos.head().startswith(outcome.commit)
    assert (repos.work / "posts" / "where-data-engineering-ends.md").read_text() == DRAFT_V1
    message = git(repos.work, "log", "-1", "--format=%s%n%an <%ae>")
    assert message == f"Publish “{TITLE}” (draft version 1)\nBot <bot@example.org>\n"
    assert git(repos.work, "status", "--porcelain") == "", "the work tree is left clean"

    page_result = report.telegraph
    assert page_result is not None and page_result.failure == ""
    assert page_result.created and page_result.pages == 1
    page = telegraph.page_by_url(page_result.url)
    assert page.title == TITLE and page.author_name == "Alexey"
    assert [node_text(h) for h in find_nodes(page.content, "h3")] == [
        "Where data engineering ends, AI engineering begins",
        "The key skill gaps to close",
        "Notes",
    ]
    links = {node_text(a): a["attrs"]["href"] for a in find_nodes(page.content, "a")}
    assert links["Data Team Roles"] == "https://example.org/roles"
    assert links["[1]"] == links["[2]"] == "#Notes"
    assert [node_text(li) for li in find_nodes(page.content, "li")] == [
        "ingestion pipelines",
        "knowledge bases[2]",
    ]
    text = node_text(page.content)
    assert "TODO: look up the article about data roles" in text
    assert "[1] Voice note, 2026-02-17 08:19 UTC: “a question from the webinar”" in text
    assert telegraph.accounts == 1
    assert "access_token" not in telegraph.calls_of("createPage")[0].path


async def test_publishing_again_with_nothing_new_makes_no_commit_and_edits_the_page(
    sessions: async_sessionmaker[AsyncSession],
    publisher: PublishService,
    repos: Repos,
    telegraph: FakeTelegraph,
) -> None:
    await add_draft(sessions, DRAFT_V1)
    first = await publisher.publish(WRITER)
    head, commits = repos.head(), repos.commits()

    again = await publisher.publish(WRITER)

    assert again.git is not None and again.git.outcome is not None
    assert not again.git.outcome.committed
    assert again.git.outcome.commit == first.git.outcome.commit  # type: ignore[union-attr]
    assert repos.head() == head and repos.commits() == commits
    assert again.telegraph is not None and first.telegraph is not None
    assert again.telegraph.url == first.telegraph.url and not again.telegraph.created
    assert len(telegraph.calls_of("createPage")) == 1
    assert len(telegraph.calls_of("createAccount")) == 1, "the stored account is reused"
    assert telegraph.page_by_url(again.telegraph.url).edits == 1


async def test_a_new_draft_version_is_a_new_commit_and_the_same_page_edited(
    sessions: async_sessionmaker[AsyncSession],
    publisher: PublishService,
    repos: Repos,
    telegraph: FakeTelegraph,
) -> None:
    await add_draft(sessions, DRAFT_V1)
    first = await publisher.publish(WRITER)
    await add_draft(sessions, DRAFT_V2)

    second = await publisher.publish(WRITER)

    assert second.version_number == 2
    assert second.git is not None and second.git.outcome is not None
    assert second.git.outcome.committed
    assert second.git.outcome.commit != first.git.outcome.commit  # type: ignore[union-attr]
    assert git(repos.work, "log", "-1", "--format=%s") == f"Publish “{TITLE}” (draft version 2)\n"
    assert repos.remote_head() == repos.head()
    assert (repos.work / "posts" / "where-data-engineering-ends.md").read_text() == DRAFT_V2
    assert second.telegraph is not None and first.telegraph is not None
    assert second.telegraph.url == first.telegraph.url
    page = telegraph.page_by_url(second.telegraph.url)
    assert "Learn to call LLM providers" in node_text(page.content)
    assert len(telegraph.pages) == 1


@pytest.mark.parametrize("dirt", ["changed", "staged", "untracked_target"])
async def test_a_dirty_repository_is_refused_and_left_exactly_as_it_was(
    sessions: async_sessionmaker[AsyncSession],
    publisher: PublishService,
    repos: Repos,
    dirt: str,
) -> None:
    await add_draft(sessions, DRAFT_V1)
    if dirt == "changed":
        (repos.work / "README.md").write_text("half-written edit\n")
    elif dirt == "staged":
        (repos.work / "notes.txt").write_text("staged\n")
        git(repos.work, "add", "notes.txt")
    else:
        (repos.work / "posts").mkdir()
        (repos.work / "posts" / "where-data-engineering-ends.md").write_text("my own text\n")
    before = repos.state()

    report = await publisher.publish(WRITER)

    assert report.git is not None and report.git.failure is GitFailure.DIRTY
    assert repos.state() == before
    assert repos.remote_head() == repos.head()
    # Targets are independent: the page is still published.
    assert report.telegraph is not None and report.telegraph.url


async def test_a_merge_in_progress_is_a_conflict_and_nothing_is_touched(
    sessions: async_sessionmaker[AsyncSession], publisher: PublishService, repos: Repos
) -> None:
    await add_draft(sessions, DRAFT_V1)
    git(repos.work, "checkout", "-q", "-b", "other")
    (repos.work / "README.md").write_text("other side\n")
    commit_all(repos.work, "Other")
    git(repos.work, "checkout", "-q", "main")
    (repos.work / "README.md").write_text("this side\n")
    commit_all(repos.work, "This")
    with pytest.raises(subprocess.CalledProcessError):
        git(repos.work, "-c", "user.name=W", "-c", "user.email=w@x", "merge", "other")
    assert "UU README.md" in git(repos.work, "status", "--porcelain")
    before = repos.state()

    report = await publisher.publish(WRITER, [Target.GIT])

    assert report.git is not None and report.git.failure is GitFailure.CONFLICT
    assert repos.state() == before


async def test_a_push_the_remote_rejects_leaves_the_repository_as_it_was(
    sessions: async_sessionmaker[AsyncSession], publisher: PublishService, repos: Repos
) -> None:
    await add_draft(sessions, DRAFT_V1)
    # Someone else pushed meanwhile: our branch is behind the remote's.
    elsewhere = repos.root / "laptop"
    git(repos.root, "clone", "-q", str(repos.remote), str(elsewhere))
    (elsewhere / "README.md").write_text("edited on the laptop\n")
    commit_all(elsewhere, "Laptop")
    git(elsewhere, "push", "-q", "origin", "main")
    remote_before = repos.remote_head()
    before = repos.state()

    report = await publisher.publish(WRITER, [Target.GIT])

    assert report.git is not None and report.git.failure is GitFailure.PUSH_REJECTED
    assert repos.state() == before, "no local commit, no file written"
    assert repos.remote_head() == remote_before


async def test_an_unreachable_remote_is_a_failed_push_and_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], publisher: PublishService, repos: Repos
) -> None:
    await add_draft(sessions, DRAFT_V1)
    git(repos.work, "remote", "set-url", "origin", str(repos.root / "gone.git"))
    before = repos.state()

    report = await publisher.publish(WRITER, [Target.GIT])

    assert report.git is not None and report.git.failure is GitFailure.PUSH_FAILED
    assert repos.state() == before


async def test_without_push_or_without_a_remote_the_commit_stays_local(
    sessions: async_sessionmaker[AsyncSession], repos: Repos
) -> None:
    await add_draft(sessions, DRAFT_V1)
    quiet = service(sessions, repos, None, push=False)
    report = await quiet.publish(WRITER)
    assert report.git is not None and report.git.outcome is not None
    assert report.git.outcome.committed and report.git.outcome.pushed_to == ""
    assert repos.remote_head() != repos.head()

    git(repos.work, "remote", "remove", "origin")
    await add_draft(sessions, DRAFT_V2)
    pushing = service(sessions, repos, None, push=True)
    report = await pushing.publish(WRITER)
    assert report.git is not None and report.git.outcome is not None
    assert report.git.outcome.committed and report.git.outcome.push_skipped == "no_remote"


async def test_a_missing_repository_or_plain_folder_gets_a_failure_not_a_change(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    await add_draft(sessions, DRAFT_V1)
    folder = tmp_path / "plain"
    folder.mkdir()
    for directory in (tmp_path / "missing", folder):
        target = GitTarget(directory)
        report = await PublishService(sessions, git=target).publish(WRITER)
        assert report.git is not None and report.git.failure is GitFailure.NOT_A_REPOSITORY
    assert list(folder.iterdir()) == []
    assert not (tmp_path / "missing").exists()


async def test_a_repository_without_commits_gets_its_first_one(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    await add_draft(sessions, DRAFT_V1)
    fresh = tmp_path / "fresh"
    git(tmp_path, "init", "-q", "-b", "main", str(fresh))
    report = await PublishService(sessions, git=GitTarget(fresh)).publish(WRITER)
    assert report.git is not None and report.git.outcome is not None
    assert report.git.outcome.committed
    assert git(fresh, "ls-files") == "where-data-engineering-ends.md\n"
    assert git(fresh, "status", "--porcelain") == ""


async def test_the_target_commits_a_list_of_files_images_included(repos: Repos) -> None:
    target = GitTarget(repos.work, subdir="posts")
    image = bytes(range(256)) * 4
    outcome = await target.publish(
        [PublishFile("a.md", b"# A\n\n![chart](a/chart.png)\n"), PublishFile("a/chart.png", image)],
        "Publish A",
    )
    assert outcome.committed and outcome.paths == ["posts/a.md", "posts/a/chart.png"]
    assert (repos.work / "posts" / "a" / "chart.png").read_bytes() == image
    assert git(repos.work, "show", "--stat", "--format=", "HEAD").count("posts/") == 2


async def test_two_articles_of_the_same_title_never_overwrite_each_other(
    sessions: async_sessionmaker[AsyncSession], repos: Repos
) -> None:
    publish = service(sessions, repos, None)
    await add_draft(sessions, DRAFT_V1)
    await add_draft(sessions, "# Where data engineering ends\n\nSomeone else's.\n", OTHER_WRITER)
    assert (await publish.publish(WRITER)).git.outcome.committed  # type: ignore[union-attr]
    head = repos.head()

    report = await publish.publish(OTHER_WRITER)

    assert report.git is not None and report.git.taken_by_other
    assert repos.head() == head
    assert (repos.work / "posts" / "where-data-engineering-ends.md").read_text() == DRAFT_V1


async def test_a_telegraph_error_is_reported_and_the_next_publish_makes_the_page(
    sessions: async_sessionmaker[AsyncSession],
    publisher: PublishService,
    repos: Repos,
    telegraph: FakeTelegraph,
) -> None:
    await add_draft(sessions, DRAFT_V1)
    telegraph.fail("createPage", Failure(error="FLOOD_WAIT_7"))

    report = await publisher.publish(WRITER)

    assert report.telegraph is not None and report.telegraph.failure == "FLOOD_WAIT_7"
    assert report.git is not None and report.git.outcome is not None, "git is unaffected"
    assert telegraph.pages == []

    again = await publisher.publish(WRITER)
    assert again.telegraph is not None and again.telegraph.url and again.telegraph.created
    assert len(telegraph.pages) == 1 and telegraph.accounts == 1


async def test_telegraph_down_or_too_slow_is_unavailable(
    sessions: async_sessionmaker[AsyncSession], telegraph: FakeTelegraph
) -> None:
    await add_draft(sessions, DRAFT_V1)
    publish = service(sessions, None, telegraph, timeout=0.5)
    try:
        telegraph.fail("createAccount", Failure(status=502))
        report = await publish.publish(WRITER)
        assert report.telegraph is not None and report.telegraph.failure == "unavailable"
        telegraph.fail("createPage", Failure(hang=2.0))
        report = await publish.publish(WRITER)
        assert report.telegraph is not None and report.telegraph.failure == "unavailable"
    finally:
        await publish.close()


async def test_a_revoked_token_or_a_deleted_page_gets_a_new_one(
    sessions: async_sessionmaker[AsyncSession], telegraph: FakeTelegraph
) -> None:
    await add_draft(sessions, DRAFT_V1)
    publish = service(sessions, None, telegraph)
    try:
        first = await publish.publish(WRITER)
        assert first.telegraph is not None
        telegraph.delete_page(first.telegraph.url.rsplit("/", 1)[-1])
        second = await publish.publish(WRITER)
        assert second.telegraph is not None and second.telegraph.created
        telegraph.revoke_all_tokens()
        third = await publish.publish(WRITER)
        assert third.telegraph is not None and third.telegraph.created
        assert third.telegraph.failure == ""
        assert len(telegraph.calls_of("createAccount")) == 2
        fourth = await publish.publish(WRITER)
        assert fourth.telegraph is not None and fourth.telegraph.url == third.telegraph.url
    finally:
        await publish.close()


def long_draft(paragraphs: int) -> str:
    body = "\n\n".join(
        f"## Section {n}\n\nParagraph {n}: " + "Данные и модели, word by word. " * 60 + "[^1]"
        for n in range(1, paragraphs + 1)
    )
    return f"# Long one\n\n{body}\n\n---\n\n[^1]: Voice note, 2026-02-17 08:19 UTC: “long”\n"


async def test_a_draft_over_a_page_is_split_into_linked_pages(
    sessions: async_sessionmaker[AsyncSession], telegraph: FakeTelegraph
) -> None:
    await add_draft(sessions, long_draft(60), title="Long one")
    publish = service(sessions, None, telegraph)
    try:
        report = await publish.publish(WRITER)
        assert report.telegraph is not None and report.telegraph.failure == ""
        count = report.telegraph.pages
        assert count >= 3
        pages = sorted(telegraph.pages, key=lambda p: p.title)
        first = telegraph.page_by_url(report.telegraph.url)
        assert first.title == "Long one"
        chain = [first]
        while nxt := [a for a in find_nodes(chain[-1].content, "a") if "next part" in node_text(a)]:
            chain.append(telegraph.page_by_url(nxt[0]["attrs"]["href"]))
        assert len(chain) == count == len(pages)
        assert [p.title for p in chain[1:]] == [
            f"Long one (part {n} of {count})" for n in range(2, count + 1)
        ]
        last_url = f"{telegraph.api_url}/{chain[-1].path}"
        for index, page in enumerate(chain):
            assert len(json.dumps(page.content, ensure_ascii=False).encode()) <= CONTENT_LIMIT
            refs = [
                a["attrs"]["href"] for a in find_nodes(page.content, "a") if node_text(a) == "[1]"
            ]
            expected = "#Notes" if index == count - 1 else f"{last_url}#Notes"
            assert refs and set(refs) == {expected}
            if index:
                back = [a for a in find_nodes(page.content, "a") if "Previous" in node_text(a)]
                assert back[0]["attrs"]["href"].endswith(chain[index - 1].path)
        text = "".join(node_text(p.content) for p in chain)
        for n in range(1, 61):
            assert f"Paragraph {n}: " in text, "nothing is lost between pages"

        # A shorter version: the same first pages edited, the left-over one points home.
        await add_draft(sessions, long_draft(20), title="Long one")
        shorter = await publish.publish(WRITER)
        assert shorter.telegraph is not None and shorter.telegraph.url == report.telegraph.url
        assert shorter.telegraph.pages < count
        assert len(telegraph.pages) == count, "no page is made anew"
        left_over = chain[-1]
        assert "no longer used" in node_text(telegraph.page(left_over.path).content)
    finally:
        await publish.close()


async def test_without_a_draft_or_a_target_the_writer_is_told_what_to_do(
    sessions: async_sessionmaker[AsyncSession], repos: Repos
) -> None:
    async with sessions.begin() as session:
        repo = Repository(session, WRITER)
        await repo.users.ensure(WRITER)
        await repo.articles.add(TITLE)
    with pytest.raises(UserError) as nothing:
        await PublishService(sessions).publish(WRITER)
    assert nothing.value.message == NOTHING_CONFIGURED
    publish = service(sessions, repos, None)
    with pytest.raises(UserError) as no_draft:
        await publish.publish(WRITER)
    assert no_draft.value.message == NO_DRAFT
    with pytest.raises(UserError) as off:
        await publish.publish(WRITER, [Target.TELEGRAPH])
    assert "TELEGRAPH_ENABLED" in off.value.message


async def test_a_draft_too_long_even_for_linked_pages_is_refused_clearly(
    sessions: async_sessionmaker[AsyncSession], telegraph: FakeTelegraph
) -> None:
    from bot.publish.service import PublishService as Service
    from bot.telegram.texts import publish_report

    await add_draft(sessions, long_draft(60), title="Long one")
    client = TelegraphClient(telegraph.api_url)
    publish = Service(sessions, telegraph=client, max_telegraph_pages=2)
    try:
        report = await publish.publish(WRITER)
    finally:
        await publish.close()
    assert report.telegraph is not None and report.telegraph.failure == "too_big"
    assert telegraph.pages == [] and telegraph.calls == [], "nothing is posted"
    assert "(it would take 3 pages, at most 2)" in publish_report(report)


async def test_detached_head_is_refused(
    sessions: async_sessionmaker[AsyncSession], publisher: PublishService, repos: Repos
) -> None:
    await add_draft(sessions, DRAFT_V1)
    git(repos.work, "checkout", "-q", "--detach")
    before = repos.state()
    report = await publisher.publish(WRITER, [Target.GIT])
    assert report.git is not None and report.git.failure is GitFailure.NOT_ON_BRANCH
    assert repos.state() == before


class _SomeoneCommitsDuringThePush(GitTarget):
    async def _push(self, remote: str, commit: str, branch: str) -> None:
        (self.directory / "README.md").write_text("committed by hand meanwhile\n")
        commit_all(self.directory, "By hand")
        await super()._push(remote, f"{commit}", branch)


async def test_a_commit_made_meanwhile_is_never_lost(
    sessions: async_sessionmaker[AsyncSession], repos: Repos
) -> None:
    await add_draft(sessions, DRAFT_V1)
    target = _SomeoneCommitsDuringThePush(repos.work, push=True)
    report = await PublishService(sessions, git=target).publish(WRITER)
    assert report.git is not None and report.git.failure is GitFailure.BRANCH_MOVED
    assert git(repos.work, "log", "-1", "--format=%s") == "By hand\n"
    assert (repos.work / "README.md").read_text() == "committed by hand meanwhile\n"
    assert git(repos.work, "status", "--porcelain") == ""
    assert not (repos.work / "where-data-engineering-ends.md").exists()


async def test_the_telegraph_token_never_reaches_a_log_or_a_url(
    sessions: async_sessionmaker[AsyncSession],
    publisher: PublishService,
    telegraph: FakeTelegraph,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from bot.logging_setup import configure_logging

    configure_logging("DEBUG", [])  # as the bot runs with LOG_LEVEL=DEBUG
    await add_draft(sessions, DRAFT_V1)
    telegraph.fail("editPage", Failure(error="PAGE_ACCESS_DENIED"))
    with caplog.at_level(logging.DEBUG):
        await publisher.publish(WRITER, [Target.TELEGRAPH])
        await publisher.publish(WRITER, [Target.TELEGRAPH])
    token = telegraph.calls_of("createPage")[0].params["access_token"]
    assert len(token) > 20
    assert token not in caplog.text
    assert all(token not in call.path for call in telegraph.calls)
