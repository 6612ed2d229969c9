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
        # One paragraph longer than a message: split its HTML. Half the limit leaves room for
        # a heading before the first piece; pieces of one paragraph that share a message are
        # rejoined with the whitespace they were split at, not as new paragraphs.
        for index, (piece, gap) in enumerate(_split_html(html_block, limit // 2)):
            blocks.append(_Block(piece, "\n\n" if index == 0 else _joiner(gap)))
    return _pack(blocks, limit)


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


_HTML_ATOM = re.compile(r"<[^<>]*>|&#?\w+;|[\s\S]")
_HTML_TAG = re.compile(r"<(/?)([a-zA-Z][\w-]*)")
_OpenTags = tuple[tuple[str, str], ...]  # (name, opening tag as written), outermost first


def split_html(html: str, limit: int = SAFE_MESSAGE_LIMIT) -> list[str]:
    """Split Telegram HTML under limit, preferring paragraph, line, sentence, word breaks.

    The one splitter of the bot: every message it sends is cut by it. A cut never falls
    inside a tag or a character entity, and tags open at a cut are closed at the end of the
    chunk and opened again at the start of the next one, so every chunk is valid HTML on its
    own; emoji count as Telegram counts them (UTF-16 units).
    """
    return [chunk for chunk, _ in _split_html(html, limit)]


def _joiner(gap: str) -> str:
    """What to put back between two pieces of one paragraph that end up in one message."""
    if "\n" in gap:
        return "\n"
    return " " if gap else ""


def _split_html(html: str, limit: int) -> list[tuple[str, str]]:
    """split_html's chunks, each with the whitespace the cut before it dropped."""
    if utf16_len(html) <= limit:
        return [(html, "")]
    atoms = _HTML_ATOM.findall(html)
    chunks: list[tuple[str, str]] = []
    carried: _OpenTags = ()
    start = 0
    previous_end = 0
    while True:
        while start < len(atoms) and atoms[start].isspace():
            start += 1
        if start >= len(atoms):
            return chunks
        gap = "".join(atoms[previous_end:start])
        prefix = "".join(tag for _, tag in carried)
        size = utf16_len(prefix)
        stacks = [carried]  # stacks[k]: tags open after atoms[start : start + k]
        breaks: dict[int, int] = {}  # break rank -> atom index just after the latest break
        end = start
        while end < len(atoms):
            atom = atoms[end]
            stack = _open_after(stacks[-1], atom)
            if end > start and size + utf16_len(atom) + _closers_len(stack) > limit:
                break
            size += utf16_len(atom)
            stacks.append(stack)
            end += 1
            rank = _break_rank(atoms, end - 1)
            if rank is not None:
                breaks[rank] = end
        cut = end
        if end < len(atoms):
            for rank in range(4):
                position = breaks.get(rank)
                # A paragraph break anywhere; a lesser break only past the first third.
                if position is not None and (rank == 0 or position - start > (end - start) // 3):
                    cut = position
                    break
            else:
                while cut - 1 > start and _is_start_tag(atoms[cut - 1]):
                    cut -= 1  # a hard cut leaves no empty tag pair behind
        body_end = cut
        while body_end > start and atoms[body_end - 1].isspace():
            body_end -= 1
        open_tags = stacks[cut - start]
        closers = "".join(f"</{name}>" for name, _ in reversed(open_tags))
        chunk = prefix + "".join(atoms[start:body_end]) + closers
        if html_to_plain(chunk).strip():
            chunks.append((chunk, gap))
        carried = open_tags
        start, previous_end = cut, body_end


def _is_start_tag(atom: str) -> bool:
    tag = _HTML_TAG.match(atom) if atom.endswith(">") else None
    return tag is not None and not tag.group(1)


def _open_after(stack: _OpenTags, atom: str) -> _OpenTags:
    """The open tags after atom (a start tag, an end tag, or any other text)."""
    tag = _HTML_TAG.match(atom) if atom.endswith(">") else None
    if tag is None:
        return stack
    name = tag.group(2).lower()
    if not tag.group(1):
        return (*stack, (name, atom))
    for index in range(len(stack) - 1, -1, -1):
        if stack[index][0] == name:
            return stack[:index] + stack[index + 1 :]
    return stack


def _closers_len(stack: _OpenTags) -> int:
    return sum(len(name) + 3 for name, _ in stack)


def _break_rank(atoms: list[str], index: int) -> int | None:
    """How good a cut right after atoms[index] is: 0 paragraph, 1 line, 2 sentence, 3 word."""
    atom = atoms[index]
    previous = atoms[index - 1] if index > 0 else ""
    if atom == "\n":
        return 0 if previous == "\n" else 1
    if atom == " ":
        return 2 if previous in (".", "!", "?") else 3
    return None
