"""Sources end to end: the real bot, the fake Bot API and fake OpenAI server over HTTP, a local
web site. Links, forwarded posts, PDFs and photos are filed as sources apart from the
writer's words, and the draft cites them, lists them and shows images as figures."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.db.models import Note, NoteSource
from bot.db.session import create_engine, create_session_factory
from tests.conftest import StartBot
from tests.fakes.drafting_model import DraftingModel
from tests.fakes.openai_server import Call, FakeOpenAI
from tests.fakes.telegram_server import FakeTelegram
from tests.test_chat_e2e import WRITER, say
from tests.test_links import Site, serve_site
from tests.test_publish import Repos, git
from tests.test_publish import repos as repos

DESCRIPTION = (
    "A whiteboard with a diagram of three boxes joined by arrows. "
    "Text in the image: INGEST -> STORE -> SERVE"
)
# Enough of a JPEG for Telegram's file path and the data: URL; nobody decodes it.
PHOTO = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(range(256)) * 4 + b"\xff\xd9"


class Model:
    """Drafts like DraftingModel; describes any image it is shown."""

    def __init__(self) -> None:
        self.drafting = DraftingModel()

    def __call__(self, call: Call) -> dict[str, Any] | str:
        if call.images:
            return DESCRIPTION
        return self.drafting(call)


@pytest.fixture
async def web() -> AsyncIterator[Site]:
    """A local web site (loopback: the bot refuses it unless LINK_FETCH_ALLOW_PRIVATE)."""
    async with serve_site() as state:
        yield state


@pytest.fixture
def llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        server.set_responder(Model())
        yield server


def llm_settings(llm: FakeOpenAI, **extra: object) -> dict[str, object]:
    return {
        "openai_base_url": llm.base_url,
        "openai_api_key": llm.api_key,
        "openai_model": "fake-model",
        "openai_timeout_seconds": 5,
        **extra,
    }


@pytest.fixture
async def bot(
    telegram: FakeTelegram, llm: FakeOpenAI, start_bot: StartBot
) -> AsyncIterator[FakeTelegram]:
    # The local site is on loopback, which the bot refuses unless told otherwise.
    async with start_bot(**llm_settings(llm, link_fetch_allow_private=True)):
        await say(telegram, "/new Storage", "Storage")
        await say(telegram, "/outline\nWhy columns\nWhat we saw", "Outline of")
        yield telegram


async def card(telegram: FakeTelegram, *needles: str) -> str:
    """The bot message that (now) shows every needle."""

    def find() -> str | None:
        for message in telegram.sent_messages(WRITER):
            if all(n in message.text for n in needles):
                return message.text
        return None

    return await telegram.wait_for(find)


async def sources_in_db(tmp_path: Path) -> list[tuple[NoteSource, Note]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'bot.db'}")
    try:
        async with create_session_factory(engine)() as session:
            rows = await session.execute(
                select(NoteSource, Note)
                .join(Note, Note.id == NoteSource.note_id)
                .order_by(NoteSource.id)
            )
            return [(s, n) for s, n in rows]
    finally:
        await engine.dispose()


async def part_texts(tmp_path: Path) -> list[str]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'bot.db'}")
    try:
        async with create_session_factory(engine)() as session:
            from bot.db.models import NotePart

            return list(await session.scalars(select(NotePart.text).order_by(NotePart.id)))
    finally:
        await engine.dispose()


def kept(path: str | None) -> bytes:
    """The bytes of a file the bot kept (empty when it kept none)."""
    return Path(path).read_bytes() if path else b""


def kept_exists(path: str) -> bool:
    return Path(path).exists()


def minimal_pdf(lines: list[str]) -> bytes:
    """A one-page PDF with the lines in Helvetica, written by hand (xref offsets included)."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    ops = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL", *(f"({escape(x)}) Tj T*" for x in lines), "ET"]
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


