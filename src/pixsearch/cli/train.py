"""`pixsearch train --config configs/train/<name>.yaml [key=value ...]`: two-stage SFT.

Runs every stage of the config (resuming from `out/checkpoint-last` after a kill) and writes
the final model to `out/final` or `final_dir`. Multi-GPU: `accelerate launch -m pixsearch.cli.train
--config ...` (DeepSpeed / FSDP through `accelerate config`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="two-stage training (segmentation, then search "
                                     "trajectories) from a YAML config")
    p.add_argument("--config", type=Path, required=True,
                   help="training config, e.g. configs/train/mini.yaml")
    p.add_argument("--model", default=None,
                   help="model preset to train (the config's `model`), e.g. llava-1.5-13b")
    p.add_argument("--restart", action="store_true",
                   help="ignore out/checkpoint-last and start over (the old one is replaced)")
    p.add_argument("overrides", nargs="*",
                   help="TrainConfig key=value overrides, e.g. stages.0.steps=10 out=runs/x "
                        "(a number picks a list item); model.key=value ones are the model's "
                        "(model.lm.pretrained=DIR model.mask_decoder.sam_pretrained=DIR)")
    p.add_argument("--recipe", choices=("sft", "referent", "refiner"), default="sft",
                   help="sft: the staged training of a model (TrainConfig); referent: add "
                        "referent selection (instance proposals + selector) to a trained "
                        "model (ReferentTrainConfig, e.g. configs/train/mini_referent.yaml); "
                        "refiner: add coarse-to-fine zoom refinement of region masks to a "
                        "model with referent selection (RefinerTrainConfig, e.g. "
                        "configs/train/gemma_zoom.yaml)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.recipe == "referent":
        return run_referent(args)
    if args.recipe == "refiner":
        return run_refiner(args)
    import shutil

    from pixsearch.config import load
    from pixsearch.train.config import TrainConfig, resolve_path
    from pixsearch.train.trainer import Trainer

    cfg = load(TrainConfig, args.config, train_overrides(args))
    if args.restart:
        for name in ("checkpoint-last", "checkpoint-last.old"):
            shutil.rmtree(resolve_path(cfg.out) / name, ignore_errors=True)
    t0 = time.perf_counter()
    final = Trainer(cfg).run()  # a missing file or a bad setting: `cli.main` says so
    print(f"trained in {(time.perf_counter() - t0) / 60:.1f} min; model at {final} "
          f"(use it with `pixsearch ask --model {final} ...`)")
    return 0


def train_overrides(args: argparse.Namespace) -> list[str]:
    """The TrainConfig overrides of the command line: `--model P` is `model=P`, and each
    `model.key=value` is `model_overrides.key=value` (the preset's `ModelConfig` fields)."""
    from pixsearch.cli.options import MODEL_ALIASES, MODEL_PREFIX

    out = [f"model={args.model}"] if args.model else []
    for item in args.overrides:
        if item.startswith(MODEL_PREFIX):
            key, _, value = item[len(MODEL_PREFIX):].partition("=")
            item = f"model_overrides.{MODEL_ALIASES.get(key, key)}={value}"
        out.append(item)
    return out


def run_referent(args: argparse.Namespace) -> int:
    from pixsearch.train.referent import ReferentTrainConfig, ReferentTrainer

    out = _extend(args, ReferentTrainConfig, ReferentTrainer)
    print(f"model with referent selection at {out} (report: {out / 'referent_report.json'})")
    return 0


def run_refiner(args: argparse.Namespace) -> int:
    from pixsearch.train.refiner import RefinerTrainConfig, RefinerTrainer

    out = _extend(args, RefinerTrainConfig, RefinerTrainer)
    print(f"model with a zoom refiner at {out} (report: {out / 'refiner_report.json'})")
    return 0


def _extend(args: argparse.Namespace, config_cls: type, trainer_cls: type) -> Path:
    """Run a recipe that extends a trained model (config fields model, world, out, cache)."""
    from pixsearch.config import load
    from pixsearch.predictor import load_model
    from pixsearch.train.config import resolve_path

    cfg = load(config_cls, args.config, list(args.overrides))
    cfg.world, cfg.out = str(resolve_path(cfg.world)), str(resolve_path(cfg.out))
    cfg.cache = str(resolve_path(cfg.cache)) if cfg.cache else ""
    return trainer_cls(cfg, load_model(cfg.model)).run()


if __name__ == "__main__":  # `accelerate launch -m pixsearch.cli.train --config ...`
    from pixsearch.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
