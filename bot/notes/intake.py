"""Intake: a note is stored, in one short transaction, before anything slow happens."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import NoteStatus, utcnow
from bot.db.repository import Repository
from bot.domain import FiledPart, IncomingMedia, IntakeResult, NoteKind, UserError
from bot.notes.archive import ArchivedNote
from bot.notes.filing import file_transcript
from bot.services.outline import ensure_active_section


class IntakeService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def receive_media(
        self, owner_id: int, chat_id: int, message_id: int, media: IncomingMedia
    ) -> IntakeResult:
        """Persist a recording (status received) so a crash after this loses nothing."""
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
                "status": NoteStatus.RECEIVED,
            },
            text=None,
        )
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
                "status": NoteStatus.TRANSCRIBED,
                "transcript": text,
                "transcribed_at": utcnow(),
            },
            text=text,
        )
        return result

    async def import_archived(
        self, owner_id: int, chat_id: int, note: ArchivedNote
    ) -> tuple[bool, list[FiledPart]]:
        """Store an archived transcript as a finished note, split at spoken titles.

        Imports are not Telegram messages: a negative message id derived from the file keeps
        them apart from real messages and makes a second import of the same file a no-op.
        """
        result, parts = await self._receive(
            owner_id,
            chat_id,
            -note.key,
            {
                "kind": note.kind,
                "status": NoteStatus.TRANSCRIBED,
                "transcript": note.text,
                "transcribed_at": note.created_at,
                "created_at": note.created_at,
            },
            text=note.text,
            split_at_titles=True,
        )
        return result.is_new, parts

    async def remember_ack(self, owner_id: int, note_id: int, ack_message_id: int) -> None:
        async with self._sessions.begin() as session:
            note = await Repository(session, owner_id).notes.get(note_id)
            if note is not None:
                note.ack_message_id = ack_message_id

    async def _receive(
        self,
        owner_id: int,
        chat_id: int,
        message_id: int,
        values: dict[str, object],
        *,
        text: str | None,
        split_at_titles: bool = False,
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
            if is_new and text is not None:
                note = await repo.notes.get(note_id)
                assert note is not None
                if split_at_titles:
                    parts = await file_transcript(repo, note, text)
                else:
                    await repo.parts.add(note, section.id, text)
            return IntakeResult(
                note_id=note_id,
                is_new=is_new,
                article_title=article.title,
                section_number=section.position,
                section_title=section.title,
                created_default_article=created and is_new,
            ), parts
