"""A draft as a Word document (python-docx): Title and Heading styles, TODO lines highlighted,
links, lists, figures as pictures in the file, and the draft's footnotes as real Word
footnotes (Word and Google Docs keep them as footnotes, numbered, at the foot of the page)."""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence

import docx
from docx.document import Document as WordDocument
from docx.enum.style import WD_STYLE_TYPE
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_COLOR_INDEX
from docx.image.exceptions import UnrecognizedImageError
from docx.image.image import Image as WordImage
from docx.opc.constants import CONTENT_TYPE, RELATIONSHIP_TYPE
from docx.opc.packuri import PackURI
from docx.opc.part import XmlPart
from docx.oxml import parse_xml
from docx.oxml.ns import qn
from docx.oxml.parser import OxmlElement
from docx.oxml.xmlchemy import BaseOxmlElement
from docx.shared import Pt
from docx.text.paragraph import Paragraph as WordParagraph

from bot.publish.document import (
    Block,
    CodeBlock,
    Document,
    FootnoteRef,
    Heading,
    Image,
    Inline,
    LineBreak,
    Link,
    ListBlock,
    Paragraph,
    Quote,
    Rule,
    Text,
    image_type,
)

log = logging.getLogger(__name__)

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
FOOTNOTE_TEXT_STYLE = "Footnote Text"
FOOTNOTE_REFERENCE_STYLE = "Footnote Reference"
CODE_FONT = "Courier New"

# Word numbers footnotes from 1; ids -1 and 0 are the separator lines it draws above them.
_FOOTNOTES_XML = f"""\
<w:footnotes xmlns:w="{W_NS}">
  <w:footnote w:type="separator" w:id="-1"><w:p><w:pPr><w:spacing w:after="0" w:line="240"
    w:lineRule="auto"/></w:pPr><w:r><w:separator/></w:r></w:p></w:footnote>
  <w:footnote w:type="continuationSeparator" w:id="0"><w:p><w:pPr><w:spacing w:after="0"
    w:line="240" w:lineRule="auto"/></w:pPr><w:r><w:continuationSeparator/></w:r></w:p>
  </w:footnote>
</w:footnotes>"""


def render_docx(document: Document, images: Mapping[str, bytes] | None = None) -> bytes:
    """The .docx file's bytes (blocking: run it in a thread for long drafts). `images`: the
    figures' bytes by the name the markdown gives them; a figure without them is left out
    (its caption line stays)."""
    word = docx.Document()
    word.core_properties.title = document.title
    _footnote_styles(word)
    footnotes = _FootnotesPart.create(word) if document.footnotes else None
    word.add_heading(document.title, level=0)
    writer = _Writer(word, footnotes, document.footnotes, images or {})
    for block in document.blocks:
        writer.block(block)
    buffer = io.BytesIO()
    word.save(buffer)
    return buffer.getvalue()


class _FootnotesPart:
    """word/footnotes.xml, which python-docx does not make on its own."""

    def __init__(self, element: XmlPart) -> None:
        self.part = element

    @classmethod
    def create(cls, word: WordDocument) -> _FootnotesPart:
        document_part = word.part
        part = XmlPart(
            PackURI("/word/footnotes.xml"),
            CONTENT_TYPE.WML_FOOTNOTES,
            parse_xml(_FOOTNOTES_XML),
            document_part.package,
        )
        document_part.relate_to(part, RELATIONSHIP_TYPE.FOOTNOTES)
        return cls(part)

    def add(self, number: int) -> WordParagraph:
        """Footnote `number` (the id its reference in the text carries): its paragraph, which
        starts with the footnote's own number."""
        footnote = OxmlElement("w:footnote")
        footnote.set(qn("w:id"), str(number))
        paragraph_element = OxmlElement("w:p")
        footnote.append(paragraph_element)
        self.part.element.append(footnote)
        paragraph = WordParagraph(paragraph_element, None)  # type: ignore[arg-type]
        _set_paragraph_style(paragraph_element, "FootnoteText")
        mark = OxmlElement("w:r")
        mark.append(_run_style("FootnoteReference"))
        mark.append(OxmlElement("w:footnoteRef"))
        paragraph_element.append(mark)
        paragraph.add_run(" ")
        return paragraph


