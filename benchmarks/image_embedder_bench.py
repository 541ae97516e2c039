"""Image-embedder benchmark: recall of the right flag for region crops of flags pasted in photos.

Knowledge base: every flag-icons 4×3 flag with a two-letter code, rasterised with cairosvg.
Queries: N flags pasted at 5–12% of a 1280-px-wide real photograph (skimage.data), rotated
±9°, with brightness and blur jitter; the query is the crop from the exact paste mask, tight
with background suppressed (the default of `crop`) and with +10% padding, no suppression.
Prints recall@1/@5/@10 of raw DINOv2-S (CLS+mean tokens), the 16×12 colour thumbnail and the
embedder trained on the KB (`LearnedImageEmbedder`), side by side.

    python benchmarks/image_embedder_bench.py --n 300 --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter

from pixsearch.retrieval.crop import crop
from pixsearch.retrieval.embedders import ThumbnailEmbedder, normalize
from pixsearch.retrieval.learned import LearnedConfig, LearnedImageEmbedder
from pixsearch.world.flags import flag_codes, render_flag

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
          "immunohistochemistry", "retina", "cat", "colorwheel")
SCENE_WIDTH = 1280


def backgrounds() -> list[Image.Image]:
    """Real photographs from skimage.data, resized to 1280 px wide."""
    from skimage import data

    out = []
    for name in PHOTOS:
        im = Image.fromarray(getattr(data, name)()).convert("RGB")
        out.append(im.resize((SCENE_WIDTH, round(im.height * SCENE_WIDTH / im.width)),
                             Image.BICUBIC))
    return out


def paste_query(flag_hi: Image.Image, bg: Image.Image, rng: np.random.Generator,
                ) -> tuple[Image.Image, np.ndarray]:
    """Paste one flag into a copy of `bg`; return the scene and the exact paste mask."""
    w = int(rng.uniform(0.05, 0.12) * SCENE_WIDTH)
    flag = flag_hi.resize((w, round(w * 3 / 4)), Image.LANCZOS)
    flag = ImageEnhance.Brightness(flag).enhance(rng.uniform(0.7, 1.3))
    if rng.random() < 0.5:
        flag = flag.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    alpha = Image.new("L", flag.size, 255)
    angle = rng.uniform(-9, 9)
    flag = flag.rotate(angle, Image.BICUBIC, expand=True)
    alpha = alpha.rotate(angle, Image.BICUBIC, expand=True)
    x = int(rng.integers(0, bg.width - flag.width))
    y = int(rng.integers(0, bg.height - flag.height))
    scene = bg.copy()
    scene.paste(flag, (x, y), alpha)
    mask = np.zeros((bg.height, bg.width), bool)
    mask[y : y + flag.height, x : x + flag.width] = np.asarray(alpha) > 127
    return scene, mask


def make_queries(codes: list[str], n: int, seed: int) -> tuple[list, list, np.ndarray]:
    """N (tight crop, padded crop, label) triples."""
    rng = np.random.default_rng(seed)
    bgs = backgrounds()
    tight, padded, labels = [], [], []
    for _ in range(n):
        label = int(rng.integers(len(codes)))
        scene, mask = paste_query(render_flag(codes[label], 320, 240),
                                  bgs[int(rng.integers(len(bgs)))], rng)
        tight.append(crop(scene, mask)[0])
        padded.append(crop(scene, mask, pad=0.1, suppress_background=False)[0])
        labels.append(label)
    return tight, padded, np.array(labels)


def recall(q: np.ndarray, kb: np.ndarray, labels: np.ndarray, ks=(1, 5, 10)) -> dict[int, float]:
    order = np.argsort(-(q @ kb.T), axis=1)
    return {k: float((order[:, :k] == labels[:, None]).any(axis=1).mean()) for k in ks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="number of pasted-flag queries")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=LearnedConfig.steps, help="training steps")
    ap.add_argument("--skip-dinov2", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    codes = flag_codes()
    kb = [render_flag(c, 128, 96) for c in codes]
    tight, padded, labels = make_queries(codes, args.n, args.seed)
    print(f"KB: {len(codes)} flags; queries: {args.n} pasted flags (tight + padded crops)")

    rows = []
    thumb = ThumbnailEmbedder()
    rows.append(("colour thumbnail 16x12", thumb.embed_images(kb),
                 thumb.embed_images(tight), thumb.embed_images(padded), 0.0))
    if not args.skip_dinov2:
        from pixsearch.encoders.dinov2 import DinoV2Encoder

        dino = DinoV2Encoder(num_threads=args.threads)
        t0 = time.perf_counter()
        kb_d = dino.embed_images(kb)
        per_img = (time.perf_counter() - t0) / len(kb)
        rows.append(("DINOv2-S CLS+mean (raw)", kb_d, dino.embed_images(tight),
                     dino.embed_images(padded), 0.0))
        print(f"DINOv2-S: {per_img * 1000:.0f} ms / image")
    learned = LearnedImageEmbedder.create(LearnedConfig(steps=args.steps, seed=args.seed))
    stats = learned.train(kb)
    print(f"trained embedder: {stats}")
    rows.append(("trained CropNet (clean emb)", normalize(learned.embed_images(kb)),
                 learned.embed_images(tight), learned.embed_images(padded), stats["seconds"]))
    rows.append(("trained CropNet (index vec)", learned.kb_vectors(kb),
                 learned.embed_images(tight), learned.embed_images(padded), stats["seconds"]))

    print(f"\n{'embedder':30s} {'tight R@1/5/10':>20s} {'padded R@1/5/10':>20s} {'train s':>8s}")
    for name, kb_v, tq, pq, secs in rows:
        rt, rp = recall(tq, kb_v, labels), recall(pq, kb_v, labels)
        fmt = "/".join
        print(f"{name:30s} {fmt(f'{rt[k]:.2f}' for k in rt):>20s} "
              f"{fmt(f'{rp[k]:.2f}' for k in rp):>20s} {secs:8.0f}")


if __name__ == "__main__":
    main()
