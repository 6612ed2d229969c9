"""/export html and /export docx: what is produced, parsed back (HTML with the standard
library's parser, DOCX with python-docx and the footnotes part's XML)."""

from __future__ import annotations

import io
import zipfile
from html.parser import HTMLParser
from xml.etree import ElementTree

import docx
import pytest
from docx.opc.constants import RELATIONSHIP_TYPE

from bot.drafting.markdown import render_article
from bot.drafting.model import Block, Citation
from bot.publish.document import parse_draft
from bot.publish.html import render_html_page
from bot.publish.word import render_docx
from tests.test_publish import DRAFT_V1

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []  # (href, class)
        self.title = ""
        self.todo_paragraphs = 0
        self.scripts = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if "id" in values:
            self.ids.add(values["id"])
        if tag == "a":
            self.links.append((values.get("href", ""), values.get("class", "")))
        if tag == "p" and values.get("class") == "todo":
            self.todo_paragraphs += 1
        if tag == "script":
            self.scripts += 1
        self._in_title = tag == "title"

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False


def test_html_page_links_every_footnote_both_ways() -> None:
    page = render_html_page(DRAFT_V1, "fallback")
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    parsed = _Anchors()
    parsed.feed(page)
    assert parsed.title == "Where data engineering ends"
    references = [h for h, c in parsed.links if h.startswith("#fn") and "backref" not in c]
    backlinks = [h for h, c in parsed.links if "footnote-backref" in c]
    assert references and backlinks
    assert len(references) == len(backlinks) == 4  # [1] twice, [2] twice
    for href in references + backlinks:
        assert href[1:] in parsed.ids, f"{href} points nowhere"
    assert {h for h in references} == {"#fn1", "#fn2"}
    assert "[1:1]" not in page and page.count(">[1]</a>") == 2
    assert parsed.todo_paragraphs == 1
    assert "<h2>Where data engineering ends, AI engineering begins</h2>" in page
    assert page.count("<hr") == 1, "the draft's own --- before the notes is not doubled"


def test_html_never_passes_markup_or_scripts_from_a_draft_through() -> None:
    hostile = "# T\n\n<script>alert(1)</script> and [x](javascript:alert(1)) <b>b</b>\n"
    page = render_html_page(hostile, "T")
    parsed = _Anchors()
    parsed.feed(page)
    assert parsed.scripts == 0 and not [h for h, _ in parsed.links if "javascript" in h]
    assert "&lt;script&gt;" in page


def footnotes_of(data: bytes) -> dict[str, str]:
    """Footnote id -> its text, read from the package as Word reads it."""
    document = docx.Document(io.BytesIO(data))
    part = document.part.part_related_by(RELATIONSHIP_TYPE.FOOTNOTES)
    root = ElementTree.fromstring(part.blob)
    notes = {}
    for note in root.iter(f"{W}footnote"):
        if note.get(f"{W}type") in ("separator", "continuationSeparator"):
            continue
        notes[note.get(f"{W}id") or ""] = "".join(t.text or "" for t in note.iter(f"{W}t"))
    return notes


def test_docx_has_the_headings_paragraphs_todo_and_real_footnotes() -> None:
    data = render_docx(parse_draft(DRAFT_V1, "fallback"))
    document = docx.Document(io.BytesIO(data))
    paragraphs = [(p.style.name, p.text) for p in document.paragraphs if p.text.strip()]
    assert paragraphs[0] == ("Title", "Where data engineering ends")
    assert ("Heading 1", "Where data engineering ends, AI engineering begins") in paragraphs
    assert ("Heading 1", "The key skill gaps to close") in paragraphs
    assert ("List Bullet", "ingestion pipelines") in paragraphs
    assert ("Normal", "This article answers a question from the webinar.") in paragraphs
    assert document.core_properties.title == "Where data engineering ends"

    todo = next(p for p in document.paragraphs if p.text.startswith("TODO:"))
    assert todo.runs[0].bold and todo.text == "TODO: look up the article about data roles"
    assert all(r.font.highlight_color is not None for r in todo.runs if r.text.strip())

    # Each reference in the text is a Word footnote reference whose note exists.
    body = ElementTree.fromstring(zipfile.ZipFile(io.BytesIO(data)).read("word/document.xml"))
    referenced = [r.get(f"{W}id") for r in body.iter(f"{W}footnoteReference")]
    # Word cites a footnote once: a note cited twice is two footnotes with its text.
    assert referenced == ["1", "2", "3", "4"]
    webinar = " Voice note, 2026-02-17 08:19 UTC: “a question from the webinar”"
    look_up = " Voice note, 2026-02-17 08:28 UTC: “look up that article”"
    assert footnotes_of(data) == {"1": webinar, "2": webinar, "3": look_up, "4": look_up}
    styles = {s.name for s in document.styles}
    assert {"Footnote Text", "Footnote Reference", "Hyperlink"} <= styles
    link = next(iter(body.iter(f"{W}hyperlink")))
    relationship = document.part.rels[
        link.get("{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id") or ""
    ]
    assert relationship.target_ref == "https://example.org/roles"


