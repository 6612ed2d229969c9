"""Optional LLM routing: a section for notes that name none, and new spoken headings."""

from __future__ import annotations

from collections.abc import Sequence

from bot.llm.client import StructuredLLM
from bot.llm.prompts import Prompt, load_prompt
from bot.llm.schemas import NoteForDraft, RoutingAdvice
from bot.llm.usage import ROUTING
from bot.llm.writer import format_notes

ROUTE_PROMPT = "route_note"
ROUTE_VARIABLES = {"article_title", "outline"}
# Routing needs the gist, not every word of a long note.
MAX_NOTE_CHARS = 12_000
# The answer is a section number and a few spoken headings.
ROUTING_OUTPUT_TOKENS = 300


class LLMRouter:
    def __init__(self, llm: StructuredLLM) -> None:
        self._llm = llm
        self._prompt: Prompt = load_prompt(ROUTE_PROMPT, ROUTE_VARIABLES)

    async def advise(
        self, article_title: str, outline: Sequence[str], note: NoteForDraft
    ) -> RoutingAdvice:
        system = self._prompt.render(
            article_title=article_title,
            outline="\n".join(f"{n}. {t}" for n, t in enumerate(outline, start=1)),
        )
        shortened = NoteForDraft(note.label, note.created_at, note.kind, note.text[:MAX_NOTE_CHARS])
        return await self._llm.complete(
            system,
            format_notes([shortened]),
            RoutingAdvice,
            purpose=ROUTING,
            max_tokens=ROUTING_OUTPUT_TOKENS,
        )

    async def close(self) -> None:
        await self._llm.close()
