"""`pixsearch ask`: answer one question about one image, with searches, and show the trace."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pixsearch.cli.options import add_decode_flags, decode_config, default_index
from pixsearch.cli.show import print_answer, save_overlays


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ask", help="answer a question about an image, searching as needed")
    p.add_argument("--image", type=Path, help="image file (omit for a text-only question)")
    p.add_argument("--question", "-q", required=True)
    p.add_argument("--index", default=None,
                   help="knowledge-index dir or search-server URL "
                        "(default: the benchmark world's index if built)")
    p.add_argument("--model", default="mini", help="preset name or checkpoint dir")
    add_decode_flags(p, config_file=True)
    p.add_argument("--masks-out", type=Path, default=None, help="write mask overlays here")
    p.add_argument("--json", action="store_true", help="print the Answer+Trace JSON")
    p.add_argument("overrides", nargs="*", help="DecodeConfig key=value overrides")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pixsearch.predictor import Predictor

    cfg = decode_config(args, list(args.overrides))
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
