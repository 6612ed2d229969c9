"""Sources as services, on both databases: intake of a message's links and words, the
background step with in-process fakes (pages, files), crashes, deletion while pending."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Note, NotePart, NoteSource
from bot.notes.intake import IntakeService
from bot.notes.manage import NotesService
from bot.services.outline import OutlineService
from bot.sources.links import FetchError, FetchFailure, Page
from bot.sources.model import NewSource, SourceKind
from bot.sources.worker import MAX_ATTEMPTS, SourceWorker

WRITER = 1001


class Pages:
    """Answers every URL with a page of its own; `fail` and `crash` name URLs that fail."""

    def __init__(self) -> None:
        self.fetched: list[str] = []
        self.fail: dict[str, FetchFailure] = {}
        self.crash: set[str] = set()

    async def fetch(self, url: str) -> Page:
        self.fetched.append(url)
        if url in self.crash:
            raise RuntimeError("a bug nobody foresaw")
        if url in self.fail:
            raise FetchError(self.fail[url])
        return Page(url, f"Title of {url}", f"Main text of {url}.")

    async def close(self) -> None:
        pass


class NoFiles:
    async def download(self, file_id: str, destination: Path) -> None:
        raise AssertionError("no file is downloaded for links")


def worker(
    sessions: async_sessionmaker[AsyncSession], pages: Pages, tmp_path: Path
) -> SourceWorker:
    return SourceWorker(
        sessions, fetcher=pages, files=NoFiles(), describer=None, files_dir=tmp_path
    )


async def rows(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[NoteSource, str]]:
    async with sessions() as session:
        result = await session.execute(
            select(NoteSource, NotePart.text)
            .join(NotePart, NotePart.note_id == NoteSource.note_id)
            .order_by(NoteSource.id)
        )
        return [(s, t) for s, t in result]


def link(url: str) -> NewSource:
    return NewSource(SourceKind.LINK, url=url)


async def test_a_message_with_links_is_filed_once_and_read_in_the_background(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    intake = IntakeService(sessions)
    a, b = "https://a.example/one", "https://b.example/two"
    created = await intake.receive_sources(WRITER, WRITER, 10, [link(a), link(b)], "Two reads")
    assert len(created) == 2
    again = await intake.receive_sources(WRITER, WRITER, 10, [link(a), link(b)], "Two reads")
    assert again == [], "a redelivered message files nothing twice"
    async with sessions() as session:
        notes = list(await session.scalars(select(Note).order_by(Note.id)))
    assert [n.transcript for n in notes] == ["Two reads", f"URL: {a}", f"URL: {b}"]

    pages = Pages()
    pages.fail[b] = FetchFailure.TIMED_OUT
    await worker(sessions, pages, tmp_path).drain()
    [(first, first_text), (second, second_text)] = await rows(sessions)
    assert (first.status, first.title) == ("ready", f"Title of {a}")
    assert first_text == f"Page: Title of {a}\nURL: {a}\n\nMain text of {a}."
    assert (second.status, second.failure) == ("failed", "timed_out")
    assert second_text == f"URL: {b}", "a page that could not be read keeps its URL"
    assert sorted(pages.fetched) == sorted([a, b]), "each page fetched once"

    notes_service = NotesService(sessions)
    assert await notes_service.edit_text_note(WRITER, WRITER, 10, "Two good reads") is not None
    await intake.receive_sources(WRITER, WRITER, 11, [link("https://c.example/")])
    assert await notes_service.edit_text_note(WRITER, WRITER, 11, "edited away") is None
    texts = [text for _, text in await rows(sessions)]
    assert texts[2] == "URL: https://c.example/", "editing the message never overwrites a source"

    outline = await OutlineService(sessions).outline(WRITER)
    assert outline is not None
    [section] = outline.sections
    assert (section.note_count, section.source_count) == (4, 3)


async def test_a_step_that_keeps_crashing_is_set_aside_and_a_deleted_note_is_left_alone(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    intake = IntakeService(sessions)
    broken, gone = "https://broken.example/", "https://gone.example/"
    await intake.receive_sources(WRITER, WRITER, 20, [link(broken)])
    pages = Pages()
    pages.crash.add(broken)
    await worker(sessions, pages, tmp_path).drain()
    [(source, text)] = await rows(sessions)
    assert (source.status, source.failure) == ("failed", "gave_up")
    assert pages.fetched == [broken] * MAX_ATTEMPTS
    assert text == f"URL: {broken}"

    await intake.receive_sources(WRITER, WRITER, 21, [link(gone)])
    await NotesService(sessions).undo_last(WRITER)  # deleted before its page was read
    await worker(sessions, pages, tmp_path).drain()
    assert gone not in pages.fetched
    assert len(await rows(sessions)) == 1


class Photos:
    """Telegram's files: each file_id downloads as bytes of its own."""

    async def download(self, file_id: str, destination: Path) -> None:
        write(destination, b"\xff\xd8\xff" + file_id.encode())


