"""Talking to the draft (issue 14): revise a section by replying to it, typed or spoken, or
with /revise; undo and keep; /history, /export after each; a redraft after a new note keeps
the writer's revisions; /todo and /done; /status; an LLM failure during a revision. The real
Application, the fake Bot API and the fake OpenAI-compatible server over HTTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.db.models import Note, SpokenInstruction
from bot.db.session import create_engine, create_session_factory
from bot.domain import NoteKind
from bot.notes.lifecycle import NoteState
from bot.notes.queue import NoteQueue
from tests.conftest import AUDIO, FAST, StartBot, eventually
from tests.fakes.drafting_model import NOTE, DraftingModel
from tests.fakes.openai_server import Call, FakeOpenAI
from tests.fakes.telegram_server import BotMessage, FakeTelegram
from tests.test_chat_e2e import WRITER, say
from tests.test_draft_e2e import documents, draft

BLOCK = re.compile(r"^\[B\d+\] \((\w+); cites ([^)]*)\) (.*)$", re.MULTILINE)
INSTRUCTION = re.compile(r"<instruction>(.*?)</instruction>", re.DOTALL)
INVENTED = "Our revenue grew forty percent in 2019."


@dataclass
class RevisingModel:
    """The drafting stand-in, which also revises: a revised section opens with the
    instruction's words and a paragraph quoting the first note; "shorter" keeps the first
    block only; an instruction about revenue (no note has it) makes it invent a sentence
    with a quote no note contains, as a weak model does."""

    drafting: DraftingModel = field(default_factory=DraftingModel)
    instructions: list[str] = field(default_factory=list)

    def __call__(self, call: Call) -> dict[str, Any]:
        system = call.messages[0]["content"] if call.messages else ""
        if "revising the section" not in system:
            return self.drafting(call)
        user = next(m["content"] for m in call.messages if m["role"] == "user")
        instruction = INSTRUCTION.search(user)
        said = instruction.group(1).strip() if instruction else ""
        self.instructions.append(said)
        notes = dict(NOTE.findall(user))
        label, text = next(iter(notes.items()))
        quote = " ".join(text.split()[:4])
        current = [
            {
                "kind": kind,
                "text": body,
                "citations": [
                    {"note_id": n, "quote": " ".join(notes.get(n, "").split()[:4])}
                    for n in cites.split(", ")
                    if n in notes
                ],
            }
            for kind, cites, body in BLOCK.findall(user)
        ]
        if "revenue" in said.lower():
            invented = {
                "kind": "paragraph",
                "text": INVENTED,
                "citations": [{"note_id": label, "quote": "revenue grew forty percent"}],
            }
            return {"blocks": [*current, invented], "change": "Added the revenue figures."}
        if "shorter" in said.lower():
            return {"blocks": current[:1], "change": "Kept the first paragraph only."}
        opening = {
            "kind": "paragraph",
            "text": f"Revised by “{said}”: {' '.join(text.split()[:8])}",
            "citations": [{"note_id": label, "quote": quote}],
        }
        return {"blocks": [opening, *current], "change": f"Opened as asked ({said})."}


@pytest.fixture
def model() -> RevisingModel:
    return RevisingModel()


@pytest.fixture
def llm(model: RevisingModel) -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        server.set_responder(model)
        yield server


@pytest.fixture
async def bot(
    telegram: FakeTelegram, llm: FakeOpenAI, start_bot: StartBot
) -> AsyncIterator[FakeTelegram]:
    async with start_bot(
        openai_base_url=llm.base_url,
        openai_api_key=llm.api_key,
        openai_model="fake-model",
        openai_timeout_seconds=5,
    ):
        await say(telegram, "/new Book club", "Book club")
        await say(telegram, "/outline\nReading list\nMeeting times\nSnacks", "Outline of")
        await say(telegram, "This article is about our little book club.", "Filed under")
        await say(telegram, "/section 3", "now go to")
        await say(telegram, "Everyone brings something small to share.", "Filed under")
        await say(telegram, "Please look up a recipe for lemon cake.", "Filed under")
        yield telegram


def section_message(telegram: FakeTelegram, title: str, after: int = 0) -> BotMessage:
    """The latest message that shows the section `title`."""
    return [
        m for m in telegram.sent_messages(WRITER)[after:] if m.text.startswith(f"<b>{title}</b>")
    ][-1]


def buttons(message: BotMessage) -> list[str]:
    markup = message.reply_markup or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


async def revise_by_reply(telegram: FakeTelegram, to: BotMessage, text: str) -> BotMessage:
    """Reply to a section's message; the revised section (with its buttons) comes back."""
    before = len(telegram.sent_messages(WRITER))
    telegram.send_text(WRITER, text, reply_to_message_id=to.message_id)
    await telegram.wait_for_text(WRITER, "✏️ Revised")
    return await telegram.wait_for(
        lambda: next(
            (m for m in telegram.sent_messages(WRITER)[before:] if buttons(m)),
            None,
        )
    )


