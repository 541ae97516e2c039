"""Gold search-interleaved trajectories, made by actually running each planned search.

A question's plan (`questions.QA.parts`) says what the gold answer writes and where it
searches; this module runs every search on the world's index and writes the answer as a typed
turn (`pixsearch.turns` parts), with the returned evidence in `Information` parts. Its display
string (`turns.to_display`) is the record's trajectory:

    The flag on the left <search><region></search><information>…</information> is the flag
    of Peru. <search>capital of Peru</search><information>…</information> The capital of Peru
    is Lima.

It also records each search's modality, target entity and query, whether the expected
document came back, and the character span of the referring expression of each region search.
With `evidence.perception`, a region search's evidence opens with what the entity's gold mask
shows (`pixsearch/perception.py`), the line the engine writes from the model's own mask; with
`evidence.image_count` too, a whole-image search's opens with how many entities the scene holds
(the engine: how many entity centres the model finds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from PIL import Image

from pixsearch.perception import image_view, region_view
from pixsearch.retrieval.evidence import EvidenceConfig
from pixsearch.turns import Information, Part, SearchCall, Text, region_spans, to_display
from pixsearch.types import Hit, Query
from pixsearch.world.questions import QA, Ref, Search


class SearchIndex(Protocol):
    """What a trajectory needs from the index (`pixsearch.retrieval.index.KnowledgeIndex`)."""

    def search(self, query: Any, k: int) -> list[Hit]: ...


@dataclass
class Trajectory:
    """A gold trajectory (a typed turn) and what the record keeps about its searches."""

    parts: list[Part] = field(default_factory=list)
    search_types: list[str] = field(default_factory=list)
    searches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The display string (the record's `trajectory`)."""
        return to_display(self.parts)

    @property
    def region_spans(self) -> list[list[int]]:
        """Character span in `text` of the referring expression of each region search."""
        return [[a, b] for a, b in region_spans(self.parts)]


def _writes(parts: list[Part]) -> bool:
    """Whether `parts` already write something (the next piece is then spaced)."""
    return any(not isinstance(p, Text) or p.text for p in parts)


class TrajectoryWriter:
    """Runs planned searches on an index (with a cache) and writes gold turns.

    Args:
        index: anything with `search(query, k) -> list[Hit]`.
        evidence: hits per search and word budget of one `<information>` block.
    """

    def __init__(self, index: SearchIndex, evidence: EvidenceConfig | None = None) -> None:
        self.index, self.evidence = index, evidence or EvidenceConfig()
        self._text_cache: dict[str, list[Hit]] = {}

    def _hits(self, s: Search, image: Image.Image, masks: list[np.ndarray],
              scene_cache: dict) -> list[Hit]:
        k = self.evidence.top_k
        if s.type == "text":
            if s.query not in self._text_cache:
                self._text_cache[s.query] = self.index.search(s.query, k)
            return self._text_cache[s.query]
        key = (s.type, s.entity)
        if key not in scene_cache:
            q = (Query("region", image=image, mask=masks[s.entity]) if s.type == "region"
                 else Query("image", image=image))
            scene_cache[key] = self.index.search(q, k)
        return scene_cache[key]

    def _seen(self, part: Search, rgb: np.ndarray | None, masks: list[np.ndarray]) -> str | None:
        """The perception line of a gold search: what the entity's mask shows (region), or
        how many entities the scene holds (whole image, with `evidence.image_count`)."""
        if rgb is None:
            return None
        if part.type == "region":
            return region_view(masks[part.entity], rgb, masks).text()
        if part.type == "image" and self.evidence.image_count:
            return image_view(len(masks))
        return None

    def write(self, qa: QA, image: Image.Image, masks: list[np.ndarray], codes: list[str],
              scene_cache: dict | None = None) -> Trajectory:
        """Run the plan of `qa` on `image`; `scene_cache` shares image searches per scene."""
        cache = {} if scene_cache is None else scene_cache
        traj = Trajectory()
        parts: list[Part] = traj.parts
        pending: int | None = None  # index of the refexp the next region search is about
        rgb = np.asarray(image, dtype=np.float32) / 255.0 if self.evidence.perception else None
        for part in qa.parts:
            if isinstance(part, Ref):
                if _writes(parts):
                    parts.append(Text(" "))
                pending = len(parts)
                parts.append(Text(part.text))
            elif isinstance(part, Search):
                hits = self._hits(part, image, masks, cache)
                if _writes(parts):
                    parts.append(Text(" "))
                if part.type == "text":
                    assert part.query, "a text search needs its query"
                seen = self._seen(part, rgb, masks)
                parts += [SearchCall(part.type, part.query if part.type == "text" else ""),
                          Information(self.evidence.format(hits, seen).text)]
                expect = part.expect or (codes[part.entity] if part.entity is not None else None)
                traj.search_types.append(part.type)
                traj.searches.append({
                    "type": part.type, "entity": part.entity, "query": part.query,
                    "expect": expect, "found": any(h.entity == expect for h in hits),
                    "hits": [h.doc_id for h in hits],
                })
                if part.type == "region":
                    assert pending is not None, "a region search must follow its refexp"
                    parts[pending] = Text(parts[pending].text, refers=True)
                    pending = None
            else:
                text = part if (part.startswith(" ") or not _writes(parts)) else " " + part
                if text:
                    parts.append(Text(text))
        return traj


def plain_trajectory(qa: QA) -> str:
    """The trajectory of a plan without searches (no index needed)."""
    assert not any(isinstance(p, Search) for p in qa.parts), "plan has searches"
    return "".join(p.text if isinstance(p, Ref) else p for p in qa.parts).strip()
