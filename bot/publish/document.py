"""A draft's markdown read once (markdown-it-py with its footnote plugin) into plain blocks
that the Telegraph and Word renderers walk; the HTML page renders the same parse itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.footnote import footnote_plugin


@dataclass(frozen=True)
class Text:
    text: str
    bold: bool = False
    italic: bool = False
    code: bool = False
    strike: bool = False


@dataclass(frozen=True)
class Link:
    href: str
    children: tuple[Inline, ...]


@dataclass(frozen=True)
class FootnoteRef:
    number: int  # 1-based, in order of first reference


@dataclass(frozen=True)
class LineBreak:
    pass


@dataclass(frozen=True)
class Image:
    """A figure: `src` as the draft names it (`images/note-12.jpg`), `alt` its caption."""

    src: str
    alt: str


Inline = Text | Link | FootnoteRef | LineBreak | Image


@dataclass(frozen=True)
class Heading:
    level: int  # 2 for a section (`##`), 3 and more below it; the `#` title is Document.title
    inlines: tuple[Inline, ...]


@dataclass(frozen=True)
class Paragraph:
    inlines: tuple[Inline, ...]
    todo: bool = False  # the draft's "**TODO:** …" lines: the writer's own instructions


@dataclass(frozen=True)
class ListBlock:
    ordered: bool
    items: tuple[tuple[Block, ...], ...]
    start: int = 1


@dataclass(frozen=True)
class Quote:
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class CodeBlock:
    text: str


@dataclass(frozen=True)
class Rule:
    pass


Block = Heading | Paragraph | ListBlock | Quote | CodeBlock | Rule


@dataclass(frozen=True)
class Document:
    title: str
    blocks: tuple[Block, ...]
    # footnotes[n - 1] is the text of footnote n, in order of first reference.
    footnotes: tuple[tuple[Block, ...], ...] = field(default=())


TODO_MARK = "TODO:"


def markdown_parser() -> MarkdownIt:
    """CommonMark with footnotes and ~~strike~~; raw HTML in a draft stays text (never markup),
    and markdown-it refuses javascript: and other unsafe link targets."""
    return (
        MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
        .use(footnote_plugin)
        .enable("strikethrough")
    )


def parse_draft(markdown: str, fallback_title: str) -> Document:
    """The draft as blocks: a leading `# Title` becomes the title (else `fallback_title`), and a
    closing `---` before the footnotes is dropped (every renderer sets footnotes apart itself)."""
    tokens = markdown_parser().parse(markdown)
    body_end = next(
        (i for i, t in enumerate(tokens) if t.type == "footnote_block_open"), len(tokens)
    )
    blocks, _ = _blocks(tokens, 0, body_end, closing=None)
    footnotes = _footnotes(tokens[body_end:])
    title = fallback_title
    if blocks and isinstance(blocks[0], Heading) and blocks[0].level == 1:
        title = plain_text(blocks[0].inlines) or fallback_title
        blocks = blocks[1:]
    if footnotes and blocks and isinstance(blocks[-1], Rule):
        blocks = blocks[:-1]
    # Headings below the title move up one level: `##` sections are the document's top level.
    blocks = [replace(b, level=max(2, b.level)) if isinstance(b, Heading) else b for b in blocks]
    return Document(title=title, blocks=tuple(blocks), footnotes=footnotes)


# What a figure's bytes are, from their first bytes (a kept photo's name can say .jpg of a PNG).
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def image_type(data: bytes) -> str | None:
    """The image's MIME type, or None when it is no image a page or a document shows."""
    for signature, mime in _SIGNATURES:
        if data.startswith(signature):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def plain_text(inlines: Sequence[Inline]) -> str:
    parts: list[str] = []
    for inline in inlines:
        if isinstance(inline, Text):
            parts.append(inline.text)
        elif isinstance(inline, Link):
            parts.append(plain_text(inline.children))
        elif isinstance(inline, FootnoteRef):
            parts.append(f"[{inline.number}]")
        elif isinstance(inline, Image):
            parts.append(inline.alt)
        else:
            parts.append(" ")
    return "".join(parts).strip()


def _footnotes(tokens: Sequence[Token]) -> tuple[tuple[Block, ...], ...]:
    notes: dict[int, tuple[Block, ...]] = {}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.type == "footnote_open":
            blocks, index = _blocks(tokens, index + 1, len(tokens), closing="footnote_close")
            notes[int(token.meta["id"])] = tuple(blocks)
        index += 1
    return tuple(notes[i] for i in sorted(notes))


