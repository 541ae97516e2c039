"""Right referents on the val expressions by kind of referring expression, per model.

For each model folder, builds the referent recipe's trainer around it with its own selector
and referent settings (warm start, no training; the frozen model's outputs per val expression
come from the recipe's cache, which `configs/train/gemma_colour_words.yaml` fills), lets its
selector pick among each expression's candidates, and prints how often the pick overlaps the
gold mask with IoU ≥ 0.5, by kind: ordinal ("the second flag from the right"), extreme ("the
leftmost", "the smallest", "the flag at the very top"), colour ("the red-and-white flag"),
occlusion ("the flag behind the red one") and other ("this flag"):

    python docs/results/gemma-270m/referent_kinds.py EIGHTH_DIR src/pixsearch/weights/gemma-270m
"""
import argparse
import collections
import os
import re

import numpy as np
import torch

from pixsearch.model.checkpoint import load_checkpoint
from pixsearch.train.data import build_pools
from pixsearch.train.referent import ReferentTrainConfig, ReferentTrainer

KINDS = (("ordinal", r"\b(second|third)\b"), ("occlusion", r"behind|hidden|in front"),
         ("extreme", r"most\b|est\b|\bvery\b|\bfar\b|\b(top|bottom|left|right)\b"),
         ("colour", r"red|green|blue|white|black|yellow|orange|purple"))


def kind(text: str) -> str:
    return next((k for k, pattern in KINDS if re.search(pattern, text.lower())), "other")


def texts(trainer: ReferentTrainer, n: int) -> list[str]:
    """The referring expressions of the recipe's first `n` val samples (its permutation)."""
    samples = [s for pool in build_pools(trainer.val).values() for s in pool if s.masks]
    order = np.random.default_rng(trainer.cfg.seed).permutation(len(samples))
    return [" ".join(p.text for p in samples[i].parts if getattr(p, "refers", False))
            for i in order[:n]]


def measuring_trainer(model_dir: str, world: str, cache: str, n: int) -> ReferentTrainer:
    """The referent recipe's trainer around `model_dir` with its own selector, set to train
    nothing, over `n` val expressions whose frozen-model outputs come from `cache`."""
    cfg = ReferentTrainConfig(model=model_dir, world=world, out="", warm_start=True,
                              proposal_steps=0, choose_peaks=False, selector_epochs=0,
                              val_samples=n, cache=cache)
    return ReferentTrainer(cfg, load_checkpoint(model_dir))


@torch.no_grad()
def right_by_kind(model_dir: str, world: str, cache: str, n: int) -> dict[str, list[int]]:
    trainer = measuring_trainer(model_dir, world, cache, n)
    out: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for text, expr in zip(texts(trainer, n), trainer.expressions(trainer.val, n, "val")):
        d = trainer.candidates(expr)
        right = 0
        if len(d["ious"]):
            k = int(trainer.model.referent(d["span"][None], [d["feats"]])[0].argmax())
            right = int(d["ious"][k] >= 0.5)
        for key in (kind(text), "all"):
            out[key][0] += 1
            out[key][1] += right
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="model folders with a referent selector")
    ap.add_argument("--world", default=os.path.expandvars("$PIXSEARCH_HOME/world-val900"))
    ap.add_argument("--cache", default=os.path.expandvars("$PIXSEARCH_HOME/cache/referent"))
    ap.add_argument("--n", type=int, default=300, help="val expressions")
    args = ap.parse_args()
    results = [right_by_kind(m, args.world, args.cache, args.n) for m in args.models]
    print("kind       n    " + "  ".join(os.path.basename(m.rstrip("/")) for m in args.models))
    for key in sorted(results[0], key=lambda k: -results[0][k][0]):
        n = results[0][key][0]
        print(f"{key:10s} {n:4d} " + "  ".join(f"{r[key][1] / n:.3f}" for r in results))


if __name__ == "__main__":
    main()