async def test_a_link_is_fetched_in_the_background_and_filed_as_a_source(
    bot: FakeTelegram,
    web: Site,
    tmp_path: Path,
) -> None:
    url = f"{web.base}/article"
    bot.send_text(WRITER, f"Worth quoting when I explain scans: {url}")
    shown = await card(bot, "Filed as a source under", "Why columnar storage wins")
    assert "<b>1. Why columns</b>" in shown and url in shown
    words = await card(bot, "📝 Filed under")
    assert "Why columns" in words

    [(source, _)] = await sources_in_db(tmp_path)
    assert (source.kind, source.status, source.url) == ("link", "ready", url)
    assert source.title == "Why columnar storage wins" and source.fetched_at is not None
    assert "Storing each column together" in (source.text or "")
    texts = await part_texts(tmp_path)
    assert texts[0] == "Worth quoting when I explain scans:", "the writer's words, on their own"
    assert texts[1].startswith(f"Page: Why columnar storage wins\nURL: {url}\n\n")
    assert "Copyright" not in texts[1] and "Subscribe" not in texts[1]

    outline = await say(bot, "/sections", "Why columns")
    assert "1. Why columns — 2 notes (1 source)" in outline


async def test_a_draft_made_while_a_page_is_still_loading_says_so(
    bot: FakeTelegram, web: Site
) -> None:
    bot.send_text(WRITER, f"{web.base}/held")
    await card(bot, "Got the link; reading the page")
    await say(bot, "Columns compress well.", "Filed under")
    before = len(bot.sent_documents(WRITER))
    bot.send_text(WRITER, "/draft")
    await bot.wait_for(lambda: len(bot.sent_documents(WRITER)) > before)
    summary = await card(bot, "Draft ready")
    assert "1 source is still being read: only the link is in it so far." in summary
    web.release.set()
    await card(bot, "Filed as a source under", "Why columnar storage wins")
    before = len(bot.sent_documents(WRITER))
    bot.send_text(WRITER, "/draft")
    await bot.wait_for(lambda: len(bot.sent_documents(WRITER)) > before)
    markdown = bot.sent_documents(WRITER)[-1].params["document"].decode()
    assert f"[Why columnar storage wins]({web.base}/held)" in markdown
    summaries = [m.text for m in bot.sent_messages(WRITER) if "Draft ready" in m.text]
    assert len(summaries) == 2 and "still being read" not in summaries[-1]


async def test_a_private_address_is_refused_by_default_and_the_link_kept(
    telegram: FakeTelegram,
    llm: FakeOpenAI,
    start_bot: StartBot,
    web: Site,
    tmp_path: Path,
) -> None:
    async with start_bot(**llm_settings(llm)):
        url = f"{web.base}/article"
        telegram.send_text(WRITER, url)
        shown = await card(telegram, "I couldn't read")
        assert "private or local network address" in shown and url in shown
        assert "kept as a source" in shown
    assert web.hits == []
    [(source, _)] = await sources_in_db(tmp_path)
    assert (source.status, source.failure) == ("failed", "private_address")
    assert (await part_texts(tmp_path)) == [f"URL: {url}"]


async def test_a_page_that_times_out_gets_one_clear_message(
    telegram: FakeTelegram,
    llm: FakeOpenAI,
    start_bot: StartBot,
    web: Site,
) -> None:
    settings = llm_settings(llm, link_fetch_allow_private=True, link_fetch_timeout_seconds=0.5)
    async with start_bot(**settings):
        telegram.send_text(WRITER, f"{web.base}/slow")
        shown = await card(telegram, "I couldn't read")
        assert "took too long" in shown
        messages = telegram.sent_messages(WRITER)
        assert len(messages) == 1, "the acknowledgement, edited: one message"
        assert "Error" not in shown and "Timeout" not in shown


async def test_a_forwarded_channel_post_is_filed_with_its_origin(
    bot: FakeTelegram, tmp_path: Path
) -> None:
    origin = FakeTelegram.channel_origin("Data Weekly", "dataweekly", 42)
    bot.send_text(WRITER, "Parquet 2.0 ships page indexes.", forward_origin=origin)
    shown = await card(bot, "Filed the post from Data Weekly (@dataweekly)")
    assert "https://t.me/dataweekly/42" in shown
    [(source, _)] = await sources_in_db(tmp_path)
    assert (source.kind, source.status) == ("post", "ready")
    assert source.origin_url == "https://t.me/dataweekly/42"
    private = FakeTelegram.channel_origin("Closed club", None, 7, chat_id=-1009)
    bot.send_text(WRITER, "A private channel's post.", forward_origin=private)
    shown = await card(bot, "Filed the post from Closed club")
    assert "t.me" not in shown
    hidden = {"type": "hidden_user", "date": 1_700_000_000, "sender_user_name": "Ann Smith"}
    bot.send_text(WRITER, "What a colleague wrote.", forward_origin=hidden)
    await card(bot, "Filed the post from Ann Smith")
    sources = await sources_in_db(tmp_path)
    assert [s.origin for s, _ in sources] == [
        "Data Weekly (@dataweekly)",
        "Closed club",
        "Ann Smith",
    ]
    assert sources[2][1].transcript == "Forwarded from: Ann Smith\n\nWhat a colleague wrote."


