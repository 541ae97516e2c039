"""RefCOCO, RefCOCO+ and RefCOCOg in the `refer` layout (github.com/lichengunc/refer).

One folder per dataset (`refcoco/`, `refcoco+/`, `refcocog/`) holding:

    refs(<split_by>).p   a pickled list of refs: {"ref_id", "ann_id", "image_id", "split",
                         "category_id", "sentences": [{"sent_id", "sent", "raw", "tokens"}]}
    instances.json       COCO instances of the referred objects: "images" (id, file_name,
                         height, width), "annotations" (id, segmentation as polygons or RLE),
                         "categories"

`split_by` is `unc` (RefCOCO, RefCOCO+: val, testA, testB), `umd` (RefCOCOg: val, test) or
`google`. Every sentence of every ref of the chosen split is one sample; its gold mask is the
ref's annotation, rasterised by pycocotools. Images are COCO train2014 files (the
`file_name` of `instances.json`) under `--images`.

The refs file is a pickle, as published; it is read with an unpickler that refuses every
class, so only plain lists, dicts, strings and numbers load (a tampered file cannot run code).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

from pycocotools import mask as coco_mask

from pixsearch.data.formats.images import ImageFolder
from pixsearch.data.formats.sample import BenchmarkSample
from pixsearch.data.jsonl import FormatError

DEFAULT_SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}


class _PlainUnpickler(pickle.Unpickler):
    """Loads plain containers only: any class or function in the stream is an error."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refs file references {module}.{name}; a refs file holds "
                                     "plain lists and dicts only")


def read_refs(path: str | Path) -> list[dict[str, Any]]:
    """The refs of a `refs(<split_by>).p` file."""
    path = Path(path)
    with path.open("rb") as f:
        try:
            refs = _PlainUnpickler(f, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError) as e:
            raise FormatError(f"{path}: not a refs pickle ({e})") from e
    if not isinstance(refs, list):
        raise FormatError(f"{path}: a refs file is a list of refs")
    return refs


def _refs_file(folder: Path, source: str, split_by: str | None) -> Path:
    found = sorted(folder.glob("refs(*).p"))
    if split_by is None:
        split_by = DEFAULT_SPLIT_BY.get(source)
        if len(found) == 1 and not (folder / f"refs({split_by}).p").is_file():
            return found[0]
    path = folder / f"refs({split_by}).p"
    if not path.is_file():
        have = ", ".join(p.name for p in found) or "none"
        raise FileNotFoundError(f"{path} does not exist (refs files there: {have}); choose "
                                "one with benchmark.split_by=unc|umd|google")
    return path


def annotation_rle(segmentation: Any, height: int, width: int) -> dict:
    """A COCO segmentation (polygons, uncompressed or compressed RLE) as one compressed RLE
    with string counts."""
    if isinstance(segmentation, list):  # polygons of one object: their union
        rle = coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = coco_mask.frPyObjects(segmentation, height, width)
    else:
        rle = dict(segmentation)
    counts = rle["counts"]
    return {"size": [int(height), int(width)],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def read_refcoco(folder: str | Path, images: str | Path, split: str, source: str = "refcoco",
                 split_by: str | None = None) -> list[BenchmarkSample]:
    """One sample per referring expression of `split` (val, testA, testB, test, ...)."""
    folder = Path(folder)
    refs = read_refs(_refs_file(folder, source, split_by))
    inst_path = folder / "instances.json"
    if not inst_path.is_file():
        raise FileNotFoundError(f"{inst_path} does not exist: a refer folder holds refs(...).p "
                                "and instances.json")
    inst = json.loads(inst_path.read_text(encoding="utf-8"))
    image_info = {im["id"]: im for im in inst["images"]}
    anns = {a["id"]: a for a in inst["annotations"]}
    cats = {c["id"]: c["name"] for c in inst.get("categories", [])}
    splits = sorted({str(r.get("split")) for r in refs})
    chosen = [r for r in refs if r.get("split") == split]
    if not chosen:
        raise ValueError(f"no refs of split {split!r} in {folder} (splits: {', '.join(splits)});"
                         " pass --split")
    folder_images = ImageFolder(images)
    out = []
    for ref in chosen:
        ann, im = anns.get(ref["ann_id"]), image_info.get(ref["image_id"])
        if ann is None or im is None:
            raise FormatError(f"{inst_path}: ref {ref['ref_id']} names annotation "
                              f"{ref['ann_id']} / image {ref['image_id']} that it lacks")
        rle = annotation_rle(ann["segmentation"], im["height"], im["width"])
        image = folder_images.path(Path(im["file_name"]).stem)
        for sent in ref["sentences"]:
            out.append(BenchmarkSample(
                id=f"{ref['ref_id']}:{sent['sent_id']}", task="refseg", source=source,
                question=str(sent.get("sent") or sent.get("raw")), image=image, split=split,
                mask=rle, meta={"ref_id": ref["ref_id"], "ann_id": ref["ann_id"],
                                "category": cats.get(ref.get("category_id"))}))
    return out
