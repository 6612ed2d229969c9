"""Filing a transcript: split at spoken section titles, store one part per section."""

from __future__ import annotations

from bot.db.models import Note
from bot.db.repository import Repository
from bot.domain import FiledPart
from bot.notes.titles import RoutedPart, SectionTitle, split_by_spoken_titles
from bot.services.outline import DEFAULT_SECTION_TITLE


async def file_transcript(
    repo: Repository, note: Note, text: str, *, unnamed_section_id: int | None = None
) -> list[FiledPart]:
    """Store the note's text as parts under its article's sections; caller owns the transaction.

    Text before any spoken title goes to the section the note was addressed to (or, if that
    section was removed meanwhile, the article's active one); each part after a title the
    writer speaks goes to that title's section. A note that speaks no title at all goes to
    `unnamed_section_id` when one is given (the optional LLM routing's advice).
    """
    sections = list(await repo.sections.of_article(note.article_id))
    if not sections:
        sections = [await repo.sections.add(note.article_id, 1, DEFAULT_SECTION_TITLE)]
    default = next((s for s in sections if s.id == note.section_id), None)
    if default is None:
        default = next((s for s in sections if s.is_active), sections[0])
    numbers = {s.id: (n, s.title) for n, s in enumerate(sections, start=1)}
    routed = split_by_spoken_titles(
        text, [SectionTitle(s.id, s.title) for s in sections], default.id
    ) or [RoutedPart(default.id, text, False)]
    if (
        unnamed_section_id is not None
        and unnamed_section_id in numbers
        and len(routed) == 1
        and not routed[0].title_spoken
    ):
        routed = [RoutedPart(unnamed_section_id, routed[0].text, False)]
    filed = []
    for position, piece in enumerate(routed):
        part = await repo.parts.add(note, piece.section_id, piece.text, position)
        number, title = numbers[piece.section_id]
        filed.append(FiledPart(part.id, number, title, piece.text, piece.title_spoken))
    return filed
