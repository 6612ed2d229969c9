"""A deterministic stand-in for a drafting LLM, served by FakeOpenAI over real HTTP.

It reads the notes out of the request exactly as the bot formats them and answers with a
schema-valid draft: one paragraph per note quoting its first words, an "introduction" block
for notes about "this article", a TODO for notes that ask the writer to "look up" something,
and, on demand, a citation to a note that does not exist or a quote the note never said.
Tests assert on what the bot does with that answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.openai_server import Call

NOTE = re.compile(r'<note id="(N\d+)" time="[^"]*" kind="\w+"[^>]*>\n(.*?)\n</note>', re.DOTALL)


@dataclass
class DraftingModel:
    """Call it with a request; it returns the assistant's JSON content as a dict."""

    cite_missing_note: bool = False
    invent_quote: bool = False
    # Quotes in other words than the note's, as real models often give: found nowhere, so
    # the citation check searches every note of the section for each of them.
    paraphrase_quotes: bool = False
    # The check pass: points to report as lost (note label, point; quoted with the note's
    # last words) and citations to reject.
    lost: list[tuple[str, str]] = field(default_factory=list)
    reject_citations_to: set[str] = field(default_factory=set)
    # A weak checker: quotes that are in no note, or restorations like "true".
    invent_check_quotes: bool = False
    junk_restorations: bool = False
    intro_text: str = "This article is about what the notes say it is about."
    seen: list[dict[str, str]] = field(default_factory=list)

    def __call__(self, call: Call) -> dict[str, Any]:
        user = call.messages[-1]["content"] if call.messages else ""
        if "That reply is not valid" in user:  # a repair request: answer properly this time
            user = next(m["content"] for m in call.messages if m["role"] == "user")
        notes = dict(NOTE.findall(user))
        self.seen.append(notes)
        system = call.messages[0]["content"] if call.messages else ""
        if "fact-checker" in system:
            return self._check(notes, user)
        blocks = []
        for label, text in notes.items():
            words = text.split()
            quote = " ".join(words[:4])
            if self.invent_quote:
                quote = "words nobody ever said at all"
            elif self.paraphrase_quotes:
                quote = " ".join(f"{w}ish" for w in reversed(words[:6]))
            blocks.append(
                {
                    "kind": "paragraph",
                    "text": f"Drafted from {label}: {' '.join(words[:8])}",
                    "citations": [{"note_id": label, "quote": quote}],
                }
            )
            if "this article" in text.lower():  # about the whole article: the introduction
                blocks.append(
                    {
                        "kind": "introduction",
                        "text": self.intro_text,
                        "citations": [{"note_id": label, "quote": " ".join(words[:3])}],
                    }
                )
            if "look up" in text.lower():
                blocks.append(
                    {
                        "kind": "todo",
                        "text": f"Look up what {label} asks for.",
                        "citations": [{"note_id": label, "quote": quote}],
                    }
                )
        if self.cite_missing_note and blocks:
            blocks[0]["citations"].append({"note_id": "N999999", "quote": "no such note"})
        return {"blocks": blocks}

    def _check(self, notes: dict[str, str], user: str) -> dict[str, Any]:
        cited = re.findall(r"^\[B(\d+)\] \(\w+; cites ([^)]*)\)", user, re.MULTILINE)
        verdicts = [
            {
                "block": int(block),
                "note_id": label,
                "supported": label not in self.reject_citations_to,
            }
            for block, labels in cited
            for label in labels.split(", ")
            if label != "nothing"
        ]
        points = []
        for label, text in notes.items():
            words = text.split()
            quote = (
                "a sentence that no note contains"
                if self.invent_check_quotes
                else " ".join(words[:4])
            )
            points.append(
                {
                    "note_id": label,
                    "quote": quote,
                    "point": "its opening",
                    "in_draft": True,
                    "restoration": "",
                }
            )
        for label, point in self.lost:
            if label not in notes:
                continue
            words = notes[label].split()
            quote = (
                "words the notes never had" if self.invent_check_quotes else " ".join(words[-4:])
            )
            restoration = "true" if self.junk_restorations else f"Restored: {point}."
            points.append(
                {
                    "note_id": label,
                    "quote": quote,
                    "point": point,
                    "in_draft": False,
                    "restoration": restoration,
                }
            )
        return {"points": points, "citations": verdicts}
