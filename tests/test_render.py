"""Markdown → Telegram HTML: limits, valid markup, nothing lost (pure functions)."""

from __future__ import annotations

import random
import re

import pytest

from bot.render import (
    SAFE_MESSAGE_LIMIT,
    TELEGRAM_MESSAGE_LIMIT,
    block_to_html,
    html_to_plain,
    inline_to_html,
    markdown_blocks,
    markdown_to_messages,
    split_html,
    utf16_len,
)
from tests.fakes.telegram_server import check_html

WORD = re.compile(r"[^\W_]+")  # letters and digits; markdown markers and "_" are not words


def words(text: str) -> list[str]:
    return WORD.findall(text)


def assert_sendable(messages: list[str]) -> None:
    """What Telegram needs: non-empty, within 4096 UTF-16 units, valid HTML, no NULs."""
    assert messages
    for message in messages:
        assert message.strip()
        assert utf16_len(message) <= TELEGRAM_MESSAGE_LIMIT, utf16_len(message)
        assert check_html(message) is None, (check_html(message), message[:200])
        assert "\x00" not in message


def plain_of(messages: list[str]) -> str:
    return "\n\n".join(html_to_plain(m) for m in messages)


# ---------------------------------------------------------------------------------------------
# utf16_len
# ---------------------------------------------------------------------------------------------


def test_utf16_len_counts_astral_characters_twice() -> None:
    assert utf16_len("abc") == 3
    assert utf16_len("Привет") == 6
    assert utf16_len("🎙") == 2
    assert utf16_len("🎙️✅") == 4  # U+1F399 (2) + U+FE0F (1) + U+2705 (1)
    assert len("🎙️✅") == 3


# ---------------------------------------------------------------------------------------------
# A long draft
# ---------------------------------------------------------------------------------------------


def _paragraph(rng: random.Random, number: int, size: int = 600) -> str:
    vocabulary = [
        "data",
        "pipeline",
        "engineer",
        "warehouse",
        "stream",
        "batch",
        "latency",
        "schema",
        "contract",
        "owner",
        "quality",
        "metric",
        "dashboard",
        "lineage",
        "incident",
        "Kafka",
        "Spark",
        "dbt",
        "Airflow",
        "&",
        "<",
        ">",
        "**important**",
        "_subtle_",
        "`code`",
        "[^2]",
        "naïve",
        "café",
        "Zürich",
        "🎙️",
        "✅",
    ]
    out = [f"Paragraph{number}"]
    while len(" ".join(out)) < size:
        out.append(rng.choice(vocabulary))
    return " ".join(out) + "."


def _long_draft() -> tuple[str, list[str]]:
    rng = random.Random(7)
    parts = ["# Where data engineering ends"]
    paragraphs = []
    for number in range(30):
        if number % 4 == 0:
            parts.append(f"## Section {number // 4 + 1}: **the** part")
        paragraph = _paragraph(rng, number)
        paragraphs.append(paragraph)
        parts.append(paragraph)
    return "\n\n".join(parts), paragraphs


def test_long_draft_splits_between_blocks_within_limits() -> None:
    draft, paragraphs = _long_draft()
    assert utf16_len(draft) > 3 * TELEGRAM_MESSAGE_LIMIT

    messages = markdown_to_messages(draft)

    assert len(messages) >= 4
    assert_sendable(messages)
    assert all(utf16_len(m) <= SAFE_MESSAGE_LIMIT for m in messages)
    # No paragraph is cut: each one's rendering sits whole in exactly one message.
    for paragraph in paragraphs:
        rendered = block_to_html(paragraph)
        assert sum(rendered in m for m in messages) == 1, paragraph[:40]
    # Every word survives, in order.
    assert words(plain_of(messages)) == words(draft)


def test_long_draft_never_ends_a_message_on_a_heading() -> None:
    draft, _ = _long_draft()
    messages = markdown_to_messages(draft)
    headings = {block_to_html(b) for b in markdown_blocks(draft) if b.startswith("#")}
    for message in messages[:-1]:
        last_line = message.rsplit("\n", 1)[-1]
        assert last_line not in headings, message[-200:]


def test_heading_travels_with_the_next_paragraph() -> None:
    # A heading fits after the first paragraph, the paragraph after it does not: the
    # greedy packing used to leave the heading orphaned at the end of message one.
    first = "word " * 780  # 3899 characters
    second = "more " * 100
    draft = f"{first}\n\n## Next part\n\n{second}"

    messages = markdown_to_messages(draft)

    assert len(messages) == 2
    assert_sendable(messages)
    assert "Next part" not in messages[0]
    assert messages[1].startswith("<b>Next part</b>\n\n")
    assert words(plain_of(messages)) == words(draft)


def test_title_and_section_heading_stay_together_with_their_text() -> None:
    filler = "word " * 790  # the two headings would fit after it, their text would not
    draft = f"{filler}\n\n# Title\n\n## Section\n\nThe text of the section."
    messages = markdown_to_messages(draft)
    assert len(messages) == 2
    assert messages[1] == "<b>Title</b>\n\n<b>Section</b>\n\nThe text of the section."


