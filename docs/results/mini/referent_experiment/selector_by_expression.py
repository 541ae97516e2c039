"""Right-referent rate of the trained selector on the 300 val expressions of the referent
recipe, by the kind of referring expression (colour, largest, leftmost, ...).

    python docs/results/mini/referent_experiment/selector_by_expression.py src/pixsearch/weights/mini

Reads the frozen model's outputs from the recipe's cache ($PIXSEARCH_HOME/cache/referent, made
by `pixsearch train --recipe referent --config configs/train/mini_referent.yaml`) and draws the
same samples as the recipe (same seed), so the numbers are those of `referent_report.json`.
"""
import collections
import re
import sys
from pathlib import Path

import torch

from pixsearch.config import load
from pixsearch.model.checkpoint import load_checkpoint
from pixsearch.train.data import build_pools, make_batch
from pixsearch.train.referent import ReferentTrainConfig, ReferentTrainer

home = Path.home() / ".cache/pixsearch"
cfg = load(ReferentTrainConfig, "configs/train/mini_referent.yaml",
           ["num_threads=1", f"world={home}/world", f"cache={home}/cache/referent"])
tr = ReferentTrainer(cfg, load_checkpoint(sys.argv[1]))
tr.model = load_checkpoint(sys.argv[1]).eval()  # with its trained selector


def draw(records, limit):
    s = [x for pool in build_pools(records).values() for x in pool if x.masks]
    return [s[i] for i in tr.rng.permutation(len(s))[:limit]]


draw(tr.train, cfg.selector_samples)  # the recipe draws train first: same rng state for val
samples = draw(tr.val, cfg.val_samples)
exprs = tr.expressions(tr.val, cfg.val_samples, "val")
owner = []  # sample of each expression (a trajectory may hold several region searches)
for i in range(0, len(samples), 8):
    with torch.no_grad():
        owner += [i + r for r in tr.model(make_batch(tr.model, samples[i:i + 8],
                                                      tr.features)).region_batch.tolist()]
assert len(owner) == len(exprs)


def kind(text: str) -> str:
    text = text.lower()
    for k in ("smallest", "largest", "leftmost", "rightmost", "left", "right"):
        if k in text:
            return k
    return "colour" if re.search(r"red|blue|green|white|yellow|black|orange", text) else "other"


stats = collections.defaultdict(lambda: [0, 0, 0])
for j, e in enumerate(exprs):
    d = tr.candidates(e)
    s = samples[owner[j]]
    k = kind(s.question or str(s.turn))
    stats[k][1] += 1
    stats[k][2] += int(d["label"] < 0)
    if len(d["ious"]):
        with torch.no_grad():
            c = int(tr.model.referent(d["span"][None], [d["feats"]])[0].argmax())
        stats[k][0] += int(d["ious"][c] >= 0.5)
print("kind        right / n   no matching candidate")
for k, (ok, n, miss) in sorted(stats.items()):
    print(f"{k:10s} {ok:4d} / {n:3d}   {miss}")
