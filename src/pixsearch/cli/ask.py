"""`pixsearch ask`: answer one question about one image, with searches, and show the trace.

Everything the user named is checked before the model loads (seconds): the decode options,
the image (read by the one loader: limits, EXIF, modes), the model spec, and the index (opened
and checked). With no index and no world index, only `--max-searches 0` can answer.

A cold start is mostly importing torch and transformers (seconds). Python's cyclic garbage
collector is paused for the command (load and answer) and frozen at exit: its passes would
walk the million long-lived objects those imports create, for no garbage (about 1 s while
loading and 1.7 s at exit on a 2-core machine; `benchmarks/cold_start.py`).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import sys
from collections.abc import Iterator
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
    from pixsearch.images import load_image
    from pixsearch.predictor import Predictor, check_model

    cfg = decode_config(args, list(args.overrides))
    image = load_image(args.image) if args.image is not None else None
    check_model(args.model)
    index = default_index(args.index)
    if index is None and cfg.max_searches != 0:
        raise FileNotFoundError(
            "no knowledge index to search: pass --index DIR (or a search-server URL), build the "
            "benchmark world's index with `pixsearch world build`, or answer without searching "
            "with --max-searches 0")
    # the interpreter's last collections would walk every object of torch and transformers
    # at exit; frozen, they are skipped (nothing is freed at exit anyway)
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    with _gc_paused():
        predictor = Predictor.load(args.model, index, cfg)
        answer = predictor.ask(args.question, image)
        if args.json:
            sys.stdout.write(answer.to_json(indent=2) + "\n")
        else:
            print_answer(answer)
        if args.masks_out and image is not None:  # drawn on the image as it was read (upright)
            save_overlays(answer, image, args.masks_out, args.image.stem)
    return 0


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Cyclic garbage collection off inside (restored after). The imports and the model load
    allocate about a million objects that all live on: each collection during the load, and
    the first ones after it, would walk them all (about 1 s each way). One answer makes
    little cyclic garbage; it waits for the next collection (at exit: none)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
