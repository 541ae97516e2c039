"""Logging and progress bars of the library: how loud PixSearch is, and how to change it.

The library writes through `logging` only: every module logs to `logging.getLogger(__name__)`
under the `pixsearch` logger, and long loops show a tqdm bar made by `progress_bar`. An
application routes and filters that output like any other library's:

    import logging, pixsearch.logs
    logging.getLogger("pixsearch").setLevel(logging.ERROR)   # or pixsearch.logs.set_verbosity
    pixsearch.logs.disable_progress_bars()

`set_verbosity(level, third_party=True)` sets the `pixsearch` logger and, for `transformers`
and `huggingface_hub`, the same level through their own public settings (the
`TRANSFORMERS_VERBOSITY` / `HF_HUB_DISABLE_PROGRESS_BARS` environment variables, which worker
processes inherit, and `transformers.utils.logging` when transformers is already loaded), so
that `pixsearch -q` silences their load bars and advisory warnings too without importing them.
`PIXSEARCH_VERBOSITY` (debug / info / warning / error) and `PIXSEARCH_DISABLE_PROGRESS_BARS=1`
set the same from the environment; spawned worker processes read them when they import this
module.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # tqdm loads when a bar is made: `import pixsearch` imports this module
    from tqdm import tqdm

LIBRARY = "pixsearch"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}
_ENV_LEVEL, _ENV_BARS = "PIXSEARCH_VERBOSITY", "PIXSEARCH_DISABLE_PROGRESS_BARS"
_TRUE = ("1", "true", "yes", "on")


def get_logger(name: str = LIBRARY) -> logging.Logger:
    """The logger `name` (a module's `__name__`; default: the library's root logger)."""
    return logging.getLogger(name)


def set_verbosity(level: int | str, third_party: bool = True) -> None:
    """Set the level of the `pixsearch` logger (and, with `third_party`, of transformers and
    huggingface_hub: their warnings, and their progress bars when `level` is above INFO).

    The level is also written to `PIXSEARCH_VERBOSITY`, so that worker processes started
    afterwards (evaluation pools) log at the same level."""
    if isinstance(level, str):
        if level.lower() not in LEVELS:
            raise ValueError(f"unknown verbosity {level!r}; one of {', '.join(LEVELS)}")
        level = LEVELS[level.lower()]
    get_logger().setLevel(level)
    name = logging.getLevelName(level).lower()
    os.environ[_ENV_LEVEL] = name
    if third_party:
        _set_third_party(level)


def _set_third_party(level: int) -> None:
    """transformers / huggingface_hub go quiet when `level` is above WARNING (their default;
    a louder `level` leaves them as they are: -v is about PixSearch)."""
    if level <= logging.WARNING:
        return
    # read when transformers configures its logging and huggingface_hub its constants
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    os.environ["TRANSFORMERS_NO_ADVISORY_WARNINGS"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "transformers" in sys.modules:  # already loaded: it has read them; tell it directly
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def disable_progress_bars() -> None:
    """Hide every progress bar of the library (also in worker processes started later)."""
    os.environ[_ENV_BARS] = "1"


def enable_progress_bars() -> None:
    """Show the library's progress bars again (where a caller asks for them)."""
    os.environ.pop(_ENV_BARS, None)


def progress_bars_enabled() -> bool:
    """Whether the library shows progress bars (`disable_progress_bars`, or the environment)."""
    return os.environ.get(_ENV_BARS, "").lower() not in _TRUE


def progress_bar(*args: Any, disable: bool = False, **kwargs: Any) -> tqdm:
    """A tqdm bar (same arguments), hidden when the caller says so or progress bars are off."""
    from tqdm import tqdm

    return tqdm(*args, disable=disable or not progress_bars_enabled(), **kwargs)


def _apply_environment() -> None:
    """A worker process inherits the verbosity of the process that started it."""
    level = os.environ.get(_ENV_LEVEL, "").lower()
    if level in LEVELS:
        get_logger().setLevel(LEVELS[level])


_apply_environment()
