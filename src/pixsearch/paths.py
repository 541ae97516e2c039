"""Where PixSearch keeps its files: the one module that reads the environment for paths.

Everything PixSearch writes or installs outside a run folder lives under one home,
`$PIXSEARCH_HOME` (default `~/.cache/pixsearch`):

    world/          the benchmark world (`pixsearch world build`) and its `index/`
    models/<preset> trained checkpoints (`pixsearch train`), preferred over the shipped ones
    cache/          derived files made once per machine (e.g. the edited DINOv2 ONNX graph)
    npm/            the `flag-icons` npm package (`scripts/setup.sh`), pinned to
                    `FLAG_ICONS_VERSION`
    flag_rasters/   flags rasterised once from those SVGs

`PIXSEARCH_FLAGS_DIR` points the flag reader at another folder of `<iso2>.svg` files. Every
other module (and `scripts/setup.sh`, which asks Python) takes its paths from here.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "PIXSEARCH_HOME"
FLAGS_DIR_ENV = "PIXSEARCH_FLAGS_DIR"
FLAG_ICONS_VERSION = "7.5.0"  # the npm package the flags come from (setup.sh installs it)


def pixsearch_home() -> Path:
    """The root of everything PixSearch keeps: `$PIXSEARCH_HOME`, else ~/.cache/pixsearch."""
    env = os.environ.get(HOME_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pixsearch"


def world_dir() -> Path:
    """The default benchmark world (`pixsearch world build` writes it, the rest reads it)."""
    return pixsearch_home() / "world"


def models_dir() -> Path:
    """Where `pixsearch train` writes the final checkpoint of each preset."""
    return pixsearch_home() / "models"


def model_dir(preset: str) -> Path:
    """The user's trained checkpoint of `preset` (it wins over the shipped one)."""
    return models_dir() / preset


def shipped_model_dir(preset: str) -> Path:
    """The checkpoint of `preset` shipped inside the package (`pixsearch/weights/`)."""
    return Path(__file__).resolve().parent / "weights" / preset


def cache_dir() -> Path:
    """Derived files made once per machine (e.g. the DINOv2 ONNX graph with tokens exposed)."""
    return pixsearch_home() / "cache"


def npm_prefix() -> Path:
    """The npm prefix `scripts/setup.sh` installs `flag-icons` into."""
    return pixsearch_home() / "npm"


def flags_dir() -> Path:
    """The folder of 4x3 flag SVGs: `$PIXSEARCH_FLAGS_DIR`, else flag-icons under the npm
    prefix. The folder may not exist yet; `pixsearch.world.flags` says how to install it."""
    env = os.environ.get(FLAGS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return npm_prefix() / "node_modules" / "flag-icons" / "flags" / "4x3"


def flag_rasters_dir() -> Path:
    """PNG rasters of the flag SVGs, made once per machine (rasterising is slow)."""
    return pixsearch_home() / "flag_rasters"


def expand(path: str | Path) -> Path:
    """A configured path with `$PIXSEARCH_HOME` (resolved as above even when the variable is
    unset), other environment variables and `~` expanded."""
    text = str(path).replace("${" + HOME_ENV + "}", "$" + HOME_ENV)
    text = text.replace("$" + HOME_ENV, str(pixsearch_home()))
    return Path(os.path.expandvars(text)).expanduser()
