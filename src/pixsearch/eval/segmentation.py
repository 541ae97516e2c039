"""The segmentation task modes: referring segmentation (RefCOCO/+/g) and semantic segmentation
(ADE20K, COCO-Stuff) by prompting, and their scores (gIoU / cIoU, mIoU).

The model segments without searching, along the very path a region search takes at decoding
time and Stage 1 trains: the prompt is `Segment <expression>.` and the assistant turn is forced
to `<expression> <search><region>` (the expression marked as the referring span); the span
tagger reads the expression, g(·) maps it to mask queries and the mask decoder predicts the
mask (`session.region_mask`). Nothing is retrieved.

- referring segmentation: one prompt per expression; the mask at the model's own threshold,
  as predicted (no largest-component clean-up), scored by gIoU (mean per-expression IoU) and
  cIoU (cumulative intersection over cumulative union).
- semantic segmentation, per-class prompting as PLUM / LISA-style segmenting LMMs are evaluated:
  one prompt per class (`the <class name>`) — the classes of the gold label map ("present",
  the default) or every class ("all") — then each pixel takes the class of highest mask
  probability, and pixels where no class reaches `threshold` stay unlabelled (a miss wherever
  the gold has a class). mIoU through `SemanticIoU` over the dataset's classes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from pixsearch.eval.seg_metrics import SemanticIoU, referring_scores
from pixsearch.masks import mask_to_rle, rle_to_mask

SEG_TASKS = ("refseg", "semseg")
_IGNORE = 255


@dataclass
class SegmentationConfig:
    """How the segmentation tasks prompt the model.

    Attributes:
        prompt: the question, `{expression}` filled in (Stage 1 trains on "Segment {...}.").
        class_phrase: how a semantic class is named in the prompt (`{name}` filled in).
        semseg_classes: "present" (prompt the classes of the gold map) or "all".
        threshold: mask probability a pixel needs to take a class (semantic segmentation).
    """

    prompt: str = "Segment {expression}."
    class_phrase: str = "the {name}"
    semseg_classes: str = "present"
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.semseg_classes not in ("present", "all"):
            raise ValueError("semseg_classes must be 'present' or 'all'")
        if "{expression}" not in self.prompt or "{name}" not in self.class_phrase:
            raise ValueError("prompt needs {expression} and class_phrase needs {name}")
        if not 0 < self.threshold < 1:
            raise ValueError("threshold must be in (0, 1)")


def _session(model: Any, image: Image.Image, expression: str, cfg: SegmentationConfig):
    """A decoding session whose answer so far is `<expression> <search><region>`."""
    from pixsearch.turns import SearchCall, Text

    question = cfg.prompt.format(expression=expression)
    full = model.renderer.render(question, [Text(expression, refers=True), Text(" "),
                                            SearchCall("region")], True, add_eos=False)
    prompt = model.renderer.prompt(question, True)
    assert full.input_ids[: prompt.prompt_len] == prompt.input_ids, "one renderer, one prompt"
    session, _ = model.start(prompt, image)
    region = full.region_positions[0]
    session.extend(full.input_ids[prompt.prompt_len: region + 1])
    return session


def expression_mask(model: Any, image: Image.Image, expression: str,
                    cfg: SegmentationConfig) -> np.ndarray:
    """Boolean HxW mask of `expression` in `image` (the model's own threshold)."""
    return np.asarray(_session(model, image, expression, cfg).region_mask(), dtype=bool)


def expression_probability(model: Any, image: Image.Image, expression: str,
                           cfg: SegmentationConfig) -> np.ndarray:
    """Mask probability HxW of `expression` (a 0/1 map for models that only give masks)."""
    session = _session(model, image, expression, cfg)
    logits_fn = getattr(session, "region_mask_logits", None)
    if logits_fn is None:
        return np.asarray(session.region_mask(), dtype=np.float32)
    import torch

    # the decoder's frame (SAM: longest side + padding) mapped back to the image
    up = model.mask_decoder.frame(image.width, image.height).to_original(logits_fn())
    return torch.sigmoid(up[0, 0]).cpu().numpy()


def gold_label_map(record: Mapping[str, Any]) -> np.ndarray:
    """The record's label PNG mapped to class indices (`_IGNORE` where not scored)."""
    raw = np.asarray(Image.open(record["label_map"]))
    if raw.ndim != 2:
        raise ValueError(f"{record['label_map']} is not a single-channel label map")
    return np.asarray(record["label_lut"], dtype=np.uint8)[raw]


def answer_segmentation(model: Any, record: Mapping[str, Any], image: Image.Image,
                        cfg: SegmentationConfig) -> dict[str, Any]:
    """The prediction line of a refseg or semseg record (masks as COCO RLE)."""
    t0 = time.perf_counter()
    line: dict[str, Any] = {"id": str(record["id"]), "task": record["task"], "answer": ""}
    if record["task"] == "refseg":
        line["mask"] = mask_to_rle(expression_mask(model, image, record["question"], cfg))
    else:
        names, prompts = record["label_names"], record["label_prompts"]
        gold = gold_label_map(record)
        if gold.shape != (image.height, image.width):
            raise ValueError(f"record {record['id']!r}: label map {gold.shape[::-1]} and image "
                             f"{image.size} differ in size")
        classes = (sorted(int(c) for c in np.unique(gold) if c != _IGNORE)
                   if cfg.semseg_classes == "present" else range(len(names)))
        best = np.full(gold.shape, cfg.threshold, np.float32)
        label = np.full(gold.shape, _IGNORE, np.uint8)
        for c in classes:
            phrase = cfg.class_phrase.format(name=prompts[c])
            prob = expression_probability(model, image, phrase, cfg)
            win = prob > best
            best[win], label[win] = prob[win], c
        line["prompted"] = [int(c) for c in classes]
        line["class_masks"] = {str(c): mask_to_rle(label == c) for c in np.unique(label)
                               if c != _IGNORE}
        line["size"] = [int(gold.shape[0]), int(gold.shape[1])]
    line["seconds"] = time.perf_counter() - t0
    return line


def predicted_label_map(line: Mapping[str, Any]) -> np.ndarray:
    """A semseg prediction line's label map (`_IGNORE` where no class won)."""
    out = np.full(tuple(line["size"]), _IGNORE, np.uint8)
    for c, rle in line["class_masks"].items():
        out[rle_to_mask(rle)] = int(c)
    return out


def score_segmentation(records: Sequence[Mapping[str, Any]],
                       predictions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """gIoU / cIoU (refseg) or mIoU / pixel accuracy (semseg) over the predicted records."""
    rows = [r for r in records if str(r["id"]) in predictions]
    if not rows:
        return {"n_records": 0, "task": None, "segmentation": {}}
    task = rows[0]["task"]
    out: dict[str, Any] = {"n_records": len(rows), "task": task,
                           "sources": sorted({str(r.get("source")) for r in rows})}
    if task == "refseg":
        scores = referring_scores((rle_to_mask(predictions[str(r["id"])]["mask"]),
                                   rle_to_mask(r["mask"])) for r in rows)
        out["segmentation"] = scores.as_dict()
        return out
    names = rows[0]["label_names"]
    # one extra class for "no class won": it counts as a miss but is not a class of the mean
    meter = SemanticIoU(len(names) + 1, ignore_index=_IGNORE)
    for r in rows:
        pred = predicted_label_map(predictions[str(r["id"])]).astype(np.int64)
        pred[pred == _IGNORE] = len(names)
        meter.update(pred, gold_label_map(r))
    ious = meter.per_class_iou()[: len(names)]
    present = ~np.isnan(ious)
    out["segmentation"] = {
        "n": len(rows), "miou": float(ious[present].mean()) if present.any() else 0.0,
        "pixel_accuracy": meter.pixel_accuracy(), "classes_scored": int(present.sum()),
        "per_class": {names[c]: float(ious[c]) for c in np.flatnonzero(present)},
    }
    return out


def segmentation_report(scores: Mapping[str, Any]) -> str:
    """The markdown report of a segmentation run."""
    cfg, seg = scores["config"], scores["segmentation"]
    lines = [f"# Evaluation: {'referring' if scores['task'] == 'refseg' else 'semantic'} "
             "segmentation", "",
             f"- data: `{cfg['data']}` ({cfg['format']}, split {cfg['split']}), model "
             f"`{cfg['model']}`; the model segments each prompt without searching",
             f"- records scored: {scores['n_records']}", ""]
    if scores["task"] == "refseg":
        lines += ["| n | gIoU | cIoU |", "|---|---|---|",
                  f"| {int(seg['n'])} | {100 * seg['giou']:.1f} | {100 * seg['ciou']:.1f} |"]
    else:
        lines += ["| n | mIoU | pixel accuracy | classes scored |", "|---|---|---|---|",
                  f"| {seg['n']} | {100 * seg['miou']:.1f} | {100 * seg['pixel_accuracy']:.1f} "
                  f"| {seg['classes_scored']} |", "", "| class | IoU |", "|---|---|"]
        lines += [f"| {name} | {100 * v:.1f} |" for name, v in sorted(
            seg["per_class"].items(), key=lambda kv: -kv[1])]
    return "\n".join(lines + [""])
