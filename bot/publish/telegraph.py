"""The Telegraph API (https://telegra.ph/api): accounts and pages over httpx, and a draft turned
into Telegraph's content nodes, split into linked pages when it is over a page's size.

Figures are left out of Telegraph pages (their caption lines stay): Telegraph stopped taking
uploads of new images in September 2024, and a page can only show images already online."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

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
)

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.telegra.ph"
# createPage takes "content (Array of Node, up to 64 KB)": the JSON as UTF-8 bytes.
CONTENT_LIMIT = 64 * 1024
# What one page's body may take: the rest is room for the links between pages.
PAGE_BUDGET = CONTENT_LIMIT - 2 * 1024
TITLE_LIMIT = 256
AUTHOR_NAME_LIMIT = 128
SHORT_NAME = "Voice drafts"  # the account's name, shown only to its owner on telegra.ph
NOTES_HEADING = "Notes"
# Telegraph gives every h3/h4 an anchor made of its text; footnote links point at the notes'.
NOTES_ANCHOR = "#" + NOTES_HEADING
# Stands for the notes' link until the page that holds them has a URL; counted as this many
# bytes when a page is measured, enough for any telegra.ph URL.
_NOTES_LINK = "\x00notes\x00"
_NOTES_LINK_BYTES = 200
_SAFE_HREF = re.compile(r"^(https?://|mailto:|#)", re.IGNORECASE)

Node = str | dict[str, Any]


class TelegraphError(Exception):
    """Telegraph refused a call; `code` is its error (e.g. CONTENT_TOO_BIG), safe to show."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code

    @property
    def token_invalid(self) -> bool:
        return self.code == "ACCESS_TOKEN_INVALID"

    @property
    def page_gone(self) -> bool:
        return self.code in ("PAGE_NOT_FOUND", "PAGE_ACCESS_DENIED")


class TelegraphUnavailable(TelegraphError):
    """No usable answer: a timeout, a refused connection, a 5xx or something not JSON."""


@dataclass(frozen=True)
class TelegraphPage:
    path: str
    url: str


class TelegraphClient:
    """Telegraph API calls; the access token travels in the POST body, never in a URL or a log."""

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        *,
        timeout: float = 20.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            follow_redirects=False,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def create_account(self, short_name: str, author_name: str = "") -> str:
        """A new account's access token."""
        result = await self._call(
            "createAccount",
            {"short_name": short_name[:32], "author_name": author_name[:AUTHOR_NAME_LIMIT]},
        )
        token = result.get("access_token")
        if not isinstance(token, str) or not token:
            raise TelegraphUnavailable("NO_ACCESS_TOKEN")
        return token

    async def create_page(
        self, token: str, title: str, content: Sequence[Node], author_name: str = ""
    ) -> TelegraphPage:
        return _page(
            await self._call(
                "createPage", _page_params(token, title, content, author_name), path=None
            )
        )

    async def edit_page(
        self, token: str, path: str, title: str, content: Sequence[Node], author_name: str = ""
    ) -> TelegraphPage:
        return _page(
            await self._call(
                "editPage", _page_params(token, title, content, author_name), path=path
            )
        )

    async def _call(
        self, method: str, params: dict[str, str], path: str | None = None
    ) -> dict[str, Any]:
        url = f"{self.api_url}/{method}" + (f"/{path}" if path else "")
        try:
            response = await self._http.post(url, data=params)
        except httpx.HTTPError as exc:
            log.warning("Telegraph %s failed: %s", method, type(exc).__name__)
            raise TelegraphUnavailable(type(exc).__name__) from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            log.warning("Telegraph %s answered HTTP %s without JSON", method, response.status_code)
            raise TelegraphUnavailable(f"HTTP_{response.status_code}")
        if not answer.get("ok"):
            code = str(answer.get("error") or f"HTTP_{response.status_code}")[:100]
            log.warning("Telegraph %s refused: %s", method, code)
            raise TelegraphError(code)
        result = answer.get("result")
        if not isinstance(result, dict):
            raise TelegraphUnavailable("NO_RESULT")
        return result


def _page_params(
    token: str, title: str, content: Sequence[Node], author_name: str
) -> dict[str, str]:
    params = {
        "access_token": token,
        "title": title[:TITLE_LIMIT],
        "content": encode_content(content),
        "return_content": "false",
    }
    if author_name:
        params["author_name"] = author_name[:AUTHOR_NAME_LIMIT]
    return params


def _page(result: dict[str, Any]) -> TelegraphPage:
    path, url = result.get("path"), result.get("url")
    if not isinstance(path, str) or not isinstance(url, str) or not path:
        raise TelegraphUnavailable("NO_PAGE")
    return TelegraphPage(path, url)


