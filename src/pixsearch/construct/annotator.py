"""What an annotator does in Stage-2 data construction, whoever does it (a rule, an LLM).

An annotator makes the decisions of the paper's pipeline for one question: select (type and
whether retrieval helps), decompose into sub-questions, write N candidate search-interleaved
responses, rank them in a self-refinement pass, and assign a query type to each search.
Running the searches, filling placeholders from what retrieval returns and checking the
evidence is the pipeline's job (`execute.py`), the same for every annotator.
`RuleAnnotator` (`rule.py`) and `LLMAnnotator` (`llm_annotator.py`) implement it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from pixsearch.construct.decompose import SubQuestion
from pixsearch.construct.plan import Step
from pixsearch.construct.selection import Selection


@dataclass(frozen=True)
class Question:
    """What an annotator sees of a record: never a gold trajectory or label.

    Attributes:
        text: the question.
        answers: the gold answer first, then accepted aliases.
        has_image: whether the question comes with an image.
    """

    text: str
    answers: tuple[str, ...]
    has_image: bool = True

    @property
    def answer(self) -> str:
        """The gold answer."""
        return self.answers[0]


@dataclass
class Candidate:
    """One candidate response.

    Attributes:
        text: the response as written (plan grammar, `plan.py`).
        steps: its parsed steps (None when it does not parse).
        problems: what the self-refinement checks hold against it.
    """

    text: str
    steps: list[Step] | None = None
    problems: list[str] = field(default_factory=list)


class Annotator(Protocol):
    """The decisions of data construction (see the module docstring)."""

    name: str
    failures: Counter  # replies that could not be read, per step

    def select(self, q: Question) -> Selection: ...

    def decompose(self, q: Question, sel: Selection) -> list[SubQuestion]: ...

    def respond(self, q: Question, sel: Selection, subs: list[SubQuestion], n: int
                ) -> list[str]: ...

    def refine(self, q: Question, candidates: list[Candidate]) -> list[int]:
        """Indices of `candidates`, best first (the self-refinement pass)."""
        ...

    def query_types(self, q: Question, steps: list[Step]) -> list[str]:
        """"region", "image" or "text" for each search of `steps`, in order."""
        ...
