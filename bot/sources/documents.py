"""Documents: the text of a PDF (pypdf) or of another text-bearing file."""

from __future__ import annotations

import io
import logging
from pathlib import PurePath

log = logging.getLogger(__name__)

# Enough for a long report (drafting reads it in stages); a book is cut here.
MAX_TEXT_CHARS = 30_000
MAX_PDF_PAGES = 200

# Text-bearing files filed as sources (the .txt/.md transcript import stays apart).
TEXT_EXTENSIONS = frozenset(
    {
        ".csv",
        ".tsv",
        ".json",
        ".xml",
        ".html",
        ".htm",
        ".rst",
        ".org",
        ".tex",
        ".log",
        ".yaml",
        ".yml",
        ".srt",
        ".vtt",
        ".rtf",
    }
)
TEXT_MIME_PREFIXES = ("text/",)
TEXT_MIME_TYPES = frozenset({"application/json", "application/xml", "application/xhtml+xml"})


class UnreadableDocument(Exception):
    """No text could be extracted (damaged, encrypted, or only scanned images)."""


def is_pdf(file_name: str | None, mime_type: str | None) -> bool:
    return mime_type == "application/pdf" or PurePath(file_name or "").suffix.lower() == ".pdf"


def is_text_document(file_name: str | None, mime_type: str | None) -> bool:
    suffix = PurePath(file_name or "").suffix.lower()
    mime = (mime_type or "").lower()
    return (
        suffix in TEXT_EXTENSIONS or mime in TEXT_MIME_TYPES or mime.startswith(TEXT_MIME_PREFIXES)
    )


def extract_text(data: bytes, file_name: str | None, mime_type: str | None) -> str:
    """The document's text (CPU work: call it in a thread); UnreadableDocument when none."""
    if is_pdf(file_name, mime_type):
        text = _pdf_text(data)
    else:
        suffix = PurePath(file_name or "").suffix.lower()
        if suffix in (".html", ".htm") or (mime_type or "").lower() in (
            "text/html",
            "application/xhtml+xml",
        ):
            import trafilatura

            text = trafilatura.extract(data.decode("utf-8", errors="replace")) or ""
        else:
            text = data.decode("utf-8", errors="replace")
    text = "\n".join(line.rstrip() for line in text.splitlines()).strip()
    if not text:
        raise UnreadableDocument("no text")
    return text[:MAX_TEXT_CHARS]


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableDocument("encrypted")
        pages = []
        for page in reader.pages[:MAX_PDF_PAGES]:
            pages.append(page.extract_text() or "")
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise UnreadableDocument(type(exc).__name__) from None
    return "\n\n".join(p.strip() for p in pages if p.strip())
