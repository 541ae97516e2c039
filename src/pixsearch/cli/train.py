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

from pixsearch.config import load
from pixsearch.train.config import TrainConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="two-stage training (segmentation, then search "
                                     "trajectories) from a YAML config")
    p.add_argument("--config", type=Path, required=True,
                   help="training config, e.g. configs/train/mini.yaml")
    p.add_argument("--restart", action="store_true",
                   help="ignore out/checkpoint-last and start over (the old one is replaced)")
    p.add_argument("overrides", nargs="*",
                   help="TrainConfig key=value overrides, e.g. stages.0.steps=10 out=runs/x")
    p.set_defaults(func=run)


def _stage_overrides(items: list[str]) -> tuple[list[str], dict[int, list[str]]]:
    """Split `stages.<i>.field=value` overrides (lists cannot be deep-merged) from the rest."""
    rest, per_stage = [], {}
    for item in items:
        key = item.split("=", 1)[0]
        parts = key.split(".")
        if len(parts) >= 3 and parts[0] == "stages" and parts[1].isdigit():
            per_stage.setdefault(int(parts[1]), []).append(".".join(parts[2:]) + item[len(key):])
        else:
            rest.append(item)
    return rest, per_stage


def train_config(path: Path, overrides: list[str]) -> TrainConfig:
    """Load a config with overrides; `stages.<i>.<field>=v` edits one stage."""
    from pixsearch.config import from_dict, merge, parse_overrides, to_dict
    from pixsearch.train.config import StageConfig

    rest, per_stage = _stage_overrides(overrides)
    cfg = load(TrainConfig, path, rest)
    if per_stage:
        stages = []
        for i, s in enumerate(cfg.stages):
            data = merge(to_dict(s), parse_overrides(per_stage.pop(i, [])))
            stages.append(from_dict(StageConfig, data, f"stages[{i}]"))
        if per_stage:
            raise SystemExit(f"no stage(s) {sorted(per_stage)}: the config has {len(cfg.stages)}")
        cfg = from_dict(TrainConfig, {**to_dict(cfg), "stages": [to_dict(s) for s in stages]})
    return cfg


def run(args: argparse.Namespace) -> int:
    import shutil

    from pixsearch.train.config import resolve_path
    from pixsearch.train.trainer import Trainer

    cfg = train_config(args.config, list(args.overrides))
    if args.restart:
        for name in ("checkpoint-last", "checkpoint-last.old"):
            shutil.rmtree(resolve_path(cfg.out) / name, ignore_errors=True)
    t0 = time.perf_counter()
    try:
        final = Trainer(cfg).run()
    except FileNotFoundError as e:
        print(f"pixsearch train: {e}", file=sys.stderr)
        return 2
    print(f"trained in {(time.perf_counter() - t0) / 60:.1f} min; model at {final} "
          f"(use it with `pixsearch ask --model {final} ...`)")
    return 0


if __name__ == "__main__":  # `accelerate launch -m pixsearch.cli.train --config ...`
    from pixsearch.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
