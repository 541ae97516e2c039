"""Scene compositing with exact masks: real flags (and outlines) pasted on real photographs.

Egocentric scenes are wide photos with several small flags (perspective warp, lighting, blur,
optional poles, some partly hidden behind others); non-egocentric close-ups show one flag or
country outline filling most of the frame. Every paint operation records which layer owns each
pixel, so the visible mask of an entity is exactly the set of pixels that show it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image

from pixsearch.masks import mask_box
from pixsearch.world.config import SceneConfig
from pixsearch.world.flags import render_flag
from pixsearch.world.outlines import outline_mask

BACKGROUNDS: tuple[str, ...] = (
    "astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle", "hubble_deep_field",
    "camera", "coins", "grass", "brick", "gravel",
)
# More real photographs, for training scenes only (evaluation splits keep BACKGROUNDS, so their
# scenes do not change): other packages' sample photos ("package:file") and scikit-image's
# grey-scale ones. A model that has seen more backgrounds depends less on any one of them.
TRAIN_BACKGROUNDS: tuple[str, ...] = BACKGROUNDS + (
    "clock", "moon", "retina", "immunohistochemistry", "sklearn:china.jpg",
    "sklearn:flower.jpg", "matplotlib:grace_hopper.jpg",
)
POLE, CARD = -2, -3  # owner codes of painted pixels that belong to no entity


@dataclass
class Layer:
    """One painted thing: its pixels and coverage in a local box at (x0, y0) of the scene."""

    x0: int
    y0: int
    rgb: np.ndarray  # h x w x 3 uint8
    alpha: np.ndarray  # h x w bool: the pixels this layer paints
    owner: int  # entity index, or POLE / CARD
    entity_alpha: np.ndarray | None = None  # for a card: the pixels that are the entity


@dataclass
class SceneEntity:
    """An entity as composited: the visible mask, its box, and what occludes it."""

    code: str
    kind: str  # "flag" or "outline"
    mask: np.ndarray  # H x W bool, visible pixels only
    box: tuple[int, int, int, int]
    full_area: int  # pixels before occlusion
    occluders: list[int] = field(default_factory=list)


@dataclass
class Scene:
    """A composited image, its entities (in paint order) and the layers that made it."""

    image: Image.Image
    entities: list[SceneEntity]
    ego: bool
    background: np.ndarray
    layers: list[Layer]
    background_name: str = ""


@lru_cache(maxsize=32)
def _photo(name: str) -> np.ndarray:
    package, _, file = name.rpartition(":")
    try:
        if package == "sklearn":
            from sklearn.datasets import load_sample_image

            img = load_sample_image(file)
        elif package == "matplotlib":
            from matplotlib.cbook import get_sample_data

            img = np.asarray(Image.open(get_sample_data(file, asfileobj=False)).convert("RGB"))
        else:
            import skimage.data as skd

            img = getattr(skd, file)()
    except ImportError as e:
        raise ImportError(f"the scene background {name!r} needs its package: "
                          "pip install 'pixsearch[world]'") from e
    img = img[0] if isinstance(img, tuple) else img  # stereo pairs: the left view
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    return np.ascontiguousarray(img[..., :3])


def background(name: str, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random crop of a real photo, resized to `size` (w, h), flipped and re-lit at random."""
    photo = _photo(name)
    w, h = size
    ph, pw = photo.shape[:2]
    scale = rng.uniform(0.6, 1.0)
    cw = int(min(pw, ph * w / h) * scale)
    ch = int(cw * h / w)
    x, y = rng.integers(0, pw - cw + 1), rng.integers(0, ph - ch + 1)
    out = cv2.resize(photo[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    gain = rng.uniform(0.75, 1.15, size=3) * rng.uniform(0.85, 1.1)
    return np.clip(out * gain, 0, 255).astype(np.uint8)


def _warp(src: np.ndarray, corners: np.ndarray, cfg_blur: float, rng: np.random.Generator,
          light: float) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Warp `src` onto the quadrilateral `corners` (scene coordinates) with lighting and blur."""
    x0, y0 = np.floor(corners.min(0)).astype(int)
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 1
    h, w = src.shape[:2]
    H = cv2.getPerspectiveTransform(
        np.float32([[0, 0], [w, 0], [w, h], [0, h]]), np.float32(corners - [x0, y0]))
    size = (int(x1 - x0), int(y1 - y0))
    # Replicated borders keep the blur from pulling black into the flag's edge.
    rgb = cv2.warpPerspective(src, H, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpPerspective(np.ones((h, w), np.float32), H, size, flags=cv2.INTER_LINEAR) > 0.5
    # Lighting: overall gain, a gradient and soft waves across the cloth.
    xs = np.linspace(0, 1, size[0])[None, :, None]
    gain = (rng.uniform(1 - light, 1 + light) * (1 + rng.uniform(-0.1, 0.1) * (xs - 0.5))
            * (1 + rng.uniform(0, 0.08) * np.sin(2 * np.pi * (xs * rng.uniform(1, 3) + rng.random()))))
    rgb = np.clip(rgb * gain, 0, 255).astype(np.uint8)
    sigma = rng.uniform(0, cfg_blur)
    if sigma > 0.3:
        rgb = cv2.GaussianBlur(rgb, (0, 0), sigma)
    return int(x0), int(y0), rgb, alpha


def _quad(cx: float, cy: float, w: float, h: float, jitter: float,
          rng: np.random.Generator) -> np.ndarray:
    """Corners of a w x h rectangle centred at (cx, cy), foreshortened and jittered."""
    shrink = rng.uniform(-0.12, 0.12) * h  # one vertical side shorter: a turned flag
    c = np.array([[-w / 2, -h / 2 + max(shrink, 0)], [w / 2, -h / 2 + max(-shrink, 0)],
                  [w / 2, h / 2 - max(-shrink, 0)], [-w / 2, h / 2 - max(shrink, 0)]])
    return c + [cx, cy] + rng.uniform(-jitter, jitter, size=(4, 2)) * w


def _paint(canvas: np.ndarray, owner: np.ndarray, layer: Layer) -> None:
    H, W = owner.shape
    h, w = layer.alpha.shape
    xa, ya, xb, yb = max(layer.x0, 0), max(layer.y0, 0), min(layer.x0 + w, W), min(layer.y0 + h, H)
    if xa >= xb or ya >= yb:
        return
    sub = (slice(ya - layer.y0, yb - layer.y0), slice(xa - layer.x0, xb - layer.x0))
    a = layer.alpha[sub]
    canvas[ya:yb, xa:xb][a] = layer.rgb[sub][a]
    own = np.full(a.shape, layer.owner, np.int32)
    if layer.entity_alpha is not None:
        own[~layer.entity_alpha[sub]] = CARD
    owner[ya:yb, xa:xb][a] = own[a]


def _finish(bg: np.ndarray, layers: list[Layer], codes: list[str], kinds: list[str],
            ego: bool, bg_name: str) -> Scene:
    canvas, owner = bg.copy(), np.full(bg.shape[:2], -1, np.int32)
    full: list[np.ndarray] = [np.zeros(bg.shape[:2], bool) for _ in codes]
    occluders: list[set[int]] = [set() for _ in codes]
    for layer in layers:
        before = owner.copy()
        _paint(canvas, owner, layer)
        if layer.owner >= 0:
            full[layer.owner] |= owner == layer.owner
        changed = (before != owner) & (before >= 0)
        for i in np.unique(before[changed]):
            if layer.owner >= 0 and i != layer.owner:
                occluders[int(i)].add(layer.owner)
    ents = []
    for i, (code, kind) in enumerate(zip(codes, kinds)):
        m = owner == i
        assert m.any(), f"entity {code} was painted over entirely"
        ents.append(SceneEntity(code, kind, m, mask_box(m), int(full[i].sum()), sorted(occluders[i])))
    return Scene(Image.fromarray(canvas), ents, ego, bg, layers, bg_name)


def _pole(quad: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> Layer:
    fw = np.linalg.norm(quad[1] - quad[0])
    pw = max(2, int(fw * 0.05))
    top = quad[0] - [pw, fw * 0.05]
    length = int(fw * rng.uniform(1.5, 3.0))
    grey = rng.integers(150, 230)
    rgb = np.full((length, pw, 3), grey, np.uint8)
    rgb[:, : max(1, pw // 3)] = max(grey - 60, 0)  # shaded side: reads as a round pole
    return Layer(int(top[0]), int(top[1]), rgb, np.ones((length, pw), bool), POLE)


def compose_ego(codes: list[str], bg_name: str, cfg: SceneConfig,
                rng: np.random.Generator) -> Scene:
    """A wide scene with several small flags; entity i is `codes[i]` (painted in that order)."""
    W, H = cfg.ego_size
    bg = background(bg_name, cfg.ego_size, rng)
    layers: list[Layer] = []
    boxes: list[np.ndarray] = []
    for i, code in enumerate(codes):
        fw = rng.uniform(cfg.min_scale, cfg.max_scale) * W
        fh = fw * 0.75
        for _ in range(60):
            if boxes and rng.random() < cfg.overlap_prob:  # partly in front of an earlier flag
                b = boxes[rng.integers(len(boxes))]
                cx = (b[0] + b[2]) / 2 + rng.choice([-1, 1]) * rng.uniform(0.45, 0.7) * (b[2] - b[0] + fw) / 2
                cy = (b[1] + b[3]) / 2 + rng.uniform(-0.4, 0.4) * fh
            else:
                cx, cy = rng.uniform(fw * 0.6, W - fw * 0.6), rng.uniform(fh * 0.8, H - fh * 0.8)
            quad = _quad(cx, cy, fw, fh, cfg.warp, rng)
            box = np.r_[quad.min(0), quad.max(0)]
            if box[0] < 2 or box[1] < 2 or box[2] > W - 2 or box[3] > H - 2:
                continue
            if all(_overlap_ok(box, b) for b in boxes):
                break
        else:
            raise RuntimeError("could not place a flag; lower max_scale or max_flags")
        boxes.append(box)
        if rng.random() < cfg.pole_prob:
            layers.append(_pole(quad, (W, H), rng))
        flag = np.asarray(render_flag(code, _bucket(fw)))
        x0, y0, rgb, alpha = _warp(flag, quad, cfg.max_blur, rng, cfg.light)
        layers.append(Layer(x0, y0, rgb, alpha, i))
    return _finish(bg, layers, list(codes), ["flag"] * len(codes), True, bg_name)


def _overlap_ok(a: np.ndarray, b: np.ndarray) -> bool:
    """Boxes may overlap, but never so much that the earlier one is mostly hidden."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return iw * ih <= 0.35 * (b[2] - b[0]) * (b[3] - b[1])


def _bucket(width: float) -> int:
    """Render widths in steps of 8 px so the flag raster cache is reused."""
    return int(max(16, 8 * round(width / 8)))


def compose_nonego(code: str, kind: str, bg_name: str, cfg: SceneConfig,
                   rng: np.random.Generator, geojson: dict | None = None) -> Scene:
    """A close-up: one flag, or one country outline printed on a card, filling the frame."""
    W, H = cfg.nonego_size
    bg = background(bg_name, cfg.nonego_size, rng)
    fw = rng.uniform(0.7, 0.88) * W
    fh = fw * 0.75
    quad = _quad(W / 2 + rng.uniform(-0.04, 0.04) * W, H / 2 + rng.uniform(-0.04, 0.04) * H,
                 fw, min(fh, 0.92 * H), cfg.warp / 2, rng)
    if kind == "flag":
        src = np.asarray(render_flag(code, _bucket(fw)))
        x0, y0, rgb, alpha = _warp(src, quad, cfg.max_blur / 2, rng, cfg.light / 2)
        layer = Layer(x0, y0, rgb, alpha, 0)
    else:
        assert geojson is not None, "an outline needs the country's GeoJSON"
        w, h = _bucket(fw), int(_bucket(fw) * 0.75)
        shape = outline_mask(geojson, w, h)
        src = np.empty((h, w, 3), np.uint8)
        src[:] = rng.integers(225, 256, size=3)  # paper
        src[shape] = rng.integers(0, 90, size=3)  # ink
        x0, y0, rgb, alpha = _warp(src, quad, cfg.max_blur / 2, rng, cfg.light / 2)
        h2, w2 = alpha.shape
        H_ = cv2.getPerspectiveTransform(np.float32([[0, 0], [w, 0], [w, h], [0, h]]),
                                         np.float32(quad - [x0, y0]))
        ent = cv2.warpPerspective(shape.astype(np.float32), H_, (w2, h2)) > 0.5
        layer = Layer(x0, y0, rgb, alpha, 0, entity_alpha=ent & alpha)
    return _finish(bg, [layer], [code], [kind], False, bg_name)