async def test_a_pdf_is_read_and_filed_as_a_source(bot: FakeTelegram, tmp_path: Path) -> None:
    pdf = minimal_pdf(["Quarterly storage report", "Columnar files cut scan costs by 40 percent."])
    file_id = bot.add_file(pdf, file_path="documents/report.pdf")
    bot.send_document(WRITER, file_id, file_name="report.pdf", mime_type="application/pdf")
    shown = await card(bot, "Filed <b>report.pdf</b> as a source")
    assert "cut scan costs by 40 percent" in shown
    [(source, note)] = await sources_in_db(tmp_path)
    assert (source.kind, source.status) == ("document", "ready")
    assert "Quarterly storage report" in (note.transcript or "")


async def test_other_documents_a_pdf_without_text_and_files_over_the_download_limit(
    bot: FakeTelegram, llm: FakeOpenAI, tmp_path: Path
) -> None:
    csv = b"city,scans\nOslo,41\nLima,17\n"
    bot.send_document(WRITER, bot.add_file(csv), file_name="scans.csv", mime_type="text/csv")
    shown = await card(bot, "Filed <b>scans.csv</b> as a source")
    assert "Oslo,41" in shown
    scan = minimal_pdf([])  # a page without a text layer, like a scan
    bot.send_document(WRITER, bot.add_file(scan), file_name="scan.pdf", mime_type="application/pdf")
    shown = await card(bot, "I couldn't read <b>scan.pdf</b>")
    assert "found no text" in shown and "kept as a source" in shown
    png = b"\x89PNG\r\n\x1a\n" + bytes(200)
    bot.send_document(WRITER, bot.add_file(png), file_name="chart.png", mime_type="image/png")
    await card(bot, "Filed the image as a source", "INGEST")
    [image] = [c for c in llm.calls if c.images][-1].images
    assert image.startswith("data:image/png;base64,")
    big = bot.add_file(b"%PDF-1.4 too big to download")
    bot.send_document(
        WRITER, big, file_name="book.pdf", mime_type="application/pdf", file_size=25 * 2**20
    )
    shown = await card(bot, "That file is 25.0 MB")
    assert "at most 20 MB" in shown
    kinds = [(s.kind, s.status) for s, _ in await sources_in_db(tmp_path)]
    assert kinds == [("document", "ready"), ("document", "failed"), ("image", "ready")]


async def test_a_photo_is_described_by_the_vision_model(
    bot: FakeTelegram, llm: FakeOpenAI, tmp_path: Path
) -> None:
    file_id = bot.add_file(PHOTO, file_path="photos/file_1.jpg")
    bot.send_photo(WRITER, file_id, caption="Monday's whiteboard")
    shown = await card(bot, "Filed the image as a source", "INGEST -&gt; STORE -&gt; SERVE")
    assert "Monday&#x27;s whiteboard" in shown or "Monday's whiteboard" in shown
    [vision] = [c for c in llm.calls if c.images]
    [image] = vision.images
    assert image == "data:image/jpeg;base64," + base64.b64encode(PHOTO).decode()
    assert vision.body["model"] == "fake-model"
    [(source, note)] = await sources_in_db(tmp_path)
    assert (source.kind, source.status, source.text) == ("image", "ready", DESCRIPTION)
    assert kept(source.image_path) == PHOTO
    assert "Caption: Monday's whiteboard" in (note.transcript or "")
    usage = await say(bot, "/usage", "tokens")
    assert "vision (fake-model)" in usage, "the description's tokens are the writer's usage"
    await say(bot, "/undo", "Removed your last note")
    assert source.image_path and not kept_exists(source.image_path), "gone with its note"


