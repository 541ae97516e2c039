"""One evaluation sample of a published benchmark, whatever file it came from.

Every reader of `pixsearch.data.formats` returns `BenchmarkSample`s: the fields the four task
modes of `pixsearch eval run` need, nothing format-specific left to parse later.

- knowledge VQA (`task="vqa"`: InfoSeek, OVEN, TextVQA): a question about an image and its gold
  answers; InfoSeek adds its evaluation answers (`answer_eval`: strings, or a numeric range),
  TextVQA its ten human answers (`vqa_answers`), OVEN and InfoSeek the gold Wikidata entity;
- text-only QA (`task="text_qa"`: HotpotQA, NQ-open, PopQA, MuSiQue): a question, no image;
- referring segmentation (`task="refseg"`: RefCOCO/+/g): an expression and its gold mask;
- semantic segmentation (`task="semseg"`: ADE20K, COCO-Stuff): an image, its label map and the
  dataset's `LabelSpace`.

`to_record` turns a sample into the dict the evaluation harness passes around (the project's
record layout: `id`, `question`, `answer`, `answers`, `image_path`, ... plus the fields above).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TASKS: tuple[str, ...] = ("vqa", "text_qa", "refseg", "semseg")
IGNORE = 255  # the label-space index of pixels no class owns (not scored)


@dataclass
class LabelSpace:
    """The classes of a semantic-segmentation dataset and how its label maps encode them.

    Attributes:
        names: class names in evaluation order (index = class id of the prediction).
        prompts: the phrase each class is prompted with ("wall", "building", ...).
        lut: 256 entries, pixel value of the dataset's label PNG → class index, or `IGNORE`.
    """

    names: list[str]
    prompts: list[str]
    lut: list[int]

    def __post_init__(self) -> None:
        assert len(self.names) == len(self.prompts), "one prompt per class"
        assert len(self.lut) == 256, "a lookup entry for every 8-bit pixel value"
        bad = [v for v in self.lut if v != IGNORE and not 0 <= v < len(self.names)]
        assert not bad, f"lookup values outside the class range: {bad[:3]}"
        if len(self.names) >= IGNORE:
            raise ValueError(f"{len(self.names)} classes do not fit beside the ignore index "
                             f"{IGNORE}")


@dataclass
class BenchmarkSample:
    """One question (or expression, or image to parse) of a benchmark.

    Attributes:
        id: unique id within the file (the dataset's own id where it has one).
        task: one of `TASKS`.
        source: the format it was read from ("infoseek", "refcoco+", "ade20k", ...).
        question: the question (the referring expression for refseg, "" for semseg).
        answers: accepted answers, the main one first (empty for segmentation).
        image: absolute image path (None for text-only QA).
        split: the dataset's split label (InfoSeek/OVEN `data_split`, RefCOCO `split`, ...).
        question_type: the dataset's question type, when it has one.
        entity_id: the gold knowledge-base entity (a Wikidata id for InfoSeek/OVEN).
        answer_eval: InfoSeek's evaluation answers: strings, or `[low, high]` numbers.
        vqa_answers: TextVQA's ten human answers (VQA accuracy).
        mask: the gold mask (COCO RLE) of a referring expression.
        label_map: absolute path of the label PNG of a semseg image.
        labels: the label space of a semseg dataset (shared by its samples).
        meta: other fields worth keeping in predictions (HotpotQA `level`, RefCOCO `ref_id`).
    """

    id: str
    task: str
    source: str
    question: str = ""
    answers: list[str] = field(default_factory=list)
    image: str | None = None
    split: str | None = None
    question_type: str | None = None
    entity_id: str | None = None
    answer_eval: list[Any] | None = None
    vqa_answers: list[str] | None = None
    mask: dict | None = None
    label_map: str | None = None
    labels: LabelSpace | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert self.task in TASKS, self.task
        if self.task in ("vqa", "text_qa") and not self.answers:
            raise ValueError(f"{self.source} sample {self.id!r} has no gold answer")
        if self.task == "refseg" and self.mask is None:
            raise ValueError(f"{self.source} sample {self.id!r} has no gold mask")
        if self.task == "semseg" and (self.label_map is None or self.labels is None):
            raise ValueError(f"{self.source} sample {self.id!r} needs a label map and classes")

    def to_record(self) -> dict[str, Any]:
        """The sample as an evaluation record (see the module docstring)."""
        row: dict[str, Any] = {
            "id": self.id, "task": self.task, "source": self.source,
            "question": self.question, "answer": self.answers[0] if self.answers else "",
            "answers": list(self.answers), "split": self.split,
            "question_type": self.question_type, **self.meta,
        }
        if self.image is not None:
            row["image_path"] = self.image
        if self.entity_id is not None:
            # the gold entity as the project's records name it: recall@k of a search counts a
            # hit whose entity is this one
            row["entities"] = [{"code": self.entity_id, "in_kb": None}]
            row["target"] = 0
        for key in ("answer_eval", "vqa_answers", "mask", "label_map"):
            if getattr(self, key) is not None:
                row[key] = getattr(self, key)
        if self.labels is not None:
            row["label_names"] = self.labels.names
            row["label_prompts"] = self.labels.prompts
            row["label_lut"] = self.labels.lut
        return row
