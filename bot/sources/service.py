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
        wanted: dict[str, int] = {}
        for match in _FIGURE.finditer(markdown):
            wanted[match.group(1)] = int(match.group(2))
        if not wanted:
            return None
        files: dict[str, Path] = {}
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            for name, note_id in wanted.items():
                row = await repo.sources.of_note(note_id)
                if (
                    row is not None
                    and row.image_path
                    and PurePath(row.image_path).name == (PurePath(name).name)
                ):
                    files[name] = Path(row.image_path)
        content = await run_in_daemon_thread(_zip, filename, markdown, files)
        return f"{PurePath(filename).stem}.zip", content


def _zip(filename: str, markdown: str, files: dict[str, Path]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(filename, markdown)
        for name, path in files.items():
            if path.is_file():
                archive.write(path, name)
    return buffer.getvalue()
