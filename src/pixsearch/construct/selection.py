"""Step (i), question selection: the paper's ten question types and whether retrieval helps.

The paper classifies each visual question into ten types (App. C) and keeps for Stage 2 the
ones whose answer needs knowledge from outside the image. `Selection` is what an annotator
(`rule.py`, `llm_annotator.py`) decides; `parse_selection` reads an LLM's reply
("type: factoid" / "retrieval: yes"). `WORLD_TYPES` maps the benchmark world's own labels onto
the ten, so constructed decisions can be compared with the world's gold ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

QUESTION_TYPES: tuple[str, ...] = (
    "ocr_read",               # read text in the image
    "ocr_reasoning",          # read text, then reason over it (prices, dates, sums)
    "multi_hop",              # chain several facts from outside the image
    "entity_identification",  # which entity (landmark, product, species, flag) is shown
    "attribute",              # a visible property (colour, shape, material)
    "counting",               # how many things are visible
    "binary",                 # a yes/no question
    "social_commonsense",     # people's behaviour, norms, intentions
    "physical_commonsense",   # how the physical world works (safety, use of objects)
    "factoid",                # one fact about an entity (capital, height, year, price)
)
# types whose answers, by default, need knowledge the image does not hold
RETRIEVAL_TYPES = frozenset({"multi_hop", "entity_identification", "factoid"})

# the benchmark world's `question_type` labels → the paper's (for agreement measurements)
WORLD_TYPES: dict[str, str] = {
    "identification": "entity_identification", "factoid": "factoid", "multi_hop": "multi_hop",
    "attribute": "attribute", "counting": "counting", "binary": "binary", "spatial": "counting",
}


@dataclass(frozen=True)
class Selection:
    """The selection decision of one question.

    Attributes:
        question_type: one of `QUESTION_TYPES`.
        needs_search: whether retrieval helps answer it (the trajectory then searches).
        parsed: False when an LLM's reply could not be read and defaults were used.
    """

    question_type: str
    needs_search: bool
    parsed: bool = True

    def __post_init__(self) -> None:
        if self.question_type not in QUESTION_TYPES:
            raise ValueError(f"unknown question type {self.question_type!r}; one of "
                             f"{', '.join(QUESTION_TYPES)}")


_TYPE = re.compile(r"type\s*[:=]\s*([a-z_ -]+)", re.IGNORECASE)
_RETRIEVAL = re.compile(r"retrieval\s*[:=]\s*(yes|no|true|false)", re.IGNORECASE)


def parse_selection(reply: str) -> Selection:
    """Read "type: <type>" and "retrieval: yes|no" from an LLM reply. An unknown or missing
    type falls back to "factoid"; a missing retrieval line to the type's default; `parsed`
    says whether both were read."""
    m_type, m_ret = _TYPE.search(reply), _RETRIEVAL.search(reply)
    qtype = None
    if m_type:
        word = m_type.group(1).strip().lower().replace(" ", "_").replace("-", "_")
        qtype = next((t for t in QUESTION_TYPES if word.startswith(t)), None)
    kind = qtype or "factoid"
    needs = (m_ret.group(1).lower() in ("yes", "true")) if m_ret else kind in RETRIEVAL_TYPES
    return Selection(kind, needs, parsed=qtype is not None and m_ret is not None)
