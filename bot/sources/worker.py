"""The background step of sources: fetch a link's page, describe a photo, read a document.

A source note is filed (with what came in its message) and acknowledged before any of this
starts, so the chat is never held up by a slow page or model. Pending sources are stored
state: a restart picks them up again; one that crashed the step MAX_ATTEMPTS times is set
aside as failed. No transaction is open during a download, a fetch or an LLM call; the
result is stored, with the updated acknowledgement, in one short transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import utcnow
from bot.db.repository import Repository, SourceQueries
from bot.llm.vision import VisionRefused, VisionUnavailable
from bot.notes.intake import source_subject
from bot.notes.transcribe import DownloadError
from bot.services.outbox import post_view
from bot.services.threads import run_in_daemon_thread
from bot.services.usage import llm_usage_recorded
from bot.sources.documents import UnreadableDocument, extract_text
from bot.sources.links import FetchError, Page
from bot.sources.model import SourceFailure, SourceKind, SourceStatus, source_text

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
IMAGE_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}
# A photo source's kept image, as _describe names it: note-<note id>.<extension>.
_KEPT_IMAGE = re.compile(r"note-(\d+)\.[A-Za-z0-9]+")
# How often kept images whose notes are gone (an article deleted whole) are looked for.
SWEEP_EVERY_S = 3600.0


class PageFetcher(Protocol):
    async def fetch(self, url: str) -> Page:
        """The page's title and main text (FetchError)."""
        ...

    async def close(self) -> None: ...


class FileSource(Protocol):
    async def download(self, file_id: str, destination: Path) -> None:
        """Fetch the file behind a Telegram file_id into destination (DownloadError)."""
        ...


class Describer(Protocol):
    async def describe(self, image: bytes, mime_type: str, caption: str) -> str:
        """What the image shows and the text in it (VisionRefused, VisionUnavailable)."""
        ...


@dataclass(frozen=True)
class _Job:
    source_id: int
    note_id: int
    owner_id: int
    kind: SourceKind
    url: str | None
    file_id: str | None
    file_name: str | None
    mime_type: str | None
    caption: str


@dataclass(frozen=True)
class _Outcome:
    status: SourceStatus
    failure: SourceFailure | None = None
    title: str | None = None
    text: str | None = None
    image_path: str | None = None


def _failed(why: SourceFailure, image_path: Path | None = None) -> _Outcome:
    return _Outcome(SourceStatus.FAILED, why, image_path=str(image_path) if image_path else None)


class SourceWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        fetcher: PageFetcher | None,
        files: FileSource,
        describer: Describer | None,
        files_dir: Path,
        on_outbox: Callable[[], None] = lambda: None,
        slots: int = 2,
        poll_s: float = 5.0,
        max_image_bytes: int | None = None,
    ) -> None:
        """`files_dir`: where photos are kept (they become the draft's figures);
        `max_image_bytes`: the largest image sent to the describer (VISION_MAX_IMAGE_BYTES)."""
        self._max_image_bytes = max_image_bytes
        self._sessions = sessions
        self._fetcher = fetcher
        self._files = files
        self._describer = describer
        self._dir = files_dir
        self._on_outbox = on_outbox
        self._slots = asyncio.Semaphore(slots)
        self._poll_s = poll_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: dict[int, asyncio.Task[None]] = {}

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        """Close the connection pools (after stop)."""
        if self._fetcher is not None:
            await self._fetcher.close()
        closing = getattr(self._describer, "close", None)
        if closing is not None:
            await closing()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sources")

    async def stop(self) -> None:
        """Stop; sources in work stay pending and are done after the next start. A stop is
        no crash: the attempt it interrupted is given back (only a crash or a failure of
        the step uses one up, like a transcription's release in bot/notes/queue.py)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        in_flight = dict(self._in_flight)
        for task in in_flight.values():
            task.cancel()
        for task in in_flight.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._in_flight.clear()
        # A task cancelled before it began never ran its own code: released here, once.
        interrupted = [source_id for source_id, task in in_flight.items() if task.cancelled()]
        if interrupted:
            await self._release(interrupted)

    async def _release(self, source_ids: list[int]) -> None:
        """Give back the attempts that a stop interrupted (still pending, tried again)."""
        try:
            async with self._sessions.begin() as session:
                queries = SourceQueries(session)
                for source_id in source_ids:
                    row = await queries.locked(source_id)
                    if row is not None and row.status == SourceStatus.PENDING and row.attempts:
                        row.attempts -= 1
        except Exception:
            # Then the stop counts like a crash: at worst one try fewer, never a lost source.
            log.warning("Could not give back the attempts of stopped sources", exc_info=True)

    async def _run(self) -> None:
        swept = float("-inf")
        while True:
            if time.monotonic() - swept >= SWEEP_EVERY_S:
                swept = time.monotonic()
                try:
                    await self.sweep_images()
                except Exception:
                    log.warning("Could not look for images of deleted notes", exc_info=True)
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("Could not read pending sources; trying again", exc_info=True)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s)

    async def run_once(self) -> int:
        """Start the background step of every pending source not in work; how many."""
        jobs = await self._take_pending()
        for job in jobs:
            task = asyncio.create_task(self._work(job), name=f"source-{job.source_id}")
            self._in_flight[job.source_id] = task
        return len(jobs)

    async def sweep_images(self) -> int:
        """Remove kept images whose notes are gone (deleted with their article, or while
        their image was downloading); how many. /undo and 🗑 remove theirs at once
        (bot/notes/manage.py). Nothing but `note-<id>.<ext>` images here is touched."""
        if not self._dir.is_dir():
            return 0
        kept: dict[int, list[Path]] = {}
        for path in await asyncio.to_thread(lambda: list(self._dir.iterdir())):
            match = _KEPT_IMAGE.fullmatch(path.name)
            if match is not None and path.is_file():
                kept.setdefault(int(match.group(1)), []).append(path)
        if not kept:
            return 0
        async with self._sessions.begin() as session:
            alive = await SourceQueries(session).notes_with_sources(sorted(kept))
        removed = 0
        for note_id, paths in kept.items():
            if note_id in alive:
                continue
            for path in paths:
                _remove(path)
                removed += 1
        if removed:
            log.info("Removed %d kept image(s) of deleted notes", removed)
        return removed

    async def drain(self) -> None:
        """Work every pending source to its end (tests, one-off commands)."""
        while await self.run_once() or self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    async def _take_pending(self) -> list[_Job]:
        jobs: list[_Job] = []
        told = False
        async with self._sessions.begin() as session:
            queries = SourceQueries(session)
            for row in await queries.pending():
                if row.id in self._in_flight:
                    continue
                row.attempts += 1
                if row.attempts > MAX_ATTEMPTS:
                    # Its step kept crashing the bot: set aside with what the message held.
                    row.status, row.failure = SourceStatus.FAILED, SourceFailure.GAVE_UP
                    await self._show(session, row.note_id, row.owner_id)
                    told = True
                    continue
                jobs.append(
                    _Job(
                        row.id,
                        row.note_id,
                        row.owner_id,
                        SourceKind(row.kind),
                        row.url,
                        row.file_id,
                        row.file_name,
                        row.mime_type,
                        row.caption or "",
                    )
                )
        if told:
            self._on_outbox()
        return jobs

    async def _work(self, job: _Job) -> None:
        try:
            async with self._slots:
                try:
                    outcome = await self._process(job)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("The background step of source %s failed", job.source_id)
                    return  # still pending: tried again, at most MAX_ATTEMPTS times
                await self._store(job, outcome)
        finally:
            self._in_flight.pop(job.source_id, None)

    async def _process(self, job: _Job) -> _Outcome:
        if job.kind is SourceKind.LINK:
            return await self._fetch(job)
        if job.kind is SourceKind.IMAGE:
            return await self._describe(job)
        if job.kind is SourceKind.DOCUMENT:
            return await self._read(job)
        return _Outcome(SourceStatus.READY)

    async def _fetch(self, job: _Job) -> _Outcome:
        if self._fetcher is None or not job.url:
            return _failed(SourceFailure.UNREACHABLE)
        try:
            page = await self._fetcher.fetch(job.url)
        except FetchError as exc:
            log.info("Source %s: the page could not be read (%s)", job.source_id, exc)
            return _failed(SourceFailure(exc.failure.value))
        return _Outcome(SourceStatus.READY, title=page.title, text=page.text)

    async def _download(self, job: _Job, destination: Path) -> bool:
        assert job.file_id is not None
        partial = destination.with_suffix(destination.suffix + ".part")
        try:
            await self._files.download(job.file_id, partial)
        except DownloadError as exc:
            log.warning("Source %s: download failed (%s)", job.source_id, exc)
            partial.unlink(missing_ok=True)
            return False
        partial.replace(destination)
        return True

    async def _describe(self, job: _Job) -> _Outcome:
        mime = job.mime_type or "image/jpeg"
        extension = IMAGE_EXTENSIONS.get(mime) or mimetypes.guess_extension(mime) or ".jpg"
        path = self._dir / f"note-{job.note_id}{extension}"
        self._dir.mkdir(parents=True, exist_ok=True)
        if not path.exists() and not await self._download(job, path):
            return _failed(SourceFailure.DOWNLOAD_FAILED)
        if self._describer is None:
            return _failed(SourceFailure.NO_LLM, path)
        size = (await asyncio.to_thread(path.stat)).st_size
        if self._max_image_bytes and size > self._max_image_bytes:
            log.info("Source %s: the image is %d bytes, over the cap", job.source_id, size)
            return _failed(SourceFailure.IMAGE_TOO_LARGE, path)
        image = await asyncio.to_thread(path.read_bytes)
        try:
            async with llm_usage_recorded(self._sessions, job.owner_id):
                description = await self._describer.describe(image, mime, job.caption)
        except VisionRefused:
            log.info("Source %s: the endpoint does not take images", job.source_id)
            return _failed(SourceFailure.NO_VISION, path)
        except VisionUnavailable as exc:
            log.warning("Source %s: the vision endpoint did not answer (%s)", job.source_id, exc)
            return _failed(SourceFailure.VISION_DOWN, path)
        return _Outcome(SourceStatus.READY, text=description, image_path=str(path))

    async def _read(self, job: _Job) -> _Outcome:
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._dir / f"document-{job.note_id}.bin"
        try:
            if not await self._download(job, path):
                return _failed(SourceFailure.DOWNLOAD_FAILED)
            data = await asyncio.to_thread(path.read_bytes)
            try:
                text = await run_in_daemon_thread(extract_text, data, job.file_name, job.mime_type)
            except UnreadableDocument as exc:
                log.info("Source %s: no text in the document (%s)", job.source_id, exc)
                return _failed(SourceFailure.UNREADABLE)
            return _Outcome(SourceStatus.READY, text=text)
        finally:
            path.unlink(missing_ok=True)

    async def _store(self, job: _Job, outcome: _Outcome) -> None:
        async with self._sessions.begin() as session:
            row = await SourceQueries(session).locked(job.source_id)
            if row is None and outcome.image_path:
                # Deleted (/undo) while its image was downloading: nothing will show it.
                _remove(Path(outcome.image_path))
            if row is None or row.status != SourceStatus.PENDING:
                return  # deleted meanwhile (/undo), or done by an earlier run
            row.status = outcome.status.value
            row.failure = outcome.failure.value if outcome.failure else None
            if outcome.title is not None:
                row.title = outcome.title
            if outcome.text is not None:
                row.text = outcome.text
            if outcome.image_path is not None:
                row.image_path = outcome.image_path
            row.fetched_at = utcnow()
            repo = Repository(session, row.owner_id)
            note = await repo.notes.get(row.note_id)
            if note is None:
                return
            text = source_text(
                SourceKind(row.kind),
                url=row.url,
                title=row.title,
                text=row.text,
                caption=row.caption,
                origin=row.origin,
                origin_url=row.origin_url,
                file_name=row.file_name,
            )
            note.transcript = text
            parts = await repo.parts.of_note(note.id)
            if parts:
                parts[0].text = text
            await self._show(session, note.id, row.owner_id)
        self._on_outbox()

    async def _show(self, session: AsyncSession, note_id: int, owner_id: int) -> None:
        note = await Repository(session, owner_id).notes.get(note_id)
        if note is not None:
            await post_view(session, note.chat_id, source_subject(note_id))


def _remove(path: Path) -> None:
    """Remove a kept file (a quick local unlink, fine on the event loop)."""
    path.unlink(missing_ok=True)
