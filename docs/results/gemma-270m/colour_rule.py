"""How far the colour words of a referring expression go on their own: gold masks, no model.

For every colour expression of a split's ego scenes (one naming a colour, not a relation such
as "the flag behind the blue one"), each entity's gold mask gets the selector's colour
features against the expression's words (`colours.colour_match`), and the entity with the
largest smallest share of the named colours ("red and white": both present), or with the
largest summed share, is picked; printed is how often the pick is the expression's entity.
What the selector's `colour_words` features can tell at best, given perfect candidates:

    python docs/results/gemma-270m/colour_rule.py [--world DIR] [--split val]
"""
import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixsearch.masks import rle_to_mask
from pixsearch.model.colours import colour_match, colour_mentions, colour_shares

SIZE = (128, 72)  # width, height the image and masks are read at (16:9 like the scenes)


def _mask(rle: dict) -> torch.Tensor:
    im = Image.fromarray(rle_to_mask(rle).astype(np.uint8) * 255).resize(SIZE, Image.NEAREST)
    return torch.from_numpy(np.array(im) > 127)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default=os.path.expandvars("$PIXSEARCH_HOME/world-val900"))
    ap.add_argument("--split", default="val")
    args = ap.parse_args()
    world = Path(args.world)
    seen, n, by_min, by_sum = set(), 0, 0, 0
    for line in open(world / f"{args.split}.jsonl"):
        r = json.loads(line)
        if not r.get("ego") or not r.get("masks"):
            continue
        shares = None
        for target, entity in enumerate(r["entities"]):
            for expression in entity["refexps"]:
                words = colour_mentions(expression)
                if (r["image"], expression) in seen or not words.any() or any(
                        w in expression for w in ("behind", "hidden", "in front")):
                    continue
                seen.add((r["image"], expression))
                if shares is None:
                    rgb = Image.open(world / r["image"]).convert("RGB").resize(SIZE)
                    rgb = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float() / 255
                    shares = colour_shares(torch.stack([_mask(m) for m in r["masks"]]), rgb)
                match = colour_match(shares, words)
                n += 1
                by_min += int(match[:, 1].argmax() == target)
                by_sum += int(match[:, 2].argmax() == target)
    print(f"{n} colour expressions of {args.split}: right by the smallest named share "
          f"{by_min / max(n, 1):.3f}, by the summed share {by_sum / max(n, 1):.3f}")


if __name__ == "__main__":
    main()
