"""TextVQA: one JSON file per split (`TextVQA_0.5.1_{train,val,test}.json`, textvqa.org).

    {"dataset_name": "textvqa", "dataset_type": "val", "dataset_version": "0.5.1",
     "data": [{"question_id": 34602, "question": "...", "image_id": "0054c91397f2fe05",
               "answers": [ten human answers], "set_name": "val", ...}, ...]}

Images are `train_images/<image_id>.jpg` of `train_val_images.zip` (val images are in the
train folder) or `test_images/`; `--images` names that folder. The gold answer of the EM/F1
metrics is the most frequent human answer (ties: the first given), every distinct human answer
is an accepted alias, and all ten are kept for the VQA accuracy (`pixsearch.eval.vqa_accuracy`).
The test split has no answers and cannot be scored here.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from pixsearch.data.formats.images import ImageFolder
from pixsearch.data.formats.sample import BenchmarkSample
from pixsearch.data.jsonl import FormatError


def read_textvqa(path: str | Path, images: str | Path) -> list[BenchmarkSample]:
    """The questions of a TextVQA JSON file, images resolved under `images`."""
    path = Path(path)
    try:
        blob = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise FormatError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(blob, dict) or not isinstance(blob.get("data"), list):
        raise FormatError(f"{path}: a TextVQA file is an object with a 'data' list")
    folder = ImageFolder(images)
    out = []
    for k, row in enumerate(blob["data"]):
        where = f"{path}: data[{k}]"
        missing = [key for key in ("question_id", "question", "image_id") if key not in row]
        if missing:
            raise FormatError(f"{where}: missing {', '.join(map(repr, missing))}")
        humans = [str(a) for a in row.get("answers") or []]
        if not humans:
            raise FormatError(f"{where}: no 'answers' (the test split is unanswered; evaluate "
                              "on val)")
        counts = Counter(humans)
        ranked = sorted(counts, key=lambda a: (-counts[a], humans.index(a)))
        out.append(BenchmarkSample(
            id=str(row["question_id"]), task="vqa", source="textvqa",
            question=str(row["question"]), answers=ranked,
            image=folder.path(str(row["image_id"])), split=row.get("set_name"),
            vqa_answers=humans, meta={"image_id": str(row["image_id"])}))
    return out
