"""Inline keyboards and their callback data (ids only; every id is checked against the owner)."""

from __future__ import annotations

from collections.abc import Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.domain import FiledPart, NoteCard, NoteKind, Outline, SectionInfo, SuggestedSection
from bot.notes.lifecycle import NoteState
from bot.notes.manage import SectionNotes
from bot.notes.vocabulary import LANGUAGES
from bot.render import shorten
from bot.telegram import texts

PICK_SECTION = "sec"
MOVE = "mv"
MOVE_TO = "mvto"
DELETE = "del"
ADD_SECTION = "addsec"
PAGE = "pg"
RETRY = "retry"
AGAIN_IN = "again"  # again:<note id>:<index of the language in LANGUAGES>
LANGUAGE_CODES = tuple(LANGUAGES)
UNDO_REVISION = "rvundo"
KEEP_REVISION = "rvkeep"
LABEL_CHARS = 40


def _label(text: str) -> str:
    return shorten(text, LABEL_CHARS)


def sections(outline: Outline) -> InlineKeyboardMarkup | None:
    if len(outline.sections) < 2:
        return None
    rows = [
        [
            InlineKeyboardButton(
                _label(f"{'▶️ ' if s.is_active else ''}{s.number}. {s.title}"),
                callback_data=f"{PICK_SECTION}:{s.id}",
            )
        ]
        for s in outline.sections
    ]
    return InlineKeyboardMarkup(rows)


def filed_parts(
    parts: Sequence[FiledPart], suggestions: Sequence[SuggestedSection] = ()
) -> InlineKeyboardMarkup | None:
    rows: list[list[InlineKeyboardButton]] = []
    if len(parts) == 1:
        rows.append(
            [
                InlineKeyboardButton(
                    "↪️ Move to another section", callback_data=f"{MOVE}:{parts[0].part_id}"
                )
            ]
        )
    elif parts:
        buttons = [
            InlineKeyboardButton(f"↪️ Move part {n}", callback_data=f"{MOVE}:{p.part_id}")
            for n, p in enumerate(parts, start=1)
        ]
        rows += [buttons[i : i + 3] for i in range(0, len(buttons), 3)]
    rows += [
        [
            InlineKeyboardButton(
                _label(f"➕ Add section “{s.title}”"), callback_data=f"{ADD_SECTION}:{s.id}"
            )
        ]
        for s in suggestions
    ]
    return InlineKeyboardMarkup(rows) if rows else None


def note_card(card: NoteCard) -> InlineKeyboardMarkup | None:
    """Under a filed recording: move its parts, add spoken headings; under a set-aside one:
    try it again."""
    if card.state == NoteState.FILED:
        if card.kind == NoteKind.TEXT or card.imported:
            return None
        parts = filed_parts(card.parts, card.suggestions)
        rows = [list(row) for row in parts.inline_keyboard] if parts else []
        again = [
            InlineKeyboardButton(
                texts.again_in(code),
                callback_data=f"{AGAIN_IN}:{card.note_id}:{LANGUAGE_CODES.index(code)}",
            )
            for code in card.other_languages
            if code in LANGUAGE_CODES
        ]
        if again:
            rows.append(again)
        return InlineKeyboardMarkup(rows) if rows else None
    if card.state == NoteState.FAILED and card.retryable:
        return InlineKeyboardMarkup(
            [[InlineKeyboardButton("🔁 Try again", callback_data=f"{RETRY}:{card.note_id}")]]
        )
    return None


def section_notes(page: SectionNotes, start: int | None = None) -> InlineKeyboardMarkup | None:
    if not page.notes:
        return None
    rows = [
        [
            InlineKeyboardButton(f"↪️ {n}", callback_data=f"{MOVE}:{note.part_id}"),
            InlineKeyboardButton(f"🗑 {n}", callback_data=f"{DELETE}:{note.part_id}"),
        ]
        for n, note in texts.listed_notes(page, start)
    ]
    first = texts.page_start(page, start)
    section = page.section.id
    paging = []
    if first > 0:
        earlier = max(0, first - texts.NOTES_LISTED)
        paging.append(
            InlineKeyboardButton("◀️ Earlier", callback_data=f"{PAGE}:{section}:{earlier}")
        )
    if first + texts.NOTES_LISTED < len(page.notes):
        later = first + texts.NOTES_LISTED
        paging.append(InlineKeyboardButton("Later ▶️", callback_data=f"{PAGE}:{section}:{later}"))
    if paging:
        rows.append(paging)
    return InlineKeyboardMarkup(rows)


def move_targets(part_id: int, targets: Sequence[SectionInfo]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    _label(f"{s.number}. {s.title}"), callback_data=f"{MOVE_TO}:{part_id}:{s.id}"
                )
            ]
            for s in targets
        ]
    )


def revision(version_id: int) -> InlineKeyboardMarkup:
    """Under a revised section: back to the text before, or keep it."""
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("↩️ Undo", callback_data=f"{UNDO_REVISION}:{version_id}"),
                InlineKeyboardButton("✅ Keep", callback_data=f"{KEEP_REVISION}:{version_id}"),
            ]
        ]
    )


# Ids (database ids, page offsets) fit a signed 64-bit integer.
MAX_ID = 2**63 - 1


def parse(data: str) -> tuple[str, list[int]]:
    """Split callback data into its action and integer ids; ValueError if it is malformed
    (anybody can send any callback data, so nothing in it is trusted)."""
    action, *parts = data.split(":")
    ids = []
    for part in parts:
        if not part.isdigit() or len(part) > 19:
            raise ValueError(data)
        value = int(part)
        if value > MAX_ID:
            raise ValueError(data)
        ids.append(value)
    return action, ids
