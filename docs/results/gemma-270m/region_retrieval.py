"""Region R@1 of a run's own first region masks, searched again in other indexes or crops.

The masks of a run do not depend on the index (the first region mask is drawn before any
search), so one run answers what another image embedder or crop setting would have retrieved
for the same masks. For every ego record whose first planned search is a region search of an
entity the knowledge base has (as in `region_misses.py`), the run's first region mask and the
record's gold mask of that entity are searched in each INDEX with each `--erode` fraction
(`IndexConfig.crop_erode`), and the first hit is compared with the entity:

    pixsearch eval run --data ~/.cache/pixsearch/world --split val --model gemma-270m \\
        --mode full --max-new-tokens 64 --workers 2 --out RUN
    python docs/results/gemma-270m/region_retrieval.py RUN INDEX [INDEX ...] --erode 0 0.08
"""
import argparse
import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image
from region_misses import classify, region_answers

from pixsearch.eval.retrieval_metrics import hit_rank
from pixsearch.masks import rle_to_mask
from pixsearch.retrieval.index import KnowledgeIndex


def masks_of(run: Path) -> list[dict]:
    """(image, first region mask, gold mask, entity code, on target?) of each answer that
    made a region mask (`region_misses.region_answers`)."""
    out = []
    for data, r, target, step in region_answers(run):
        if step is None:
            continue
        golds = [rle_to_mask(m).astype(bool) for m in r["masks"]]
        mask = rle_to_mask(step["mask_rle"]).astype(bool)
        out.append(dict(image=data / r["image"], mask=mask, gold=golds[target],
                        code=r["entities"][target]["code"],
                        on=classify(mask, golds, target) == "on the target"))
    return out


def top1(index: KnowledgeIndex, items: list[dict], key: str, images: dict) -> np.ndarray:
    """Whether the first hit of each item's `key` mask is its entity."""
    queries = [(images.setdefault(i["image"], Image.open(i["image"]).convert("RGB")), i[key])
               for i in items]
    hits = index.search_many(queries, k=1)
    return np.array([hit_rank(h, i["code"]) == 1 for h, i in zip(hits, items)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="an `eval run` output folder (predictions.jsonl)")
    ap.add_argument("indexes", nargs="+", help="knowledge-index folders")
    ap.add_argument("--erode", type=float, nargs="+", default=[0.0],
                    help="crop_erode values to try")
    args = ap.parse_args()
    items = masks_of(args.run)
    on = np.array([i["on"] for i in items])
    print(f"{len(items)} region answers, {on.sum()} with the mask on the target")
    print("| index | crop_erode | R@1, own masks | R@1, own masks on the target | R@1, gold masks |")
    print("|---|---|---|---|---|")
    images: dict = {}
    for folder in args.indexes:
        index = KnowledgeIndex.open(folder)
        base = index.config
        for erode in args.erode:
            index.config = dataclasses.replace(base, crop_erode=erode)
            own, gold = top1(index, items, "mask", images), top1(index, items, "gold", images)
            print(f"| {folder} | {erode} | {own.mean():.3f} | {own[on].mean():.3f} "
                  f"({(~own[on]).sum()} wrong) | {gold.mean():.3f} |")


if __name__ == "__main__":
    main()
