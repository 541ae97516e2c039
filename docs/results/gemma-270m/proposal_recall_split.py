"""Proposal recall of referent selection with merged blobs split (`referent.split_min_distance`).

Most referring expressions without a matching proposal (IoU ≥ 0.5 with the gold mask) are
flags that touch or overlap another: the span-conditioned mask covers both at near-1
probability, so no threshold separates them and the component is the merged pair. Splitting
each component along the watershed of its distance transform (`proposals.watershed_pieces`)
adds the single flags as candidates. Reads the referent recipe's cache of val expressions
(span logits and gold masks of the frozen model) and prints the recall and the candidates per
expression without and with the split.

    python docs/results/gemma-270m/proposal_recall_split.py \
        $PIXSEARCH_HOME/cache/referent/expressions-val-300-0-<digest>.pt
"""
import argparse
from dataclasses import replace

import numpy as np
import torch

from pixsearch.model.config import ReferentConfig
from pixsearch.model.proposals import mask_iou_matrix, span_components


def recall(exprs: list[dict], cfg: ReferentConfig) -> tuple[float, float]:
    """(share of expressions with a candidate of IoU ≥ 0.5, mean candidates per expression)."""
    hits, counts = 0, []
    for e in exprs:
        props = span_components(e["span_logits"].float(), cfg)
        counts.append(len(props))
        if len(props):
            hits += float(mask_iou_matrix(props.masks, e["gold"][None]).max()) >= 0.5
    return hits / len(exprs), float(np.mean(counts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cache")
    ap.add_argument("--min-distance", type=int, default=6)
    ap.add_argument("--min-depth", type=float, default=4.0)
    ap.add_argument("--max-candidates", type=int, default=16)
    args = ap.parse_args()
    exprs = torch.load(args.cache)
    plain = ReferentConfig(enabled=True, source="components",
                           thresholds=[0.5, 0.2, 0.05, 0.01, 0.002], nms_iou=0.7)
    split = replace(plain, split_min_distance=args.min_distance,
                    split_min_depth=args.min_depth, max_candidates=args.max_candidates)
    for name, cfg in (("components", plain), ("split", split)):
        r, k = recall(exprs, cfg)
        print(f"{len(exprs)} val expressions, {name}: proposal recall {r:.3f}, "
              f"{k:.1f} candidates per expression")


if __name__ == "__main__":
    main()