def write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


class Describer:
    def __init__(self) -> None:
        self.refuse = False

    async def describe(self, image: bytes, mime_type: str, caption: str) -> str:
        if self.refuse:
            from bot.llm.vision import VisionRefused

            raise VisionRefused()
        return f"A photo of {caption}"


def photo(name: str) -> NewSource:
    return NewSource(SourceKind.IMAGE, caption=name, file_id=name, mime_type="image/jpeg")


async def kept_images(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Path]:
    """Each image source's kept file by its caption."""
    async with sessions() as session:
        found = await session.scalars(select(NoteSource).where(NoteSource.kind == "image"))
        return {s.caption or "": Path(s.image_path) for s in found if s.image_path}


async def test_a_photos_kept_image_goes_with_its_note_and_nothing_else_goes(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    from sqlalchemy import delete

    from bot.db.models import Article

    intake = IntakeService(sessions)
    describer = Describer()
    images = SourceWorker(
        sessions, fetcher=None, files=Photos(), describer=describer, files_dir=tmp_path
    )
    for message, name in enumerate(["board", "chart", "refused"], start=40):
        describer.refuse = name == "refused"
        await intake.receive_sources(WRITER, WRITER, message, [photo(name)])
        await images.drain()
    files = await kept_images(sessions)
    assert sorted(files) == ["board", "chart", "refused"]
    assert all(path.is_file() for path in files.values()), "a refused description keeps it too"
    unrelated = [tmp_path / "document-7.bin", tmp_path / "notes.txt", tmp_path / "note-x.jpg"]
    for path in unrelated:
        path.write_bytes(b"not a kept image")

    notes = NotesService(sessions)
    undone = await notes.undo_last(WRITER)  # the latest: "refused"
    assert undone.preview.startswith("Image")
    assert not files["refused"].exists()
    assert files["board"].is_file() and files["chart"].is_file()

    async with sessions() as session:
        part_id = await session.scalar(
            select(NotePart.id)
            .join(NoteSource, NoteSource.note_id == NotePart.note_id)
            .where(NoteSource.caption == "chart")
        )
    assert part_id is not None
    await notes.delete_part(WRITER, part_id)  # the 🗑 button
    assert not files["chart"].exists()
    assert files["board"].is_file()
    assert await images.sweep_images() == 0, "the image of a note still there stays"
    assert files["board"].is_file()

    # The article deleted whole, in SQL as a deletion of it would (its notes first: a note
    # part holds its section); the database removes their sources.
    async with sessions.begin() as session:
        await session.execute(delete(Note))
        await session.execute(delete(Article))
    assert files["board"].is_file(), "not before the sweep sees the note is gone"
    assert await images.sweep_images() == 1
    assert not files["board"].exists()
    assert all(path.read_bytes() == b"not a kept image" for path in unrelated)


class HeldPages(Pages):
    """A page that loads only when the test lets it (`loaded`); `asked` is set on each fetch."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = asyncio.Event()
        self.loaded = asyncio.Event()

    async def fetch(self, url: str) -> Page:
        self.asked.set()
        await self.loaded.wait()
        return await super().fetch(url)


async def attempts(sessions: async_sessionmaker[AsyncSession]) -> tuple[str, int]:
    async with sessions() as session:
        [source] = await session.scalars(select(NoteSource))
        return source.status, source.attempts


async def test_a_stop_while_a_page_is_fetched_uses_up_no_attempt_and_a_crash_does(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    url = "https://slow.example/"
    await IntakeService(sessions).receive_sources(WRITER, WRITER, 50, [link(url)])
    for _ in range(MAX_ATTEMPTS + 1):  # more stops than a source has attempts
        pages = HeldPages()
        stopped = worker(sessions, pages, tmp_path)
        assert await stopped.run_once() == 1
        await asyncio.wait_for(pages.asked.wait(), 5)  # in the middle of the fetch
        await stopped.stop()  # as on SIGTERM
        assert await attempts(sessions) == ("pending", 0)
    # Stopped before its task even began.
    early = worker(sessions, HeldPages(), tmp_path)
    assert await early.run_once() == 1
    await early.stop()
    assert await attempts(sessions) == ("pending", 0)

    crashing = Pages()
    crashing.crash.add(url)
    once = worker(sessions, crashing, tmp_path)
    await once.run_once()
    await asyncio.gather(*once._in_flight.values())
    assert await attempts(sessions) == ("pending", 1), "a crash of the step counts"

    pages = HeldPages()
    pages.loaded.set()
    await worker(sessions, pages, tmp_path).drain()
    [(source, text)] = await rows(sessions)
    assert source.status == "ready" and text.startswith(f"Page: Title of {url}")