async def test_an_endpoint_without_vision_gets_a_clear_message_and_the_photo_is_kept(
    bot: FakeTelegram, llm: FakeOpenAI, tmp_path: Path
) -> None:
    llm.reject_images = True
    file_id = bot.add_file(PHOTO, file_path="photos/file_1.jpg")
    bot.send_photo(WRITER, file_id, caption="Monday's whiteboard")
    shown = await card(bot, "I couldn't describe the image")
    assert "doesn't accept images" in shown and "kept with its caption" in shown
    assert "400" not in shown and "invalid" not in shown.lower()
    [(source, note)] = await sources_in_db(tmp_path)
    assert (source.status, source.failure) == ("failed", "no_vision")
    assert kept(source.image_path) == PHOTO
    assert note.transcript == "Image\nCaption: Monday's whiteboard"


async def test_the_draft_cites_sources_apart_lists_them_and_exports_figures_in_a_zip(
    bot: FakeTelegram,
    llm: FakeOpenAI,
    web: Site,
    tmp_path: Path,
) -> None:
    url = f"{web.base}/article"
    bot.send_text(WRITER, url)
    await card(bot, "Filed as a source under", "Why columnar storage wins")
    await say(bot, "/section 2", "now go to")
    await say(bot, "We moved our logs to Parquet last spring.", "Filed under")
    origin = FakeTelegram.channel_origin("Data Weekly", "dataweekly", 42)
    bot.send_text(WRITER, "Parquet 2.0 ships page indexes.", forward_origin=origin)
    await card(bot, "Filed the post from Data Weekly")
    file_id = bot.add_file(PHOTO, file_path="photos/file_1.jpg")
    bot.send_photo(WRITER, file_id, caption="Monday's whiteboard")
    await card(bot, "Filed the image as a source")

    before = len(bot.sent_documents(WRITER))
    bot.send_text(WRITER, "/draft")
    await bot.wait_for(lambda: len(bot.sent_documents(WRITER)) > before)
    markdown = bot.sent_documents(WRITER)[-1].params["document"].decode()

    drafting = [c for c in llm.calls if c.schema_name and "fact-checker" not in c.prompt_text]
    prompt = "\n".join(c.prompt_text for c in drafting)
    assert 'kind="link" source="outside"' in prompt
    assert 'kind="post" source="outside"' in prompt
    assert 'kind="image" source="outside"' in prompt
    assert 'kind="text">' in prompt, "the writer's own note is not marked outside"
    assert "never write it as the writer's own" in prompt
    checks = [c.prompt_text for c in llm.calls if "fact-checker" in c.prompt_text]
    assert checks and all("never in the writer's first person" in c for c in checks)
    assert any('kind="link" source="outside"' in c for c in checks)

    sources_at = markdown.index("## Sources")
    listed = markdown[sources_at:].split("\n---\n")[0]
    assert f"[Why columnar storage wins]({url})" in listed
    assert "Post from Data Weekly (@dataweekly): https://t.me/dataweekly/42" in listed
    assert "Monday's whiteboard" in listed
    assert "We moved our logs" not in listed, "the writer's own notes are no source"
    [(_, photo_note)] = [(s, n) for s, n in await sources_in_db(tmp_path) if s.kind == "image"]
    figure = f"![Monday's whiteboard](images/note-{photo_note.id}.jpg)"
    assert figure in markdown and markdown.index(figure) < sources_at
    assert "*Figure 1: Monday's whiteboard*" in markdown
    assert "Link, " in markdown, "a footnote names a cited link as a link"

    before = len(bot.sent_documents(WRITER))
    bot.send_text(WRITER, "/export")
    await bot.wait_for(lambda: len(bot.sent_documents(WRITER)) > before)
    export = bot.sent_documents(WRITER)[-1].params
    assert export["document_filename"] == "storage.zip"
    with zipfile.ZipFile(io.BytesIO(export["document"])) as archive:
        assert sorted(archive.namelist()) == sorted(
            ["storage.md", f"images/note-{photo_note.id}.jpg"]
        )
        assert archive.read("storage.md").decode() == markdown
        assert archive.read(f"images/note-{photo_note.id}.jpg") == PHOTO

    before = len(bot.sent_documents(WRITER))
    bot.send_text(WRITER, "/export notes")
    await bot.wait_for(lambda: len(bot.sent_documents(WRITER)) > before)
    notes = bot.sent_documents(WRITER)[-1].params["document"].decode()
    assert f"· Link · {url}" in notes
    assert "· Forwarded post · Data Weekly (@dataweekly) https://t.me/dataweekly/42" in notes