class _Writer:
    def __init__(
        self,
        word: WordDocument,
        footnotes: _FootnotesPart | None,
        texts: Sequence[Sequence[Block]],
        images: Mapping[str, bytes],
    ) -> None:
        self.word = word
        self.footnotes = footnotes
        self.texts = texts
        self.images = images
        self.count = 0  # Word footnotes made so far: the next one's id

    def block(self, block: Block, list_level: int = 0) -> None:
        if isinstance(block, Heading):
            paragraph = self.word.add_heading("", level=min(block.level - 1, 9))
            self.inlines(paragraph, block.inlines)
        elif isinstance(block, Paragraph):
            paragraph = self.word.add_paragraph()
            self.inlines(paragraph, block.inlines, todo=block.todo)
        elif isinstance(block, ListBlock):
            self.list(block, list_level)
        elif isinstance(block, Quote):
            for inner in block.blocks:
                if isinstance(inner, Paragraph):
                    paragraph = self.word.add_paragraph(style="Quote")
                    self.inlines(paragraph, inner.inlines)
                else:
                    self.block(inner)
        elif isinstance(block, CodeBlock):
            paragraph = self.word.add_paragraph()
            for index, line in enumerate(block.text.split("\n")):
                run = paragraph.add_run(line)
                run.font.name = CODE_FONT
                if index:
                    run.add_break()
        elif isinstance(block, Rule):
            self.word.add_paragraph("* * *").alignment = WD_ALIGN_PARAGRAPH.CENTER

    def list(self, block: ListBlock, level: int) -> None:
        base = "List Number" if block.ordered else "List Bullet"
        style = base if level == 0 else f"{base} {min(level + 1, 3)}"
        for item in block.items:
            first = True
            for inner in item:
                if isinstance(inner, Paragraph) and first:
                    paragraph = self.word.add_paragraph(style=style)
                    self.inlines(paragraph, inner.inlines, todo=inner.todo)
                elif isinstance(inner, ListBlock):
                    self.list(inner, level + 1)
                elif isinstance(inner, Paragraph):
                    paragraph = self.word.add_paragraph(style="List Continue")
                    self.inlines(paragraph, inner.inlines)
                else:
                    self.block(inner, level)
                first = False

    def inlines(
        self, paragraph: WordParagraph, inlines: Sequence[Inline], *, todo: bool = False
    ) -> None:
        for inline in inlines:
            if isinstance(inline, Text):
                run = paragraph.add_run(inline.text)
                run.bold = inline.bold or None
                run.italic = inline.italic or None
                if inline.strike:
                    run.font.strike = True
                if inline.code:
                    run.font.name = CODE_FONT
                if todo:
                    # The writer's own instructions stand out, as they do in the chat.
                    run.font.highlight_color = WD_COLOR_INDEX.YELLOW
            elif isinstance(inline, Link):
                _hyperlink(paragraph, inline)
            elif isinstance(inline, FootnoteRef):
                self.footnote(paragraph, inline.number)
            elif isinstance(inline, LineBreak):
                paragraph.add_run().add_break()
            elif isinstance(inline, Image):
                self.picture(paragraph, inline)

    def picture(self, paragraph: WordParagraph, image: Image) -> None:
        """The figure's image in the file, at most the text's width, centred."""
        data = self.images.get(image.src)
        if data is None or image_type(data) is None:
            return
        section = self.word.sections[-1]
        room = section.page_width - section.left_margin - section.right_margin  # type: ignore[operator]
        try:
            width = min(WordImage.from_blob(data).width, room)
            paragraph.add_run().add_picture(io.BytesIO(data), width=width)
        except (UnrecognizedImageError, Exception) as exc:
            # A damaged or unusual file: the caption line beneath it still names the figure.
            log.info("A figure could not be put in the Word file (%s)", type(exc).__name__)
            return
        paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER

    def footnote(self, paragraph: WordParagraph, number: int) -> None:
        """A Word footnote for the draft's note `number` at this reference. Word cites each
        footnote once, so a note cited twice becomes two footnotes with the same text."""
        if self.footnotes is None or not 1 <= number <= len(self.texts):
            paragraph.add_run(f"[{number}]")
            return
        self.count += 1
        reference = OxmlElement("w:r")
        reference.append(_run_style("FootnoteReference"))
        mark = OxmlElement("w:footnoteReference")
        mark.set(qn("w:id"), str(self.count))
        reference.append(mark)
        paragraph._p.append(reference)
        note = self.footnotes.add(self.count)
        for index, block in enumerate(self.texts[number - 1]):
            if isinstance(block, Paragraph):
                if index:
                    note.add_run().add_break()
                for inline in block.inlines:
                    if isinstance(inline, Text):
                        note.add_run(inline.text).italic = inline.italic or None
                    elif isinstance(inline, Link):
                        _hyperlink(note, inline, part=self.footnotes.part)


