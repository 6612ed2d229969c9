"""The loop detector that cuts a streamed answer short: loops are caught early, real drafts
(long, with similar blocks and repeated citations) never are."""

from __future__ import annotations

import json

from bot.llm.repetition import RepetitionGuard


def feed(text: str, step: int = 7) -> tuple[bool, int]:
    """(tripped, characters read when it tripped) feeding `text` in small pieces."""
    guard = RepetitionGuard()
    for start in range(0, len(text), step):
        if guard.feed(text[start : start + step]):
            return True, start + step
    return False, len(text)


def test_a_long_varied_draft_is_never_cut() -> None:
    blocks = [
        {
            "kind": "todo" if i % 5 == 0 else "paragraph",
            "text": f"In step {i} we moved the {['orders', 'billing', 'events'][i % 3]} pipeline "
            f"to the warehouse, and the analysts got their dashboards {i} days sooner.",
            "citations": [{"note_id": "N12", "quote": "we moved the pipeline"}],
        }
        for i in range(120)
    ]
    tripped, _ = feed(json.dumps({"blocks": blocks}, ensure_ascii=False, indent=2))
    assert not tripped


def test_one_block_over_and_over_is_cut_within_a_few_copies() -> None:
    block = json.dumps(
        {"kind": "paragraph", "text": "A data engineer prepares data.", "citations": []}
    )
    looping = '{"blocks": [' + ", ".join([block] * 300)
    tripped, at = feed(looping)
    assert tripped and at < len(block) * 6


def test_a_flood_of_whitespace_is_cut() -> None:
    tripped, at = feed('{"blocks": [' + " \n" * 5000)
    assert tripped and at < 500


def test_a_phrase_looping_inside_one_text_is_cut() -> None:
    tripped, at = feed('{"blocks": [{"kind": "paragraph", "text": "' + "and then we " * 2000)
    assert tripped and at < 1000
