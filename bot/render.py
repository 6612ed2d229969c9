"""Markdown to Telegram HTML, and splitting long texts into messages Telegram accepts."""

from __future__ import annotations

import html
import re

# Telegram's limit is 4096 UTF-16 code units per message; keep a margin for safety.
TELEGRAM_MESSAGE_LIMIT = 4096
SAFE_MESSAGE_LIMIT = 4000


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (emoji and other astral characters count twice)."""
    return len(text.encode("utf-16-le")) // 2


def escape(text: str) -> str:
    return html.escape(text, quote=False)


_INLINE_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"`([^`\n]+)`"), "<code>{0}</code>"),
    (re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*"), "<b>{0}</b>"),
    (re.compile(r"__(?=\S)(.+?)(?<=\S)__"), "<b>{0}</b>"),
    (re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])"), "<i>{0}</i>"),
    (re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])"), "<i>{0}</i>"),
]
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^\s)]+)\)")
_FOOTNOTE = re.compile(r"\[\^([^\]\s]{1,20})\]:?")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


def inline_to_html(text: str) -> str:
    """Render inline markdown (bold, italic, code, links) as Telegram HTML.

    Markers without a partner stay literal text, so unbalanced `*`, `_` or `[` can never
    make Telegram reject the message.
    """
    placeholders: list[str] = []

    def stash(rendered: str) -> str:
        placeholders.append(rendered)
        return f"\x00{len(placeholders) - 1}\x00"

    def link(match: re.Match[str]) -> str:
        url = html.escape(match.group(2), quote=True)
        return stash(f'<a href="{url}">{escape(match.group(1))}</a>')

    text = _LINK.sub(link, text)
    # Footnote markers [^3] read as [3] in chat; the .md file keeps real footnotes.
    text = _FOOTNOTE.sub(lambda m: stash(f"[{escape(m.group(1))}]"), text)
    for pattern, template in _INLINE_PATTERNS:

        def render(match: re.Match[str], template: str = template) -> str:
            return stash(template.format(escape(match.group(1))))

        text = pattern.sub(render, text)
    out = escape(text)
    return re.sub("\x00(\\d+)\x00", lambda m: placeholders[int(m.group(1))], out)


def block_to_html(block: str) -> str:
    lines = []
    for line in block.split("\n"):
        heading = _HEADING.match(line)
        if heading:
            lines.append(f"<b>{escape(heading.group(2).strip())}</b>")
        else:
            lines.append(inline_to_html(line))
    return "\n".join(lines)


def markdown_blocks(markdown: str) -> list[str]:
    """Paragraph-level blocks; a heading always starts a block of its own."""
    blocks: list[str] = []
    current: list[str] = []
    for line in markdown.strip().split("\n"):
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
    pieces: list[str] = []
    rest = text.strip()
    while utf16_len(rest) > limit:
        window = _prefix_within(rest, limit)
        cut = -1
        for separator in ("\n\n", "\n", ". ", "! ", "? ", " "):
            position = window.rfind(separator)
            if position > len(window) // 3:
                cut = position + len(separator)
                break
        if cut <= 0:
            cut = len(window)
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def _prefix_within(text: str, limit: int) -> str:
    """Longest prefix of text whose UTF-16 length is at most limit."""
    total = 0
    for index, char in enumerate(text):
        total += 2 if ord(char) > 0xFFFF else 1
        if total > limit:
            return text[:index]
    return text


def markdown_to_messages(markdown: str, limit: int = SAFE_MESSAGE_LIMIT) -> list[str]:
    """Telegram HTML messages, each within limit, split only between blocks when possible."""
    rendered: list[str] = []
    for block in markdown_blocks(markdown):
        html_block = block_to_html(block)
        if utf16_len(html_block) <= limit:
            rendered.append(html_block)
            continue
        # One paragraph longer than a message: split its text, render each piece alone.
        # Escaping can lengthen a piece (& becomes &amp;), hence the smaller budget.
        for piece in split_plain(block, limit // 2):
            rendered.append(block_to_html(piece))
    return _pack(rendered, limit, "\n\n")


def html_to_plain(message: str) -> str:
    """The fallback when Telegram rejects our HTML: the same text, tags removed."""
    return html.unescape(re.sub(r"<[^>]+>", "", message))


def _pack(blocks: list[str], limit: int, joiner: str) -> list[str]:
    messages: list[str] = []
    current = ""
    for block in blocks:
        candidate = f"{current}{joiner}{block}" if current else block
        if utf16_len(candidate) <= limit:
            current = candidate
        else:
            if current:
                messages.append(current)
            current = block
    if current:
        messages.append(current)
    return messages
