"""Events streamed by the decoding engine while it answers (CLI, server and logs consume them)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pixsearch.types import Answer, Evidence, Hit, Modality, SearchStep


@dataclass
class TokenEvent:
    """A generated token; `text` is its display text ("" for a control token's payload)."""

    token_id: int
    text: str
    control: bool = False


@dataclass
class SearchStarted:
    index: int
    modality: Modality
    query_text: str | None = None


@dataclass
class MaskEvent:
    """The mask predicted for a `<region>` query, and the crop box taken from it."""

    index: int
    mask: np.ndarray
    box: tuple[int, int, int, int] | None


@dataclass
class HitsEvent:
    index: int
    hits: list[Hit]


@dataclass
class EvidenceEvent:
    """Evidence about to be injected as forced tokens (prefilled through the cache)."""

    index: int
    evidence: Evidence


@dataclass
class SearchSkipped:
    """A search the engine did not run (malformed or empty payload, unclosed tag)."""

    step: SearchStep


@dataclass
class SearchFailed:
    """A search that ran and brought no evidence (`step.error` says why); the answer will be
    "I don't know." and decoding stops."""

    step: SearchStep


@dataclass
class DoneEvent:
    answer: Answer


Event = (TokenEvent | SearchStarted | MaskEvent | HitsEvent | EvidenceEvent | SearchSkipped
         | SearchFailed | DoneEvent)


def event_to_dict(event: Event) -> dict:
    """JSON-safe view of an event (masks as COCO RLE) for streams and logs."""
    from dataclasses import asdict

    from pixsearch.masks import mask_to_rle

    name = type(event).__name__
    if isinstance(event, DoneEvent):
        return {"type": name, "answer": event.answer.to_dict()}
    if isinstance(event, MaskEvent):
        return {"type": name, "index": event.index, "box": event.box,
                "mask_rle": mask_to_rle(event.mask)}
    return {"type": name, **asdict(event)}
