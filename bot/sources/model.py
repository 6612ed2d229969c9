"""Sources: outside material a writer sends (a link, a photo, a document, a forwarded post).

A source is a note of its own, kept apart from the writer's words: drafting reads it as
outside material, cites it like a note and lists it under "Sources". Its slow part (fetching
the page, describing the image, reading the document) runs in the background
(bot/sources/worker.py); until then the note holds what came with the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SourceKind(StrEnum):
    LINK = "link"
    IMAGE = "image"
    DOCUMENT = "document"
    POST = "post"  # a forwarded post or message


class SourceStatus(StrEnum):
    PENDING = "pending"  # the background step has not run yet
    READY = "ready"
    FAILED = "failed"  # `failure` says why; what came with the message is kept


class SourceFailure(StrEnum):
    """Why a source's background step failed (the link ones are FetchFailure values)."""

    PRIVATE_ADDRESS = "private_address"
    UNREACHABLE = "unreachable"
    TIMED_OUT = "timed_out"
    TOO_LARGE = "too_large"
    NOT_A_PAGE = "not_a_page"
    HTTP_ERROR = "http_error"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    NO_TEXT = "no_text"
    NO_VISION = "no_vision"  # the endpoint does not take images
    VISION_DOWN = "vision_down"  # the endpoint did not answer
    NO_LLM = "no_llm"  # no endpoint configured
    IMAGE_TOO_LARGE = "image_too_large"  # over VISION_MAX_IMAGE_BYTES
    DOWNLOAD_FAILED = "download_failed"
    UNREADABLE = "unreadable"  # a document whose text could not be extracted
    GAVE_UP = "gave_up"  # the step crashed too often


# Every kind is outside material; the values reach the drafting prompt as note kinds.
SOURCE_KINDS = frozenset(kind.value for kind in SourceKind)
# A prefix above Telegram's message ids: the k-th link of message m is note m + k * LINK_STRIDE
# (a message's own id is kept by the writer's words around its links).
LINK_STRIDE = 1 << 40


@dataclass(frozen=True)
class NewSource:
    """A source as it came in a message, before its background step."""

    kind: SourceKind
    url: str | None = None
    text: str = ""  # a forwarded post's text
    caption: str = ""
    origin: str | None = None  # where a forwarded post came from
    origin_url: str | None = None
    file_id: str | None = None
    file_name: str | None = None
    mime_type: str | None = None

    @property
    def needs_work(self) -> bool:
        return self.kind is not SourceKind.POST


@dataclass(frozen=True)
class SourceCard:
    """A source note's acknowledgement as the writer sees it."""

    note_id: int
    kind: SourceKind
    status: SourceStatus
    failure: SourceFailure | None
    section_number: int
    section_title: str
    part_id: int | None
    url: str | None = None
    title: str | None = None
    caption: str = ""
    description: str = ""  # an image's description, a document's opening
    origin: str | None = None
    origin_url: str | None = None
    file_name: str | None = None
    started_article: str | None = None


@dataclass(frozen=True)
class SourceRef:
    """A source as the draft's Sources list and the notes export name it."""

    note_id: int
    kind: str
    title: str
    url: str | None = None
    origin: str | None = None
    image_file: str | None = None  # "images/note-12.jpg" for figures
    caption: str = ""

    def citation(self) -> str:
        """One line of the Sources list (markdown)."""
        name = self.title.strip() or self.url or "Untitled"
        name = name.replace("[", "(").replace("]", ")")
        if self.kind == SourceKind.POST:
            where = self.origin or "a forwarded message"
            return f"Post from {where}: {self.url}" if self.url else f"Post from {where}"
        if self.url:
            return f"[{name}]({self.url})"
        return name


def source_text(
    kind: SourceKind,
    *,
    url: str | None = None,
    title: str | None = None,
    text: str | None = None,
    caption: str | None = None,
    origin: str | None = None,
    origin_url: str | None = None,
    file_name: str | None = None,
) -> str:
    """What drafting reads of a source: where it came from, then its content."""
    lines: list[str] = []
    if kind is SourceKind.LINK:
        if title:
            lines.append(f"Page: {title}")
        lines.append(f"URL: {url}")
    elif kind is SourceKind.IMAGE:
        lines.append("Image" + (f" ({file_name})" if file_name else ""))
        if caption:
            lines.append(f"Caption: {caption}")
        if text:
            lines.append(f"Description: {text}")
        if origin:
            lines.append(f"Forwarded from: {origin}")
        return "\n".join(lines)
    elif kind is SourceKind.DOCUMENT:
        lines.append(f"Document: {file_name or 'untitled'}")
        if caption:
            lines.append(f"Caption: {caption}")
    elif kind is SourceKind.POST:
        lines.append(f"Forwarded from: {origin or 'a hidden sender'}")
        if origin_url:
            lines.append(f"Link: {origin_url}")
    if origin and kind is not SourceKind.POST:
        lines.append(f"Forwarded from: {origin}")
    body = (text or "").strip()
    return "\n".join(lines) + (f"\n\n{body}" if body else "")
