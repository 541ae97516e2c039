"""The `pixsearch` command line: one verb per stage (ask, index, world, train, eval, serve, demo).

Each verb lives in its own module of this package and exposes `register(subparsers)`, which
adds its parser and sets `func` to the function that runs it. `main(argv)` is what the console
script and the tests call.

Parsing is light: verb modules import torch, transformers, FAISS and the encoders inside
their run functions, so `pixsearch --help` answers at once. A mistake (a missing file, a bad
image, an unknown preset, a malformed config or data file, a missing optional extra) is
printed as one line on stderr with exit status 2 — no traceback; `--debug` (anywhere on the
line) shows it. Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
import warnings

# verb module names, in the order `pixsearch --help` lists them
VERBS = ("ask", "index", "world", "train", "eval", "serve", "demo")

# exit statuses: a user's mistake, a bug (or an unexpected fault), Ctrl-C
EXIT_USAGE, EXIT_ERROR, EXIT_INTERRUPTED = 2, 1, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixsearch", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in VERBS:
        # in-tree verbs: a module that fails to import is a bug, so no guard here
        importlib.import_module(f"{__name__}.{verb}").register(sub)
    _add_debug(parser)
    return parser


def _add_debug(parser: argparse.ArgumentParser) -> None:
    """`--debug` on every sub-command too, so it may follow the verb."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                 help="show the Python traceback of an error")
                _add_debug(sub)


def user_error(e: BaseException) -> str | None:
    """The one-line message of an error the user can fix, None for anything else (a bug).

    Missing or unreadable files, bad images, config and data-format errors (all ValueErrors
    with a message that names the problem), a missing optional extra (its ImportError says
    what to install), an index that is incomplete."""
    if isinstance(e, ImportError):
        return str(e) if "pip install" in str(e) else (
            f"{e} (an optional dependency is missing: pip install 'pixsearch[all]')")
    if isinstance(e, OSError):  # FileNotFoundError, PermissionError, IsADirectoryError, ...
        return str(e) if e.filename is None else f"{e.strerror or e}: {e.filename}"
    if isinstance(e, ValueError):
        return str(e)
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.debug:  # libraries' deprecation notices are for developers, not CLI users
        warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if args.debug:
            traceback.print_exc()
        print(f"pixsearch {args.verb}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - the one place that turns errors into messages
        if args.debug:
            traceback.print_exc()
        message = user_error(e)
        if message is not None:
            print(f"pixsearch {args.verb}: error: {message}", file=sys.stderr)
            return EXIT_USAGE
        print(f"pixsearch {args.verb}: unexpected error: {type(e).__name__}: {e}\n"
              "(this may be a bug; rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