async def export(telegram: FakeTelegram) -> str:
    before = len(telegram.sent_documents(WRITER))
    telegram.send_text(WRITER, "/export")
    await telegram.wait_for(lambda: len(telegram.sent_documents(WRITER)) > before)
    return documents(telegram)[-1][1]


async def test_typed_reply_revises_the_section_then_undo_and_keep(
    bot: FakeTelegram, model: RevisingModel
) -> None:
    await draft(bot)
    first = await export(bot)
    snacks = section_message(bot, "Snacks")
    assert "Drafted from N" in snacks.text

    revised = await revise_by_reply(bot, snacks, "open with the lemon cake")
    assert model.instructions == ["open with the lemon cake"]
    sent = [c.params.get("text", "") for c in bot.calls("sendMessage")]
    assert "✏️ Revising section 3…" in sent, "the status names the section replied to"
    assert revised.text.startswith("<b>Snacks</b>")
    assert "Revised by “open with the lemon cake”" in revised.text
    assert any(b.startswith("rvundo:") for b in buttons(revised))
    header = next(m for m in bot.sent_messages(WRITER) if m.text.startswith("✏️ Revised"))
    assert "<b>3. Snacks</b> (version 2)" in header.text
    assert "Opened as asked" in header.text, "one line on what changed"
    exported = await export(bot)
    assert "Revised by “open with the lemon cake”" in exported
    assert exported.count("## ") == 3 and "## Reading list" in exported
    assert "[^" in exported.split("## Snacks")[1], "the revised section keeps its footnotes"
    before = len(bot.sent_documents(WRITER))
    bot.send_text(WRITER, "/export html")
    await bot.wait_for(lambda: len(bot.sent_documents(WRITER)) > before)
    assert "open with the lemon cake" in documents(bot)[-1][1], "html: the current version too"

    history = await say(bot, "/history 3", "Versions")
    assert "3.1" in history and "drafted" in history
    assert "3.2" in history and "revised" in history and "open with the lemon cake" in history
    assert history.rstrip().endswith("← current")

    undo = next(b for b in buttons(revised) if b.startswith("rvundo:"))
    bot.send_callback(WRITER, undo, message_id=revised.message_id)
    await bot.wait_for_text(WRITER, "↩️ Undone")
    assert await export(bot) == first, "undo puts the text before the revision back"
    history = await say(bot, "/history 3", "Versions")
    assert "(undone)" in history and "3.3" in history and "undone back" in history
    bot.send_callback(WRITER, undo, message_id=revised.message_id)
    await bot.wait_for(
        lambda: any(
            "already undone" in c.params.get("text", "") for c in bot.calls("answerCallbackQuery")
        )
    )

    # A reply to the restored section revises it again; Keep takes the buttons away.
    restored = section_message(bot, "Snacks")
    again = await revise_by_reply(bot, restored, "make it shorter")
    assert "Look up" not in again.text.split("[^")[0], "shorter: only the first block"
    keep = next(b for b in buttons(again) if b.startswith("rvkeep:"))
    bot.send_callback(WRITER, keep, message_id=again.message_id)
    def kept() -> bool:
        shown = next(m for m in bot.sent_messages(WRITER) if m.message_id == again.message_id)
        return not buttons(shown)

    await bot.wait_for(kept)  # Keep takes the buttons away
    assert "Look up" not in (await export(bot)).split("## Snacks")[1].split("---")[0]


async def test_a_reply_to_another_message_is_a_note_as_before(bot: FakeTelegram) -> None:
    await draft(bot)
    outline = next(m for m in bot.sent_messages(WRITER) if m.text.startswith("Outline of"))
    before = len(bot.sent_messages(WRITER))
    bot.send_text(WRITER, "Bring napkins as well.", reply_to_message_id=outline.message_id)
    await bot.wait_for(
        lambda: any("Filed under" in m.text for m in bot.sent_messages(WRITER)[before:])
    )
    notes = await say(bot, "/sections", "Snacks")
    assert "3. Snacks — 3 notes" in notes
    # A section without notes has no text to revise: a reply to it is a note too.
    empty = section_message(bot, "Meeting times")
    assert "No notes for this section yet" in empty.text
    before = len(bot.sent_messages(WRITER))
    bot.send_text(WRITER, "We meet on Thursdays.", reply_to_message_id=empty.message_id)
    await bot.wait_for(
        lambda: any("Filed under" in m.text for m in bot.sent_messages(WRITER)[before:])
    )


