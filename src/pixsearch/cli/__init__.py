"""The `pixsearch` command line: one verb per stage (ask, index, world, construct, train, eval, serve, demo).

Each verb lives in its own module of this package and exposes `register(subparsers)`, which
adds its parser and sets `func` to the function that runs it. `main(argv)` is what the console
script and the tests call.

Parsing is light: verb modules import torch, transformers, FAISS and the encoders inside
their run functions, so `pixsearch --help` answers at once. A mistake (a missing file, a bad
image, an unknown preset, a malformed config or data file, a missing optional extra) is
printed as one line on stderr with exit status 2 — no traceback; `--debug` (anywhere on the
line) shows it. Ctrl-C exits with 130.

Output: a verb's results go to stdout; the library's messages (module loggers under
`pixsearch`), Python warnings and progress bars go to stderr. `-v` shows debug messages, `-q`
shows errors only and hides progress bars, and quiets `transformers` / `huggingface_hub` too
(`pixsearch.logs.set_verbosity`). `--verbose` / `--quiet` may also follow the verb (`ask -q`
is the question). `pixsearch --version` prints the version and the key dependencies.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import traceback
import warnings

# verb module names, in the order `pixsearch --help` lists them
VERBS = ("ask", "index", "world", "construct", "train", "eval", "serve", "demo")

# the environment `configure_logging` sets (worker processes inherit it); `main` restores it
_OUTPUT_ENV = ("PIXSEARCH_VERBOSITY", "PIXSEARCH_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY",
               "TRANSFORMERS_NO_ADVISORY_WARNINGS", "HF_HUB_DISABLE_PROGRESS_BARS")

# exit statuses: a user's mistake, a bug (or an unexpected fault), Ctrl-C
EXIT_USAGE, EXIT_ERROR, EXIT_INTERRUPTED = 2, 1, 130


class _VersionAction(argparse.Action):
    """`--version`: the report is built only when asked (it reads package metadata and git),
    so parsing and `--help` stay quick."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="print the version and the key dependencies, then exit"):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from pixsearch.provenance import version_report

        print(version_report())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixsearch", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action=_VersionAction)
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more messages (debug level)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="errors only: no progress bars, no library or transformers "
                             "messages and warnings")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in VERBS:
        # in-tree verbs: a module that fails to import is a bug, so no guard here
        importlib.import_module(f"{__name__}.{verb}").register(sub)
    _add_common(parser)
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    """`--debug`, `--verbose`, `--quiet` on every sub-command too, so they may follow the verb
    (long forms only: `-q` and `-v` may mean something else there, e.g. `ask -q QUESTION`)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                 help="show the Python traceback of an error")
                sub.add_argument("--verbose", action="count", default=argparse.SUPPRESS,
                                 help="more messages (debug level)")
                sub.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                                 help="errors only (no progress bars, no library messages)")
                _add_common(sub)


class _Formatter(logging.Formatter):
    """`[train] message` for information, `warning: [train] message` above it: the second part
    of the logger name says which part of the library speaks."""

    def format(self, record: logging.LogRecord) -> str:
        parts = record.name.split(".")
        where = parts[1] if len(parts) > 1 and parts[0] == "pixsearch" else parts[0]
        text = f"[{where}] {record.getMessage()}"
        if record.levelno >= logging.WARNING:
            text = f"{record.levelname.lower()}: {text}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_logging(verbose: int = 0, quiet: bool = False) -> None:
    """The CLI's output settings: the library's messages on stderr at INFO (DEBUG with
    `verbose`, ERROR with `quiet`, which also hides progress bars and quiets transformers);
    Python warnings go through logging so that `quiet` silences them as well."""
    from pixsearch import logs

    level = logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO
    logs.set_verbosity(level)
    if quiet:
        logs.disable_progress_bars()
    for name in (logs.LIBRARY, "py.warnings"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
            handler = _StderrHandler()
            handler.setFormatter(_Formatter())
            logger.addHandler(handler)
    logging.getLogger("py.warnings").setLevel(logging.ERROR if quiet else logging.WARNING)
    logging.captureWarnings(True)


class _StderrHandler(logging.StreamHandler):
    """A handler on whatever `sys.stderr` is when a message comes (`main` may run many times
    in one process, e.g. in tests that capture stderr)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # noqa: D102 - logging's own handlers read `self.stream`
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


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
    saved_env = {k: os.environ.get(k) for k in _OUTPUT_ENV}
    configure_logging(args.verbose or 0, args.quiet)
    from pixsearch import provenance  # light: run folders record this command line

    provenance.set_command(["pixsearch", *(sys.argv[1:] if argv is None else argv)])
    try:
        with _bars_and_logs():
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
    finally:  # an in-process caller's next command starts from its own settings
        provenance.set_command(None)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _bars_and_logs():
    """Log lines printed above a running progress bar instead of through it."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm([logging.getLogger("pixsearch"), logging.getLogger("py.warnings")]):
        yield


if __name__ == "__main__":
    sys.exit(main())
