"""How good the referent's mask is when it is a piece cut at the centre peaks (`split_at_peaks`).

Builds the referent recipe's trainer from a config (the frozen model's outputs per val
expression come from its cache), lets the model's selector pick among each expression's
candidates, and prints the mean IoU of the picks with the gold masks, how many picks are
pieces (not a component of the span mask itself), how often those are right (IoU ≥ 0.5), the
mean IoU of right pieces against right components, and the mean IoU of the best candidate
(a perfect selector):

    python docs/results/gemma-270m/piece_iou.py configs/train/gemma_peak_split.yaml
"""
import argparse
import os
from dataclasses import replace

import numpy as np
import torch
import yaml

from pixsearch.model.checkpoint import load_checkpoint
from pixsearch.model.proposals import span_components
from pixsearch.train.referent import ReferentTrainConfig, ReferentTrainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    args = ap.parse_args()
    raw = yaml.safe_load(open(args.config))
    cfg = ReferentTrainConfig(**{k: os.path.expandvars(v) if isinstance(v, str) else v
                                 for k, v in raw.items()})
    trainer = ReferentTrainer(cfg, load_checkpoint(cfg.model))
    whole = replace(trainer.model.cfg.referent, split_at_peaks=False)
    picked, piece, best = [], [], []
    for e in trainer.expressions(trainer.val, cfg.val_samples, "val"):
        d = trainer.candidates(e)
        if not len(d["ious"]):  # no candidate at all: the span mask is used, counted as 0
            picked.append(0.0)
            piece.append(False)
            best.append(0.0)
            continue
        k = int(trainer.model.referent(d["span"][None], [d["feats"]])[0].argmax())
        mask = trainer.proposals(e["image"], e["span_logits"].float()).masks[k]
        plain = span_components(e["span_logits"].float(), whole).masks
        picked.append(float(d["ious"][k]))
        piece.append(not any(torch.equal(mask, m) for m in plain))
        best.append(float(d["ious"].max()))
    iou, piece = np.array(picked), np.array(piece)
    right = iou >= 0.5
    print(f"{len(iou)} val expressions: mean IoU of the pick {iou.mean():.3f}, right "
          f"{right.mean():.3f}; pieces picked {piece.sum()}, right {right[piece].mean():.3f}, "
          f"mean IoU of right pieces {iou[piece & right].mean():.3f} against right "
          f"components {iou[~piece & right].mean():.3f}; best candidate {np.mean(best):.3f}")


if __name__ == "__main__":
    main()
