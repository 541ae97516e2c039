"""Step (iii), query construction and type assignment.

Each `<search>` of a chosen plan becomes one of the paper's three query types:

- **region** when it refers to one entity in the image ("the flag on the left", "the red car"):
  its referring expression is segmented (`segmentation.py`) and the crop is the query;
- **image** when it is about the image as a whole ("this flag", "the picture");
- **text** otherwise: the payload, written from the preceding text, is the query
  ("capital of {1}", placeholders filled from earlier searches).

`rule_query_type` decides from the payload's words; an LLM annotator asks its model and reads
the reply with `parse_query_type`. `referring_expression` picks the words a region search is
about (its BIO span in the trajectory).
"""

from __future__ import annotations

import re

from pixsearch.construct.plan import PLACEHOLDER, PlanSearch, PlanText, Step

QUERY_TYPES = ("region", "image", "text")

_HOLISTIC = re.compile(
    r"^(?:the |this |that )?(?:whole |entire )?(?:image|picture|photo|photograph|scene|view"
    r"|flag|outline|shape|object|thing|landmark|building|sign|logo|painting|product)"
    r"(?: (?:shown|pictured|in the (?:image|picture|photo)))?$|^this$|<image>", re.IGNORECASE)
# words that single out one entity among several (position, size, order, colour, relation)
_LOCATIVE = re.compile(
    r"\b(?:left|right|leftmost|rightmost|top|bottom|middle|centre|center|upper|lower|highest|"
    r"lowest|topmost|bottommost|furthest|largest|smallest|biggest|tiniest|tallest|front|behind|"
    r"hidden|back|next to|between|first|second|"
    r"third|last|red|green|blue|yellow|white|black|orange|purple|pink|brown|grey|gray)\b",
    re.IGNORECASE)
_DETERMINER = re.compile(r"^(?:the|this|that|these|those)\b", re.IGNORECASE)
_REPLY = re.compile(r"\b(region|image|text)\b", re.IGNORECASE)


def rule_query_type(payload: str) -> str:
    """"region", "image" or "text" for a search payload, from its words alone."""
    p = payload.strip().strip(".?")
    if p == "<region>":
        return "region"
    if PLACEHOLDER.search(p):
        return "text"  # it names what an earlier search found: a written query
    if _HOLISTIC.search(p):
        return "image"
    if _DETERMINER.match(p) and _LOCATIVE.search(p) and len(p.split()) <= 10:
        return "region"
    return "text"


def parse_query_type(reply: str) -> str | None:
    """The first of region / image / text named in an LLM reply, or None."""
    m = _REPLY.search(reply)
    return m.group(1).lower() if m else None


def referring_expression(steps: list[Step], i: int) -> str:
    """What region search `i` is about: its payload, or for a bare `<region>` payload the
    last phrase of the text before it ("The flag on the left" of "... The flag on the left")."""
    s = steps[i]
    assert isinstance(s, PlanSearch)
    if s.payload != "<region>":
        return s.payload.strip().rstrip(".?")
    before = steps[i - 1].text if i and isinstance(steps[i - 1], PlanText) else ""
    phrase = re.split(r"[.!?;:]\s+", before.strip())[-1].strip()
    return phrase.rstrip(".?")
