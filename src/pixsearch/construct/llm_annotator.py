"""The LLM annotator: every decision of data construction asked of a language model.

Each step fills its prompt file (`prompts/*.md`: instructions, in-context examples, the query
block) and reads the model's continuation: selection ("type: …" / "retrieval: …"),
decomposition ("- … [search]"), N candidate responses (the first greedy, the others sampled
with seeds 1…N-1 at `temperature`), the self-refinement pick ("Best: k", over the candidates
and the problems the automatic checks found) and the query type of every search. A reply that
cannot be read falls back to a stated default and is counted in `failures` (the statistics
report it), never silently passed off as the model's decision.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pixsearch.construct.annotator import Candidate, Question
from pixsearch.construct.decompose import SubQuestion, format_subquestions, parse_subquestions
from pixsearch.construct.llm import CompletionLM
from pixsearch.construct.plan import PlanSearch, Step, preceding_text, searches
from pixsearch.construct.prompts import STEPS, load_prompt, render
from pixsearch.construct.queries import parse_query_type, rule_query_type
from pixsearch.construct.selection import Selection, parse_selection


@dataclass
class LLMAnnotatorConfig:
    """Sampling settings of the LLM annotator.

    Attributes:
        temperature: sampling temperature of candidates 2…N (the first is greedy).
        max_tokens: completion budget of a candidate response (other steps use less).
        prompts: folder of the user's own prompt files ("" = the packaged ones).
    """

    temperature: float = 0.8
    max_tokens: int = 160
    prompts: str = ""


_BEST = re.compile(r"\d+")


class LLMAnnotator:
    """Decisions by a completion model (see the module docstring)."""

    def __init__(self, lm: CompletionLM, cfg: LLMAnnotatorConfig | None = None) -> None:
        self.lm, self.cfg = lm, cfg or LLMAnnotatorConfig()
        self.name = lm.name
        folder = Path(self.cfg.prompts) if self.cfg.prompts else None
        self.prompts = {step: load_prompt(step, folder) for step in STEPS}
        self.failures: Counter = Counter()

    def _ask(self, step: str, max_tokens: int, temperature: float = 0.0, seed: int = 0,
             stop: tuple[str, ...] = ("\n\n", "Question:"), **fields: str) -> str:
        prompt = render(self.prompts[step], **fields)
        return self.lm.complete(prompt, temperature=temperature, seed=seed,
                                max_tokens=max_tokens, stop=stop)

    def select(self, q: Question) -> Selection:
        reply = self._ask("select", 16, question=q.text)
        sel = parse_selection("type:" + reply)
        if not sel.parsed:
            self.failures["select"] += 1
        return sel

    def decompose(self, q: Question, sel: Selection) -> list[SubQuestion]:
        reply = self._ask("decompose", 80, question=q.text)
        subs = parse_subquestions(reply)
        if not subs:
            self.failures["decompose"] += 1
            subs = [SubQuestion(q.text, sel.needs_search)]
        return subs

    def respond(self, q: Question, sel: Selection, subs: list[SubQuestion], n: int
                ) -> list[str]:
        out = []
        for i in range(n):
            reply = self._ask("respond", self.cfg.max_tokens,
                              temperature=0.0 if i == 0 else self.cfg.temperature, seed=i,
                              stop=("\n",), question=q.text, answer=q.answer,
                              subquestions=format_subquestions(subs))
            out.append(reply.strip())
        return out

    def refine(self, q: Question, candidates: list[Candidate]) -> list[int]:
        lines = [f"{i + 1}. {c.text} (problems: {'; '.join(c.problems) or 'none'})"
                 for i, c in enumerate(candidates)]
        reply = self._ask("refine", 4, question=q.text, answer=q.answer,
                          candidates="\n".join(lines))
        m = _BEST.search(reply)
        best = int(m.group(0)) - 1 if m else -1
        if not 0 <= best < len(candidates):
            self.failures["refine"] += 1
            best = 0
        # the model's pick first, then the rest as the checks rank them
        rest = sorted((i for i in range(len(candidates)) if i != best),
                      key=lambda i: (candidates[i].steps is None, len(candidates[i].problems), i))
        return [best, *rest]

    def query_types(self, q: Question, steps: list[Step]) -> list[str]:
        types = []
        for i, s in enumerate(steps):
            if not isinstance(s, PlanSearch):
                continue
            if s.type:  # the response wrote <region> / <image> itself
                types.append(s.type)
                continue
            reply = self._ask("query_type", 3, stop=("\n",),
                              before=preceding_text(steps, i) or "(none)", payload=s.payload)
            kind = parse_query_type(reply)
            if kind is None:
                self.failures["query_type"] += 1
                kind = rule_query_type(s.payload)
            types.append(kind)
        assert len(types) == len(searches(steps))
        return types
