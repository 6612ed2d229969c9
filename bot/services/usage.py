"""/usage: audio minutes transcribed and LLM tokens spent by a writer this calendar month."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import UsageKind
from bot.db.repository import Repository
from bot.llm.usage import TokenUsage, metered

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LLMUsage:
    purpose: str  # drafting, checking or routing
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    estimated: bool  # some of these requests came back without token counts


@dataclass(frozen=True)
class UsageSummary:
    month_start: datetime  # first instant of the month, UTC
    audio_seconds: float
    notes_transcribed: int
    llm: list[LLMUsage]

    @property
    def input_tokens(self) -> int:
        return sum(line.input_tokens for line in self.llm)

    @property
    def output_tokens(self) -> int:
        return sum(line.output_tokens for line in self.llm)

    @property
    def estimated(self) -> bool:
        return any(line.estimated for line in self.llm)


def month_bounds(moment: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) holding `moment`, as [start, end)."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if start.month == 12:
        return start, start.replace(year=start.year + 1, month=1)
    return start, start.replace(month=start.month + 1)


async def record_llm_usage(
    sessions: async_sessionmaker[AsyncSession], owner_id: int, records: Sequence[TokenUsage]
) -> None:
    """Store what LLM requests spent for a writer; never fails the work that spent it."""
    if not records:
        return
    try:
        async with sessions.begin() as session:
            repo = Repository(session, owner_id)
            await repo.users.ensure()
            for usage in records:
                await repo.usage.add(
                    UsageKind(usage.purpose),
                    model=usage.model,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    estimated=usage.estimated,
                )
    except Exception:
        # Bookkeeping: a draft that succeeded must not be reported as failed because of it.
        log.warning("Could not store LLM usage for user %s", owner_id, exc_info=True)


@contextlib.asynccontextmanager
async def llm_usage_recorded(
    sessions: async_sessionmaker[AsyncSession], owner_id: int
) -> AsyncIterator[None]:
    """Meter every LLM request made inside the block and store it for the writer, also when
    the block fails halfway (the tokens were spent all the same)."""
    with metered() as meter:
        try:
            yield
        finally:
            await record_llm_usage(sessions, owner_id, meter.records)


class UsageService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def this_month(self, owner_id: int, now: datetime | None = None) -> UsageSummary:
        start, end = month_bounds(now or datetime.now(UTC))
        async with self._sessions.begin() as session:
            rows = await Repository(session, owner_id).usage.totals(start, end)
        audio_seconds, notes = 0.0, 0
        merged: dict[tuple[str, str], LLMUsage] = {}
        for kind, model, estimated, count, seconds, input_tokens, output_tokens in rows:
            if kind == UsageKind.TRANSCRIPTION:
                audio_seconds += seconds
                notes += count
                continue
            key = (kind.value, model)
            before = merged.get(key)
            if before is not None:  # the same purpose and model, counted and estimated
                count += before.requests
                input_tokens += before.input_tokens
                output_tokens += before.output_tokens
                estimated = estimated or before.estimated
            merged[key] = LLMUsage(kind.value, model, count, input_tokens, output_tokens, estimated)
        order = [k.value for k in UsageKind]
        llm = sorted(merged.values(), key=lambda u: (order.index(u.purpose), u.model))
        return UsageSummary(start, audio_seconds, notes, llm)
