"""Proposal recall of referent selection with merged blobs split (the next lever, measured).

Most referring expressions without a matching proposal (IoU ≥ 0.5 with the gold mask) are
flags that touch or overlap another: the span-conditioned mask covers both at near-1
probability, so no threshold separates them and the component is the merged pair. Splitting
each component along the watershed of its distance transform (one piece per distance peak at
least `--min-distance` px apart and `--min-depth` px deep) adds the single flags as candidates.
Reads the referent recipe's cache of val expressions (span logits and gold masks of the frozen
model) and prints the recall with the shipped components alone and with the pieces added.

    python docs/results/gemma-270m/proposal_recall_split.py \
        $PIXSEARCH_HOME/cache/referent/expressions-val-300-0-<digest>.pt
"""
import argparse

import numpy as np
import torch
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.segmentation import watershed

from pixsearch.model.config import ReferentConfig
from pixsearch.model.proposals import mask_iou_matrix, span_components


def pieces(mask: np.ndarray, min_distance: int, min_depth: float) -> list[np.ndarray]:
    """The watershed pieces of a boolean mask (none when it has a single distance peak)."""
    edt = ndimage.distance_transform_edt(mask)
    peaks = peak_local_max(edt, min_distance=min_distance, labels=mask.astype(int),
                           exclude_border=False, threshold_abs=min_depth)
    if len(peaks) < 2:
        return []
    markers = np.zeros(mask.shape, int)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    ws = watershed(-edt, markers, mask=mask)
    return [ws == i for i in range(1, len(peaks) + 1)]


def matched(candidates: list[np.ndarray], gold: torch.Tensor) -> bool:
    """Does some candidate cover the gold mask with IoU ≥ 0.5?"""
    if not candidates:
        return False
    iou = mask_iou_matrix(torch.from_numpy(np.stack(candidates)), gold[None])
    return float(iou.max()) >= 0.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cache")
    ap.add_argument("--min-distance", type=int, default=6)
    ap.add_argument("--min-depth", type=float, default=4.0)
    args = ap.parse_args()
    cfg = ReferentConfig(enabled=True, source="components",
                         thresholds=[0.5, 0.2, 0.05, 0.01, 0.002], nms_iou=0.7)
    hits, split_hits, added = 0, 0, []
    exprs = torch.load(args.cache)
    for e in exprs:
        masks = [m.numpy() for m in span_components(e["span_logits"].float(), cfg).masks]
        more = [p for m in masks for p in pieces(m, args.min_distance, args.min_depth)]
        added.append(len(more))
        hits += matched(masks, e["gold"])
        split_hits += matched(masks + more, e["gold"])
    n = len(exprs)
    print(f"{n} val expressions: proposal recall {hits / n:.3f} with components, "
          f"{split_hits / n:.3f} with watershed pieces added ({np.mean(added):.1f} pieces "
          "per expression)")


if __name__ == "__main__":
    main()
