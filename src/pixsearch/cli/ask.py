"""`pixsearch ask`: answer one question about one image, with searches, and show the trace."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pixsearch.config import load
from pixsearch.decode.config import DecodeConfig
from pixsearch.decode.predictor import Predictor, pixsearch_home

from .show import print_answer, save_overlays


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ask", help="answer a question about an image, searching as needed")
    p.add_argument("--image", type=Path, help="image file (omit for a text-only question)")
    p.add_argument("--question", "-q", required=True)
    p.add_argument("--index", default=None,
                   help="knowledge-index dir or search-server URL "
                        "(default: the benchmark world's index if built)")
    p.add_argument("--model", default="mini", help="preset name or checkpoint dir")
    p.add_argument("--max-searches", type=int, default=None, help="search budget B")
    p.add_argument("--modalities", default=None, help="allowed query types, e.g. region,text")
    p.add_argument("--top-k", type=int, default=None, help="hits per search")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--decode-config", type=Path, default=None, help="DecodeConfig YAML")
    p.add_argument("--masks-out", type=Path, default=None, help="write mask overlays here")
    p.add_argument("--json", action="store_true", help="print the Answer+Trace JSON")
    p.add_argument("overrides", nargs="*", help="DecodeConfig key=value overrides")
    p.set_defaults(func=run)


def decode_config(args: argparse.Namespace) -> DecodeConfig:
    """DecodeConfig from YAML, then flags, then key=value overrides (shared with `eval`)."""
    flags = {"max_searches": args.max_searches, "modalities": args.modalities,
             "top_k": args.top_k, "max_new_tokens": getattr(args, "max_new_tokens", None),
             "temperature": getattr(args, "temperature", None)}
    items = [f"{k}={v}" for k, v in flags.items() if v is not None]
    return load(DecodeConfig, args.decode_config, items + list(args.overrides))


def default_index(spec: str | None) -> str | None:
    if spec is not None:
        return spec
    world_index = pixsearch_home() / "world" / "index"
    return str(world_index) if world_index.is_dir() else None


def run(args: argparse.Namespace) -> int:
    cfg = decode_config(args)
    predictor = Predictor.load(args.model, default_index(args.index), cfg)
    answer = predictor.ask(args.question, args.image)
    if args.json:
        sys.stdout.write(answer.to_json(indent=2) + "\n")
    else:
        print_answer(answer)
    if args.masks_out and args.image:
        from PIL import Image

        save_overlays(answer, Image.open(args.image), args.masks_out, args.image.stem)
    return 0
