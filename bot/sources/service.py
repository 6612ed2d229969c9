"""Sources for the writer: a draft with figures exported as a .zip of the .md and its images."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path, PurePath

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.repository import Repository
from bot.services.threads import run_in_daemon_thread
from bot.sources.cards import IMAGES_DIR

# A figure as render_article writes it: ![caption](images/note-12.jpg)
_FIGURE = re.compile(r"!\[[^\]\n]*\]\((" + IMAGES_DIR + r"/note-(\d+)\.[A-Za-z0-9]+)\)")


class SourcesService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def bundle(self, owner_id: int, filename: str, markdown: str) -> tuple[str, bytes] | None:
        """The draft and the images its figures show as (name.zip, bytes); None when it has
        no figure (the .md alone is the export). Only the writer's own images are packed."""
        if not _FIGURE.search(markdown):
            return None
        async with self._sessions.begin() as session:
            files = await figure_files(Repository(session, owner_id), markdown)
        content = await run_in_daemon_thread(_zip, filename, markdown, files)
        return f"{PurePath(filename).stem}.zip", content


async def figure_files(repo: Repository, markdown: str) -> dict[str, Path]:
    """The images the draft's figures show, by the name the markdown gives them
    (`images/note-12.jpg`): only the writer's own (`repo` is theirs), only as kept."""
    files: dict[str, Path] = {}
    for match in _FIGURE.finditer(markdown):
        name, note_id = match.group(1), int(match.group(2))
        row = await repo.sources.of_note(note_id)
        if (
            row is not None
            and row.image_path
            and PurePath(row.image_path).name == PurePath(name).name
        ):
            files[name] = Path(row.image_path)
    return files


def read_figures(files: dict[str, Path]) -> dict[str, bytes]:
    """The figures' bytes (blocking: run it in a thread); a file gone from disk is left out."""
    images: dict[str, bytes] = {}
    for name, path in files.items():
        try:
            images[name] = path.read_bytes()
        except OSError:
            continue
    return images


def _zip(filename: str, markdown: str, files: dict[str, Path]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(filename, markdown)
        for name, path in files.items():
            if path.is_file():
                archive.write(path, name)
    return buffer.getvalue()