def test_heading_travels_with_the_start_of_an_oversized_paragraph() -> None:
    draft = "## Long one\n\n" + "sentence with words. " * 600
    messages = markdown_to_messages(draft)
    assert_sendable(messages)
    assert messages[0].startswith("<b>Long one</b>\n\n")
    assert html_to_plain(messages[0]) != "Long one"
    assert words(plain_of(messages)) == words(draft)


def test_short_draft_is_one_message() -> None:
    draft = "# Title\n\nFirst paragraph.\n\nSecond paragraph with **bold**."
    assert markdown_to_messages(draft) == [
        "<b>Title</b>\n\nFirst paragraph.\n\nSecond paragraph with <b>bold</b>."
    ]


def test_windows_line_endings() -> None:
    messages = markdown_to_messages("# Title\r\n\r\nLine one\r\nline two\r\n")
    assert messages == ["<b>Title</b>\n\nLine one\nline two"]


# ---------------------------------------------------------------------------------------------
# One paragraph longer than a message
# ---------------------------------------------------------------------------------------------


def test_one_long_paragraph_with_spaces() -> None:
    rng = random.Random(3)
    text = " ".join(f"w{rng.randrange(10_000)}" for _ in range(2500))  # ~14k characters
    messages = markdown_to_messages(text)
    assert len(messages) >= 3
    assert_sendable(messages)
    assert words(plain_of(messages)) == words(text)
    # Pieces of one paragraph that share a message are joined as they were split.
    assert "\n\n" not in "".join(messages)


def test_one_long_paragraph_without_spaces_loses_nothing() -> None:
    text = "".join(chr(ord("a") + i % 26) for i in range(10_000))
    messages = markdown_to_messages(text)
    assert len(messages) >= 3
    assert_sendable(messages)
    assert "".join(html_to_plain(m) for m in messages) == text


def test_one_long_cyrillic_paragraph() -> None:
    text = " ".join(["Съешь же ещё этих мягких французских булок, да выпей чаю."] * 200)
    assert len(text) > 2 * TELEGRAM_MESSAGE_LIMIT
    messages = markdown_to_messages(text)
    assert len(messages) >= 3
    assert_sendable(messages)
    assert words(plain_of(messages)) == words(text)


def test_one_long_emoji_paragraph_counts_utf16_units() -> None:
    text = "🎙️✅" * 3000  # 9000 characters but 12000 UTF-16 units
    assert len(text) < utf16_len(text)
    messages = markdown_to_messages(text)
    assert len(messages) >= 3
    assert_sendable(messages)
    assert "".join(html_to_plain(m) for m in messages) == text


def test_one_long_emoji_paragraph_with_spaces() -> None:
    text = " ".join(["🎙️✅ запись готова 👍🏽"] * 900)
    messages = markdown_to_messages(text)
    assert_sendable(messages)
    assert plain_of(messages).split() == text.split()


