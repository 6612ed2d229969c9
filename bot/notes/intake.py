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
from bot.services.outline import ensure_active_section

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
    ) -> None:
        """`on_queued`: a recording was queued (wakes this process's workers); `on_outbox`:
        a message for the writer was added (wakes the delivery)."""
        self._sessions = sessions
        self._on_queued = on_queued
        self._on_outbox = on_outbox

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