def _blocks(
    tokens: Sequence[Token], index: int, end: int, closing: str | None
) -> tuple[list[Block], int]:
    """Blocks from tokens[index:end] up to the `closing` token; returns them and its index."""
    blocks: list[Block] = []
    while index < end:
        token = tokens[index]
        kind = token.type
        if kind == closing:
            return blocks, index
        if kind == "heading_open":
            inline = tokens[index + 1]
            blocks.append(Heading(int(token.tag[1]), _inlines(inline.children or [])))
            index += 3
            continue
        if kind == "paragraph_open":
            inlines = _inlines(tokens[index + 1].children or [])
            if inlines:
                blocks.append(Paragraph(inlines, todo=_is_todo(inlines)))
            index += 3
            continue
        if kind in ("bullet_list_open", "ordered_list_open"):
            close = kind.replace("_open", "_close")
            items: list[tuple[Block, ...]] = []
            index += 1
            while tokens[index].type != close:
                # list_item_open … list_item_close
                item, index = _blocks(tokens, index + 1, end, closing="list_item_close")
                items.append(tuple(item))
                index += 1
            start = int(token.attrs.get("start", 1) or 1) if kind == "ordered_list_open" else 1
            blocks.append(ListBlock(kind == "ordered_list_open", tuple(items), start))
            index += 1
            continue
        if kind == "blockquote_open":
            inner, index = _blocks(tokens, index + 1, end, closing="blockquote_close")
            blocks.append(Quote(tuple(inner)))
            index += 1
            continue
        if kind in ("fence", "code_block"):
            blocks.append(CodeBlock(token.content.rstrip("\n")))
        elif kind == "hr":
            blocks.append(Rule())
        index += 1  # footnote anchors, html blocks (disabled) and the like carry no text
    return blocks, index


def _inlines(children: Sequence[Token]) -> tuple[Inline, ...]:
    out: list[Inline] = []
    _collect(children, 0, len(children), out, bold=False, italic=False, strike=False)
    return tuple(_merge(out))


def _collect(
    tokens: Sequence[Token],
    index: int,
    end: int,
    out: list[Inline],
    *,
    bold: bool,
    italic: bool,
    strike: bool,
) -> int:
    while index < end:
        token = tokens[index]
        kind = token.type
        if kind in ("strong_close", "em_close", "s_close", "link_close"):
            return index
        if kind == "text":
            out.append(Text(token.content, bold, italic, strike=strike))
        elif kind == "code_inline":
            out.append(Text(token.content, bold, italic, code=True, strike=strike))
        elif kind == "softbreak":
            out.append(Text(" ", bold, italic, strike=strike))
        elif kind == "hardbreak":
            out.append(LineBreak())
        elif kind in ("strong_open", "em_open", "s_open"):
            index = _collect(
                tokens,
                index + 1,
                end,
                out,
                bold=bold or kind == "strong_open",
                italic=italic or kind == "em_open",
                strike=strike or kind == "s_open",
            )
        elif kind == "link_open":
            inner: list[Inline] = []
            index = _collect(tokens, index + 1, end, inner, bold=bold, italic=italic, strike=strike)
            out.append(Link(str(token.attrs.get("href", "")), tuple(_merge(inner))))
        elif kind == "footnote_ref":
            out.append(FootnoteRef(int(token.meta["id"]) + 1))
        elif kind == "image":
            # A figure (render_article writes them); each renderer embeds it or leaves it out.
            alt = "".join(c.content for c in token.children or []) or "image"
            out.append(Image(str(token.attrs.get("src", "")), alt))
        elif token.content:
            out.append(Text(token.content, bold, italic, strike=strike))
        index += 1
    return index


def _merge(inlines: Sequence[Inline]) -> list[Inline]:
    """Neighbouring text of the same style as one piece."""
    merged: list[Inline] = []
    for inline in inlines:
        if isinstance(inline, Text) and not inline.text:
            continue
        last = merged[-1] if merged else None
        if (
            isinstance(inline, Text)
            and isinstance(last, Text)
            and replace(last, text="") == replace(inline, text="")
        ):
            merged[-1] = replace(last, text=last.text + inline.text)
        else:
            merged.append(inline)
    return merged


def _is_todo(inlines: Sequence[Inline]) -> bool:
    first = inlines[0]
    return isinstance(first, Text) and first.bold and first.text.strip().startswith(TODO_MARK)