async def test_revise_command_and_an_instruction_the_notes_do_not_support(
    bot: FakeTelegram,
) -> None:
    await draft(bot)
    reply = await say(bot, "/revise 3", "/revise")
    assert "instruction" in reply
    bot.send_text(WRITER, "/revise 3 add our revenue figures")
    header = await bot.wait_for_text(WRITER, "✏️ Revised")
    assert "<b>3. Snacks</b>" in header.text
    exported = await export(bot)
    assert INVENTED not in exported, "invented prose is never shown"
    assert "**TODO:** The notes do not support this part of your instruction" in exported
    assert "add our revenue figures" in exported
    shown = "\n".join(m.text for m in bot.sent_messages(WRITER))
    assert INVENTED not in shown


async def test_llm_failure_during_a_revision_changes_nothing(
    bot: FakeTelegram, llm: FakeOpenAI
) -> None:
    await draft(bot)
    good = await export(bot)
    llm.fail_next("server_error", times=3)
    before = len(bot.sent_messages(WRITER))
    bot.send_text(WRITER, "/revise 3 open with the lemon cake")
    failure = await bot.wait_for_text(WRITER, "The section is unchanged")
    assert failure.text.startswith("⚠️") and "500" not in failure.text
    assert "Error" not in failure.text and "Traceback" not in failure.text
    assert len(bot.sent_messages(WRITER)[before:]) == 1, "one message: the status, edited"
    assert await export(bot) == good
    history = await say(bot, "/history 3", "Versions")
    assert "3.1" in history and "3.2" not in history, "nothing half-written stored"


async def test_a_redraft_after_a_new_note_applies_the_kept_revisions_again(
    bot: FakeTelegram, model: RevisingModel
) -> None:
    await draft(bot)
    await revise_by_reply(bot, section_message(bot, "Snacks"), "open with the lemon cake")
    undone = await revise_by_reply(bot, section_message(bot, "Snacks"), "mention the tea")
    bot.send_callback(
        WRITER,
        next(b for b in buttons(undone) if b.startswith("rvundo:")),
        message_id=undone.message_id,
    )
    await bot.wait_for_text(WRITER, "↩️ Undone")
    await revise_by_reply(bot, section_message(bot, "Snacks"), "end with the napkins")
    await say(bot, "Anna bakes the best scones in town.", "Filed under")
    model.instructions.clear()

    summary = await draft(bot)
    assert "1 of 2 sections with notes redrafted" in summary
    assert "✏️ Applied your 2 revisions again to the redrafted sections" in summary
    assert model.instructions == [
        "open with the lemon cake",
        "end with the napkins",
    ], "the revisions not undone, in the order given"
    exported = await export(bot)
    snacks = exported.split("## Snacks")[1]
    assert snacks.index("Revised by “end with the napkins”") < snacks.index(
        "Revised by “open with the lemon cake”"
    ), "each applied to the text the one before left"
    assert "Anna bakes the best scones" in snacks, "the new note is drafted"
    assert "mention the tea" not in snacks
    history = await say(bot, "/history 3", "Versions")
    assert "3.8" in history and history.rstrip().endswith("← current")
    assert "3.9" not in history


async def test_todo_and_done_stay_ticked_in_later_drafts(bot: FakeTelegram) -> None:
    empty = await say(bot, "/todo", "TODO")
    assert "No TODOs" in empty
    await draft(bot)
    todos = await say(bot, "/todo", "TODOs")
    assert "⬜ 1. Look up what N" in todos and "<i>3. Snacks</i>" in todos
    done = await say(bot, "/done 1", "Done")
    assert "☑️" in done
    assert "**Done:** Look up what N" in await export(bot)
    assert "no TODO 7" in (await say(bot, "/done 7", "TODO 7"))

    await say(bot, "Anna bakes the best scones in town.", "Filed under")
    await draft(bot)
    todos = await say(bot, "/todo", "TODOs")
    assert "☑️ 1. Look up what N" in todos, "ticked in the later draft too"
    assert "**Done:** Look up what N" in await export(bot)


async def test_status_says_what_is_thin(bot: FakeTelegram) -> None:
    status = await say(bot, "/status", "where each section stands")
    assert "1. Reading list — 1 note, 8 word(s), not drafted" in status
    assert "notes but no draft" in status
    assert "2. Meeting times — 0 notes, 0 word(s), not drafted" in status
    assert "no notes yet" in status
    await draft(bot)
    status = await say(bot, "/status", "where each section stands")
    assert "3. Snacks — 2 notes, 14 word(s), drafted, 1 version(s), 1 open TODO(s)" in status
    assert "notes but no draft" not in status
    await say(bot, "Anna bakes the best scones in town.", "Filed under")
    status = await say(bot, "/status", "where each section stands")
    assert "3. Snacks — 3 notes" in status and "older than its notes" in status
    bot.send_text(WRITER, "/revise 3 open with the lemon cake")
    await bot.wait_for_text(WRITER, "✏️ Revised")
    status = await say(bot, "/status", "where each section stands")
    assert "older than its notes" in status, "a revision is no redraft of the new notes"
    await draft(bot)
    status = await say(bot, "/status", "where each section stands")
    assert "thin: the draft is older" not in status
    assert "3. Snacks — 3 notes, 21 word(s), drafted, 4 version(s)" in status