@pytest.mark.parametrize("unit", ["&", "<", "a & b < c > d ", "&amp;"])
def test_escaping_never_pushes_a_message_over_the_limit(unit: str) -> None:
    # Escaping multiplies the length (& → &amp;): a paragraph of ampersands used to render
    # to a single 10 000-unit message.
    text = unit * (9000 // len(unit))
    messages = markdown_to_messages(text)
    assert_sendable(messages)
    if " " in unit:
        assert plain_of(messages).split() == text.split()
    else:
        assert "".join(html_to_plain(m) for m in messages) == text


def test_long_paragraph_with_markup_stays_valid_html() -> None:
    text = " ".join(["**bold words** and _italic_ with `code` and [^1] & <tag>"] * 300)
    messages = markdown_to_messages(text)
    assert_sendable(messages)
    assert words(plain_of(messages)) == words(text)


def test_split_html_pieces_fit_and_keep_everything() -> None:
    text = "Sentence one. Sentence two! " * 400 + "x" * 5000
    pieces = split_html(text, 1000)
    assert all(utf16_len(p) <= 1000 for p in pieces)
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")


def test_split_html_prefers_paragraph_then_sentence_breaks() -> None:
    text = "a" * 500 + "\n\n" + "b" * 400 + ". " + "c" * 300
    assert split_html(text, 1000) == ["a" * 500, "b" * 400 + ". " + "c" * 300]
    text = "a" * 500 + ". " + "b" * 600
    assert split_html(text, 1000) == ["a" * 500 + ".", "b" * 600]


def test_split_html_with_a_limit_smaller_than_a_character_terminates() -> None:
    assert split_html("🎙🎙x", 1) == ["🎙", "🎙", "x"]


def test_split_html_counts_utf16() -> None:
    pieces = split_html("🎙" * 3000, 4000)
    assert [utf16_len(p) for p in pieces] == [4000, 2000]


# ---------------------------------------------------------------------------------------------
# Odd markdown
# ---------------------------------------------------------------------------------------------

ODD_MARKDOWN = [
    # (markdown, text that must survive literally in the plain text)
    ("2 * 3 = 6 and 4*5", "2 * 3 = 6 and 4*5"),
    ("*starts but never ends", "*starts but never ends"),
    ("snake_case_name and _dangling", "snake_case_name and _dangling"),
    ("[not a link and [^x", "[not a link and [^x"),
    ("**bold that never closes", "**bold that never closes"),
    ("__also unclosed", "__also unclosed"),
    ("<script>alert(1)</script>", "<script>alert(1)</script>"),
    ("Tom & Jerry &amp; &lt;", "Tom & Jerry &amp; &lt;"),
    ("a < b > c", "a < b > c"),
    ("[link](javascript:alert(1))", "[link](javascript:alert(1))"),
    ("[x](data:text/html,<b>)", "[x](data:text/html,<b>)"),
    ("one ` backtick", "one ` backtick"),
    ("``` fence without end", "``` fence without end"),
    ("`a < b & c`", "a < b & c"),
    ("use `rm -rf *` carefully", "use rm -rf * carefully"),
    ("**bold _italic_**", "bold italic"),
    ("*italic **bold** italic*", "italic bold italic"),
    ("**see `code` here**", "see code here"),
    ("**[site](https://example.com)** now", "site now"),
    ('[**bold** `code`](https://example.com/?a=1&b="2")', "bold code"),
    ("[a](http://x.org/`y`)", "[a](http://x.org/y)"),
    ("`[a](http://x.org)`", "[a](http://x.org)"),
    ("**a** **b** *c* _d_ __e__", "a b c d e"),
    ("x\x000\x00y and \x001\x00", "x0y and 1"),
    ("\"quotes\" and 'apostrophes'", "\"quotes\" and 'apostrophes'"),
    ("<b>not really bold</b>", "<b>not really bold</b>"),
]


@pytest.mark.parametrize(("markdown", "literal"), ODD_MARKDOWN)
def test_odd_markdown_renders_valid_html(markdown: str, literal: str) -> None:
    messages = markdown_to_messages(markdown)
    assert_sendable(messages)
    assert literal in plain_of(messages)


def test_javascript_link_is_never_a_link() -> None:
    html = inline_to_html("[link](javascript:alert(1)) [x](JAVASCRIPT:alert(1))")
    assert "<a" not in html
    assert "href" not in html


def test_http_links_become_links_with_escaped_urls() -> None:
    html = inline_to_html('[the "site"](https://example.com/?a=1&b=2)')
    assert html == '<a href="https://example.com/?a=1&amp;b=2">the "site"</a>'


def test_nested_markup_renders_nested_tags() -> None:
    assert inline_to_html("**bold _italic_**") == "<b>bold <i>italic</i></b>"
    assert inline_to_html("*a **b** c*") == "<i>a <b>b</b> c</i>"
    assert inline_to_html("**see `x < y`**") == "<b>see <code>x &lt; y</code></b>"
    assert inline_to_html("**[s](https://e.com)**") == '<b><a href="https://e.com">s</a></b>'


def test_code_content_is_not_markdown() -> None:
    assert inline_to_html("`**not bold** [^1]`") == "<code>**not bold** [^1]</code>"


def test_special_characters_are_escaped() -> None:
    assert inline_to_html("<script>&") == "&lt;script&gt;&amp;"
    assert html_to_plain(inline_to_html("<script>&")) == "<script>&"


# ---------------------------------------------------------------------------------------------
# Footnotes and headings
# ---------------------------------------------------------------------------------------------


def test_footnote_markers_read_as_numbers_in_brackets() -> None:
    assert inline_to_html("A claim[^3].") == "A claim[3]."
    assert inline_to_html("Two[^1][^12] and a [^note-2]") == "Two[1][12] and a [note-2]"
    assert inline_to_html("**Bold claim[^4]**") == "<b>Bold claim[4]</b>"
    assert markdown_to_messages("Text[^3].\n\n[^3]: The source.") == ["Text[3].\n\n[3] The source."]


@pytest.mark.parametrize(
    ("markdown", "html"),
    [
        ("# Title", "<b>Title</b>"),
        ("## Section two", "<b>Section two</b>"),
        ("###### Deep", "<b>Deep</b>"),
        ("## **Already bold**", "<b>Already bold</b>"),
        ("## A & B < C", "<b>A &amp; B &lt; C</b>"),
        ("## With *style* and [^2]", "<b>With <i>style</i> and [2]</b>"),
        ("## Half **bold** title", "<b>Half bold title</b>"),
        ("#hashtag", "#hashtag"),
        ("####### seven", "####### seven"),
    ],
)
def test_headings_render_bold(markdown: str, html: str) -> None:
    assert markdown_to_messages(markdown) == [html]
    assert check_html(html) is None


def test_heading_is_its_own_block() -> None:
    assert markdown_blocks("Intro line\n# Title\nBody line\nsecond") == [
        "Intro line",
        "# Title",
        "Body line\nsecond",
    ]