async def test_export_html_and_docx_embed_the_figures_and_telegraph_says_it_leaves_them_out(
    telegram: FakeTelegram, llm: FakeOpenAI, start_bot: StartBot, tmp_path: Path
) -> None:
    import docx

    from tests.fakes.telegraph_server import FakeTelegraph, find_nodes, node_text
    from tests.test_export_formats import tiny_png
    from tests.test_publish_e2e import publish

    png = tiny_png()
    with FakeTelegraph() as telegraph:
        async with start_bot(**llm_settings(llm, telegraph_api_url=telegraph.api_url)):
            await say(telegram, "/new Storage", "Storage")
            telegram.send_photo(
                WRITER, telegram.add_file(png, file_path="photos/file_1.jpg"), caption="Board"
            )
            await card(telegram, "Filed the image as a source", "INGEST")
            await say(telegram, "We moved our logs to Parquet last spring.", "Filed under")
            bot = telegram
            before = len(bot.sent_documents(WRITER))
            bot.send_text(WRITER, "/draft")
            await bot.wait_for(lambda: len(bot.sent_documents(WRITER)) > before)

            before = len(bot.sent_documents(WRITER))
            bot.send_text(WRITER, "/export html")
            bot.send_text(WRITER, "/export docx")
            await bot.wait_for(lambda: len(bot.sent_documents(WRITER)) >= before + 2)
            sent = {c.params["document_filename"]: c.params for c in bot.sent_documents(WRITER)}
            page = sent["storage.html"]["document"].decode()
            assert f'src="data:image/png;base64,{base64.b64encode(png).decode()}"' in page
            assert "images/note-" not in page, "one file: nothing beside it to open"
            word = docx.Document(io.BytesIO(sent["storage.docx"]["document"]))
            assert len(word.inline_shapes) == 1
            [blob] = [
                r.target_part.blob for r in word.part.rels.values() if r.reltype.endswith("/image")
            ]
            assert blob == png

            report = await publish(bot, "/publish telegraph")
            assert "Its figure is not on the page" in report and "/export html" in report
            [page_on_telegraph] = telegraph.pages
            assert not find_nodes(page_on_telegraph.content, "img")
            assert "Figure 1: Board" in node_text(page_on_telegraph.content)


async def test_an_image_over_the_vision_cap_is_never_sent_and_a_photo_uses_a_size_under_it(
    telegram: FakeTelegram, llm: FakeOpenAI, start_bot: StartBot, tmp_path: Path
) -> None:
    cap = 4096
    small, medium, full = PHOTO[:-2] + b"s\xff\xd9", PHOTO * 3, PHOTO * 8
    assert len(small) < len(medium) <= cap < len(full)
    async with start_bot(**llm_settings(llm, vision_max_image_bytes=cap)):
        await say(telegram, "/new Storage", "Storage")
        sizes = (telegram.add_file(small), telegram.add_file(medium))
        telegram.send_photo(WRITER, telegram.add_file(full), smaller=sizes, caption="Board")
        await card(telegram, "Filed the image as a source", "INGEST")
        [vision] = [c for c in llm.calls if c.images]
        assert vision.images == ["data:image/jpeg;base64," + base64.b64encode(medium).decode()]

        png = b"\x89PNG\r\n\x1a\n" + bytes(cap)  # an image sent as a file has one size only
        telegram.send_document(
            WRITER,
            telegram.add_file(png),
            file_name="scan.png",
            mime_type="image/png",
            caption="Whiteboard scan",
        )
        shown = await card(telegram, "I couldn't describe the image")
        assert "larger than I send to the image model" in shown
        assert "kept with its caption" in shown and "Whiteboard scan" in shown
        assert len([c for c in llm.calls if c.images]) == 1, "the big one was never sent"
        photo, scan = [s for s, _ in await sources_in_db(tmp_path)]
        assert kept(photo.image_path) == medium
        assert (scan.status, scan.failure) == ("failed", "image_too_large")
        assert kept(scan.image_path) == png, "kept as a figure all the same"


