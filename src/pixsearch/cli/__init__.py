"""The `pixsearch` command line: one verb per stage (ask, index, world, train, eval, serve, demo).

Each verb lives in its own module of this package and exposes `register(subparsers)`, which
adds its parser and sets `func` to the function that runs it. `main(argv)` is what the console
script and the tests call.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# verb module names, in the order `pixsearch --help` lists them
VERBS = ("ask", "index", "world", "train", "eval", "serve", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixsearch", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in VERBS:
        # in-tree verbs: a module that fails to import is a bug, so no guard here
        importlib.import_module(f"{__name__}.{verb}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
