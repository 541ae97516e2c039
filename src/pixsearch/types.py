"""Typed values that flow through PixSearch: queries, hits, evidence, search steps, traces, answers.

These dataclasses are the project's shared vocabulary. The decode loop produces them, the
retriever consumes and returns them, and the CLI, the HTTP server and the evaluation logs all
serialise the same `Trace` (see the README, "Contracts").
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from PIL import Image

Modality = Literal["region", "image", "text"]
MODALITIES: tuple[Modality, ...] = ("region", "image", "text")


@dataclass
class Query:
    """What is sent to a search API.

    Attributes:
        modality: "text" (a written query), "image" (the whole image) or "region" (image + mask).
        text: the query string for text queries.
        image: the full image for image and region queries.
        mask: boolean HxW mask (same size as `image`) for region queries.
    """

    modality: Modality
    text: str | None = None
    image: Image.Image | None = None
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.modality == "text" and not self.text:
            raise ValueError("a text query needs non-empty `text`")
        if self.modality in ("image", "region") and self.image is None:
            raise ValueError(f"a {self.modality} query needs `image`")
        if self.modality == "region":
            if self.mask is None:
                raise ValueError("a region query needs `mask`")
            if self.mask.shape[:2] != (self.image.height, self.image.width):
                raise ValueError(
                    f"mask shape {self.mask.shape[:2]} does not match image size "
                    f"{(self.image.height, self.image.width)}"
                )

    @classmethod
    def of(cls, query: str | Image.Image | tuple[Image.Image, np.ndarray] | Query) -> Query:
        """Coerce text, a PIL image or an (image, mask) pair into a `Query`."""
        if isinstance(query, Query):
            return query
        if isinstance(query, str):
            return cls("text", text=query)
        if isinstance(query, Image.Image):
            return cls("image", image=query)
        if isinstance(query, tuple) and len(query) == 2:
            return cls("region", image=query[0], mask=np.asarray(query[1], dtype=bool))
        raise TypeError(f"cannot make a Query from {type(query).__name__}")


@dataclass
class Document:
    """A knowledge-base document. `kind` is "card" (an entity card, what image search returns)
    or "passage" (a fact passage, what text search returns). JSONL: one object per line."""

    id: str
    title: str
    text: str
    entity: str | None = None
    kind: str = "passage"


@dataclass
class KBImage:
    """An image of the knowledge base, linked to the document it depicts. `path` is relative to
    the manifest (`images.jsonl`) that lists it."""

    id: str
    path: str
    doc_id: str


@dataclass
class Hit:
    """One retrieved item: a document, reached through text or through one of its images."""

    doc_id: str
    title: str
    score: float
    text: str
    entity: str | None = None
    via: str = "text"  # "text" or the id of the image that matched

    def snippet(self, chars: int = 160) -> str:
        return self.text if len(self.text) <= chars else self.text[: chars - 1] + "…"


@dataclass
class Evidence:
    """Hits formatted for injection between `<information>` and `</information>`."""

    text: str
    hits: list[Hit]
    n_tokens: int = 0
    truncated: bool = False


@dataclass
class SearchStep:
    """One search inside an answer: what was asked, what came back, how long it took."""

    index: int
    modality: Modality
    query_text: str | None = None
    mask_rle: dict | None = None  # COCO RLE of the region mask, counts as str
    box: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 of the crop
    # confidence in the region mask (`PixSearchSession.mask_score`): an abstention signal
    mask_score: float | None = None
    hits: list[Hit] = field(default_factory=list)
    evidence: str = ""
    timings: dict[str, float] = field(default_factory=dict)  # seconds: mask, retrieve, prefill
    skipped: str | None = None  # why a search was not run (budget, forbidden modality, ...)
    # why a search that ran brought no evidence (back-end error, timeout, garbage, no hits)
    error: str | None = None


@dataclass
class Trace:
    """Everything that happened while answering: the searches and the raw display text."""

    steps: list[SearchStep] = field(default_factory=list)
    display: str = ""  # the whole assistant turn in the paper's display format
    n_generated: int = 0
    n_forced: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    # "eos", "max_new_tokens", "deadline" (out of time), "search_failed" (see `failure`)
    stop_reason: str = ""
    # log-probabilities of the answer tokens after the last evidence block (abstention signal)
    lm_logprobs: list[float] = field(default_factory=list)
    p_correct: float | None = None  # calibrated confidence (`pixsearch/abstention.py`), if any
    abstain_threshold: float | None = None  # the policy's threshold, when one was applied
    abstained: bool = False  # the answer was replaced by the abstention message
    raw_answer: str | None = None  # what the model wrote before abstaining or failing
    # why the answer is "I don't know." whatever the model wrote: a failed search or the deadline
    failure: str | None = None

    @property
    def n_searches(self) -> int:
        return sum(1 for s in self.steps if s.skipped is None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trace:
        steps = []
        for s in d.get("steps", []):
            s = dict(s)
            s["hits"] = [Hit(**h) for h in s.get("hits", [])]
            if s.get("box") is not None:
                s["box"] = tuple(s["box"])
            steps.append(SearchStep(**s))
        return cls(**{**d, "steps": steps})


@dataclass
class Answer:
    """The result of answering one question: the final text, region masks, and the trace."""

    text: str
    trace: Trace
    masks: list[np.ndarray] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "trace": self.trace.to_dict()}

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Answer:
        return cls(text=d["text"], trace=Trace.from_dict(d["trace"]))
