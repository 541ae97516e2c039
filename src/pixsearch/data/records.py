"""Dataset records: one visual question per JSONL line (the world's format and bring-your-own).

The schema is documented in docs/dataset_format.md. Images are paths relative to the JSONL
file; masks are COCO RLE (see `pixsearch.masks`). Only `id`, `image`, `question` and `answer`
are required when reading a user's file; everything else has a default.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixsearch.masks import rle_to_mask

QUESTION_TYPES: tuple[str, ...] = (
    "identification", "factoid", "multi_hop", "attribute", "counting", "binary", "spatial",
)
SPLITS: tuple[str, ...] = ("train", "val", "test", "test_unseen")


@dataclass
class Record:
    """One visual question with its answer, entity masks and gold search trajectory.

    Attributes:
        id: unique id.
        image: image path relative to the JSONL file.
        question, answer: the question and its short gold answer.
        answers: every accepted answer (aliases; the gold answer first).
        question_type: one of `QUESTION_TYPES` (or the user's own label).
        needs_search: whether answering needs knowledge outside the image.
        ego: egocentric (small entity among distractors) or not.
        split: train / val / test / test_unseen.
        entities: per entity: code, name, kind, box [x0, y0, x1, y1], refexp, in_kb.
        masks: COCO RLE per entity, same order as `entities`.
        target: index of the entity the question is about (None for whole-image questions).
        trajectory: gold answer in the paper's display format.
        search_types: modality of each search in order ("region", "image", "text").
        searches: per search: type, entity index (or None), query text (or None).
        region_spans: [start, end) character span in `trajectory` of the referring expression
            each region search is about, one per region search.
        numeric_tolerance: relative tolerance for numeric answers (0 = exact).
    """

    id: str
    image: str
    question: str
    answer: str
    answers: list[str] = field(default_factory=list)
    question_type: str = ""
    needs_search: bool = True
    ego: bool = False
    split: str = "test"
    entities: list[dict[str, Any]] = field(default_factory=list)
    masks: list[dict] = field(default_factory=list)
    target: int | None = None
    trajectory: str = ""
    search_types: list[str] = field(default_factory=list)
    searches: list[dict[str, Any]] = field(default_factory=list)
    region_spans: list[list[int]] = field(default_factory=list)
    numeric_tolerance: float = 0.0

    def __post_init__(self) -> None:
        if not self.answers:
            self.answers = [self.answer]
        assert len(self.masks) in (0, len(self.entities)), "one mask per entity"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        known = {f.name for f in fields(cls)}
        missing = {"id", "image", "question", "answer"} - set(d)
        if missing:
            raise ValueError(f"record {d.get('id', '?')} lacks required field(s) {sorted(missing)}")
        return cls(**{k: v for k, v in d.items() if k in known})

    def load_image(self, root: Path) -> Image.Image:
        """The record's image (RGB); `root` is the folder of the JSONL file."""
        return Image.open(Path(root) / self.image).convert("RGB")

    def mask(self, i: int) -> np.ndarray:
        """Boolean mask of entity `i`."""
        return rle_to_mask(self.masks[i])


def write_records(path: Path, records: list[Record]) -> None:
    """Write records as JSONL (UTF-8, one object per line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")


def read_records(path: Path) -> list[Record]:
    """Read a JSONL file of records; errors name the line that is wrong."""
    out = []
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(Record.from_dict(json.loads(line)))
            except (ValueError, TypeError) as e:
                raise ValueError(f"{path}:{n}: {e}") from e
    return out
