"""Country outlines rendered from the real GeoJSON shapes that ship with `countryinfo`.

An outline is the second image of a country entity in the knowledge base (beside its flag) and
the subject of some non-egocentric close-ups. Coordinates are projected equirectangularly with
the x axis scaled by cos(latitude) so shapes keep their familiar proportions.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw


def _polygons(geojson: dict) -> list[list[list[tuple[float, float]]]]:
    """All polygons (each a list of rings: exterior first, then holes) of a FeatureCollection."""
    polys = []
    for feat in geojson.get("features", []):
        geom = feat.get("geometry") or {}
        if geom.get("type") == "Polygon":
            polys.append(geom["coordinates"])
        elif geom.get("type") == "MultiPolygon":
            polys.extend(geom["coordinates"])
    if not polys:
        raise ValueError("GeoJSON holds no Polygon or MultiPolygon geometry")
    return [[[(float(x), float(y)) for x, y, *_ in ring] for ring in poly] for poly in polys]


def _project(polys: list) -> list:
    lons = np.array([x for poly in polys for ring in poly for x, _ in ring])
    # Countries crossing the antimeridian (Russia, Fiji) would span the globe: wrap west to east.
    wrap = lons.max() - lons.min() > 180
    lats = np.array([y for poly in polys for ring in poly for _, y in ring])
    k = math.cos(math.radians(float(np.clip(lats.mean(), -70, 70))))
    return [[[(((x + 360) if wrap and x < 0 else x) * k, -y) for x, y in ring] for ring in poly]
            for poly in polys]


def outline_mask(geojson: dict, width: int, height: int, margin: float = 0.06) -> np.ndarray:
    """Boolean HxW mask of the country's shape, centred and scaled to fit with a margin."""
    polys = _project(_polygons(geojson))
    pts = np.array([p for poly in polys for ring in poly for p in ring])
    lo, hi = pts.min(0), pts.max(0)
    span = np.maximum(hi - lo, 1e-6)
    scale = min(width * (1 - 2 * margin) / span[0], height * (1 - 2 * margin) / span[1])
    offset = (np.array([width, height]) - span * scale) / 2
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polys:
        for i, ring in enumerate(poly):
            xy = [tuple(((np.array(p) - lo) * scale + offset).tolist()) for p in ring]
            if len(xy) >= 3:
                draw.polygon(xy, fill=0 if i else 255)  # rings after the first are holes
    mask = np.asarray(canvas) > 127
    if not mask.any():  # a tiny island state can vanish at small sizes: keep one dot
        mask[height // 2, width // 2] = True
    return mask


def render_outline(geojson: dict, width: int, height: int | None = None,
                   fill: tuple[int, int, int] = (40, 40, 40),
                   background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """The outline as an RGB image: the shape in `fill` on `background` (4:3 by default)."""
    h = height if height is not None else max(1, round(width * 3 / 4))
    mask = outline_mask(geojson, width, h)
    arr = np.empty((h, width, 3), dtype=np.uint8)
    arr[:] = background
    arr[mask] = fill
    return Image.fromarray(arr)
