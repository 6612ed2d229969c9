"""/publish and /export html|docx: the latest stored draft version goes to the writer's git
repository and to Telegraph pages, or comes back as a standalone HTML page or a Word file.

No transaction is held across git, an HTTP call or rendering: the draft is read in one short
transaction, and what was published is recorded in another afterwards (a created Telegraph
page at once, so a failure later never leaves a page the next publish would not edit).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.db.models import Article
from bot.db.repository import PublishedFiles, Repository
from bot.domain import UserError
from bot.drafting.markdown import slugify
from bot.publish.document import parse_draft
from bot.publish.git import GitFailure, GitOutcome, GitPublishError, GitTarget, PublishFile
from bot.publish.html import render_html_page
from bot.publish.telegraph import (
    SHORT_NAME,
    Node,
    TelegraphClient,
    TelegraphError,
    TelegraphPage,
    TelegraphUnavailable,
    document_nodes,
    figure_count,
    finished_pages,
    moved_page,
    page_title,
    paginate,
)
from bot.publish.word import render_docx
from bot.services.outline import require_article
from bot.services.threads import run_in_daemon_thread
from bot.sources.service import figure_files, read_figures

log = logging.getLogger(__name__)

NO_DRAFT = "There is no draft to publish yet: send /draft first."
NOTHING_CONFIGURED = (
    "Publishing is not set up. Set PUBLISH_GIT_DIR to a git repository (your articles are "
    "committed there) and/or TELEGRAPH_ENABLED=true (a Telegraph page you can read in "
    "Telegram), then restart the bot."
)
# A page split in more parts than this is refused: nobody pages through a hundred of them.
MAX_TELEGRAPH_PARTS = 20


class Target(enum.StrEnum):
    GIT = "git"
    TELEGRAPH = "telegraph"


@dataclass(frozen=True)
class GitResult:
    outcome: GitOutcome | None = None
    failure: GitFailure | None = None
    destination: str = ""  # the file in the repository
    taken_by_other: bool = False  # another article already publishes to that file


@dataclass(frozen=True)
class TelegraphResult:
    url: str = ""
    pages: int = 0
    created: bool = False  # a new page (the first publish, or the old one was lost)
    failure: str = ""  # Telegraph's error code, or "unavailable" / "too_big"
    max_pages: int = 0  # with "too_big": how many pages an article may take
    figures_left_out: int = 0  # the draft's figures, which Telegraph cannot show


@dataclass(frozen=True)
class PublishReport:
    article_title: str
    version_number: int
    version_created_at: datetime
    git: GitResult | None = None
    telegraph: TelegraphResult | None = None
    results: list[Target] = field(default_factory=list)


@dataclass(frozen=True)
class _Draft:
    article_id: int
    title: str
    slug: str
    markdown: str
    version_id: int
    version_number: int
    created_at: datetime
    figures: dict[str, Path] = field(default_factory=dict)  # images/note-12.jpg -> kept file


class PublishService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        git: GitTarget | None = None,
        telegraph: TelegraphClient | None = None,
        max_telegraph_pages: int = MAX_TELEGRAPH_PARTS,
    ) -> None:
        self._sessions = sessions
        self._git = git
        self._telegraph = telegraph
        self._max_pages = max_telegraph_pages
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    @property
    def configured(self) -> list[Target]:
        targets = []
        if self._git is not None:
            targets.append(Target.GIT)
        if self._telegraph is not None:
            targets.append(Target.TELEGRAPH)
        return targets

    async def close(self) -> None:
        if self._telegraph is not None:
            await self._telegraph.close()

    async def publish(
        self,
        owner_id: int,
        targets: Sequence[Target] = (),
        *,
        article_id: int | None = None,
        author_name: str = "",
    ) -> PublishReport:
        """The latest draft version to the asked targets (every configured one by default)."""
        configured = self.configured
        if not configured:
            raise UserError(NOTHING_CONFIGURED)
        wanted = list(targets) or configured
        missing = [t for t in wanted if t not in configured]
        if missing:
            raise UserError(_not_configured(missing[0]))
        # Two /publish at once would race for the same page and commit.
        async with self._locks[owner_id]:
            # The repository gets the figures' images beside the markdown that links them.
            draft = await self._latest(owner_id, article_id, figures=Target.GIT in wanted)
            git = telegraph = None
            if Target.GIT in wanted:
                git = await self._publish_git(owner_id, draft)
            if Target.TELEGRAPH in wanted:
                telegraph = await self._publish_telegraph(owner_id, draft, author_name)
            return PublishReport(
                draft.title, draft.version_number, draft.created_at, git, telegraph, wanted
            )

    async def export_html(self, owner_id: int, article_id: int | None = None) -> tuple[str, bytes]:
        """One self-contained page: its figures are embedded (data: URLs), so it opens whole
        on a phone with nothing beside it."""
        draft = await self._latest(
            owner_id, article_id, missing=_no_draft_to_export(), figures=True
        )
        images = await asyncio.to_thread(read_figures, draft.figures)
        page = render_html_page(draft.markdown, draft.title, images)
        return f"{draft.slug}.html", page.encode("utf-8")

    async def export_docx(self, owner_id: int, article_id: int | None = None) -> tuple[str, bytes]:
        draft = await self._latest(
            owner_id, article_id, missing=_no_draft_to_export(), figures=True
        )
        document = parse_draft(draft.markdown, draft.title)
        images = await asyncio.to_thread(read_figures, draft.figures)
        # python-docx is pure Python: a long draft takes a moment the event loop should not wait.
        content = await run_in_daemon_thread(render_docx, document, images)
        return f"{draft.slug}.docx", content

    async def _latest(
        self,
        owner_id: int,
        article_id: int | None,
        missing: str = NO_DRAFT,
        *,
        figures: bool = False,
    ) -> _Draft:
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            article = await _article(repo, article_id)
            version = await repo.drafts.latest_version(article.id)
            if version is None:
                raise UserError(missing)
            number = await repo.drafts.version_number(article.id, version.id)
            return _Draft(
                article.id,
                article.title,
                slugify(article.title),
                version.markdown,
                version.id,
                number,
                version.created_at,
                await figure_files(repo, version.markdown) if figures else {},
            )

    # git ----------------------------------------------------------------------------------
    async def _publish_git(self, owner_id: int, draft: _Draft) -> GitResult:
        git = self._git
        assert git is not None
        files = [PublishFile(f"{draft.slug}.md", draft.markdown.encode("utf-8"))]
        # `images/note-12.jpg`, as the markdown links it, relative to the markdown file.
        images = await asyncio.to_thread(read_figures, draft.figures)
        files += [PublishFile(name, content) for name, content in sorted(images.items())]
        try:
            destination = git.paths_for(files)[0]
        except GitPublishError as exc:
            return GitResult(failure=exc.failure)
        # Known by repository and path: the same path in another repository is another file.
        key = f"{git.top_folder}:{destination}"
        async with self._sessions.begin() as session:
            owner = await PublishedFiles(session).article_at(key)
        if owner is not None and owner != draft.article_id:
            return GitResult(destination=destination, taken_by_other=True)
        message = (
            f"Publish “{draft.title}” (draft version {draft.version_number})\n\n"
            f"Draft version {draft.version_number} of {draft.created_at:%Y-%m-%d %H:%M} UTC, "
            "published from the voice-notes bot."
        )
        try:
            outcome = await git.publish(files, message)
        except GitPublishError as exc:
            log.warning("Publishing to git failed: %s", exc.failure.value)
            return GitResult(failure=exc.failure, destination=destination)
        if outcome.committed or outcome.commit:
            async with self._sessions.begin() as session:
                await Repository(session, owner_id).publishing.record_publication(
                    draft.article_id,
                    Target.GIT,
                    key,
                    draft.version_id,
                    draft.version_number,
                    outcome.commit,
                )
        return GitResult(outcome=outcome, destination=destination)

    # Telegraph ----------------------------------------------------------------------------
    async def _publish_telegraph(
        self, owner_id: int, draft: _Draft, author_name: str
    ) -> TelegraphResult:
        client = self._telegraph
        assert client is not None
        document = parse_draft(draft.markdown, draft.title)
        pages = paginate(document_nodes(document))
        if len(pages) > self._max_pages:
            return TelegraphResult(failure="too_big", pages=len(pages), max_pages=self._max_pages)
        result = await self._telegraph_pages(
            client, owner_id, draft, document.title, pages, author_name
        )
        if result.failure:
            return result
        return replace(result, figures_left_out=figure_count(document))

    async def _telegraph_pages(
        self,
        client: TelegraphClient,
        owner_id: int,
        draft: _Draft,
        title: str,
        pages: list[list[Node]],
        author_name: str,
    ) -> TelegraphResult:
        try:
            try:
                return await self._post_pages(client, owner_id, draft, title, pages, author_name)
            except TelegraphError as exc:
                if not exc.token_invalid:
                    raise
                # The token was revoked: a new account, and new pages (the old ones are
                # no longer ours to edit).
                log.warning("Telegraph no longer accepts the stored token; making a new account")
                await self._forget_account(owner_id, client.api_url)
                return await self._post_pages(client, owner_id, draft, title, pages, author_name)
        except TelegraphUnavailable:
            return TelegraphResult(failure="unavailable")
        except TelegraphError as exc:
            return TelegraphResult(failure=exc.code)

    async def _post_pages(
        self,
        client: TelegraphClient,
        owner_id: int,
        draft: _Draft,
        title: str,
        pages: list[list[Node]],
        author_name: str,
    ) -> TelegraphResult:
        account_id, token, author = await self._account(client, owner_id, author_name)
        async with self._sessions.begin() as session:
            stored = await Repository(session, owner_id).publishing.telegraph_pages(
                account_id, draft.article_id
            )
            known = {p.part: (p.path, p.url) for p in stored}
        count = len(pages)
        created_first = 1 not in known
        # Pages not there yet are made first; the links between the pages and to the notes
        # are filled in once every page has a URL (a page whose links are already right as
        # made is not edited again).
        provisional = finished_pages(pages, ["#"] * count)
        paths: list[str] = []
        urls: list[str] = []
        fresh: set[int] = set()
        for index, content in enumerate(provisional):
            if index + 1 in known:
                path, url = known[index + 1]
            else:
                name = page_title(title, index + 1, count)
                page = await client.create_page(token, name, content, author)
                await self._save_page(owner_id, account_id, draft.article_id, index + 1, page)
                path, url = page.path, page.url
                fresh.add(index)
            paths.append(path)
            urls.append(url)
        for _ in range(2):  # a second round only when a lost page had to be made anew
            lost = False
            for index, content in enumerate(finished_pages(pages, urls)):
                if index in fresh and content == provisional[index]:
                    continue
                name = page_title(title, index + 1, count)
                try:
                    page = await client.edit_page(token, paths[index], name, content, author)
                except TelegraphError as exc:
                    if not exc.page_gone:
                        raise
                    # Deleted on telegra.ph or no longer this account's: publish it anew.
                    page = await client.create_page(token, name, content, author)
                    lost = True
                    created_first = created_first or index == 0
                await self._save_page(owner_id, account_id, draft.article_id, index + 1, page)
                paths[index], urls[index] = page.path, page.url
                fresh.discard(index)
            if not lost:
                break
        # Parts left over from a longer version say where the article is now.
        for part in sorted(p for p in known if p > count):
            path, _ = known[part]
            try:
                await client.edit_page(
                    token, path, page_title(title, part, part), moved_page(urls[0]), author
                )
            except TelegraphError:
                log.info("Could not update a left-over Telegraph page", exc_info=True)
        async with self._sessions.begin() as session:
            await Repository(session, owner_id).publishing.record_publication(
                draft.article_id,
                Target.TELEGRAPH,
                urls[0],
                draft.version_id,
                draft.version_number,
                urls[0],
            )
        return TelegraphResult(url=urls[0], pages=count, created=created_first)

    async def _account(
        self, client: TelegraphClient, owner_id: int, author_name: str
    ) -> tuple[int, str, str]:
        """(account id, token, author name): the writer's account, made on first use."""
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            account = await repo.publishing.telegraph_account(client.api_url)
            if account is not None:
                author = author_name or account.author_name
                if author_name and author_name != account.author_name:
                    account.author_name = author_name
                return account.id, account.access_token, author
        token = await client.create_account(SHORT_NAME, author_name)
        try:
            async with self._sessions.begin() as session:
                repo = Repository(session, owner_id)
                await repo.users.ensure()
                account = await repo.publishing.add_telegraph_account(
                    client.api_url, token, author_name
                )
                return account.id, token, author_name
        except IntegrityError:
            # Another publish of the same writer made one meanwhile (another process): use it.
            async with self._sessions.begin() as session:
                account = await Repository(session, owner_id).publishing.telegraph_account(
                    client.api_url
                )
                assert account is not None
                return account.id, account.access_token, author_name or account.author_name

    async def _forget_account(self, owner_id: int, api_url: str) -> None:
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            account = await repo.publishing.telegraph_account(api_url)
            if account is not None:
                await repo.publishing.forget_telegraph_account(account.id)

    async def _save_page(
        self, owner_id: int, account_id: int, article_id: int, part: int, page: TelegraphPage
    ) -> None:
        async with self._sessions.begin() as session:
            await Repository(session, owner_id).publishing.save_telegraph_page(
                account_id, article_id, part, page.path, page.url
            )


async def _article(repo: Repository, article_id: int | None) -> Article:
    if article_id is None:
        return await require_article(repo)
    article = await repo.articles.get(article_id)
    if article is None:
        raise UserError("That article does not exist (any more).")
    return article


def _not_configured(target: Target) -> str:
    if target is Target.GIT:
        return "Publishing to git is not set up: set PUBLISH_GIT_DIR to a git repository."
    return "Publishing to Telegraph is off: set TELEGRAPH_ENABLED=true."


def _no_draft_to_export() -> str:
    return "There is no draft yet: send /draft first. /export notes sends your raw transcripts."


def build_publisher(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> PublishService:
    """The targets the settings configure: PUBLISH_GIT_DIR, TELEGRAPH_ENABLED."""
    git = (
        GitTarget(
            Path(settings.publish_git_dir),
            subdir=settings.publish_git_subdir,
            author=settings.publish_git_author,
            push=settings.publish_git_push,
        )
        if settings.publish_git_dir
        else None
    )
    telegraph = TelegraphClient(settings.telegraph_api_url) if settings.telegraph_enabled else None
    return PublishService(sessions, git=git, telegraph=telegraph)