def _hyperlink(paragraph: WordParagraph, link: Link, part: XmlPart | None = None) -> None:
    """A clickable link (python-docx has runs but no hyperlinks of its own)."""
    text = "".join(c.text for c in link.children if isinstance(c, Text)) or link.href
    if not link.href.startswith(("http://", "https://", "mailto:")):
        paragraph.add_run(text)
        return
    owner = part if part is not None else paragraph.part
    relationship = owner.relate_to(link.href, RELATIONSHIP_TYPE.HYPERLINK, is_external=True)
    element = OxmlElement("w:hyperlink")
    element.set(qn("r:id"), relationship)
    run = OxmlElement("w:r")
    run.append(_run_style("Hyperlink"))
    text_element = OxmlElement("w:t")
    text_element.text = text
    text_element.set(qn("xml:space"), "preserve")
    run.append(text_element)
    element.append(run)
    paragraph._p.append(element)


def _run_style(style_id: str) -> BaseOxmlElement:
    properties = OxmlElement("w:rPr")
    style = OxmlElement("w:rStyle")
    style.set(qn("w:val"), style_id)
    properties.append(style)
    return properties


def _set_paragraph_style(paragraph: BaseOxmlElement, style_id: str) -> None:
    properties = paragraph.find(qn("w:pPr"))
    if properties is None:
        properties = OxmlElement("w:pPr")
        paragraph.insert(0, properties)
    style = OxmlElement("w:pStyle")
    style.set(qn("w:val"), style_id)
    properties.insert(0, style)


def _footnote_styles(word: WordDocument) -> None:
    """Word's built-in footnote and link styles, which python-docx's template lacks."""
    styles = word.styles
    names = {s.name for s in styles}
    if FOOTNOTE_TEXT_STYLE not in names:
        text = styles.add_style(FOOTNOTE_TEXT_STYLE, WD_STYLE_TYPE.PARAGRAPH)
        text.base_style = styles["Normal"]
        text.font.size = Pt(10)
        text.paragraph_format.space_after = Pt(0)
    if FOOTNOTE_REFERENCE_STYLE not in names:
        reference = styles.add_style(FOOTNOTE_REFERENCE_STYLE, WD_STYLE_TYPE.CHARACTER)
        reference.font.superscript = True
    if "Hyperlink" not in names:
        link = styles.add_style("Hyperlink", WD_STYLE_TYPE.CHARACTER)
        link.font.underline = True
        link.font.color.rgb = docx.shared.RGBColor(0x05, 0x63, 0xC1)
