"""/usage: audio transcribed and LLM tokens, stored per writer and shown for this month."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from faster_whisper import decode_audio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import UserError
from bot.drafting.service import DraftService
from bot.notes.intake import IntakeService
from bot.services.outline import OutlineService
from bot.services.usage import UsageService, month_bounds
from tests.conftest import AUDIO, StartBot
from tests.fakes.drafting_model import DraftingModel
from tests.fakes.openai_server import Call, FakeOpenAI
from tests.fakes.telegram_server import FakeTelegram
from tests.test_chat_e2e import WRITER, say
from tests.test_drafting import make_writer

OTHER_WRITER = 2002


@pytest.fixture
def llm_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        server.set_responder(DraftingModel())
        yield server


async def two_sections_with_notes(sessions: async_sessionmaker[AsyncSession]) -> None:
    outline, intake = OutlineService(sessions), IntakeService(sessions)
    await outline.new_article(WRITER, WRITER, "Book club")
    await outline.set_outline(WRITER, WRITER, ["Reading list", "Snacks"])
    await intake.receive_text(WRITER, WRITER, 1, "We read one novel a month, voted in advance.")
    await outline.choose_section_by_number(WRITER, 2)
    await intake.receive_text(WRITER, WRITER, 2, "Everyone brings something small to share.")


def test_month_bounds_are_the_utc_calendar_month() -> None:
    start, end = month_bounds(datetime(2026, 12, 31, 23, 30, tzinfo=UTC))
    assert (start, end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    # 00:30 on 1 March in Moscow is still February in UTC.
    moscow = timezone(timedelta(hours=3))
    start, end = month_bounds(datetime(2026, 3, 1, 0, 30, tzinfo=moscow))
    assert (start, end) == (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))


async def test_drafting_records_the_tokens_the_endpoint_reports_per_kind(
    sessions: async_sessionmaker[AsyncSession], llm_server: FakeOpenAI
) -> None:
    await two_sections_with_notes(sessions)
    writer = make_writer(llm_server)
    try:
        await DraftService(sessions, writer).draft(WRITER)
    finally:
        await writer.close()

    usage = UsageService(sessions)
    summary = await usage.this_month(WRITER)
    calls = llm_server.completions()
    assert [(u.purpose, u.model) for u in summary.llm] == [
        ("drafting", "fake-model"),
        ("checking", "fake-model"),
    ]
    assert sum(u.requests for u in summary.llm) == len(calls)
    checking = summary.llm[1]
    assert checking.requests == 2, "one check per drafted section"
    # The fake server reports prompt_tokens = its own estimate of the request.
    assert summary.input_tokens == sum(c.approx_tokens for c in calls)
    assert summary.output_tokens > 0 and not summary.estimated
    assert summary.notes_transcribed == 0 and summary.audio_seconds == 0

    assert (await usage.this_month(OTHER_WRITER)).llm == [], "scoped by writer"
    next_month = datetime.now(UTC) + timedelta(days=32)
    assert (await usage.this_month(WRITER, now=next_month)).llm == []
    last_month = datetime.now(UTC).replace(day=1) - timedelta(days=1)
    assert (await usage.this_month(WRITER, now=last_month)).llm == []

    # Nothing changed: the stored draft is reused and no tokens are spent.
    writer = make_writer(llm_server)
    try:
        await DraftService(sessions, writer).draft(WRITER)
    finally:
        await writer.close()
    assert (await usage.this_month(WRITER)).input_tokens == summary.input_tokens


async def test_tokens_are_estimated_when_the_endpoint_reports_none(
    sessions: async_sessionmaker[AsyncSession], llm_server: FakeOpenAI
) -> None:
    llm_server.report_usage = False
    await two_sections_with_notes(sessions)
    writer = make_writer(llm_server)
    try:
        await DraftService(sessions, writer, check=False).draft(WRITER)
    finally:
        await writer.close()
    summary = await UsageService(sessions).this_month(WRITER)
    assert [u.purpose for u in summary.llm] == ["drafting"]
    assert summary.estimated and summary.llm[0].estimated
    assert summary.input_tokens > 0 and summary.output_tokens > 0


async def test_tokens_spent_before_a_failed_draft_are_still_recorded(
    sessions: async_sessionmaker[AsyncSession], llm_server: FakeOpenAI
) -> None:
    drafting = DraftingModel()
    answered: list[Call] = []

    def fails_after_the_first(call: Call) -> dict[str, Any]:
        if answered:
            raise RuntimeError("the model fell over")
        answered.append(call)
        return drafting(call)

    llm_server.set_responder(fails_after_the_first)
    await two_sections_with_notes(sessions)
    writer = make_writer(llm_server, retries=0)
    try:
        with pytest.raises(UserError):
            await DraftService(sessions, writer, check=False).draft(WRITER)
    finally:
        await writer.close()
    summary = await UsageService(sessions).this_month(WRITER)
    assert [(u.purpose, u.requests) for u in summary.llm] == [("drafting", 1)]
    assert summary.input_tokens == answered[0].approx_tokens


@pytest.fixture
async def bot(
    telegram: FakeTelegram, llm_server: FakeOpenAI, start_bot: StartBot
) -> AsyncIterator[FakeTelegram]:
    async with start_bot(
        openai_base_url=llm_server.base_url,
        openai_api_key=llm_server.api_key,
        openai_model="fake-model",
        openai_timeout_seconds=5,
    ):
        yield telegram


async def test_usage_command_shows_audio_minutes_and_tokens_of_this_month(
    bot: FakeTelegram,
) -> None:
    telegram = bot
    month = datetime.now(UTC).strftime("%B %Y")
    empty = await say(telegram, "/usage", "Usage in")
    assert f"Usage in {month}" in empty and "Nothing transcribed or drafted yet" in empty

    await say(telegram, "/new Book club", "Book club")
    audio = AUDIO / "book_club.ogg"
    data = audio.read_bytes()
    telegram.send_voice(WRITER, telegram.add_file(data), duration=5, file_size=len(data))
    await telegram.wait_for_text(WRITER, "Filed under", timeout=60)
    await say(telegram, "/draft", "Draft ready")

    reply = await say(telegram, "/usage", "Usage in")
    seconds = len(decode_audio(str(audio))) / 16000
    assert f"Audio transcribed: {seconds / 60:.1f} min in 1 recording" in reply
    assert re.search(r"LLM tokens: [\d,]+ in, [\d,]+ out", reply)
    assert re.search(r"drafting \(fake-model\): [\d,]+ in, [\d,]+ out, 1 request\b", reply), (
        "one section; the introduction is taken from the section drafts, no request of its own"
    )
    assert "checking (fake-model)" in reply and "≈" not in reply
