"""`pixsearch demo`: the main job on the embedded default.

Makes sure the benchmark world (scenes + knowledge index) and the trained default model
(`pixsearch.defaults`) are there, then answers a few questions on egocentric and
non-egocentric scenes of the world's test split: prints each answer with its searches, writes
mask-overlay PNGs and the traces.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from pixsearch import paths
from pixsearch.cli.options import add_device_flag, check_model_overrides, split_model_overrides
from pixsearch.cli.show import print_answer, save_overlays
from pixsearch.defaults import DEFAULT_MODEL


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="build what is missing, then answer sample questions")
    p.add_argument("--world", type=Path, default=None,
                   help="benchmark world dir (default: $PIXSEARCH_HOME/world; built if missing)")
    p.add_argument("--scale", default="small", choices=("small", "full"),
                   help="scale of the world to build when it is missing")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"preset name or checkpoint dir (default: {DEFAULT_MODEL})")
    add_device_flag(p)
    p.add_argument("-n", type=int, default=4, help="questions to answer (half ego, half not)")
    p.add_argument("--split", default="test")
    p.add_argument("--out", type=Path, default=Path("outputs/demo"),
                   help="where mask overlays and traces are written")
    p.add_argument("overrides", nargs="*", help="model.key=value overrides of the model "
                                                "(model.lm.pretrained=DIR, model.dtype=bf16)")
    p.set_defaults(func=run)


def ensure_world(world: Path, scale: str, console: Console) -> Path:
    """Build the benchmark world (and its index) unless it is already there."""
    if (world / "index").is_dir() and (world / "test.jsonl").exists():
        return world
    from pixsearch.world.build import build_world
    from pixsearch.world.config import WorldConfig

    console.print(f"[bold]Building the benchmark world[/] ({scale}) in {world} …")
    build_world(world, WorldConfig.preset(scale))
    return world


def pick_records(world: Path, split: str, n: int) -> list:
    """Up to n records of `split`, alternating egocentric and not, search-needing first."""
    from pixsearch.data.records import read_records

    records = read_records(world / f"{split}.jsonl")
    records.sort(key=lambda r: (not r.needs_search, r.id))
    ego = [r for r in records if r.ego]
    non = [r for r in records if not r.ego]
    picked = [r for pair in zip(ego, non) for r in pair][:n]
    return picked or records[:n]


def run(args: argparse.Namespace) -> int:
    from pixsearch.decode.config import DecodeConfig
    from pixsearch.images import load_image
    from pixsearch.predictor import Predictor, check_model

    model_overrides, rest = split_model_overrides(list(args.overrides))
    if rest:
        raise ValueError(f"pixsearch demo takes only model.key=value overrides, got {rest}")
    check_model(args.model)  # before a world is built for it
    check_model_overrides(args.model, model_overrides)
    console = Console()
    world = ensure_world(args.world or paths.world_dir(), args.scale, console)
    predictor = Predictor.load(args.model, str(world / "index"), DecodeConfig(), args.device,
                               model_overrides)
    args.out.mkdir(parents=True, exist_ok=True)
    traces = []
    for rec in pick_records(world, args.split, args.n):
        image = load_image(world / rec.image)  # the one image loader (upright RGB)
        console.rule(f"{rec.id} · {'ego' if rec.ego else 'non-ego'} · {rec.question_type}")
        console.print(f"[bold]Q:[/] {rec.question}   [dim](gold: {rec.answer})[/]")
        answer = predictor.ask(rec.question, image)
        print_answer(answer, console)
        for path in save_overlays(answer, image, args.out, rec.id):
            console.print(f"  mask overlay → {path}")
        traces.append({"id": rec.id, "question": rec.question, "gold": rec.answer,
                       **answer.to_dict()})
    (args.out / "traces.jsonl").write_text("".join(json.dumps(t) + "\n" for t in traces))
    console.print(f"traces → {args.out / 'traces.jsonl'}")
    return 0
