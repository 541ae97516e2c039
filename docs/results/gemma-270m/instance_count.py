"""How often the instance count of one span-conditioned mask equals the number of flags in the
scene, for the settings of `pixsearch.perception.instance_masks`, on the referent recipe's
cached frozen outputs of 300 val expressions (`expressions-val-300-*.pt`, written by
`pixsearch train --recipe referent ... val_samples=300`).

    python docs/results/gemma-270m/instance_count.py CACHE.pt [WORLD]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from pixsearch.perception import instance_masks


def main(cache: str, world: str = "~/.cache/pixsearch/world") -> None:
    records = [json.loads(line) for line in
               (Path(world).expanduser() / "val.jsonl").read_text().splitlines()]
    flags = {r["image"]: len(r["masks"]) for r in records}
    exprs = torch.load(cache, weights_only=False)
    probs = [(torch.sigmoid(e["span_logits"].float()).numpy(), flags[e["image"]]) for e in exprs]
    print("threshold  min area (px at 256²)  split distance  count right")
    for p in (0.5, 0.05, 0.01):
        for area in (20, 60, 150):
            for split in (0, 6, 10):
                right = sum(len(instance_masks(x, p, split, area / 256 ** 2)) == n
                            for x, n in probs)
                print(f"{p:9}  {area:21}  {split:14}  {right / len(probs):.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
