"""Markdown to Telegram HTML, and splitting long texts into messages Telegram accepts."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

# Telegram's limit is 4096 UTF-16 code units per message; keep a margin for safety.
TELEGRAM_MESSAGE_LIMIT = 4096
SAFE_MESSAGE_LIMIT = 4000


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (emoji and other astral characters count twice)."""
    return len(text.encode("utf-16-le")) // 2


def shorten(text: str, limit: int) -> str:
    """Text cut to at most limit characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text: str) -> str:
    return html.escape(text, quote=False)


_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = [
    re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*"),
    re.compile(r"__(?=\S)(.+?)(?<=\S)__"),
]
_ITALIC = [
    re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])"),
    re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])"),
]
# Only http(s) URLs become links (never javascript: and the like); a URL never swallows a
# placeholder (\x00) left by an inline code span.
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^\s)\x00]+)\)")
_FOOTNOTE = re.compile(r"\[\^([^\]\s]{1,20})\]:?")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_PLACEHOLDER = re.compile("\x00(\\d+)\x00")
_WRAPPED_BOLD = re.compile(r"^(\*\*|__)(?=\S)(.+?)(?<=\S)\1$")


def inline_to_html(text: str) -> str:
    """Render inline markdown (bold, italic, code, links) as Telegram HTML.

    Markers without a partner stay literal text, so unbalanced `*`, `_` or `[` can never
    make Telegram reject the message.
    """
    return _inline(text, bold=True)


def _inline(text: str, *, bold: bool) -> str:
    # Rendered pieces are stashed behind \x00<n>\x00 placeholders so later patterns and the
    # final escaping leave them alone; a stashed piece may itself hold placeholders (bold
    # around code or a link), so expansion is recursive. Every stashed piece is balanced
    # HTML, hence so is the result. Stray NULs in the input could forge a placeholder.
    text = text.replace("\x00", "")
    placeholders: list[str] = []

    def stash(rendered: str) -> str:
        placeholders.append(rendered)
        return f"\x00{len(placeholders) - 1}\x00"

    def emphasis(segment: str, level: int) -> str:
        """Stash bold (levels 0-1) and italic (levels 2-3) spans, rendering their insides."""
        patterns = [*_BOLD, *_ITALIC]
        for index in range(level, len(patterns)):

            def render(match: re.Match[str], index: int = index) -> str:
                inner = escape(emphasis(match.group(1), index + 1))
                if index >= len(_BOLD):
                    return stash(f"<i>{inner}</i>")
                return stash(f"<b>{inner}</b>" if bold else inner)

            segment = patterns[index].sub(render, segment)
        return segment

    def link(match: re.Match[str]) -> str:
        url = html.escape(match.group(2), quote=True)
        label = escape(emphasis(match.group(1), 0))
        return stash(f'<a href="{url}">{label}</a>')

    text = _CODE.sub(lambda m: stash(f"<code>{escape(m.group(1))}</code>"), text)
    text = _LINK.sub(link, text)
    # Footnote markers [^3] read as [3] in chat; the .md file keeps real footnotes.
    text = _FOOTNOTE.sub(lambda m: stash(f"[{escape(m.group(1))}]"), text)
    out = escape(emphasis(text, 0))

    def expand(match: re.Match[str]) -> str:
        return _PLACEHOLDER.sub(expand, placeholders[int(match.group(1))])

    return _PLACEHOLDER.sub(expand, out)


def block_to_html(block: str) -> str:
    lines = []
    for line in block.split("\n"):
        heading = _HEADING.match(line)
        if heading:
            lines.append(_heading_to_html(heading.group(2)))
        else:
            lines.append(inline_to_html(line))
    return "\n".join(lines)


def _heading_to_html(title: str) -> str:
    """A heading is bold as a whole; markup inside it (even **bold**) must not nest bold."""
    title = title.strip()
    wrapped = _WRAPPED_BOLD.match(title)
    if wrapped:
        title = wrapped.group(2)
    return f"<b>{_inline(title, bold=False)}</b>"


def markdown_blocks(markdown: str) -> list[str]:
    """Paragraph-level blocks; a heading always starts a block of its own."""
    blocks: list[str] = []
    current: list[str] = []
    for line in markdown.replace("\r\n", "\n").strip().split("\n"):
        if not line.strip() or _HEADING.match(line):
            if current:
                blocks.append("\n".join(current))
                current = []
            if line.strip():
                blocks.append(line)
            continue
        current.append(line)
    if current:
        blocks.append("\n".join(current))
    return blocks


def split_plain(text: str, limit: int = SAFE_MESSAGE_LIMIT) -> list[str]:
    """Split text into pieces under limit, preferring paragraph, line, sentence, word breaks."""
    return [piece for piece, _ in _split_with_gaps(text, limit)]


def _split_with_gaps(text: str, limit: int) -> list[tuple[str, str]]:
    """split_plain's pieces, each with the whitespace dropped before it ("" after a hard cut)."""
    pieces: list[tuple[str, str]] = []
    rest = text.strip()
    gap = ""
    while utf16_len(rest) > limit:
        window = _prefix_within(rest, limit)
        cut = -1
        for separator in ("\n\n", "\n", ". ", "! ", "? ", " "):
            position = window.rfind(separator)
            if position > len(window) // 3:
                cut = position + len(separator)
                break
        if cut <= 0:
            # No break anywhere: cut hard (at least one character, or this never ends).
            cut = max(len(window), 1)
        piece = rest[:cut].rstrip()
        pieces.append((piece, gap))
        following = rest[cut:].lstrip()
        gap = rest[len(piece) : len(rest) - len(following)]
        rest = following
    if rest:
        pieces.append((rest, gap))
    return pieces


