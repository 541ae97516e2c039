"""Running a plan: real searches, placeholders filled from what came back, evidence checked.

A typed plan (`plan.py`, query types assigned) becomes a trajectory by running its searches
on the knowledge index in order — region queries on the mask the segmentation back-end gives
for the referring expression, image queries on the whole image, text queries with their
placeholders filled — and writing each search's `<information>` block from the hits really
returned (`EvidenceConfig.format`, the engine's own evidence layout). A placeholder `{k}` is
filled with an entity search k returned (hit titles first, then names in its evidence).

Choices (which hit fills a placeholder, which mask candidate a region search uses) are
explored depth first, best-ranked first; the first complete trajectory whose evidence supports
the gold answer wins. That is the repair step: when the top hit is the wrong entity, or the
first mask the wrong object, the next choice is tried, within `ExecConfig` budgets. A plan
with no supported completion fails with the reason of its deepest dead end.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from pixsearch.construct.annotator import Question
from pixsearch.construct.plan import PLACEHOLDER, PlanSearch, PlanText, Step
from pixsearch.construct.segmentation import RegionMask, Segmenter, SegRequest
from pixsearch.construct.support import (
    IDK,
    is_abstention,
    is_yes_no,
    mentions,
    mentions_any,
    names_in,
    normalize,
)
from pixsearch.retrieval.api import SearchAPI
from pixsearch.retrieval.evidence import EvidenceConfig
from pixsearch.turns import Information, Part, SearchCall, Text
from pixsearch.types import Evidence, Hit, Query


@dataclass
class ExecConfig:
    """Budgets of the repair search.

    Attributes:
        max_fillers: entities tried for one placeholder (from one search's results).
        max_masks: mask candidates tried for one region search.
        max_leaves: complete trajectories checked per plan before giving up.
    """

    max_fillers: int = 6
    max_masks: int = 3
    max_leaves: int = 48


@dataclass
class ExecutedSearch:
    """One search as it ran: its query and what came back."""

    type: str
    query: str | None
    refexp: str | None
    region: RegionMask | None
    hits: list[Hit]
    evidence: Evidence

    def to_dict(self, entity: int | None, used: bool) -> dict[str, Any]:
        """The record's `searches` entry (docs/dataset_format.md)."""
        return {"type": self.type, "entity": entity, "query": self.query,
                "refexp": self.refexp, "found": used, "hits": [h.doc_id for h in self.hits]}


@dataclass
class Execution:
    """A supported trajectory.

    Attributes:
        parts: the assistant turn (typed parts; `turns.to_display` writes the trajectory).
        searches: the searches in order.
        bindings: placeholder number → the entity name that filled it.
        support: how the answer is backed: "evidence" (the gold answer is in an information
            block), "binary" (yes/no consistent with the entity found), "abstain" (gold is
            "I don't know"), "direct" (no search needed), "unverified" (yes/no with nothing to
            check it against).
        repaired: a choice other than the best-ranked one was needed.
        leaves: complete trajectories checked.
    """

    parts: list[Part]
    searches: list[ExecutedSearch]
    bindings: dict[int, str]
    support: str
    repaired: bool
    leaves: int


@dataclass
class _State:
    parts: list[Part] = field(default_factory=list)
    searches: list[ExecutedSearch] = field(default_factory=list)
    bindings: dict[int, str] = field(default_factory=dict)
    repaired: bool = False

    def fork(self, **kw: Any) -> _State:
        s = _State(list(self.parts), list(self.searches), dict(self.bindings), self.repaired)
        for k, v in kw.items():
            setattr(s, k, v)
        return s


def _written(parts: list[Part]) -> bool:
    return any(not isinstance(p, Text) or p.text.strip() for p in parts)


def _add_text(parts: list[Part], text: str) -> None:
    t = " ".join(text.split())
    if not t:
        return
    if _written(parts) and t[0] not in ".,;:!?":
        parts.append(Text(" "))
    parts.append(Text(t))


def _mark_refexp(parts: list[Part], refexp: str) -> None:
    """Make the referring expression the `refers` text right before a region search: split it
    off the text just written when that text ends with it, else write it."""
    last = parts[-1] if parts else None
    if isinstance(last, Text) and not last.refers and last.text.lower().endswith(refexp.lower()):
        head = last.text[: len(last.text) - len(refexp)]
        parts[-1:] = ([Text(head)] if head else []) + [Text(last.text[len(head):], refers=True)]
        return
    if _written(parts):
        parts.append(Text(" "))
    parts.append(Text(refexp if _written(parts) else refexp[:1].upper() + refexp[1:],
                      refers=True))


def entity_names(search: ExecutedSearch, limit: int) -> list[str]:
    """Entities a search returned, best first: hit titles ("Peru — capital" → "Peru"), then
    names in the evidence text."""
    titles = [h.title.split(" — ")[0].split(" - ")[0].strip() for h in search.evidence.hits]
    body = " ".join(line.split(": ", 1)[-1] for line in search.evidence.text.splitlines())
    return list(dict.fromkeys([t for t in titles if t] + names_in(body, skip_first=False)))[:limit]


class Executor:
    """Runs typed plans on a search API (see the module docstring).

    Args:
        search_api: anything with `search(query, k) -> list[Hit]`.
        evidence: hits per search and words per information block.
        segmenter: masks for region searches (None: a plan with a region search fails).
        cfg: repair budgets.
    """

    def __init__(self, search_api: SearchAPI, evidence: EvidenceConfig,
                 segmenter: Segmenter | None, cfg: ExecConfig | None = None) -> None:
        self.api, self.evidence, self.segmenter = search_api, evidence, segmenter
        self.cfg = cfg or ExecConfig()
        self._text_cache: dict[str, list[Hit]] = {}
        self._scene_cache: dict[tuple, Any] = {}  # (image key, what) → masks / hits
        self.searches_run = 0

    # -- searches (cached: candidates and repairs repeat them) ---------------------------
    def _search(self, key: tuple, query: Query) -> list[Hit]:
        cache = self._text_cache if query.modality == "text" else self._scene_cache
        k = query.text if query.modality == "text" else key
        if k not in cache:
            self.searches_run += 1
            cache[k] = self.api.search(query, self.evidence.top_k)
        return cache[k]

    def _masks(self, req: SegRequest) -> list[RegionMask]:
        key = (req.image_key, "masks", req.refexp)
        if key not in self._scene_cache:
            self._scene_cache[key] = (self.segmenter.masks(req) if self.segmenter else [])
        return self._scene_cache[key][: self.cfg.max_masks]

    # -- the walk ---------------------------------------------------------------------
    def run(self, steps: list[Step], q: Question, image: Image.Image | None,
            req: SegRequest | None) -> Execution | str:
        """The first supported trajectory of `steps`, or why there is none."""
        self._why: Counter = Counter()
        leaves = 0
        for state in self._walk(steps, 0, _State(), q, image, req):
            leaves += 1
            support = supported(state, q)
            if support is not None:
                return Execution(state.parts, state.searches, state.bindings, support,
                                 state.repaired, leaves)
            self._why["the evidence does not support the gold answer"] += 1
            if leaves >= self.cfg.max_leaves:
                break
        return self._why.most_common(1)[0][0] if self._why else "no complete trajectory"

    def _walk(self, steps: list[Step], i: int, st: _State, q: Question,
              image: Image.Image | None, req: SegRequest | None) -> Iterator[_State]:
        if i == len(steps):
            yield st
            return
        s = steps[i]
        body = s.text if isinstance(s, PlanText) else s.payload
        unbound = [int(k) for k in PLACEHOLDER.findall(body) if int(k) not in st.bindings]
        if unbound:
            k = unbound[0]
            names = [n for n in entity_names(st.searches[k - 1], self.cfg.max_fillers)
                     if n not in st.bindings.values()]
            if not names:
                self._why[f"search {k} returned no entity to fill {{{k}}}"] += 1
            for rank, name in enumerate(names):
                yield from self._walk(steps, i, st.fork(
                    bindings={**st.bindings, k: name}, repaired=st.repaired or rank > 0),
                    q, image, req)
            return
        filled = PLACEHOLDER.sub(lambda m: st.bindings[int(m.group(1))], body)
        if isinstance(s, PlanText):
            nxt = st.fork()
            _add_text(nxt.parts, filled)
            yield from self._walk(steps, i + 1, nxt, q, image, req)
            return
        yield from self._search_step(steps, i, s, filled, st, q, image, req)

    def _search_step(self, steps, i, s: PlanSearch, filled: str, st: _State, q, image, req
                     ) -> Iterator[_State]:
        if s.type in ("region", "image") and image is None:
            self._why[f"a {s.type} search needs an image"] += 1
            return
        if s.type == "text":
            options = [(None, Query("text", text=filled), ("text", filled))]
        elif s.type == "image":
            options = [(None, Query("image", image=image), (req.image_key, "image"))]
        else:
            masks = self._masks(SegRequest(req.image_key, s.refexp, req.record_root,
                                           req.record)) if req else []
            if not masks:
                self._why[f"segmentation found no mask for {s.refexp!r}"] += 1
            options = [(m, Query("region", image=image, mask=m.mask),
                        (req.image_key, "region", s.refexp, j)) for j, m in enumerate(masks)]
        for j, (region, query, key) in enumerate(options):
            hits = self._search(key, query)
            ev = self.evidence.format(hits)
            nxt = st.fork(repaired=st.repaired or j > 0)
            if s.type == "region":
                _mark_refexp(nxt.parts, s.refexp)
            if _written(nxt.parts):
                nxt.parts.append(Text(" "))
            nxt.parts += [SearchCall(s.type, filled if s.type == "text" else ""),
                          Information(ev.text)]
            nxt.searches.append(ExecutedSearch(s.type, filled if s.type == "text" else None,
                                               s.refexp or None, region, hits, ev))
            yield from self._walk(steps, i + 1, nxt, q, image, req)


def _final_and_evidence(parts: list[Part]) -> tuple[str, list[str]]:
    """The text after the last information block, and every evidence line (one hit each)."""
    last = max((i for i, p in enumerate(parts) if isinstance(p, Information)), default=-1)
    final = "".join(p.text for p in parts[last + 1:] if isinstance(p, Text))
    # without the "[n] " numbering of evidence lines: "[2] Syria" does not say "2"
    lines = [_NUMBERING.sub("", line) for p in parts if isinstance(p, Information)
             for line in p.evidence.splitlines()]
    return final, lines


_NUMBERING = re.compile(r"^\[\d+\]\s*", re.MULTILINE)


def supported(st: _State, q: Question) -> str | None:
    """How the trajectory's evidence backs the gold answer (`Execution.support`), or None."""
    final, evidence = _final_and_evidence(st.parts)
    gold = q.answer
    if is_abstention(gold):
        # "I don't know" is learnt as what follows a search that found nothing fitting,
        # never as an answer given without looking
        return "abstain" if st.searches and mentions(final, IDK) else None
    if is_yes_no(gold):
        if not mentions(final, gold):
            return None
        if not st.bindings:
            return "unverified"
        # "yes" exactly when an entity the searches found is the one the question names
        named = any(mentions(q.text, b) for b in st.bindings.values())
        return "binary" if named == (normalize(gold) == "yes") else None
    said = mentions_any(final, q.answers)
    if not st.searches:
        return "direct" if said else None
    if said is None:
        return None
    # one hit must say the answer about the entities the final sentence names ("The capital
    # of French Guiana is Paris." is not backed by "The capital of France is Paris.")
    named = [b for b in st.bindings.values()
             if mentions(final, b) and normalize(b) != normalize(said)]
    backed = any(mentions(line, said) and all(mentions(line, b) for b in named)
                 for line in evidence)
    return "evidence" if backed else None
