"""What each LLM endpoint and model accept, kept in the database between runs."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.repository import EndpointQueries
from bot.llm.modes import Negotiated, OutputMode


class DatabaseEndpointMemory:
    """The EndpointMemory of the bot: one row per endpoint and model."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def recall(self, endpoint: str, model: str) -> Negotiated | None:
        async with self._sessions.begin() as session:
            row = await EndpointQueries(session).get(endpoint, model)
            if row is None:
                return None
            try:
                mode = OutputMode(row.output_mode)
            except ValueError:  # written by a newer version: negotiate again
                return None
            return Negotiated(mode, row.streaming, row.negotiated_at)

    async def remember(self, endpoint: str, model: str, negotiated: Negotiated) -> None:
        async with self._sessions.begin() as session:
            await EndpointQueries(session).remember(
                endpoint, model, negotiated.output_mode.value, negotiated.streaming
            )