async def test_a_spoken_reply_is_an_instruction_never_a_note(
    bot: FakeTelegram, model: RevisingModel
) -> None:
    await draft(bot)
    snacks = section_message(bot, "Snacks")
    audio = (AUDIO / "book_club.ogg").read_bytes()
    bot.send_voice(
        WRITER,
        bot.add_file(audio),
        duration=5,
        file_size=len(audio),
        reply_to_message_id=snacks.message_id,
    )
    card = await bot.wait_for_text(WRITER, "Your instruction for")
    assert "3. Snacks" in card.text
    revised_header = await bot.wait_for_text(WRITER, "✏️ Revised")
    assert "🎙" in revised_header.text and "book club" in revised_header.text.lower()
    assert len(model.instructions) == 1 and "book club" in model.instructions[0].lower()
    exported = await export(bot)
    assert "Revised by “" in exported.split("## Snacks")[1]
    notes = await say(bot, "/sections", "Snacks")
    assert "3. Snacks — 2 notes" in notes, "the instruction was not filed as a note"
    assert "Filed under" not in card.text


async def test_with_separate_workers_the_bot_revises_what_a_worker_transcribed(
    telegram: FakeTelegram,
    llm: FakeOpenAI,
    start_bot: StartBot,
    model: RevisingModel,
    tmp_path: Path,
) -> None:
    """A `python -m bot worker` cannot wake the bot: the bot looks for transcribed spoken
    instructions itself. The worker here is the queue of another process, claiming and
    filing the voice note."""
    async with start_bot(
        openai_base_url=llm.base_url,
        openai_api_key=llm.api_key,
        openai_model="fake-model",
        openai_timeout_seconds=5,
        separate_workers=True,
    ):
        await say(telegram, "/new Book club", "Book club")
        await say(telegram, "Everyone brings something small to share.", "Filed under")
        await draft(telegram)
        shown = section_message(telegram, "Notes")
        telegram.send_voice(
            WRITER, "voice-1", duration=2, file_size=1000, reply_to_message_id=shown.message_id
        )
        await telegram.wait_for_text(WRITER, "Got it: an instruction for")

        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'bot.db'}")
        try:
            worker = NoteQueue(create_session_factory(engine), FAST)
            claim = await eventually(lambda: worker.claim("worker:elsewhere:1"))
            assert await worker.file(claim, "open with the snacks", language="en", audio_seconds=2)
        finally:
            await engine.dispose()
        header = await telegram.wait_for_text(WRITER, "✏️ Revised")
        assert "open with the snacks" in header.text
        assert model.instructions == ["open with the snacks"]


async def test_an_instruction_transcribed_before_a_restart_is_revised_after_it(
    telegram: FakeTelegram,
    llm: FakeOpenAI,
    start_bot: StartBot,
    model: RevisingModel,
    tmp_path: Path,
) -> None:
    settings = {
        "openai_base_url": llm.base_url,
        "openai_api_key": llm.api_key,
        "openai_model": "fake-model",
        "openai_timeout_seconds": 5,
    }
    async with start_bot(**settings):
        await say(telegram, "/new Book club", "Book club")
        await say(telegram, "Everyone brings something small to share.", "Filed under")
        await draft(telegram)
        shown = section_message(telegram, "Notes")
    # The bot stopped right after a worker filed the instruction, before revising it.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'bot.db'}")
    try:
        sessions = create_session_factory(engine)
        async with sessions.begin() as session:
            note = (await session.scalars(select(Note))).one()
            voice = Note(
                owner_id=WRITER,
                article_id=note.article_id,
                section_id=note.section_id,
                kind=NoteKind.VOICE,
                chat_id=WRITER,
                message_id=shown.message_id + 100,
                state=NoteState.FILED,
                transcript="open with the snacks",
            )
            session.add(voice)
            await session.flush()
            session.add(
                SpokenInstruction(note_id=voice.id, section_id=note.section_id, state="ready")
            )
    finally:
        await engine.dispose()
    async with start_bot(**settings):
        header = await telegram.wait_for_text(WRITER, "✏️ Revised")
        assert "open with the snacks" in header.text
    assert model.instructions == ["open with the snacks"]