@pytest.mark.parametrize("render", ["html", "docx"])
def test_a_draft_made_by_the_bot_renders_with_its_citations(render: str) -> None:
    """The real renderer's output (render_article), not a hand-written sample."""
    from datetime import UTC, datetime

    from bot.drafting.markdown import PartRef, SectionView

    parts = {7: PartRef(datetime(2026, 2, 17, 8, 19, tzinfo=UTC), "voice", "we meet on Thursdays")}
    blocks = [
        Block(
            kind="paragraph",
            text="We meet on Thursdays.",
            citations=(Citation(part_id=7, quote="we meet on Thursdays"),),
        ),
        Block(kind="todo", text="Ask who brings snacks."),
    ]
    sections = [
        SectionView(1, "Meetings", blocks, has_notes=True),
        SectionView(2, "Snacks", [], has_notes=False),
    ]
    markdown = render_article("Book club", [], sections, parts)
    if render == "html":
        page = render_html_page(markdown, "Book club")
        assert 'href="#fn1"' in page and 'id="fn1"' in page and 'href="#fnref1"' in page
        assert "“we meet on Thursdays”" in page
    else:
        data = render_docx(parse_draft(markdown, "Book club"))
        assert list(footnotes_of(data).values()) == [
            " Voice note, 2026-02-17 08:19 UTC: “we meet on Thursdays”"
        ]
        texts = [p.text for p in docx.Document(io.BytesIO(data)).paragraphs]
        assert "TODO: Ask who brings snacks." in texts
        assert "No notes for this section yet." in texts


def tiny_png(width: int = 3, height: int = 2) -> bytes:
    """A real PNG (grey pixels), which python-docx and a browser can both read."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


FIGURE_DRAFT = """# Storage

## What we saw

We moved our logs to Parquet.

![Monday's whiteboard](images/note-12.png)

*Figure 1: Monday's whiteboard*

![Gone](images/note-13.jpg)

*Figure 2: Gone*
"""


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append({k: v or "" for k, v in attrs})


def test_html_embeds_figures_so_the_page_is_one_self_contained_file() -> None:
    import base64

    png = tiny_png()
    page = render_html_page(FIGURE_DRAFT, "Storage", {"images/note-12.png": png})
    parsed = _Images()
    parsed.feed(page)
    # The figure whose file is there is inside the page; the one whose file is gone is left
    # out rather than pointing at a file the page does not carry.
    assert parsed.images == [
        {
            "src": "data:image/png;base64," + base64.b64encode(png).decode(),
            "alt": "Monday's whiteboard",
        }
    ]
    assert "images/note-" not in page and "<p></p>" not in page
    assert "Figure 1: Monday's whiteboard" in page and "Figure 2: Gone" in page
    assert "max-width: 100%" in page, "a phone's screen never has to scroll sideways"


def test_docx_holds_the_figures_as_pictures_at_most_the_text_width() -> None:
    from docx.shared import Emu

    png = tiny_png(4000, 10)  # wider than the page: shrunk to the text's width
    images = {"images/note-12.png": png, "images/note-13.jpg": b"\xff\xd8\xff not a jpeg"}
    data = render_docx(parse_draft(FIGURE_DRAFT, "fallback"), images)
    document = docx.Document(io.BytesIO(data))
    [shape] = document.inline_shapes
    section = document.sections[-1]
    room = Emu(section.page_width - section.left_margin - section.right_margin)  # type: ignore[operator]
    assert shape.width == room
    [picture] = [r for r in document.part.rels.values() if r.reltype == RELATIONSHIP_TYPE.IMAGE]
    assert picture.target_part.blob == png
    texts = [p.text for p in document.paragraphs]
    assert "Figure 1: Monday's whiteboard" in texts and "Figure 2: Gone" in texts
    assert not any("images/note-" in t for t in texts)


def test_telegraph_leaves_figures_out_and_keeps_their_caption_lines() -> None:
    from bot.publish.telegraph import document_nodes, encode_content, figure_count
    from tests.fakes.telegraph_server import find_nodes, node_text

    document = parse_draft(FIGURE_DRAFT, "fallback")
    nodes = document_nodes(document)
    assert figure_count(document) == 2
    assert not find_nodes(nodes, "img")
    assert "images/note-" not in encode_content(nodes)
    text = node_text(nodes)
    assert "Figure 1: Monday's whiteboard" in text and "Figure 2: Gone" in text
    assert all(p.get("children") for p in find_nodes(nodes, "p")), "no empty paragraphs"
