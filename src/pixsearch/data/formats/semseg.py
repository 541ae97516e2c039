"""Semantic segmentation sets: ADE20K (SceneParsing-150) and COCO-Stuff-164k, as released.

ADE20K (`ADEChallengeData2016.zip`, sceneparsing.csail.mit.edu):

    ADEChallengeData2016/
      images/{training,validation}/ADE_val_00000001.jpg
      annotations/{training,validation}/ADE_val_00000001.png   0 = other (not scored), k = class k
      objectInfo150.txt        Idx, Ratio, Train, Val, Name (tab-separated; the csv of the
                               sceneparsing repo, comma-separated with ";" synonyms, works too)

COCO-Stuff-164k (github.com/nightrome/cocostuff: COCO 2017 images + stuffthingmaps_trainval2017):

    cocostuff/
      images/{train2017,val2017}/000000000139.jpg
      annotations/{train2017,val2017}/000000000139.png         value v = COCO-Stuff id v+1,
                                                               255 = unlabeled (not scored)
      labels.txt               "id: name" lines, 0: unlabeled … 182: wood

The 11 COCO thing ids that have no masks (street sign, hat, shoe, eye glasses, plate, mirror,
window, desk, door, blender, hair brush) are not classes of COCO-Stuff-164k, leaving the
standard 171. Each class is prompted by its first synonym ("building, edifice" → "building";
"floor-wood" → "wood floor", "sky-other" → "sky"). `split` "val" means "validation" for ADE20K
and "val2017" for COCO-Stuff.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from pixsearch.data.formats.sample import IGNORE, BenchmarkSample, LabelSpace
from pixsearch.data.jsonl import FormatError

COCO_UNUSED_IDS = frozenset({12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91})
_SPLITS = {"ade20k": {"val": "validation", "train": "training"},
           "coco-stuff": {"val": "val2017", "train": "train2017"}}
_CLASS_FILES = {"ade20k": ("objectInfo150.txt", "objectInfo150.csv"),
                "coco-stuff": ("labels.txt",)}
_IMAGE_EXTS = (".jpg", ".jpeg", ".png")


def ade20k_labels(path: str | Path) -> LabelSpace:
    """The 150 classes of ADE20K from `objectInfo150.txt` (or `.csv`)."""
    path = Path(path)
    with path.open(encoding="utf-8", newline="") as f:
        text = f.read()
    delim = "\t" if "\t" in text.splitlines()[0] else ","
    rows = list(csv.DictReader(text.splitlines(), delimiter=delim))
    rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in rows]
    if not rows or "Idx" not in rows[0] or "Name" not in rows[0]:
        raise FormatError(f"{path}: needs columns Idx and Name")
    rows.sort(key=lambda r: int(r["Idx"]))
    if [int(r["Idx"]) for r in rows] != list(range(1, len(rows) + 1)):
        raise FormatError(f"{path}: class indices must run 1..{len(rows)}")
    names = [r["Name"] for r in rows]
    prompts = [re.split(r"[;,]", n)[0].strip() for n in names]
    lut = [IGNORE] * 256
    for k in range(1, len(names) + 1):
        lut[k] = k - 1  # 0 is "other": not scored
    return LabelSpace(names, prompts, lut)


def _stuff_prompt(name: str) -> str:
    head, _, tail = name.partition("-")
    if not tail or tail in ("other", "stuff"):
        return head
    return f"{tail} {head}"


def coco_stuff_labels(path: str | Path) -> LabelSpace:
    """The 171 classes of COCO-Stuff-164k from `labels.txt` ("id: name" lines)."""
    path = Path(path)
    ids: dict[int, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        key, sep, name = line.partition(":")
        if not sep or not key.strip().isdigit():
            raise FormatError(f"{path}:{n}: expected 'id: name', got {line!r}")
        ids[int(key)] = name.strip()
    used = [i for i in sorted(ids) if i != 0 and i not in COCO_UNUSED_IDS]
    if not used or max(used) > 256:
        raise FormatError(f"{path}: no usable class ids (or ids past 256)")
    lut = [IGNORE] * 256
    for k, cid in enumerate(used):
        lut[cid - 1] = k  # the label PNGs store id - 1
    names = [ids[i] for i in used]
    return LabelSpace(names, [_stuff_prompt(n) for n in names], lut)


def _class_file(folder: Path, source: str, classes: str | Path | None) -> Path:
    if classes is not None:
        return Path(classes)
    for name in _CLASS_FILES[source]:
        for where in (folder, folder.parent):
            if (where / name).is_file():
                return where / name
    raise FileNotFoundError(f"no class list ({' or '.join(_CLASS_FILES[source])}) in {folder}; "
                            "put it there or pass benchmark.classes=PATH (see docs/benchmarks.md)")


def read_semseg(folder: str | Path, split: str, source: str,
                classes: str | Path | None = None) -> list[BenchmarkSample]:
    """One sample per label map of `split` under `folder` (ADE20K or COCO-Stuff layout)."""
    if source not in _SPLITS:
        raise ValueError(f"unknown semantic-segmentation format {source!r}")
    folder = Path(folder)
    split = _SPLITS[source].get(split, split)
    labels_dir, images_dir = folder / "annotations" / split, folder / "images" / split
    if not labels_dir.is_dir():
        have = sorted(p.name for p in (folder / "annotations").glob("*") if p.is_dir())
        raise FileNotFoundError(f"{labels_dir} does not exist (annotation splits: "
                                f"{', '.join(have) or 'none'}); pass --split")
    path = _class_file(folder, source, classes)
    labels = ade20k_labels(path) if source == "ade20k" else coco_stuff_labels(path)
    out = []
    for label_map in sorted(labels_dir.glob("*.png")):
        image = next((images_dir / f"{label_map.stem}{ext}" for ext in _IMAGE_EXTS
                      if (images_dir / f"{label_map.stem}{ext}").is_file()), None)
        if image is None:
            raise FileNotFoundError(f"no image for {label_map.name} in {images_dir}")
        out.append(BenchmarkSample(id=label_map.stem, task="semseg", source=source,
                                   image=str(image.resolve()), split=split,
                                   label_map=str(label_map.resolve()), labels=labels))
    if not out:
        raise FileNotFoundError(f"no label maps (*.png) in {labels_dir}")
    return out
