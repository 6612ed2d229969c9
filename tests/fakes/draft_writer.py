"""An in-process draft writer for fast service tests: a `history` of what it was asked and
queues of answers, beside the real-HTTP tests that go through the OpenAI client.

Unqueued, it drafts one paragraph per source quoting the source's first words, and its check
pass reports each source's opening as a point the draft kept.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.drafting.model import (
    Block,
    CheckReport,
    Citation,
    CitationVerdict,
    ClaimedPoint,
    Source,
    WrittenSection,
)


@dataclass
class Asked:
    task: str  # "draft" or "check"
    section_title: str
    sources: list[Source]
    glossary: list[str] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)


@dataclass
class FakeDraftWriter:
    model: str = "fake-writer"
    language: str = "English"
    section_version: str = "v1"
    check_version: str = "c1"
    history: list[Asked] = field(default_factory=list)
    drafts: deque[WrittenSection] = field(default_factory=deque)
    checks: deque[CheckReport] = field(default_factory=deque)

    def queue_draft(self, *blocks: Block, answers: int = 1, cut_off: bool = False) -> None:
        self.drafts.append(WrittenSection(list(blocks), answers, cut_off))

    def queue_check(
        self,
        points: Sequence[ClaimedPoint] = (),
        verdicts: Sequence[CitationVerdict] = (),
    ) -> None:
        self.checks.append(CheckReport(points=list(points), verdicts=list(verdicts)))

    async def draft_section(
        self,
        article_title: str,
        outline: Sequence[str],
        section_title: str,
        sources: Sequence[Source],
        glossary: Sequence[str] = (),
    ) -> WrittenSection:
        self.history.append(Asked("draft", section_title, list(sources), list(glossary)))
        if self.drafts:
            return self.drafts.popleft()
        blocks = [
            Block(
                kind="paragraph",
                text=f"From {s.label}: {' '.join(s.text.split()[:8])}",
                citations=(Citation(part_id=s.part_ids[0], quote=" ".join(s.text.split()[:4])),),
            )
            for s in sources
        ]
        return WrittenSection(blocks)

    async def check_section(
        self, section_title: str, sources: Sequence[Source], blocks: Sequence[Block]
    ) -> CheckReport:
        self.history.append(Asked("check", section_title, list(sources), blocks=list(blocks)))
        if self.checks:
            return self.checks.popleft()
        points = [
            ClaimedPoint(s.part_ids[0], " ".join(s.text.split()[:4]), "its opening", True)
            for s in sources
        ]
        return CheckReport(points=points, verdicts=[])

    def asked(self, task: str) -> list[Asked]:
        return [a for a in self.history if a.task == task]
