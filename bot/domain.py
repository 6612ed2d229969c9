"""Plain types that services return and handlers show; no ORM rows leave the services."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from bot.notes.lifecycle import FailureCode, NoteState


class UserError(Exception):
    """An expected failure whose message is written for the writer and safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoteKind(StrEnum):
    VOICE = "voice"
    AUDIO = "audio"
    VIDEO = "video"
    TEXT = "text"


@dataclass(frozen=True)
class SectionInfo:
    id: int
    number: int  # 1-based position shown to the writer
    title: str
    note_count: int
    is_active: bool
    source_count: int = 0  # of those notes, how many are sources (links, images, ...)


@dataclass(frozen=True)
class ArticleInfo:
    id: int
    number: int
    title: str
    is_active: bool
    note_count: int = 0


@dataclass(frozen=True)
class Outline:
    article: ArticleInfo
    sections: list[SectionInfo]
    kept_for_notes: list[str] = field(default_factory=list)

    @property
    def active_section(self) -> SectionInfo | None:
        return next((s for s in self.sections if s.is_active), None)


@dataclass(frozen=True)
class IncomingMedia:
    """A recording as Telegram describes it, before anything is downloaded."""

    kind: NoteKind
    file_id: str
    file_unique_id: str | None
    duration: int | None
    size: int | None


@dataclass(frozen=True)
class IntakeResult:
    note_id: int
    is_new: bool  # False when Telegram redelivered a message we already have
    article_title: str
    section_number: int
    section_title: str
    created_default_article: bool


@dataclass(frozen=True)
class FiledPart:
    part_id: int
    section_number: int
    section_title: str
    text: str
    title_spoken: bool = False


@dataclass(frozen=True)
class SuggestedSection:
    id: int
    title: str


class NoticeKind(StrEnum):
    RESUMED = "resumed"  # the bot restarted and is resuming `count` unfinished notes


@dataclass(frozen=True)
class Notice:
    """A one-off message for a writer, sent through the outbox."""

    kind: NoticeKind
    count: int = 0


@dataclass(frozen=True)
class NoteCard:
    """A note as the writer sees it in chat: the message that acknowledged it, then shows its
    progress, its transcript and where it was filed, or why it was not."""

    note_id: int
    kind: NoteKind
    state: NoteState
    # Where it goes (queued) or went; the parts when it is filed.
    section_number: int
    section_title: str
    parts: list[FiledPart] = field(default_factory=list)
    transcript: str = ""
    caption: str = ""  # what the writer typed under the recording
    failure: FailureCode | None = None
    progress: float | None = None  # share transcribed so far
    partial: str = ""  # a long recording in work: its transcript so far
    suggestions: list[SuggestedSection] = field(default_factory=list)
    # Context for the wording: the note made the bot start a default article with this
    # title; the note is an imported transcript; it was deleted before it was transcribed.
    started_article: str | None = None
    imported: bool = False
    removed: bool = False
    created_at: datetime | None = None
    retryable: bool = False  # a failure worth a "try again" button
    language: str | None = None  # a filed recording: the language it was transcribed in
    # Languages to transcribe it again in (it came out in a language the writer does not use).
    other_languages: tuple[str, ...] = ()
    # A voice note replying to a section's message: (section number, title) it instructs.
    instruction_for: tuple[int, str] | None = None
