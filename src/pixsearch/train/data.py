"""Training samples of the two stages, made from benchmark-world records, and their batches.

Stage 1 (segmentation and grounding, §4.3):
  - referring segmentation: "Segment the flag on the left." → "the flag on the left
    <search><region></search>"; the `<region>` search carries the entity's gold mask and the
    referring expression is its BIO span, so the span tagger, g(·) and the mask decoder learn
    exactly the path that region searches take at decoding time (the model's `_windows` pair a
    `<region>` with the `<search>` before it; no evidence follows, nothing is retrieved);
  - visual questions that need no search (counting, attributes, binary), answered directly.
Stage 2 (search-interleaved SFT): every record's gold trajectory, with its region spans and the
gold mask of the entity of each region search; evidence blocks are masked out of L_LM by the
renderer.

`make_batch` renders samples with the model's own renderer (the one decoding uses) and collates
them with cached image features.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data.records import Record, read_records
from ..masks import rle_to_mask
from ..model.batch import collate
from ..tokens import DISPLAY
from .config import POOLS

if TYPE_CHECKING:
    from ..model.pixsearch_model import PixSearchModel
    from .features import FeatureCache

_REGION_CALL = f"{DISPLAY['search_open']}{DISPLAY['region']}{DISPLAY['search_close']}"
_TAGS = re.compile("|".join(re.escape(t) for t in DISPLAY.values()))


@dataclass
class TrainSample:
    """One supervised sequence: a question about an image and its gold assistant turn.

    Attributes:
        pool: "text", "stage1" or "stage2" (the mixture draws from pools).
        kind: "refseg", "vqa" or "trajectory" (the "text" pool's knowledge-base
            trajectories, `train/reading.py`, are trajectories too).
        question: the user's question.
        display: the gold assistant turn in the paper's display format.
        spans: character spans in `display` of the entity of each region search.
        image: image path relative to the world folder ("" = no image).
        masks: COCO RLE of the gold mask of each region search, in order.
        record_id: the world record it came from.
    """

    pool: str
    kind: str
    question: str
    display: str
    spans: list[tuple[int, int]] = field(default_factory=list)
    image: str = ""
    masks: list[dict] = field(default_factory=list)
    record_id: str = ""

    def __post_init__(self) -> None:
        assert self.pool in POOLS, self.pool
        assert len(self.spans) == len(self.masks) == self.display.count(DISPLAY["region"]), (
            f"{self.record_id}: one span and one mask per region search")


def referring_samples(rec: Record) -> list[TrainSample]:
    """Referring-segmentation samples of every entity of `rec`'s scene (all its refexps)."""
    out = []
    for i, ent in enumerate(rec.entities):
        refs = list(dict.fromkeys([r for r in (ent.get("refexps") or []) + [ent.get("refexp")]
                                   if r]))
        for ref in refs:
            out.append(TrainSample("stage1", "refseg", f"Segment {ref}.",
                                   f"{ref} {_REGION_CALL}", [(0, len(ref))], rec.image,
                                   [rec.masks[i]], f"{rec.id}/e{i}"))
    return out


def trajectory_sample(rec: Record, pool: str = "stage2") -> TrainSample:
    """The record's gold trajectory (display format) with the mask of each region search."""
    regions = [s for s in rec.searches if s.get("type") == "region"]
    masks = [rec.masks[s["entity"]] for s in regions]
    kind = "trajectory" if rec.searches else "vqa"
    return TrainSample(pool, kind, rec.question, rec.trajectory or rec.answer,
                       [tuple(s) for s in rec.region_spans], rec.image, masks, rec.id)


def build_pools(records: list[Record]) -> dict[str, list[TrainSample]]:
    """Stage-1 pool (referring segmentation, one set per scene, + no-search questions) and
    Stage-2 pool (every record's trajectory)."""
    stage1: list[TrainSample] = []
    seen_images: set[str] = set()
    for rec in records:
        if rec.image not in seen_images and rec.masks:
            seen_images.add(rec.image)
            stage1 += referring_samples(rec)
        if not rec.searches:
            stage1.append(trajectory_sample(rec, "stage1"))
    stage2 = [trajectory_sample(rec) for rec in records]
    return {"stage1": stage1, "stage2": stage2}


def drop_long(model: PixSearchModel, pools: dict[str, list[TrainSample]], max_len: int
              ) -> tuple[dict[str, list[TrainSample]], int]:
    """Pools without the samples whose rendered sequence is longer than `max_len` tokens;
    returns (pools, number dropped)."""
    out, dropped = {}, 0
    for name, samples in pools.items():
        keep = [s for s in samples if len(model.renderer.trajectory(
            s.question, s.display, bool(s.image), s.spans)) <= max_len]
        dropped += len(samples) - len(keep)
        out[name] = keep
    return out, dropped


def load_split(world: Path, split: str, limit: int = 0) -> list[Record]:
    """Records of `world/<split>.jsonl` (the first `limit`, if > 0)."""
    path = Path(world) / f"{split}.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no {split} split at {path}; build the world with "
                                f"`pixsearch world build --out {world}`")
    recs = read_records(path)
    return recs[:limit] if limit else recs


def tokenizer_corpus(records: Iterable[Record]) -> list[str]:
    """Text the native tokenizer is trained on: questions, answers, trajectories, refexps
    (control tags removed: they are added tokens, never BPE pieces)."""
    out = []
    for r in records:
        out += [r.question, r.answer, _TAGS.sub(" ", r.trajectory)]
        out += [f"Segment {e.get('refexp')}." for e in r.entities if e.get("refexp")]
    return out


def make_batch(model: PixSearchModel, samples: list[TrainSample], features: FeatureCache
               ) -> dict[str, Any]:
    """Render `samples` with the model's renderer and collate them with cached image features
    and gold masks (`model/batch.py`)."""
    rendered = [model.renderer.trajectory(s.question, s.display, bool(s.image), s.spans)
                for s in samples]
    has_image = [bool(s.image) for s in samples]
    if any(has_image) and not all(has_image):
        raise ValueError("a batch mixes samples with and without images; the world's samples "
                         "all have one")
    images = [features.get(s.image) for s in samples] if all(has_image) else None
    masks = [[rle_to_mask(m) for m in s.masks] for s in samples]
    batch = collate(model, rendered, images, masks)
    batch["kinds"] = [s.kind for s in samples]
    return batch
