"""Gold search-interleaved trajectories, made by actually running each planned search.

A question's plan (`questions.QA.parts`) says what the gold answer writes and where it
searches; this module runs every search on the world's index and writes the answer in the
paper's display format, with the returned evidence in `<information>` blocks:

    The flag on the left <search><region></search><information>…</information> is the flag
    of Peru. <search>capital of Peru</search><information>…</information> The capital of Peru
    is Lima.

It also records each search's modality, target entity and query, whether the expected
document came back, and the character span of the referring expression of each region search.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from PIL import Image

from pixsearch.data.questions import QA, Ref, Search
from pixsearch.tokens import DISPLAY
from pixsearch.types import Hit, Query


class SearchIndex(Protocol):
    """What a trajectory needs from the index (`pixsearch.retrieval.index.KnowledgeIndex`)."""

    def search(self, query: Any, k: int) -> list[Hit]: ...


def _payload(s: Search) -> str:
    if s.type == "region":
        return DISPLAY["region"]
    if s.type == "image":
        return DISPLAY["image_query"]
    assert s.query, "a text search needs its query"
    return s.query


@dataclass
class Trajectory:
    """A gold trajectory and what the record keeps about its searches."""

    text: str
    search_types: list[str] = field(default_factory=list)
    searches: list[dict[str, Any]] = field(default_factory=list)
    region_spans: list[list[int]] = field(default_factory=list)


class TrajectoryWriter:
    """Runs planned searches on an index (with a cache) and writes display-format answers.

    Args:
        index: anything with `search(query, k) -> list[Hit]`.
        top_k: hits per search.
        evidence_tokens: budget of one `<information>` block, passed to `format_evidence`.
    """

    def __init__(self, index: SearchIndex, top_k: int = 3, evidence_tokens: int = 70) -> None:
        from pixsearch.retrieval.evidence import format_evidence

        self.index, self.top_k, self.budget = index, top_k, evidence_tokens
        self._format = format_evidence
        self._text_cache: dict[str, list[Hit]] = {}

    def _hits(self, s: Search, image: Image.Image, masks: list[np.ndarray],
              scene_cache: dict) -> list[Hit]:
        if s.type == "text":
            if s.query not in self._text_cache:
                self._text_cache[s.query] = self.index.search(s.query, self.top_k)
            return self._text_cache[s.query]
        key = (s.type, s.entity)
        if key not in scene_cache:
            q = (Query("region", image=image, mask=masks[s.entity]) if s.type == "region"
                 else Query("image", image=image))
            scene_cache[key] = self.index.search(q, self.top_k)
        return scene_cache[key]

    def write(self, qa: QA, image: Image.Image, masks: list[np.ndarray], codes: list[str],
              scene_cache: dict | None = None) -> Trajectory:
        """Run the plan of `qa` on `image`; `scene_cache` shares image searches per scene."""
        cache = {} if scene_cache is None else scene_cache
        out, spans, pending = "", [], None
        traj = Trajectory("")
        for part in qa.parts:
            if isinstance(part, Ref):
                if out:
                    out += " "
                pending = [len(out), len(out) + len(part.text)]
                out += part.text
            elif isinstance(part, Search):
                hits = self._hits(part, image, masks, cache)
                evidence = self._format(hits, self.budget)
                out += (" " if out else "") + (
                    f"{DISPLAY['search_open']}{_payload(part)}{DISPLAY['search_close']}"
                    f"{DISPLAY['info_open']}{evidence.text}{DISPLAY['info_close']}")
                expect = part.expect or (codes[part.entity] if part.entity is not None else None)
                traj.search_types.append(part.type)
                traj.searches.append({
                    "type": part.type, "entity": part.entity, "query": part.query,
                    "expect": expect, "found": any(h.entity == expect for h in hits),
                    "hits": [h.doc_id for h in hits],
                })
                if part.type == "region":
                    assert pending is not None, "a region search must follow its refexp"
                    spans.append(pending)
                    pending = None
            else:
                out += part if (part.startswith(" ") or not out) else " " + part
        traj.text, traj.region_spans = out, spans
        return traj


def plain_trajectory(qa: QA) -> str:
    """The trajectory of a plan without searches (no index needed)."""
    assert not any(isinstance(p, Search) for p in qa.parts), "plan has searches"
    return "".join(p.text if isinstance(p, Ref) else p for p in qa.parts).strip()
