"""Prompts are files in prompts/, checked at start-up; a prompt's hash is its version."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"
_PLACEHOLDER = re.compile(r"{{\s*(\w+)\s*}}")


class PromptError(Exception):
    """A prompt file is missing or does not match what the code passes to it."""


@dataclass(frozen=True)
class Prompt:
    name: str
    text: str
    variables: frozenset[str]
    version: str  # first 12 hex digits of the file's sha256

    def render(self, **values: str) -> str:
        given = set(values)
        if given != self.variables:
            raise PromptError(
                f"prompt {self.name}: expected variables {sorted(self.variables)}, "
                f"got {sorted(given)}"
            )
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.text)


def load_prompt(name: str, expected_variables: set[str], directory: Path = PROMPTS_DIR) -> Prompt:
    """Load prompts/<name>.md and check its declared and used variables against the code's."""
    path = directory / f"{name}.md"
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PromptError(f"prompt file {path} cannot be read: {exc.strerror}") from None
    match = re.match(r"^---\n(.*?)\n---\n(.*)$", raw, re.DOTALL)
    if not match:
        raise PromptError(f"prompt {name}: missing the '---' header naming its variables")
    header, body = match.groups()
    declared_line = re.search(r"^variables:(.*)$", header, re.MULTILINE)
    declared = {
        v.strip() for v in (declared_line.group(1) if declared_line else "").split(",") if v.strip()
    }
    used = set(_PLACEHOLDER.findall(body))
    problems = []
    if declared != expected_variables:
        problems.append(
            f"declares {sorted(declared)} but the code passes {sorted(expected_variables)}"
        )
    if used - declared:
        problems.append(f"uses undeclared {sorted(used - declared)}")
    if declared - used:
        problems.append(f"never uses {sorted(declared - used)}")
    if problems:
        raise PromptError(f"prompt {name}: " + "; ".join(problems))
    version = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:12]
    return Prompt(name=name, text=body.strip(), variables=frozenset(declared), version=version)
