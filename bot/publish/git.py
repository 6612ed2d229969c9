"""Publishing into a git repository: files committed (and pushed) without ever leaving the
repository half-changed.

The commit is built beside the work tree: blobs and a tree from a temporary index, a commit
on top of the branch (`git commit-tree`). It is pushed (when asked) before anything local
moves; only then are the work tree, the index and the branch brought forward to it, with a
check that nobody moved the branch meanwhile. A failure at any step leaves the branch, the
index and the work tree exactly as they were (at most some unreferenced objects stay in
.git/objects, which `git gc` removes).

Git runs as a subprocess (asyncio, never blocking the event loop) with a timeout, no prompts
and no terminal; its output goes to the debug log with credentials in URLs masked, never to
the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's well-known empty tree
_URL_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]+@")
_AUTHOR = re.compile(r"^\s*([^<>]+?)\s*<([^<>\s]+@?[^<>\s]*)>\s*$")


class GitFailure(enum.StrEnum):
    """Why a publish to git did not happen; telegram/texts turns these into words."""

    NOT_A_REPOSITORY = "not_a_repository"
    NOT_ON_BRANCH = "not_on_branch"
    DIRTY = "dirty"
    CONFLICT = "conflict"  # a merge, rebase or cherry-pick is under way
    OUTSIDE_REPOSITORY = "outside_repository"
    PUSH_REJECTED = "push_rejected"  # the remote has commits this repository has not
    PUSH_FAILED = "push_failed"  # unreachable, refused credentials, hooks…
    BRANCH_MOVED = "branch_moved"  # someone committed while we published
    TIMEOUT = "timeout"
    GIT_MISSING = "git_missing"
    FAILED = "failed"


class GitPublishError(Exception):
    def __init__(self, failure: GitFailure, detail: str = "") -> None:
        super().__init__(failure.value)
        self.failure = failure
        self.detail = detail  # for the log only: may name paths of the host


@dataclass(frozen=True)
class PublishFile:
    """A file to publish: its path under the target folder (posix, relative) and content."""

    path: str
    content: bytes


@dataclass(frozen=True)
class GitOutcome:
    committed: bool  # False: nothing new, no commit made
    commit: str  # short hash of the new commit, or of the latest one touching the files
    branch: str
    paths: list[str]  # paths inside the repository
    pushed_to: str = ""  # "origin/main" when pushed
    push_skipped: str = ""  # "no_remote" when pushing was asked but there is nowhere to push


def parse_author(value: str) -> tuple[str, str]:
    """`Name <email>` as (name, email); ValueError when it is not of that form."""
    match = _AUTHOR.match(value)
    if not match:
        raise ValueError("must look like Name <email@example.com>")
    return match.group(1), match.group(2)


@dataclass(frozen=True)
class GitTimeouts:
    command: float = 30.0
    push: float = 60.0


class GitTarget:
    """One repository (`directory`), files written under `subdir` of it."""

    def __init__(
        self,
        directory: Path,
        *,
        subdir: str = "",
        author: str = "Voice Draft Bot <voice-draft-bot@localhost>",
        push: bool = False,
        timeouts: GitTimeouts | None = None,
    ) -> None:
        self.directory = directory
        self._top = directory.resolve()  # git names the top folder with symlinks resolved
        self.subdir = subdir.strip().strip("/")
        self.author_name, self.author_email = parse_author(author)
        self.push = push
        self.timeouts = timeouts or GitTimeouts()
        # Writers share the repository: one publish at a time in this process (git's own
        # index lock and the compare-and-swap on the branch guard against other processes).
        self._lock = asyncio.Lock()

    @property
    def top_folder(self) -> str:
        """The repository's folder, symlinks resolved: the same repository however named."""
        return str(self._top)

    async def publish(self, files: Sequence[PublishFile], message: str) -> GitOutcome:
        async with self._lock:
            return await self._publish(files, message)

    def paths_for(self, files: Sequence[PublishFile]) -> list[str]:
        return [self._repo_path(f.path) for f in files]

    def _repo_path(self, relative: str) -> str:
        path = PurePosixPath(self.subdir) / relative if self.subdir else PurePosixPath(relative)
        if path.is_absolute() or ".." in path.parts or not path.parts or ".git" in path.parts:
            raise GitPublishError(GitFailure.OUTSIDE_REPOSITORY, str(path))
        return str(path)

    async def _publish(self, files: Sequence[PublishFile], message: str) -> GitOutcome:
        if not self.directory.is_dir():
            raise GitPublishError(GitFailure.NOT_A_REPOSITORY, "no such directory")
        top = await self._git("rev-parse", "--show-toplevel", failure=GitFailure.NOT_A_REPOSITORY)
        if Path(top.strip()) != self._top:
            # PUBLISH_GIT_DIR must be the repository's top folder: PUBLISH_GIT_SUBDIR places
            # the files inside it.
            raise GitPublishError(GitFailure.NOT_A_REPOSITORY, "not the top of a work tree")
        paths = self.paths_for(files)
        branch = await self._branch()
        head = await self._head()
        await self._check_clean(paths)

        tree = await self._tree_with(head, files, paths)
        head_tree = (
            (await self._git("rev-parse", f"{head}^{{tree}}")).strip() if head else EMPTY_TREE
        )
        if tree == head_tree:
            return GitOutcome(
                committed=False,
                commit=await self._last_commit(paths),
                branch=branch,
                paths=paths,
            )
        commit = (
            await self._git(
                "commit-tree",
                tree,
                *(["-p", head] if head else []),
                "-m",
                message,
                env=self._identity(),
            )
        ).strip()

        pushed_to, push_skipped = "", ""
        if self.push:
            remote = await self._remote(branch)
            if remote is None:
                push_skipped = "no_remote"
            else:
                name, remote_branch = remote
                await self._push(name, commit, remote_branch)
                pushed_to = f"{name}/{remote_branch}"
        await self._advance(head, commit, branch)
        short = (await self._git("rev-parse", "--short", commit)).strip()
        return GitOutcome(True, short, branch, paths, pushed_to, push_skipped)

    # steps -------------------------------------------------------------------------------
    async def _branch(self) -> str:
        try:
            ref = await self._git("symbolic-ref", "--quiet", "HEAD")
        except GitPublishError:
            raise GitPublishError(GitFailure.NOT_ON_BRANCH, "detached HEAD") from None
        return ref.strip().removeprefix("refs/heads/")

    async def _head(self) -> str | None:
        """The branch's commit, or None in a repository without commits yet."""
        try:
            return (await self._git("rev-parse", "--verify", "--quiet", "HEAD^{commit}")).strip()
        except GitPublishError:
            return None

    async def _check_clean(self, paths: Sequence[str]) -> None:
        git_dir = Path((await self._git("rev-parse", "--absolute-git-dir")).strip())
        in_progress = (
            "MERGE_HEAD",
            "CHERRY_PICK_HEAD",
            "REVERT_HEAD",
            "rebase-merge",
            "rebase-apply",
        )
        if any((git_dir / name).exists() for name in in_progress):
            raise GitPublishError(GitFailure.CONFLICT, "an operation is in progress")
        status = await self._git("status", "--porcelain=v1", "-z", "--untracked-files=all")
        ours = set(paths)
        for entry in status.split("\0"):
            if len(entry) < 4:
                continue
            code, path = entry[:2], entry[3:]
            if "U" in code or code in ("AA", "DD"):
                raise GitPublishError(GitFailure.CONFLICT, "unmerged paths")
            if code == "??":
                if path in ours:  # an untracked file of the writer's would be overwritten
                    raise GitPublishError(GitFailure.DIRTY, f"untracked {path}")
                continue
            if code != "!!":
                raise GitPublishError(GitFailure.DIRTY, f"changed {path}")

    async def _tree_with(
        self, head: str | None, files: Sequence[PublishFile], paths: Sequence[str]
    ) -> str:
        """The tree of `head` with the files put in, built in a throw-away index."""
        with tempfile.TemporaryDirectory(prefix="publish-index-") as scratch:
            env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
            await self._git("read-tree", head or "--empty", env=env)
            for file, path in zip(files, paths, strict=True):
                blob = (
                    await self._git(
                        "hash-object", "-w", "--stdin", "--no-filters", stdin=file.content
                    )
                ).strip()
                await self._git(
                    "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env
                )
            return (await self._git("write-tree", env=env)).strip()

    async def _last_commit(self, paths: Sequence[str]) -> str:
        return (await self._git("log", "-1", "--format=%h", "--", *paths)).strip()

    async def _remote(self, branch: str) -> tuple[str, str] | None:
        """Where the branch pushes: its upstream, else `origin`, else the only remote."""
        with contextlib.suppress(GitPublishError):
            remote = (await self._git("config", f"branch.{branch}.remote")).strip()
            merge = (await self._git("config", f"branch.{branch}.merge")).strip()
            if remote and remote != "." and merge.startswith("refs/heads/"):
                return remote, merge.removeprefix("refs/heads/")
        remotes = (await self._git("remote")).split()
        if "origin" in remotes:
            return "origin", branch
        if len(remotes) == 1:
            return remotes[0], branch
        return None

    async def _push(self, remote: str, commit: str, branch: str) -> None:
        try:
            await self._git(
                "push",
                "--porcelain",
                remote,
                f"{commit}:refs/heads/{branch}",
                time_limit=self.timeouts.push,
                failure=GitFailure.PUSH_FAILED,
            )
        except GitPublishError as exc:
            if exc.failure is GitFailure.PUSH_FAILED and re.search(
                r"\[rejected\]|non-fast-forward|fetch first", exc.detail
            ):
                raise GitPublishError(GitFailure.PUSH_REJECTED, exc.detail) from None
            raise

    async def _advance(self, head: str | None, commit: str, branch: str) -> None:
        """Bring the index and work tree to `commit`, then move the branch if it still points
        where it did; otherwise put the index and work tree back."""
        if head:
            await self._git("read-tree", "-m", "-u", head, commit)
        else:
            await self._git("read-tree", "-m", "-u", commit)
        try:
            await self._git(
                "update-ref",
                "-m",
                "publish: draft committed by the bot",
                f"refs/heads/{branch}",
                commit,
                head or "0" * 40,
            )
        except GitPublishError:
            if head:
                await self._git("read-tree", "-m", "-u", commit, head)
            else:
                await self._git("read-tree", "--empty")
                await self._git("clean", "-f", "-q", "--", *await self._tracked_in(commit))
            raise GitPublishError(GitFailure.BRANCH_MOVED) from None

    async def _tracked_in(self, commit: str) -> list[str]:
        return (await self._git("ls-tree", "-r", "--name-only", "-z", commit)).split("\0")[:-1]

    def _identity(self) -> dict[str, str]:
        return {
            "GIT_AUTHOR_NAME": self.author_name,
            "GIT_AUTHOR_EMAIL": self.author_email,
            "GIT_COMMITTER_NAME": self.author_name,
            "GIT_COMMITTER_EMAIL": self.author_email,
        }

    # running git --------------------------------------------------------------------------
    async def _git(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        time_limit: float | None = None,
        failure: GitFailure = GitFailure.FAILED,
    ) -> str:
        """git's stdout; GitPublishError(failure) when it exits non-zero or takes too long."""
        full_env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",  # never ask for a username or password
            "GCM_INTERACTIVE": "never",
            "LC_ALL": "C",  # messages we can recognise (push rejections)
            **(env or {}),
        }
        if "GIT_SSH_COMMAND" not in os.environ:
            # ssh must fail rather than ask for a passphrase or to trust a host key.
            full_env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
        try:
            process = await asyncio.create_subprocess_exec(
                "git",
                "-C",
                str(self.directory),
                *args,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=full_env,
                start_new_session=True,  # no controlling terminal to prompt on
            )
        except FileNotFoundError:
            raise GitPublishError(GitFailure.GIT_MISSING, "git is not installed") from None
        try:
            out, err = await asyncio.wait_for(
                process.communicate(stdin), time_limit or self.timeouts.command
            )
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            log.warning("git %s timed out", args[0])
            raise GitPublishError(GitFailure.TIMEOUT, f"git {args[0]} timed out") from None
        if process.returncode != 0:
            # `push --porcelain` tells a rejection on stdout, the rest goes to stderr.
            output = (out + b"\n" + err).decode("utf-8", "replace").strip()
            detail = _masked(output)
            log.debug("git %s exited %s: %s", args[0], process.returncode, detail)
            raise GitPublishError(failure, detail)
        return out.decode("utf-8", "replace")


def _masked(text: str) -> str:
    """git output with user:password@ taken out of URLs."""
    return _URL_CREDENTIALS.sub(r"\1***@", text)[:2000]
