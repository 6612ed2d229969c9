"""Intake: a note is stored, in one short transaction, before anything slow happens.

The same transaction adds the outbox row that acknowledges it, so a note is never stored
without the writer hearing about it, nor acknowledged without being stored.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import utcnow
from bot.db.repository import Repository
from bot.domain import FiledPart, IncomingMedia, IntakeResult, NoteKind, UserError
from bot.notes.archive import ArchivedNote
from bot.notes.cards import show_note
from bot.notes.filing import file_transcript
from bot.notes.lifecycle import NoteState
from bot.services.outbox import post_view
from bot.services.outline import ensure_active_section
from bot.sources.model import LINK_STRIDE, NewSource, SourceKind, SourceStatus, source_text

# Telegram allows 1024 characters in a caption; a forwarded one may carry more.
MAX_CAPTION_CHARS = 4096


def _nothing() -> None:
    pass


class IntakeService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        on_queued: Callable[[], None] = _nothing,
        on_outbox: Callable[[], None] = _nothing,
        on_source: Callable[[], None] = _nothing,
    ) -> None:
        """`on_queued`: a recording was queued (wakes this process's workers); `on_outbox`:
        a message for the writer was added (wakes the delivery); `on_source`: a source
        waits for its background step (wakes the source worker)."""
        self._sessions = sessions
        self._on_queued = on_queued
        self._on_outbox = on_outbox
        self._on_source = on_source

    async def receive_media(
        self,
        owner_id: int,
        chat_id: int,
        message_id: int,
        media: IncomingMedia,
        caption: str = "",
        *,
        instruction_for: int | None = None,
    ) -> IntakeResult:
        """Persist a recording (queued) and its acknowledgement; a crash after this loses
        nothing. `instruction_for`: the section whose message the recording replied to; once
        transcribed it is an instruction for that section, never filed as a note."""
        result, _ = await self._receive(
            owner_id,
            chat_id,
            message_id,
            {
                "kind": media.kind,
                "file_id": media.file_id,
                "file_unique_id": media.file_unique_id,
                "duration": media.duration,
                "size": media.size,
                "caption": caption.strip()[:MAX_CAPTION_CHARS] or None,
                "state": NoteState.QUEUED,
            },
            text=None,
            instruction_for=instruction_for,
        )
        if result.is_new:
            self._on_queued()
        return result

    async def receive_text(
        self, owner_id: int, chat_id: int, message_id: int, text: str
    ) -> IntakeResult:
        """A typed note needs no transcription: it is filed at once."""
        text = text.strip()
        if not text:
            raise UserError("That message is empty, so there is nothing to file.")
        result, _ = await self._receive(
            owner_id,
            chat_id,
            message_id,
            {
                "kind": NoteKind.TEXT,
                "state": NoteState.FILED,
                "transcript": text,
                "transcribed_at": utcnow(),
            },
            text=text,
        )
        return result

    async def receive_sources(
        self,
        owner_id: int,
        chat_id: int,
        message_id: int,
        sources: list[NewSource],
        words: str = "",
    ) -> list[int]:
        """File a message's outside material, each source a note of its own, and the
        writer's own words around it (`words`) as a text note; one transaction, each
        acknowledged through the outbox. The words keep the message's id (an edit of the
        message edits them); the k-th source gets id + k * LINK_STRIDE, above Telegram's ids,
        so an edit never overwrites a source and a redelivery files nothing twice.
        Returns the new source notes' ids (none on a redelivery)."""
        words = words.strip()
        created_ids: list[int] = []
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            await repo.users.ensure(chat_id)
            article, section, created = await ensure_active_section(repo)
            started: dict[str, str] = {"started_article": article.title} if created else {}
            if words:
                note_id, is_new = await repo.notes.insert_once(
                    {
                        "kind": NoteKind.TEXT,
                        "state": NoteState.FILED,
                        "transcript": words,
                        "transcribed_at": utcnow(),
                        "article_id": article.id,
                        "section_id": section.id,
                        "chat_id": chat_id,
                        "message_id": message_id,
                    }
                )
                if is_new:
                    note = await repo.notes.get(note_id)
                    assert note is not None
                    await repo.parts.add(note, section.id, words)
                    if started:
                        await show_note(session, note, started_article=article.title)
                    else:
                        await show_note(session, note)
                    started = {}
            for index, source in enumerate(sources):
                number = index + 1
                text = source_text(
                    source.kind,
                    url=source.url,
                    text=source.text,
                    caption=source.caption,
                    origin=source.origin,
                    origin_url=source.origin_url,
                    file_name=source.file_name,
                )
                note_id, is_new = await repo.notes.insert_once(
                    {
                        "kind": NoteKind.TEXT,
                        "state": NoteState.FILED,
                        "transcript": text,
                        "caption": source.caption[:MAX_CAPTION_CHARS] or None,
                        "transcribed_at": utcnow(),
                        "article_id": article.id,
                        "section_id": section.id,
                        "chat_id": chat_id,
                        "message_id": message_id + number * LINK_STRIDE,
                    }
                )
                if not is_new:
                    continue
                note = await repo.notes.get(note_id)
                assert note is not None
                await repo.parts.add(note, section.id, text)
                await repo.sources.add(
                    note_id,
                    kind=source.kind.value,
                    status=(
                        SourceStatus.PENDING if source.needs_work else SourceStatus.READY
                    ).value,
                    url=source.url,
                    title=_post_title(source) if source.kind is SourceKind.POST else None,
                    text=source.text or None,
                    caption=source.caption or None,
                    origin=source.origin,
                    origin_url=source.origin_url,
                    file_id=source.file_id,
                    file_name=source.file_name,
                    mime_type=source.mime_type,
                    fetched_at=None if source.needs_work else utcnow(),
                )
                await post_view(
                    session, chat_id, source_subject(note_id), reply_to=message_id, **started
                )
                started = {}
                created_ids.append(note_id)
        if created_ids or words:
            self._on_outbox()
        if created_ids:
            self._on_source()
        return created_ids

    async def import_archived(
        self, owner_id: int, chat_id: int, note: ArchivedNote, *, reply_to: int | None = None
    ) -> tuple[bool, list[FiledPart]]:
        """Store an archived transcript as a finished note, split at spoken titles.

        Imports are not Telegram messages: a negative message id derived from the file keeps
        them apart from real messages and makes a second import of the same file a no-op.
        `reply_to`: the chat message that carried the file; the writer is told there (an
        import from the command line tells nobody).
        """
        result, parts = await self._receive(
            owner_id,
            chat_id,
            -note.key,
            {
                "kind": note.kind,
                "state": NoteState.FILED,
                "transcript": note.text,
                "transcribed_at": note.created_at,
                "created_at": note.created_at,
            },
            text=note.text,
            split_at_titles=True,
            announce=reply_to is not None,
            reply_to=reply_to,
        )
        return result.is_new, parts

    async def _receive(
        self,
        owner_id: int,
        chat_id: int,
        message_id: int,
        values: dict[str, object],
        *,
        text: str | None,
        split_at_titles: bool = False,
        announce: bool = True,
        reply_to: int | None = None,
        instruction_for: int | None = None,
    ) -> tuple[IntakeResult, list[FiledPart]]:
        """Insert the note once; a note that comes with its text is filed in the same go."""
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            await repo.users.ensure(chat_id)
            article, section, created = await ensure_active_section(repo)
            note_id, is_new = await repo.notes.insert_once(
                {
                    **values,
                    "article_id": article.id,
                    "section_id": section.id,
                    "chat_id": chat_id,
                    "message_id": message_id,
                }
            )
            parts: list[FiledPart] = []
            if is_new:
                note = await repo.notes.get(note_id)
                assert note is not None
                if instruction_for is not None:
                    await repo.revisions.add_instruction(note.id, instruction_for)
                if text is not None:
                    if split_at_titles:
                        parts = await file_transcript(repo, note, text)
                    else:
                        await repo.parts.add(note, section.id, text)
                if announce:
                    context: dict[str, object] = {}
                    if created:
                        context["started_article"] = article.title
                    if split_at_titles:
                        context["imported"] = True
                    await show_note(session, note, reply_to=reply_to, **context)
        if is_new and announce:
            self._on_outbox()
        return IntakeResult(
            note_id=note_id,
            is_new=is_new,
            article_title=article.title,
            section_number=section.position,
            section_title=section.title,
            created_default_article=created and is_new,
        ), parts



SOURCE = "source"


def source_subject(note_id: int) -> str:
    """The outbox subject that shows a source note's acknowledgement."""
    return f"{SOURCE}:{note_id}"


def _post_title(source: NewSource) -> str:
    first = next((line.strip() for line in source.text.splitlines() if line.strip()), "")
    return (first[:120] + "…") if len(first) > 120 else first
