"""A hand-made evaluation set for the runner tests: 6 records, 3 KB entities, a tiny index.

Three "flags" (two-stripe colour patterns) are the knowledge base; scenes paste one or two of
them on a grey background (ego scenes are wide with a small flag, non-ego scenes are mostly
flag). Records carry every field of the project's format: masks, entities, gold searches.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from pixsearch.masks import mask_to_rle
from pixsearch.retrieval.index import IndexConfig, KnowledgeIndex
from pixsearch.types import Document, KBImage

FLAGS = {"RED": ("Redland", (220, 30, 30), (250, 250, 250), "Rubyville"),
         "GRN": ("Greenia", (30, 160, 60), (250, 220, 0), "Emerald City"),
         "BLU": ("Blueland", (20, 40, 200), (250, 250, 250), "Port Azure")}


def flag(code: str, w: int = 24, h: int = 16) -> Image.Image:
    _, top, bottom, _ = FLAGS[code]
    arr = np.zeros((h, w, 3), np.uint8)
    arr[: h // 2], arr[h // 2:] = top, bottom
    return Image.fromarray(arr)


def scene(codes: list[str], ego: bool) -> tuple[Image.Image, list[np.ndarray]]:
    size = (128, 80) if ego else (48, 32)
    img = Image.new("RGB", size, (128, 128, 128))
    masks = []
    for i, code in enumerate(codes):
        f = flag(code) if ego else flag(code, 40, 26)
        x, y = (8 + 56 * i, 20) if ego else (4, 3)
        img.paste(f, (x, y))
        m = np.zeros((size[1], size[0]), bool)
        m[y: y + f.height, x: x + f.width] = True
        masks.append(m)
    return img, masks


def _record(i: int, codes: list[str], ego: bool, split: str, root: Path) -> dict:
    img, masks = scene(codes, ego)
    img.save(root / "images" / f"s{i}.png")
    target = codes[0]
    name, _, _, capital = FLAGS[target]
    needs = i != 5  # one record answerable from the image alone
    return {
        "id": f"r{i}", "image": f"images/s{i}.png",
        "question": f"What is the capital of the country of the {'left ' if ego else ''}flag?"
        if needs else "What colour is the top stripe of the flag?",
        "answer": capital if needs else "red", "answers": [capital if needs else "red"],
        "question_type": "factoid" if needs else "attribute", "needs_search": needs, "ego": ego,
        "split": split, "target": 0,
        "entities": [{"code": c, "name": FLAGS[c][0], "kind": "flag", "in_kb": c != "BLU"}
                     for c in codes],
        "masks": [mask_to_rle(m) for m in masks],
        "trajectory": "", "search_types": ["region"] if needs else [],
        "searches": [{"type": "region", "entity": 0, "query": None, "expect": target}]
        if needs else [],
    }


def build_eval_set(root: Path) -> tuple[Path, Path]:
    """Write records.jsonl + images and a knowledge index under `root`; return both paths."""
    (root / "images").mkdir(parents=True)
    (root / "kb").mkdir()
    docs, images = [], []
    for code, (name, _, _, capital) in FLAGS.items():
        if code == "BLU":
            continue  # one entity is not in the knowledge base
        docs.append(Document(f"card:{code}", name, f"{name} is a country. Flag code {code}.",
                             entity=code, kind="card"))
        docs.append(Document(f"cap:{code}", f"{name} capital",
                             f"The capital of {name} is {capital}.", entity=code))
        flag(code, 48, 32).save(root / "kb" / f"{code}.png")
        images.append(KBImage(f"img:{code}", f"{code}.png", f"card:{code}"))
    specs = [(["RED", "GRN"], True, "test"), (["GRN"], False, "test"),
             (["BLU", "RED"], True, "test_unseen"), (["RED"], False, "test_unseen"),
             (["GRN", "BLU"], True, "test"), (["RED"], False, "test")]
    with (root / "records.jsonl").open("w") as f:
        for i, (codes, ego, split) in enumerate(specs):
            f.write(json.dumps(_record(i, codes, ego, split, root)) + "\n")
    KnowledgeIndex.build(docs, images, root / "kb", root / "index",
                         IndexConfig(image_embedder="thumbnail-16x12")).close()
    return root / "records.jsonl", root / "index"
