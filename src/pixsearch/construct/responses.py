"""Step (ii-b/c), candidate responses and self-refinement, then (iii) query typing.

`draft` asks the annotator for N candidate responses, parses each into plan steps, lists the
problems the automatic checks find (`plan.plan_problems`), and has the annotator rank them
(the self-refinement pass). `typed_plan` assigns each search of a chosen candidate its query
type and, for region searches, the referring expression to segment.
"""

from __future__ import annotations

from dataclasses import dataclass

from pixsearch.construct.annotator import Annotator, Candidate, Question
from pixsearch.construct.decompose import SubQuestion
from pixsearch.construct.plan import (
    PlanError,
    PlanSearch,
    Step,
    parse_plan,
    plan_problems,
    with_types,
)
from pixsearch.construct.queries import QUERY_TYPES, referring_expression
from pixsearch.construct.selection import Selection


@dataclass
class Draft:
    """The candidates of one question, ranked best first by the self-refinement pass."""

    candidates: list[Candidate]
    ranking: list[int]

    def ranked(self) -> list[tuple[int, Candidate]]:
        """(index, candidate) in ranking order, well-formed candidates only."""
        return [(i, self.candidates[i]) for i in self.ranking if self.candidates[i].steps]


def draft(annotator: Annotator, q: Question, sel: Selection, subs: list[SubQuestion], n: int,
          max_searches: int) -> Draft:
    """N candidates, checked and ranked (see the module docstring)."""
    cands = []
    for text in annotator.respond(q, sel, subs, n):
        try:
            steps = parse_plan(text)
        except PlanError as e:
            cands.append(Candidate(text, None, [f"malformed: {e}"]))
            continue
        cands.append(Candidate(text, steps, plan_problems(steps, list(q.answers),
                                                          sel.needs_search, max_searches)))
    if not cands:
        return Draft([], [])
    ranking = annotator.refine(q, cands) if len(cands) > 1 else [0]
    return Draft(cands, ranking)


def typed_plan(annotator: Annotator, q: Question, steps: list[Step]) -> list[Step]:
    """`steps` with a query type (and a referring expression for region searches) per search."""
    kinds = annotator.query_types(q, steps)
    assert all(k in QUERY_TYPES for k in kinds), kinds
    typed = with_types(steps, [(k, "") for k in kinds])
    refs = []
    for i, s in enumerate(typed):
        if isinstance(s, PlanSearch):
            refs.append((s.type, referring_expression(typed, i) if s.type == "region" else ""))
    return with_types(typed, refs)