def _prefix_within(text: str, limit: int) -> str:
    """Longest prefix of text whose UTF-16 length is at most limit."""
    total = 0
    for index, char in enumerate(text):
        total += 2 if ord(char) > 0xFFFF else 1
        if total > limit:
            return text[:index]
    return text


@dataclass
class _Block:
    html: str
    joiner: str = "\n\n"  # what separates it from the previous block in one message
    heading: bool = False  # keep with the next block: a message never ends on a heading


def markdown_to_messages(markdown: str, limit: int = SAFE_MESSAGE_LIMIT) -> list[str]:
    """Telegram HTML messages, each within limit, split only between blocks when possible."""
    blocks: list[_Block] = []
    for block in markdown_blocks(markdown):
        html_block = block_to_html(block)
        if utf16_len(html_block) <= limit:
            blocks.append(_Block(html_block, heading=bool(_HEADING.match(block))))
            continue
        # One paragraph longer than a message: split its text, render each piece alone. Half
        # the limit leaves room for a heading before the first piece; pieces of one paragraph
        # that share a message are rejoined as they were split (space, newline or nothing),
        # not as new paragraphs.
        for index, (piece, gap) in enumerate(_render_split(block, limit // 2, limit // 2)):
            blocks.append(_Block(piece, "\n\n" if index == 0 else _joiner(gap)))
    return _pack(blocks, limit)


def _joiner(gap: str) -> str:
    """What to put back between two pieces of one paragraph that end up in one message."""
    if "\n" in gap:
        return "\n"
    return " " if gap else ""


def _render_split(block: str, budget: int, target: int) -> list[tuple[str, str]]:
    """Split block's text to budget and render the pieces, each within target once rendered.

    Escaping can lengthen a piece a lot (& becomes &amp;, < becomes &lt;), so a piece that
    renders too long is split again, more finely. Each piece comes with the whitespace
    that preceded it in block.
    """
    rendered: list[tuple[str, str]] = []
    for piece, gap in _split_with_gaps(block, budget):
        html_piece = block_to_html(piece)
        size, plain_size = utf16_len(html_piece), utf16_len(piece)
        if size <= target or plain_size <= 1:
            rendered.append((html_piece, gap))
        else:
            finer = min(plain_size - 1, max(1, plain_size * target // size))
            sub = _render_split(piece, finer, target)
            rendered.append((sub[0][0], gap))
            rendered.extend(sub[1:])
    return rendered


def html_to_plain(message: str) -> str:
    """The fallback when Telegram rejects our HTML: the same text, tags removed."""
    return html.unescape(re.sub(r"<[^>]+>", "", message))


def _pack(blocks: list[_Block], limit: int) -> list[str]:
    # A heading first sticks to what follows it whenever the two fit in one message, so the
    # greedy packing below cannot leave it orphaned as the last line of a message.
    units: list[_Block] = []
    for block in blocks:
        if units and units[-1].heading:
            glued = f"{units[-1].html}{block.joiner}{block.html}"
            if utf16_len(glued) <= limit:
                units[-1] = _Block(glued, units[-1].joiner, block.heading)
                continue
        units.append(block)
    messages: list[str] = []
    current = ""
    for unit in units:
        candidate = f"{current}{unit.joiner}{unit.html}" if current else unit.html
        if utf16_len(candidate) <= limit:
            current = candidate
        else:
            if current:
                messages.append(current)
            current = unit.html
    if current:
        messages.append(current)
    return messages