def encode_content(content: Sequence[Node]) -> str:
    return json.dumps(list(content), ensure_ascii=False, separators=(",", ":"))


def content_bytes(content: Sequence[Node]) -> int:
    return len(encode_content(content).encode("utf-8"))


# The draft as nodes ------------------------------------------------------------------------
def _inline_nodes(inlines: Sequence[Inline]) -> list[Node]:
    nodes: list[Node] = []
    for inline in inlines:
        if isinstance(inline, Text):
            node: Node = inline.text
            for flag, tag in (
                (inline.code, "code"),
                (inline.strike, "s"),
                (inline.italic, "i"),
                (inline.bold, "b"),
            ):
                if flag:
                    node = {"tag": tag, "children": [node]}
            nodes.append(node)
        elif isinstance(inline, Link):
            children = _inline_nodes(inline.children) or [inline.href]
            if _SAFE_HREF.match(inline.href):
                nodes.append({"tag": "a", "attrs": {"href": inline.href}, "children": children})
            else:
                nodes.extend(children)
        elif isinstance(inline, FootnoteRef):
            nodes.append(
                {"tag": "a", "attrs": {"href": _NOTES_LINK}, "children": [f"[{inline.number}]"]}
            )
        elif isinstance(inline, LineBreak):
            nodes.append({"tag": "br"})
        # An Image adds nothing: Telegraph takes no new images (see the module's docstring).
    return nodes


def _joined(blocks: Sequence[Block]) -> list[Node]:
    """The inline content of several blocks in one element (list items, quotes), lines apart."""
    nodes: list[Node] = []
    for block in blocks:
        if nodes:
            nodes.append({"tag": "br"})
        if isinstance(block, Paragraph | Heading):
            nodes += _inline_nodes(block.inlines)
        elif isinstance(block, CodeBlock):
            nodes.append({"tag": "code", "children": [block.text]})
        elif isinstance(block, ListBlock):
            for item in block.items:
                nodes += ["• ", *_joined(item), {"tag": "br"}]
            if block.items:
                nodes.pop()
        elif isinstance(block, Quote):
            nodes += _joined(block.blocks)
    return nodes


def _block_nodes(block: Block) -> list[Node]:
    if isinstance(block, Heading):
        return [
            {"tag": "h3" if block.level <= 2 else "h4", "children": _inline_nodes(block.inlines)}
        ]
    if isinstance(block, Paragraph):
        children = _inline_nodes(block.inlines)
        return [{"tag": "p", "children": children}] if children else []
    if isinstance(block, ListBlock):
        items = [{"tag": "li", "children": _joined(item)} for item in block.items]
        return [{"tag": "ol" if block.ordered else "ul", "children": items}]
    if isinstance(block, Quote):
        return [{"tag": "blockquote", "children": _joined(block.blocks)}]
    if isinstance(block, CodeBlock):
        return [{"tag": "pre", "children": [block.text]}]
    if isinstance(block, Rule):
        return [{"tag": "hr"}]
    return []


def figure_count(document: Document) -> int:
    """How many figures the draft shows (none of them can be on Telegraph)."""
    return sum(
        isinstance(inline, Image)
        for block in document.blocks
        if isinstance(block, Paragraph)
        for inline in block.inlines
    )


def document_nodes(document: Document) -> list[Node]:
    """Headings (`##` as h3, deeper as h4), paragraphs, lists, links; footnote references are
    links to the notes, which close the article as numbered paragraphs under "Notes"."""
    nodes: list[Node] = []
    for block in document.blocks:
        nodes += _block_nodes(block)
    if document.footnotes:
        nodes.append({"tag": "h3", "children": [NOTES_HEADING]})
        for number, blocks in enumerate(document.footnotes, start=1):
            nodes.append({"tag": "p", "children": [f"[{number}] ", *_joined(blocks)]})
    return nodes


# Pages -------------------------------------------------------------------------------------
def _size(node: Node) -> int:
    raw = encode_content([node])
    return len(raw.encode("utf-8")) - 2 + raw.count(_NOTES_LINK) * _NOTES_LINK_BYTES


