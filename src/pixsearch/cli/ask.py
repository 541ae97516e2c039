"""`pixsearch ask`: answer one question about one image, with searches, and show the trace.

Everything the user named is checked before the model loads (seconds): the decode options,
the image (read by the one loader: limits, EXIF, modes), the model spec, and the index (opened
and checked). With no index and no world index, only `--max-searches 0` can answer.

A cold start is mostly importing torch and transformers (seconds). Python's cyclic garbage
collector is paused for the command (load and answer) and frozen at exit: its passes would
walk the million long-lived objects those imports create, for no garbage (about 1 s while
loading and 1.7 s at exit on a 2-core machine; `benchmarks/cold_start.py`). The model loads
with one torch thread (see `_one_intra_op_thread`); the answer runs with torch's default.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import sys
from collections.abc import Iterator
from pathlib import Path

from pixsearch.cli.options import (
    add_decode_flags,
    add_device_flag,
    check_model_overrides,
    decode_config,
    default_index,
    split_model_overrides,
)
from pixsearch.cli.show import print_answer, save_overlays
from pixsearch.defaults import DEFAULT_MODEL


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ask", help="answer a question about an image, searching as needed")
    p.add_argument("--image", type=Path, help="image file (omit for a text-only question)")
    p.add_argument("--question", "-q", required=True)
    p.add_argument("--index", default=None,
                   help="knowledge-index dir or search-server URL "
                        "(default: the benchmark world's index if built)")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"preset name or checkpoint dir (default: {DEFAULT_MODEL})")
    add_device_flag(p)
    add_decode_flags(p, config_file=True)
    p.add_argument("--masks-out", type=Path, default=None, help="write mask overlays here")
    p.add_argument("--json", action="store_true", help="print the Answer+Trace JSON")
    p.add_argument("overrides", nargs="*", help="DecodeConfig key=value overrides; model.key="
                   "value ones are the model's (model.lm.pretrained=DIR, model.dtype=bf16)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pixsearch.images import load_image
    from pixsearch.predictor import Predictor, check_model, gc_paused

    model_overrides, overrides = split_model_overrides(list(args.overrides))
    cfg = decode_config(args, overrides)
    image = load_image(args.image) if args.image is not None else None
    check_model(args.model)
    check_model_overrides(args.model, model_overrides)
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
    with gc_paused():  # through the answer too: it makes little cyclic garbage
        with _one_intra_op_thread():
            predictor = Predictor.load(args.model, index, cfg, args.device, model_overrides)
        answer = predictor.ask(args.question, image)
        if args.json:
            sys.stdout.write(answer.to_json(indent=2) + "\n")
        else:
            print_answer(answer)
        if args.masks_out and image is not None:  # drawn on the image as it was read (upright)
            save_overlays(answer, image, args.masks_out, args.image.stem)
    return 0


@contextlib.contextmanager
def _one_intra_op_thread() -> Iterator[None]:
    """torch's intra-op thread pool at one thread inside (restored after). Loading copies
    and initialises a few hundred small tensors; split over two threads, each op waits for
    the second thread to be scheduled (the DINOv2 session is being built on the other core),
    which made a 20 MB checkpoint load take 0.3-0.45 s instead of 0.01 s. The answer runs with
    the pool as it was."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


