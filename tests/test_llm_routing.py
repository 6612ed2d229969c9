"""The optional LLM routing step (LLM_ROUTING): section advice and new spoken headings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AUDIO, StartBot
from tests.fakes.openai_server import Call, FakeOpenAI
from tests.fakes.telegram_server import FakeTelegram
from tests.test_chat_e2e import WRITER, notes_in_db, say
from tests.test_notes_e2e import buttons, press


class RoutingModel:
    """Answers RoutingAdvice requests with what the test sets; records what it was sent."""

    def __init__(self) -> None:
        self.section_number: int | None = None
        self.new_headings: list[str] = []
        self.requests: list[Call] = []

    def __call__(self, call: Call) -> dict[str, Any]:
        self.requests.append(call)
        return {"section_number": self.section_number, "new_headings": self.new_headings}


@pytest.fixture
def llm() -> Iterator[tuple[FakeOpenAI, RoutingModel]]:
    model = RoutingModel()
    with FakeOpenAI() as server:
        server.on_schema("RoutingAdvice", model)
        yield server, model


def llm_settings(llm: FakeOpenAI, routing: bool) -> dict[str, Any]:
    return {
        "openai_base_url": llm.base_url,
        "openai_api_key": llm.api_key,
        "openai_model": "fake-model",
        "llm_routing": routing,
    }


@pytest.fixture
async def bot(
    telegram: FakeTelegram, llm: tuple[FakeOpenAI, RoutingModel], start_bot: StartBot
) -> AsyncIterator[FakeTelegram]:
    async with start_bot(**llm_settings(llm[0], routing=True)):
        await say(telegram, "/new Book club", "Book club")
        await say(telegram, "/outline\nReading list\nMeeting times", "Outline of")
        yield telegram


async def voice(telegram: FakeTelegram, name: str, duration: int) -> Any:
    data = (AUDIO / name).read_bytes()
    telegram.send_voice(WRITER, telegram.add_file(data), duration=duration, file_size=len(data))
    return await telegram.wait_for_text(WRITER, "✅", timeout=60)


async def test_a_note_naming_no_section_is_filed_where_the_llm_advises(
    bot: FakeTelegram, llm: tuple[FakeOpenAI, RoutingModel]
) -> None:
    _, model = llm
    model.section_number = 2
    done = await voice(bot, "book_club.ogg", 5)
    assert "Filed under <b>2. Meeting times</b>" in done.text  # section 1 was active
    [request] = model.requests
    assert "1. Reading list\n2. Meeting times" in request.messages[0]["content"]
    assert "book club meets" in request.messages[-1]["content"].lower()
    usage = await say(bot, "/usage", "Usage in")
    assert "routing (fake-model)" in usage and "1 request" in usage, "routing tokens count"
    assert "in 1 recording" in usage


async def test_a_new_spoken_heading_is_offered_and_accepted_with_one_button(
    bot: FakeTelegram, llm: tuple[FakeOpenAI, RoutingModel], tmp_path: Path
) -> None:
    _, model = llm
    # sections_spoken.ogg: "... Next, meeting times. ... Next, snack and drinks. Everyone ..."
    model.new_headings = ["3) snack and drinks.", "Meeting times", "A heading never spoken"]
    done = await voice(bot, "sections_spoken.ogg", 14)
    assert "You also spoke “snack and drinks”" in done.text
    # The writer moves part 2 ("We meet every second Thursday…") to section 1 first.
    await press(bot, done, "Move part 2")
    prompt = await bot.wait_for_text(WRITER, "to which section?")
    await press(bot, prompt, "1. Reading list")
    await bot.wait_for_text(WRITER, "Moved")
    labels = [label for label, _ in buttons(done)]
    assert labels[-1] == "➕ Add section “snack and drinks”"
    assert not any("never spoken" in label or "Add section “Meeting" in label for label in labels)

    await press(bot, done, "➕ Add section")
    added = await bot.wait_for_text(WRITER, "to the outline")
    assert "<b>3. snack and drinks</b>" in added.text
    sections = await say(bot, "/sections", "Reading list")
    assert "3. snack and drinks — 1 note" in sections
    [note] = await notes_in_db(tmp_path)
    assert note.parts[-1].text.startswith("Everyone brings something small")
    moved = next(p for p in note.parts if p.text.startswith("We meet every second"))
    assert "snack" not in moved.text.lower(), "only the text after the heading moved"
    assert "1. Reading list — 1 note" in sections, "the writer's own move was kept"
    # The button works once.
    await press(bot, done, "➕ Add section")
    answer = await bot.wait_for(
        lambda: [
            c
            for c in bot.calls("answerCallbackQuery")
            if "already used" in c.params.get("text", "")
        ]
    )
    assert answer


async def test_routing_failure_falls_back_to_spoken_titles(
    bot: FakeTelegram, llm: tuple[FakeOpenAI, RoutingModel]
) -> None:
    server, _ = llm
    server.fail_next("quota")
    done = await voice(bot, "book_club.ogg", 5)
    assert "Filed under <b>1. Reading list</b>" in done.text


async def test_routing_is_off_by_default(
    telegram: FakeTelegram, llm: tuple[FakeOpenAI, RoutingModel], start_bot: StartBot
) -> None:
    server, _ = llm
    settings = llm_settings(server, routing=False)
    del settings["llm_routing"]  # the default, not an explicit False
    async with start_bot(**settings):
        await voice(telegram, "book_club.ogg", 5)
    assert server.calls == []
