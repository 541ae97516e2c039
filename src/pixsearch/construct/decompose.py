"""Step (ii-a), decomposition: a question split into atomic sub-questions.

Each sub-question is marked as needing retrieval or not ("Which country's flag is on the
left? [search]", "Is it Peru? [no search]"); the candidate responses are written from the
question, these sub-questions and the gold answer. `parse_subquestions` reads an LLM's reply,
one "- sub-question [search]" line each; `format_subquestions` writes the same lines into the
next prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class SubQuestion:
    """An atomic sub-question.

    Attributes:
        text: the sub-question.
        needs_search: whether answering it needs retrieval.
    """

    text: str
    needs_search: bool


_LINE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*(.+?)\s*\[(no search|search)\]\s*$", re.IGNORECASE)


def parse_subquestions(reply: str, limit: int = 6) -> list[SubQuestion]:
    """The "- text [search]" / "- text [no search]" lines of an LLM reply (at most `limit`;
    other lines are ignored)."""
    out = []
    for line in reply.splitlines():
        m = _LINE.match(line)
        if m:
            out.append(SubQuestion(m.group(1), m.group(2).lower() == "search"))
        if len(out) == limit:
            break
    return out


def format_subquestions(subs: list[SubQuestion]) -> str:
    """Sub-questions as the lines `parse_subquestions` reads ("(none)" when empty)."""
    if not subs:
        return "(none)"
    return "\n".join(f"- {s.text} [{'search' if s.needs_search else 'no search'}]" for s in subs)
