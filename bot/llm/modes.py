"""How structured output is asked of an endpoint, and where what worked is remembered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

OPENAI_DEFAULT_ENDPOINT = "https://api.openai.com/v1"


def endpoint_key(base_url: str | None) -> str:
    """How an endpoint is named where its capabilities are remembered."""
    return (base_url or OPENAI_DEFAULT_ENDPOINT).strip().rstrip("/")


class OutputMode(StrEnum):
    """How structured output is asked for, best first."""

    JSON_SCHEMA = "json_schema"  # response_format json_schema, strict
    JSON_OBJECT_SCHEMA = "json_object+schema"  # JSON mode with the schema attached
    JSON_OBJECT = "json_object"  # JSON mode, the schema only in the prompt
    PROMPT = "prompt"  # no response_format: the schema in the prompt, JSON read from text

    @property
    def fallback(self) -> OutputMode | None:
        order = list(OutputMode)
        index = order.index(self)
        return order[index + 1] if index + 1 < len(order) else None

    @property
    def schema_in_prompt(self) -> bool:
        return self is not OutputMode.JSON_SCHEMA


@dataclass(frozen=True)
class Negotiated:
    """What an endpoint and model were found to accept."""

    output_mode: OutputMode
    streaming: bool
    negotiated_at: datetime | None = None


class EndpointMemory(Protocol):
    """Where negotiated capabilities are kept between runs (the database, in the bot)."""

    async def recall(self, endpoint: str, model: str) -> Negotiated | None: ...

    async def remember(self, endpoint: str, model: str, negotiated: Negotiated) -> None: ...


def describe(negotiated: Negotiated) -> str:
    streamed = "streamed" if negotiated.streaming else "not streamed"
    return f"{negotiated.output_mode.value}, {streamed}"
