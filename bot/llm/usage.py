"""Token usage of LLM requests, reported upward to whoever is metering the current task.

One StructuredLLM serves every writer, so the client cannot know whose request it sends. The
service that starts the work opens a meter (`with metered() as meter:`); every request made
inside it, in this task or in tasks it starts, adds its usage to that meter, and the service
stores the records for its writer. Requests made outside any meter are simply not counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

DRAFTING = "drafting"
CHECKING = "checking"
ROUTING = "routing"


def estimate_tokens(text: str) -> int:
    """A conservative token estimate that needs no tokenizer download.

    BPE tokenizers average about 4 characters a token in English and 2.5 to 3 in Russian;
    counting a token per 3 characters (or 1.4 per word, if higher) errs on the safe side.
    """
    return math.ceil(max(len(text) / 3.0, len(text.split()) * 1.4))


@dataclass(frozen=True)
class TokenUsage:
    purpose: str  # DRAFTING, CHECKING or ROUTING
    model: str
    input_tokens: int
    output_tokens: int
    estimated: bool  # the endpoint reported no usage; the figures are our estimate


@dataclass
class UsageMeter:
    records: list[TokenUsage] = field(default_factory=list)

    def add(self, usage: TokenUsage) -> None:
        self.records.append(usage)


_current: ContextVar[UsageMeter | None] = ContextVar("llm_usage_meter", default=None)


@contextmanager
def metered() -> Iterator[UsageMeter]:
    """Collect the usage of every LLM request made inside the block."""
    meter = UsageMeter()
    token = _current.set(meter)
    try:
        yield meter
    finally:
        _current.reset(token)


def report(usage: TokenUsage) -> None:
    """Called by the client after each answered request."""
    meter = _current.get()
    if meter is not None:
        meter.add(usage)