async def test_stopping_the_bot_while_a_page_loads_uses_up_none_of_its_attempts(
    telegram: FakeTelegram, llm: FakeOpenAI, web: Site, start_bot: StartBot, tmp_path: Path
) -> None:
    from bot.sources.worker import MAX_ATTEMPTS

    settings = llm_settings(llm, link_fetch_allow_private=True)
    for start in range(MAX_ATTEMPTS + 1):  # more stops than a source has attempts
        async with start_bot(**settings):
            if start == 0:
                await say(telegram, "/new Storage", "Storage")
                telegram.send_text(WRITER, f"{web.base}/held")
                await card(telegram, "Got the link; reading the page")
            # This start's fetch of the page is under way.
            await telegram.wait_for(lambda n=start: web.hits.count("/held") > n or None)
        # The bot stopped (as on SIGTERM) with the page still loading.
        [(source, _)] = await sources_in_db(tmp_path)
        assert (source.status, source.attempts) == ("pending", 0)
    web.release.set()
    async with start_bot(**settings):
        await card(telegram, "Filed as a source under", "Why columnar storage wins")


async def test_editing_a_message_with_links_keeps_the_writers_words_without_the_urls(
    bot: FakeTelegram, web: Site, tmp_path: Path
) -> None:
    async def seen(needle: str, times: int) -> None:
        await bot.wait_for(
            lambda: len([m for m in bot.sent_messages(WRITER) if needle in m.text]) >= times or None
        )

    url = f"{web.base}/article"
    update = bot.send_text(WRITER, f"Read {url} before Friday")
    await card(bot, "Filed as a source under", "Why columnar storage wins")
    await seen("📝 Filed under", 1)
    assert "Read before Friday" in await part_texts(tmp_path)
    message_id = update["message"]["message_id"]
    bot.edit_text(WRITER, message_id, f"Read {url} before Monday, and https://b.example/x too")
    await seen("Updated your note", 1)
    texts = await part_texts(tmp_path)
    assert "Read before Monday, and too" in texts
    assert not [t for t in texts if t.startswith("Read") and "http" in t], "no URL in the words"
    [(source, note)] = await sources_in_db(tmp_path)
    assert source.url == url and "Why columnar storage wins" in (note.transcript or "")

    # A note that had no links keeps what the writer types, URLs too (nothing else files them).
    plain = bot.send_text(WRITER, "Columns compress well.")
    await seen("📝 Filed under", 2)
    bot.edit_text(
        WRITER, plain["message"]["message_id"], "Columns compress well: https://c.example/"
    )
    await seen("Updated your note", 2)
    assert "Columns compress well: https://c.example/" in await part_texts(tmp_path)


async def test_publish_to_git_commits_the_figures_images_beside_the_markdown(
    telegram: FakeTelegram, llm: FakeOpenAI, start_bot: StartBot, repos: Repos
) -> None:
    from tests.test_export_formats import tiny_png
    from tests.test_publish_e2e import publish

    png = tiny_png()
    settings = llm_settings(llm, publish_git_dir=str(repos.work), publish_git_subdir="posts")
    async with start_bot(**settings):
        await say(telegram, "/new Storage", "Storage")
        telegram.send_photo(
            WRITER, telegram.add_file(png, file_path="photos/file_1.jpg"), caption="Board"
        )
        await card(telegram, "Filed the image as a source", "INGEST")
        await say(telegram, "We moved our logs to Parquet last spring.", "Filed under")
        before = len(telegram.sent_documents(WRITER))
        telegram.send_text(WRITER, "/draft")
        await telegram.wait_for(lambda: len(telegram.sent_documents(WRITER)) > before)
        report = await publish(telegram, "/publish git")
        assert "⚠️" not in report, report
    markdown = git(repos.work, "show", "HEAD:posts/storage.md")
    [image] = re.findall(r"\]\((images/note-\d+\.\w+)\)", markdown)
    committed = committed_bytes(repos.work, f"HEAD:posts/{image}")
    assert committed == png, "the figure's image is in the commit, where the markdown links it"


def committed_bytes(work: Path, revision_path: str) -> bytes:
    """A committed file's bytes (`git show`, not decoded: an image)."""
    return subprocess.run(
        ["git", "show", revision_path], cwd=work, capture_output=True, check=True
    ).stdout
