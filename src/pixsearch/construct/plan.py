"""A candidate response: the search-interleaved answer an annotator writes before retrieval.

A plan is the paper's display format with two differences, because it is written before any
search has run: a search's payload is free text (what to look for — query construction later
makes it a `<region>`, `<image>` or text query), and facts only retrieval can tell are
placeholders: `{k}` is "the entity that search k found" (filled from what search k really
returns, `execute.py`). No `<information>` block is written by hand.

    The flag on the left <search>the flag on the left</search> is the flag of {1}.
    <search>capital of {1}</search> The capital of {1} is Lima.

`parse_plan` reads that string into typed steps (raising `PlanError` on a malformed one) and
`plan_problems` lists what the self-refinement pass holds against a candidate: searches where
knowledge is needed and none where it is not, a final sentence that says the gold answer, no
query that gives the answer away, placeholders that name earlier searches only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from pixsearch.construct.support import is_abstention, mentions, mentions_any, normalize

PLACEHOLDER = re.compile(r"\{(\d+)\}")
_TAG = re.compile(r"</?search>|</?information>")
PAYLOAD_TAGS = {"<region>": "region", "<image>": "image"}


class PlanError(ValueError):
    """A candidate response that is not a well-formed plan."""


@dataclass(frozen=True)
class PlanText:
    """Answer text (may hold placeholders `{k}`)."""

    text: str


@dataclass(frozen=True)
class PlanSearch:
    """A search of the plan.

    Attributes:
        payload: what the annotator wrote between the tags (free text, `<region>` or `<image>`).
        type: query type once assigned: "region", "image" or "text" ("" = not yet).
        refexp: the referring expression a region query segments.
    """

    payload: str
    type: str = ""
    refexp: str = ""


Step = PlanText | PlanSearch


def parse_plan(text: str) -> list[Step]:
    """Typed steps of a candidate response (PlanError when tags are unpaired, nested, or an
    `<information>` block was written, or a placeholder names no earlier search)."""
    steps: list[Step] = []
    pos, opened = 0, None
    for m in _TAG.finditer(text):
        tag = m.group(0)
        if "information" in tag:
            raise PlanError("a plan must not write <information> blocks (retrieval does)")
        if tag == "<search>":
            if opened is not None:
                raise PlanError(f"nested <search> at {m.start()}")
            if text[pos:m.start()].strip():
                steps.append(PlanText(text[pos:m.start()]))
            opened = m.end()
        else:
            if opened is None:
                raise PlanError(f"</search> without <search> at {m.start()}")
            payload = text[opened:m.start()].strip()
            if not payload:
                raise PlanError("empty search payload")
            steps.append(PlanSearch(payload, PAYLOAD_TAGS.get(payload, "")))
            opened = None
        pos = m.end()
    if opened is not None:
        raise PlanError("unclosed <search>")
    if text[pos:].strip():
        steps.append(PlanText(text[pos:]))
    if not steps:
        raise PlanError("empty response")
    _check_placeholders(steps)
    return steps


def _check_placeholders(steps: list[Step]) -> None:
    n = 0
    for s in steps:
        body = s.text if isinstance(s, PlanText) else s.payload
        for k in PLACEHOLDER.findall(body):
            if not 1 <= int(k) <= n:
                raise PlanError(f"placeholder {{{k}}} names no earlier search")
        n += isinstance(s, PlanSearch)


def searches(steps: list[Step]) -> list[PlanSearch]:
    """The plan's searches, in order."""
    return [s for s in steps if isinstance(s, PlanSearch)]


def with_types(steps: list[Step], types: list[tuple[str, str]]) -> list[Step]:
    """`steps` with (type, refexp) assigned to each search in order."""
    it = iter(types)
    out = []
    for s in steps:
        if isinstance(s, PlanSearch):
            kind, ref = next(it)
            s = replace(s, type=kind, refexp=ref)
        out.append(s)
    return out


def preceding_text(steps: list[Step], i: int) -> str:
    """The answer text written before step `i` (what a text query is written from)."""
    return " ".join(s.text.strip() for s in steps[:i] if isinstance(s, PlanText))


def final_text(steps: list[Step]) -> str:
    """The text after the last search (where the answer is said)."""
    out: list[str] = []
    for s in steps:
        out = [] if isinstance(s, PlanSearch) else [*out, s.text]
    return " ".join(out).strip()


def to_text(steps: list[Step]) -> str:
    """The plan as a candidate-response string (the inverse of `parse_plan`)."""
    return " ".join(s.text.strip() if isinstance(s, PlanText) else f"<search>{s.payload}</search>"
                    for s in steps).strip()


def plan_problems(steps: list[Step], answers: list[str], needs_search: bool,
                  max_searches: int) -> list[str]:
    """What the self-refinement pass holds against a plan (empty: it passes every check)."""
    problems = []
    n = len(searches(steps))
    if needs_search and n == 0:
        problems.append("no search although the question needs knowledge")
    if not needs_search and n > 0:
        problems.append("searches although the question needs no knowledge")
    if n > max_searches:
        problems.append(f"{n} searches, more than {max_searches}")
    final = final_text(steps)
    gold = answers[0]
    if is_abstention(gold):
        if not mentions(final, gold):
            problems.append("the final sentence does not abstain")
    elif mentions_any(PLACEHOLDER.sub(" ", final), answers) is None and not \
            _answer_may_be_placeholder(final):
        problems.append("the final sentence does not say the gold answer")
    for s in searches(steps):
        if s.type == "" and any(normalize(a) and mentions(s.payload, a) for a in answers
                                if not is_abstention(a) and len(normalize(a)) > 3):
            problems.append(f"the query {s.payload!r} gives the answer away")
    return problems


def _answer_may_be_placeholder(final: str) -> bool:
    """An identification answer is the entity a search found, said last: "… is the flag of
    {1}." (the executor checks it against the gold answer once {1} is filled)."""
    return bool(_ENDS_WITH_PLACEHOLDER.search(final))


_ENDS_WITH_PLACEHOLDER = re.compile(r"\{\d+\}\W*$")
