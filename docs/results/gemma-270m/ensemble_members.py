"""Right referents on the val expressions of a selector ensemble and of each of its members.

Builds the referent recipe's trainer around a model folder whose selector is an ensemble
(`referent.members` > 1; no training: the frozen model's outputs per val expression come from
the recipe's cache), and prints how often the ensemble's pick, and each member's alone,
overlaps the gold mask with IoU ≥ 0.5:

    python docs/results/gemma-270m/ensemble_members.py src/pixsearch/weights/gemma-270m
"""
import argparse
import os

import torch
from referent_kinds import measuring_trainer

from pixsearch.model.referent import SelectorEnsemble


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="model folder whose selector is an ensemble")
    ap.add_argument("--world", default=os.path.expandvars("$PIXSEARCH_HOME/world-val900"))
    ap.add_argument("--cache", default=os.path.expandvars("$PIXSEARCH_HOME/cache/referent"))
    ap.add_argument("--n", type=int, default=300, help="val expressions")
    args = ap.parse_args()
    trainer = measuring_trainer(args.model, args.world, args.cache, args.n)
    ens = trainer.model.referent
    if not isinstance(ens, SelectorEnsemble):
        raise SystemExit(f"{args.model}: its selector is a single one (referent.members = 1)")
    data = trainer.selector_data(trainer.val, args.n, "val")
    rows = [("ensemble", ens)] + [(f"member {i + 1}", m) for i, m in enumerate(ens.members)]
    for name, sel in rows:
        right = sum(int(d["ious"][int(sel(d["span"][None], [d["feats"]])[0].argmax())] >= 0.5)
                    for d in data if len(d["ious"]))
        print(f"{name:10s} {right / len(data):.3f} ({right} of {len(data)})")


if __name__ == "__main__":
    main()
