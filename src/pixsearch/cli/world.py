"""`pixsearch world build`: build the benchmark world (KB, index, scenes, questions, card)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pixsearch import paths
from pixsearch.config import apply_overrides, from_dict, to_dict
from pixsearch.world.config import WorldConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("world", help="build the benchmark world of real countries and flags")
    wsub = p.add_subparsers(dest="world_cmd", required=True, metavar="CMD")
    b = wsub.add_parser("build", help="build KB + index + scenes + records + dataset card")
    b.add_argument("--out", type=Path, default=None,
                   help="output folder (default: $PIXSEARCH_HOME/world)")
    b.add_argument("--scale", choices=("small", "full"), default="full",
                   help="small: < 1 minute, for tests; full: the training world")
    b.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    b.add_argument("--no-progress", action="store_true", help="hide progress bars")
    b.add_argument("overrides", nargs="*",
                   help="WorldConfig key=value overrides, e.g. scenes.train=500 top_k=5")
    b.set_defaults(func=run)


def world_config(args: argparse.Namespace) -> WorldConfig:
    """The preset of `--scale`, then `--seed`, then key=value overrides."""
    base = to_dict(WorldConfig.preset(args.scale))
    items = list(args.overrides) + ([f"seed={args.seed}"] if args.seed is not None else [])
    return from_dict(WorldConfig, apply_overrides(WorldConfig, base, items))


def run(args: argparse.Namespace) -> int:
    from pixsearch.world.build import build_world

    cfg = world_config(args)
    out = args.out or paths.world_dir()
    t0 = time.perf_counter()
    by_split = build_world(out, cfg, progress=not args.no_progress)
    counts = ", ".join(f"{s} {len(r)}" for s, r in by_split.items())
    print(f"world ({cfg.scale}, seed {cfg.seed}) built in {time.perf_counter() - t0:.0f} s "
          f"at {out}: {counts} records; card: {out / 'card.md'}")
    return 0
