"""Region examples: photographs whose entity masks name the KB image each entity is, for the
learned image embedder to train on crops like the ones it is queried with.

The embedder's own views (`augment.random_views`) are KB images warped and pasted on a neutral
fill or another flag. A model's region query is different: a crop of a photograph, cut by a
predicted mask that is a little too large (a rim of background or of a neighbour), a little too
small, or missing a side. Region examples supply such crops. A file of them is JSONL, one
photograph a line, its image path relative to the file's folder:

    {"image": "../images/train_00001.jpg",
     "regions": [{"mask": {"size": [H, W], "counts": "..."}, "image_id": "EE_flag"},
                 {"mask": {...}, "image_id": null}]}

`image_id` is the KB image the region shows (null: an entity the KB lacks, still a neighbour
whose pixels may bleed into another's mask). Each labelled region gives `views` crops of
masks perturbed like a model's (`perturb_mask`); the embedder learns them against the KB
image's prototype (`LearnedConfig.region_share`). Only examples of the training split belong
here: the benchmark world writes its train scenes (`pixsearch.world.build`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from pixsearch.masks import rle_to_mask
from pixsearch.retrieval.augment import to_tensor
from pixsearch.retrieval.crop import crop, mask_box


@dataclass
class Region:
    """One entity of a photograph: its mask (COCO RLE) and the KB image it shows (None:
    not in the KB)."""

    mask: dict[str, Any]
    image_id: str | None = None


@dataclass
class RegionExample:
    """A photograph (path relative to the examples file) and its entity regions."""

    image: str
    regions: list[Region] = field(default_factory=list)


def write_region_examples(path: str | Path, examples: Sequence[RegionExample]) -> None:
    """Write `examples` as JSONL (module doc)."""
    with Path(path).open("w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps(asdict(ex)) + "\n")


def read_region_examples(path: str | Path) -> list[RegionExample]:
    """The examples of a JSONL file (module doc)."""
    out = []
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                out.append(RegionExample(row["image"], [Region(r["mask"], r.get("image_id"))
                                                         for r in row["regions"]]))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{n}: not a region example ({type(e).__name__}: {e}); "
                                 "expected {\"image\": ..., \"regions\": [{\"mask\": RLE, "
                                 "\"image_id\": ...}]}") from e
    return out


def perturb_mask(mask: np.ndarray, others: Sequence[np.ndarray], rng: np.random.Generator
                 ) -> np.ndarray:
    """`mask` changed the ways a predicted mask differs from the true one: grown into the
    background (45%), shrunk (20%), or joined by the near part of a neighbour (20%); then,
    30% of the time, one side cut off. Sizes are fractions of the box's shorter side."""
    from scipy.ndimage import binary_dilation, binary_erosion

    x0, y0, x1, y1 = mask_box(mask)
    side = min(x1 - x0, y1 - y0)
    u = rng.random()
    if u < 0.45:
        mask = binary_dilation(mask, iterations=max(1, int(rng.uniform(0.02, 0.15) * side)))
    elif u < 0.65:
        inner = binary_erosion(mask, iterations=max(1, int(rng.uniform(0.02, 0.12) * side)))
        mask = inner if inner.sum() > 0.3 * mask.sum() else mask
    elif u < 0.85 and others:
        near = binary_dilation(mask, iterations=max(2, int(rng.uniform(0.05, 0.3) * side)))
        mask = mask | (others[rng.integers(len(others))] & near)
    if rng.random() < 0.3:
        mask = _cut_side(mask, rng)
    return mask


def _cut_side(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`mask` without a band of 5–20% of its box on one random side."""
    x0, y0, x1, y1 = mask_box(mask)
    cut = rng.uniform(0.05, 0.2)
    dy, dx = int(cut * (y1 - y0)), int(cut * (x1 - x0))
    out = mask.copy()
    side = rng.integers(4)
    if side == 0:
        out[: y0 + dy] = False
    elif side == 1:
        out[y1 - dy:] = False
    elif side == 2:
        out[:, : x0 + dx] = False
    else:
        out[:, x1 - dx:] = False
    return out


def _crops(examples: Sequence[RegionExample], root: Path, rows: dict[str, int], views: int,
           exact: float, rng: np.random.Generator) -> Iterator[tuple[Image.Image, int]]:
    for ex in examples:
        labelled = [r for r in ex.regions if r.image_id in rows]
        if not labelled:
            continue
        path = root / ex.image
        if not path.is_file():
            raise FileNotFoundError(f"region example image {path} is missing")
        image = Image.open(path).convert("RGB")
        masks = [rle_to_mask(r.mask).astype(bool) for r in ex.regions]
        for region, mask in zip(ex.regions, masks):
            if region.image_id not in rows or mask.sum() < 20:
                continue
            others = [m for m in masks if m is not mask]
            for _ in range(views):
                m = mask if rng.random() < exact else perturb_mask(mask, others, rng)
                if m.sum() >= 20:
                    yield crop(image, m)[0], rows[region.image_id]


def region_views(examples: Sequence[RegionExample], root: str | Path, rows: dict[str, int],
                 size_wh: tuple[int, int], views: int, seed: int, exact: float = 0.15,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Query crops of every labelled region (`views` each: its true mask `exact` of the time,
    else a perturbed one), resized to the embedder's input → (float [N, 3, H, W] in [0, 1],
    prototype rows [N]). `rows`: KB image id → prototype row; other ids are skipped."""
    rng = np.random.default_rng(seed)
    pics, labels = [], []
    for pic, row in _crops(examples, Path(root), rows, views, exact, rng):
        pics.append(pic.resize(size_wh, Image.BOX))  # small at once: thousands of crops
        labels.append(row)
    if not pics:
        raise ValueError("no region example shows an image the embedder trains on: check "
                         "their image_id fields against the KB image ids")
    return to_tensor(pics, size_wh), torch.tensor(labels, dtype=torch.long)