def _split_text(text: str, budget: int) -> list[str]:
    pieces: list[str] = []
    while len(json.dumps(text, ensure_ascii=False).encode("utf-8")) > budget:
        cut = budget // 4  # a character is at most 4 bytes in UTF-8
        while cut > 1 and len(json.dumps(text[:cut], ensure_ascii=False).encode()) > budget:
            cut //= 2  # JSON escapes (quotes, control characters) take more
        space = text.rfind(" ", cut // 2, cut)
        cut = space + 1 if space > 0 else cut
        pieces.append(text[:cut])
        text = text[cut:]
    return [*pieces, text] if text else pieces


def _split_node(node: Node, budget: int) -> list[Node]:
    """Pieces of a node too big for a page, each within `budget`: its children shared out
    among copies of it, text cut between words."""
    if isinstance(node, str):
        return list(_split_text(node, budget))
    children = node.get("children", [])
    shell = {k: v for k, v in node.items() if k != "children"}
    overhead = _size({**shell, "children": []})
    pieces: list[Node] = []
    group: list[Node] = []
    used = overhead
    for child in children:
        size = _size(child) + 1
        parts = [child] if size + overhead <= budget else _split_node(child, budget - overhead)
        for part in parts:
            size = _size(part) + 1
            if group and used + size > budget:
                pieces.append({**shell, "children": group})
                group, used = [], overhead
            group.append(part)
            used += size
    if group or not pieces:
        pieces.append({**shell, "children": group})
    return pieces


def paginate(nodes: Sequence[Node], budget: int = PAGE_BUDGET) -> list[list[Node]]:
    """The nodes shared out over as few pages as fit, in order; a heading never ends a page."""
    pages: list[list[Node]] = [[]]
    used = 2
    for node in nodes:
        parts = [node] if _size(node) + 1 + 2 <= budget else _split_node(node, budget - 3)
        for part in parts:
            size = _size(part) + 1
            if pages[-1] and used + size > budget:
                carried: list[Node] = []
                while pages[-1] and _is_heading(pages[-1][-1]) and len(pages[-1]) > 1:
                    carried.insert(0, pages[-1].pop())
                pages.append(carried)
                used = 2 + sum(_size(n) + 1 for n in carried)
            pages[-1].append(part)
            used += size
    return pages


def _is_heading(node: Node) -> bool:
    return isinstance(node, dict) and node.get("tag") in ("h3", "h4")


def _has_notes_heading(page: Sequence[Node]) -> bool:
    return any(
        isinstance(n, dict) and n.get("tag") == "h3" and n.get("children") == [NOTES_HEADING]
        for n in page
    )


def page_title(title: str, part: int, parts: int) -> str:
    if parts == 1 or part == 1:
        return title[:TITLE_LIMIT]
    suffix = f" (part {part} of {parts})"
    return title[: TITLE_LIMIT - len(suffix)] + suffix


def finished_pages(pages: Sequence[Sequence[Node]], urls: Sequence[str]) -> list[list[Node]]:
    """The pages as published: footnote links pointing at the page with the notes, and, when
    there are several pages, links to the previous and the next at top and bottom."""
    notes_page = next((i for i, p in enumerate(pages) if _has_notes_heading(p)), len(pages) - 1)
    done: list[list[Node]] = []
    for index, page in enumerate(pages):
        href = NOTES_ANCHOR if index == notes_page else f"{urls[notes_page]}{NOTES_ANCHOR}"
        content = [_replace_notes_link(node, href) for node in page]
        if len(pages) > 1:
            top: list[Node] = [f"Part {index + 1} of {len(pages)}."]
            if index > 0:
                top += [
                    " ",
                    {
                        "tag": "a",
                        "attrs": {"href": urls[index - 1]},
                        "children": ["← Previous part"],
                    },
                ]
            content.insert(0, {"tag": "p", "children": [{"tag": "i", "children": top}]})
            if index < len(pages) - 1:
                content.append(
                    {
                        "tag": "p",
                        "children": [
                            {
                                "tag": "b",
                                "children": [
                                    {
                                        "tag": "a",
                                        "attrs": {"href": urls[index + 1]},
                                        "children": ["Continued in the next part →"],
                                    }
                                ],
                            }
                        ],
                    }
                )
        done.append(content)
    return done


def moved_page(first_url: str) -> list[Node]:
    """What a page left over from a longer version of the article says now."""
    return [
        {
            "tag": "p",
            "children": [
                "The article is shorter now and this part is no longer used. ",
                {"tag": "a", "attrs": {"href": first_url}, "children": ["Read the article"]},
                ".",
            ],
        }
    ]


def _replace_notes_link(node: Node, href: str) -> Node:
    if isinstance(node, str):
        return node
    copy = dict(node)
    attrs = copy.get("attrs")
    if isinstance(attrs, dict) and attrs.get("href") == _NOTES_LINK:
        copy["attrs"] = {**attrs, "href": href}
    if "children" in copy:
        copy["children"] = [_replace_notes_link(c, href) for c in copy["children"]]
    return copy
