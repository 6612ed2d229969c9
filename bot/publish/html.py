"""A draft as one standalone HTML page: headings, TODO lines marked, footnotes linked both ways
(each reference jumps to its note, each note back to where it was cited), figures embedded as
data: URLs so the one file is the whole page."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import Any

from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from bot.publish.document import TODO_MARK, image_type, markdown_parser

STYLE = """\
body { margin: 0; background: #fafafa; color: #222; }
article { max-width: 42rem; margin: 2rem auto; padding: 0 1.25rem 3rem; background: #fff;
  font: 1.05rem/1.6 Georgia, "Times New Roman", serif; }
h1, h2, h3 { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; line-height: 1.25; }
h1 { font-size: 2rem; padding-top: 1.5rem; }
a { color: #0b5cad; }
p.todo { background: #fff6d5; border-left: 4px solid #e0b000; padding: .3rem .6rem; }
sup.footnote-ref a { text-decoration: none; }
section.footnotes { font-size: .9rem; color: #444; }
pre { overflow-x: auto; background: #f3f3f3; padding: .6rem; }
img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
"""


def render_html_page(markdown: str, title: str, images: Mapping[str, bytes] | None = None) -> str:
    """The whole page; `title` names it when the draft has no `# Title` line. `images`: the
    figures' bytes by the name the markdown gives them; a figure without them (its file is
    gone) is left out, its caption line stays."""
    parser = markdown_parser()
    parser.add_render_rule("footnote_caption", _footnote_caption)
    tokens = parser.parse(markdown)
    _embed_images(tokens, images or {})
    _mark_todo_paragraphs(tokens)
    tokens = _without_rule_before_footnotes(tokens)
    if tokens and tokens[0].type == "heading_open" and tokens[0].tag == "h1":
        title = tokens[1].content.strip() or title
    body = parser.renderer.render(tokens, parser.options, {})
    return (
        "<!DOCTYPE html>\n"
        '<html>\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n"
        f"<style>\n{STYLE}</style>\n</head>\n<body>\n<article>\n{body}</article>\n"
        "</body>\n</html>\n"
    )


def _footnote_caption(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    # "[1]" for every reference to note 1 (the plugin writes "[1:1]" for the second one).
    meta: dict[str, Any] = tokens[idx].meta
    return f"[{int(meta['id']) + 1}]"


def _embed_images(tokens: list[Token], images: Mapping[str, bytes]) -> None:
    for index, token in enumerate(tokens):
        if token.type != "inline" or not token.children:
            continue
        kept: list[Token] = []
        for child in token.children:
            if child.type == "image":
                data = images.get(str(child.attrs.get("src", "")))
                mime = image_type(data) if data else None
                if data is None or mime is None:
                    continue  # no broken link to a file the page does not carry
                encoded = base64.b64encode(data).decode("ascii")
                child.attrSet("src", f"data:{mime};base64,{encoded}")
            kept.append(child)
        token.children = kept
        if not kept and 0 < index < len(tokens) - 1:  # a paragraph that held only the image
            tokens[index - 1].hidden = tokens[index + 1].hidden = True


def _mark_todo_paragraphs(tokens: list[Token]) -> None:
    for index, token in enumerate(tokens[:-2]):
        if token.type != "paragraph_open":
            continue
        children = [c for c in tokens[index + 1].children or [] if c.type != "text" or c.content]
        if (
            len(children) >= 2
            and children[0].type == "strong_open"
            and children[1].content.strip().startswith(TODO_MARK)
        ):
            token.attrSet("class", "todo")


def _without_rule_before_footnotes(tokens: list[Token]) -> list[Token]:
    """The draft's own `---` before its notes: the footnote section brings a rule of its own."""
    for index, token in enumerate(tokens):
        if token.type == "footnote_block_open" and index > 0 and tokens[index - 1].type == "hr":
            return tokens[: index - 1] + tokens[index:]
    return tokens
