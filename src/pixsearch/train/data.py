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

A sample's assistant turn is a list of typed parts (`pixsearch.turns`); a record's display-format
trajectory is read into parts once, here, with `parse_display`.

`make_batch` renders samples with the model's own renderer (the one decoding uses) and collates
them with cached image features.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pixsearch.data.records import Record, read_records
from pixsearch.masks import rle_to_mask
from pixsearch.model.batch import Batch, collate
from pixsearch.render import Rendered, Renderer
from pixsearch.retrieval.evidence import EvidenceConfig
from pixsearch.tokens import DISPLAY
from pixsearch.train.config import POOLS
from pixsearch.turns import Part, SearchCall, Text, parse_display, region_spans, to_display

if TYPE_CHECKING:
    from pixsearch.model.pixsearch_model import PixSearchModel
    from pixsearch.train.features import FeatureCache

_NO_TAGS = dict.fromkeys(DISPLAY, " ")  # display tags written as spaces: plain text


@dataclass
class TrainSample:
    """One supervised sequence: a question about an image and its gold assistant turn.

    Attributes:
        pool: "text", "stage1" or "stage2" (the mixture draws from pools).
        kind: "refseg", "vqa" or "trajectory" (the "text" pool's knowledge-base
            trajectories, `train/reading.py`, are trajectories too).
        question: the user's question.
        parts: the gold assistant turn (typed parts; the referring expression of each region
            search is a `Text` part with `refers=True`).
        image: image path relative to the world folder ("" = no image).
        masks: COCO RLE of the gold mask of each region search, in order.
        record_id: the world record it came from.
    """

    pool: str
    kind: str
    question: str
    parts: list[Part]
    image: str = ""
    masks: list[dict] = field(default_factory=list)
    record_id: str = ""

    def __post_init__(self) -> None:
        assert self.pool in POOLS, self.pool
        regions = sum(isinstance(p, SearchCall) and p.modality == "region" for p in self.parts)
        assert len(self.spans) == len(self.masks) == regions, (
            f"{self.record_id}: one span and one mask per region search")

    @property
    def display(self) -> str:
        """The gold assistant turn in the paper's display format."""
        return to_display(self.parts)

    @property
    def spans(self) -> list[tuple[int, int]]:
        """Character spans in `display` of the entity of each region search."""
        return region_spans(self.parts)

    def render(self, renderer: Renderer) -> Rendered:
        """Ids, loss mask and BIO span tags of this sample (prompt + gold turn)."""
        return renderer.render(self.question, self.parts, bool(self.image))


def referring_samples(rec: Record) -> list[TrainSample]:
    """Referring-segmentation samples of every entity of `rec`'s scene (all its refexps)."""
    out = []
    for i, ent in enumerate(rec.entities):
        refs = list(dict.fromkeys([r for r in (ent.get("refexps") or []) + [ent.get("refexp")]
                                   if r]))
        for ref in refs:
            turn: list[Part] = [Text(ref, refers=True), Text(" "), SearchCall("region")]
            out.append(TrainSample("stage1", "refseg", f"Segment {ref}.", turn, rec.image,
                                   [rec.masks[i]], f"{rec.id}/e{i}"))
    return out


def trajectory_sample(rec: Record, pool: str = "stage2") -> TrainSample:
    """The record's gold trajectory (display format) with the mask of each region search."""
    regions = [s for s in rec.searches if s.get("type") == "region"]
    masks = [rec.masks[s["entity"]] for s in regions]
    kind = "trajectory" if rec.searches else "vqa"
    turn = parse_display(rec.trajectory or rec.answer, rec.region_spans)
    return TrainSample(pool, kind, rec.question, turn, rec.image, masks, rec.id)


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
        keep = [s for s in samples if len(s.render(model.renderer)) <= max_len]
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


def world_evidence(world: Path) -> EvidenceConfig | None:
    """The evidence budget a built world's gold trajectories were written with (its
    `world.json`, written by `pixsearch world build`; read as a file, the library never imports
    the generator); None when the folder has no `world.json` (records brought from elsewhere)."""
    meta = Path(world) / "world.json"
    if not meta.is_file():
        return None
    cfg = json.loads(meta.read_text(encoding="utf-8")).get("config", {})
    if "evidence" in cfg:
        return EvidenceConfig(**cfg["evidence"])
    # worlds built before the budget was one config kept it in two fields
    return EvidenceConfig(cfg.get("top_k", 3), cfg.get("evidence_words", 70))


def tokenizer_corpus(records: Iterable[Record]) -> list[str]:
    """Text the native tokenizer is trained on: questions, answers, trajectories, refexps
    (control tags removed: they are added tokens, never BPE pieces)."""
    out = []
    for r in records:
        out += [r.question, r.answer, to_display(parse_display(r.trajectory), _NO_TAGS)]
        out += [f"Segment {e.get('refexp')}." for e in r.entities if e.get("refexp")]
    return out


def make_batch(model: PixSearchModel, samples: list[TrainSample], features: FeatureCache
               ) -> Batch:
    """Render `samples` with the model's renderer and collate them into a `Batch` with cached
    image features, gold masks and the samples' kinds (`model/batch.py`)."""
    rendered = [s.render(model.renderer) for s in samples]
    has_image = [bool(s.image) for s in samples]
    if any(has_image) and not all(has_image):
        raise ValueError("a batch mixes samples with and without images; the world's samples "
                         "all have one")
    images = [features.get(s.image) for s in samples] if all(has_image) else None
    masks = [[rle_to_mask(m) for m in s.masks] for s in samples]
    return collate(model, rendered, images, masks, [s.kind for s in samples])
