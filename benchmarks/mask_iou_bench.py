"""Mask IoU of a model's `<region>` masks on the benchmark world, egocentric vs non-egocentric.

Referring segmentation of every entity of each scene of a split ("Segment the flag on the
left." → `the flag on the left <search><region></search>`), teacher-forced, through the same
renderer, span tagger and mask decoder that decoding uses. The IoU is taken at the decoder's
mask resolution (`validation.batch_mask_iou`) and reported per scene kind, and by entity size.

    python benchmarks/mask_iou_bench.py [--model mini] [--world DIR] [--split val] [--limit 0]
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

import torch

from pixsearch.masks import rle_area
from pixsearch.paths import world_dir
from pixsearch.predictor import load_model
from pixsearch.train.data import load_split, make_batch, referring_samples
from pixsearch.train.features import FeatureCache
from pixsearch.train.validation import batch_mask_iou


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mini")
    ap.add_argument("--world", type=Path, default=world_dir())
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, default=0, help="first N records (0 = all)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model).eval()
    records, seen = [], set()
    for rec in load_split(args.world, args.split, args.limit):
        if rec.image not in seen and rec.masks:  # one set of samples per scene
            seen.add(rec.image)
            records.append(rec)
    features = FeatureCache(model, args.world, args.world / "cache")
    features.precompute([r.image for r in records])
    ious: dict[str, list[float]] = defaultdict(list)
    with torch.inference_mode():
        for rec in records:
            h, w = rec.masks[0]["size"]
            for s in referring_samples(rec):
                batch = make_batch(model, [s], features)
                out = model(batch)
                iou = batch_mask_iou(out.mask_logits, batch.region_targets,
                                     model.cfg.mask_decoder.threshold)[0]
                share = rle_area(s.masks[0]) / (h * w)
                ious["ego" if rec.ego else "non_ego"].append(iou)
                ious["share<2%" if share < 0.02 else "share>=2%"].append(iou)
    print(f"model={args.model} world={args.world} split={args.split} scenes={len(records)}")
    for key in ("ego", "non_ego", "share<2%", "share>=2%"):
        v = ious.get(key, [])
        if v:
            print(f"{key:10s} n={len(v):4d} mask_iou={statistics.mean(v):.3f} "
                  f"median={statistics.median(v):.3f}")


if __name__ == "__main__":
    main()
