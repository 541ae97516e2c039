"""Dataset records: one visual question per JSONL line (the world's format and bring-your-own).

The schema is documented in docs/dataset_format.md. Images are paths relative to the JSONL
file; masks are COCO RLE (see `pixsearch.masks`). `read_records` is the one reader of the
format, used by training and evaluation alike; it is strict: each field must have its
documented type, and an error names the file and the line. What it accepts on purpose:

- only `id`, `question` and `answer` are required; every other field has a default, and a
  `null` means the default. `image` may be left out for a text-only question.
- `conversation`: a multi-turn record (CRAG-MM sessions), a list of turns with `question`,
  `answer` and optionally `id`, `answers` and labels; the record's `question` and `answer`
  default to the first turn's.
- fields outside the schema (a user's own labels, CRAG-MM's `domain`, `dynamism`,
  `image_quality`, `query_category`, `image_url`, `source`, ...) are kept in `Record.extra` and
  written back unchanged; evaluation groups can use them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixsearch.data.jsonl import check_fields, parse_rows, write_rows
from pixsearch.masks import rle_to_mask
from pixsearch.types import MODALITIES

QUESTION_TYPES: tuple[str, ...] = (
    "identification", "factoid", "multi_hop", "attribute", "counting", "binary", "spatial",
)
SPLITS: tuple[str, ...] = ("train", "val", "test", "test_unseen")


@dataclass
class Record:
    """One visual question with its answer, entity masks and gold search trajectory.

    Attributes:
        id: unique id.
        image: image path relative to the JSONL file ("" for a text-only question).
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
        conversation: the turns of a multi-turn record (each with `question`, `answer`, and
            optionally `id`, `answers`, labels); empty for a single question.
        extra: the row's fields outside this schema, kept as they are.
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
    conversation: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.answers:
            self.answers = [self.answer]
        label = f"record {self.id!r}"
        if len(self.masks) not in (0, len(self.entities)):
            raise ValueError(f"{label} has {len(self.masks)} masks for {len(self.entities)} "
                             "entities (one mask per entity, or none)")
        if self.target is not None and self.entities and not 0 <= self.target < len(self.entities):
            raise ValueError(f"{label}: target {self.target} is not an entity index")
        if any(len(span) != 2 for span in self.region_spans):
            raise ValueError(f"{label}: each region span is [start, end]")
        if set(self.search_types) - set(MODALITIES):
            raise ValueError(f"{label}: search_types must be among {list(MODALITIES)}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the record: its fields, then `conversation` (if any) and the
        extra fields, flat, as they were read."""
        d = asdict(self)
        extra, conversation = d.pop("extra"), d.pop("conversation")
        if conversation:
            d["conversation"] = conversation
        d.update({k: v for k, v in extra.items() if k not in d})
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        """A record from its JSON object, checked against the schema (ValueError / TypeError
        saying what is wrong)."""
        if not isinstance(d, dict):
            raise TypeError(f"a record must be a JSON object, not {type(d).__name__}")
        label = f"record {d['id']!r}" if d.get("id") is not None else "a record"
        row = dict(d)
        if row.get("image") is None:
            row["image"] = ""  # a text-only question
        turns = _turns(row.get("conversation"), label)
        if turns:
            for key in ("question", "answer"):
                if row.get(key) is None:
                    row[key] = turns[0][key]
        own, rest = check_fields(cls, row, label, skip=("extra",))
        return cls(**own, extra=rest)

    def load_image(self, root: Path) -> Image.Image:
        """The record's image (RGB); `root` is the folder of the JSONL file."""
        if not self.image:
            raise ValueError(f"record {self.id!r} has no image (a text-only question)")
        return Image.open(Path(root) / self.image).convert("RGB")

    def mask(self, i: int) -> np.ndarray:
        """Boolean mask of entity `i`."""
        return rle_to_mask(self.masks[i])


def _turns(value: Any, label: str) -> list[dict[str, Any]]:
    """The turns of a `conversation`, checked: objects with string `question` and `answer`."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"{label}: 'conversation' must be a list of turns")
    for k, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise TypeError(f"{label}: conversation turn {k} must be an object")
        for key in ("question", "answer"):
            if not isinstance(turn.get(key), str):
                raise ValueError(f"{label}: conversation turn {k} needs a string {key!r}")
        answers = turn.get("answers")
        if answers is not None and not (isinstance(answers, list)
                                        and all(isinstance(a, str) for a in answers)):
            raise TypeError(f"{label}: conversation turn {k}: 'answers' must be list[str]")
    return value


def write_records(path: Path, records: list[Record]) -> None:
    """Write records as JSONL (UTF-8, one object per line)."""
    write_rows(path, (r.to_dict() for r in records))


def read_records(path: Path) -> list[Record]:
    """Read a JSONL file of records; errors (`FormatError`) name the file and the line."""
    return parse_rows(path, Record.from_dict, "records")
