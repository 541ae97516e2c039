"""Real national flags, rasterised from the `flag-icons` SVGs.

The benchmark world's entities are countries; their flags are the images the knowledge base
links to the country documents and the objects composited into scenes. The SVGs ship in the npm
package `flag-icons` (installed by `scripts/setup.sh`, see the README's "Set up and run") and
are rendered with cairosvg, a real SVG rasteriser.
"""

from __future__ import annotations

import io
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from pixsearch import paths
from pixsearch.paths import FLAG_ICONS_VERSION


def install_hint() -> str:
    """The command that installs the flag SVGs where `flags_dir` looks for them."""
    return (f"npm install --prefix {paths.npm_prefix()} flag-icons@{FLAG_ICONS_VERSION} "
            "(or run scripts/setup.sh)")


def flags_dir() -> Path:
    """The folder of 4x3 flag SVGs (`pixsearch.paths.flags_dir`), checked to hold SVGs."""
    path = paths.flags_dir()
    if not path.is_dir() or not any(path.glob("*.svg")):
        raise FileNotFoundError(
            f"flag SVGs not found in {path}. Install them with: {install_hint()}, "
            f"or point {paths.FLAGS_DIR_ENV} at a folder of <iso2>.svg files."
        )
    return path


def _svg_path(code: str) -> Path:
    path = flags_dir() / f"{code.lower()}.svg"
    if not path.is_file():
        raise KeyError(f"no flag SVG for country code {code!r} in {path.parent}")
    return path


def flag_codes() -> list[str]:
    """Upper-case ISO 3166-1 alpha-2 codes that have a flag SVG, sorted.

    flag-icons also ships sub-national and organisation flags (e.g. `gb-eng`, `eu`, `un`);
    only two-letter codes are kept, the caller intersects them with its country list.
    """
    return sorted(p.stem.upper() for p in flags_dir().glob("*.svg") if len(p.stem) == 2)


def _import_cairosvg():
    try:
        import cairosvg
    except ImportError as e:  # cairosvg needs libcairo2 too
        raise ImportError(
            "rendering flags needs cairosvg: pip install 'pixsearch[world]' "
            "(and the system library libcairo2, e.g. apt-get install libcairo2)"
        ) from e
    return cairosvg


MASTER_WIDTH = 320  # flags up to this width are downsampled from one cached raster


def _raster_cache_dir() -> Path:
    return paths.flag_rasters_dir() / f"4x3-{MASTER_WIDTH}-{FLAG_ICONS_VERSION}"


def _rasterise(code: str, width: int, height: int) -> Image.Image:
    cairosvg = _import_cairosvg()
    png = cairosvg.svg2png(
        bytestring=_svg_path(code).read_bytes(), output_width=width, output_height=height
    )
    rgba = Image.open(io.BytesIO(png)).convert("RGBA")
    # Flags are opaque rectangles; flatten any transparent edge pixels onto white.
    rgb = Image.new("RGB", rgba.size, (255, 255, 255))
    rgb.paste(rgba, mask=rgba.getchannel("A"))
    return rgb


@lru_cache(maxsize=512)
def _master(code: str) -> Image.Image:
    """The flag at MASTER_WIDTH, rasterised once per machine (SVGs with coats of arms take
    ~0.1 s each with cairosvg) and kept as a PNG under `paths.flag_rasters_dir()`."""
    path = _raster_cache_dir() / f"{code.lower()}.png"
    if path.is_file():
        return Image.open(path).convert("RGB")
    img = _rasterise(code, MASTER_WIDTH, MASTER_WIDTH * 3 // 4)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        img.save(tmp, format="PNG")
        tmp.replace(path)  # atomic: concurrent builds never read a half-written file
    except OSError:
        pass  # a read-only cache only costs speed
    return img


@lru_cache(maxsize=4096)
def _render(code: str, width: int, height: int) -> Image.Image:
    if width <= MASTER_WIDTH and height <= MASTER_WIDTH:
        return _master(code).resize((width, height), Image.LANCZOS)
    return _rasterise(code, width, height)


def render_flag(code: str, width: int, height: int | None = None) -> Image.Image:
    """Rasterise the flag of `code` (ISO alpha-2, any case) to an RGB image.

    `height` defaults to the SVG's 4:3 aspect. Results are cached; a copy is returned so callers
    may draw on it.
    """
    if width <= 0 or (height is not None and height <= 0):
        raise ValueError(f"flag size must be positive, got {width}x{height}")
    h = height if height is not None else max(1, round(width * 3 / 4))
    return _render(code.upper(), int(width), int(h)).copy()


# Named prototypes for describing flag colours in words (entity cards, referring expressions,
# attribute questions). Several prototypes may share a name (navy and sky blue are both "blue").
COLOUR_PROTOTYPES: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (206, 17, 38)), ("red", (150, 20, 45)), ("white", (255, 255, 255)),
    ("blue", (0, 56, 168)), ("blue", (0, 36, 100)), ("blue", (90, 160, 225)),
    ("green", (0, 122, 61)), ("green", (60, 160, 60)), ("yellow", (252, 209, 22)),
    ("black", (0, 0, 0)), ("orange", (255, 130, 0)),
)


def name_colours(pixels: np.ndarray) -> np.ndarray:
    """Index into `COLOUR_NAMES` of the nearest named colour for each RGB pixel (N x 3)."""
    protos = np.array([rgb for _, rgb in COLOUR_PROTOTYPES], dtype=np.float32)
    d = ((pixels[:, None, :].astype(np.float32) - protos[None]) ** 2).sum(-1)
    proto_idx = d.argmin(1)
    return np.array([COLOUR_NAMES.index(COLOUR_PROTOTYPES[i][0]) for i in range(len(protos))])[
        proto_idx]


COLOUR_NAMES: tuple[str, ...] = tuple(dict.fromkeys(n for n, _ in COLOUR_PROTOTYPES))


@lru_cache(maxsize=512)
def flag_colours(code: str, min_share: float = 0.06) -> tuple[tuple[str, float], ...]:
    """Named colours of a flag with their area share, largest first (shares below `min_share`
    are dropped: thin emblems would otherwise make every flag 'multicoloured')."""
    px = np.asarray(render_flag(code, 64)).reshape(-1, 3)
    counts = np.bincount(name_colours(px), minlength=len(COLOUR_NAMES)) / len(px)
    order = np.argsort(-counts)
    return tuple((COLOUR_NAMES[i], float(counts[i])) for i in order if counts[i] >= min_share)
