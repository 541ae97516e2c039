"""Evaluation sets: the project's JSONL records (bring your own), CRAG-MM rows, and the
published benchmarks the paper reports (`load_benchmark_records`).

Project records (docs/dataset_format.md) are read by the format's one reader,
`pixsearch.data.records.read_records` (strict; errors name the file and line), and handed to
the harness as dicts (`Record.to_dict`: every field with its default, extra fields kept flat)
plus `image_path`, so they pickle to worker processes as they are. Multi-turn records carry
`conversation`: a list of turns, each with `question`, `answer` and optionally `id`, `answers`
and labels.

`crag_mm_records` turns CRAG-MM rows into the same layout. It accepts the two row shapes of the
Hugging Face datasets `crag-mm-2025/crag-mm-{single,multi}-turn-public` that the official batch
iterator handles (facebookresearch/CRAG-MM `utils/crag_batch_iterator.py`, read for this
module): `turns`/`answers` as a list of dicts or as a dict of lists; `image` as a PIL image, an
HF image dict ({"bytes", "path"}) or a path; `image_url` set for web images and empty for
egocentric ones (the evaluator's `is_ego = image_url is None`); labels (`domain`,
`query_category`, `dynamism`, `image_quality`) as strings or ClassLabel indices, mapped to names
through the dataset's `features` when present. `image_quality` is read from the turn or, as the
official iterator does, from the row.

`load_benchmark_records` reads InfoSeek, OVEN, TextVQA, HotpotQA, NQ-open, PopQA, MuSiQue,
RefCOCO/+/g, ADE20K and COCO-Stuff in their published layouts (`pixsearch.data.formats`,
docs/benchmarks.md) into the same dict layout, each record carrying its `task`.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

from pixsearch.data.formats import FORMATS, read_benchmark
from pixsearch.data.jsonl import read_rows
from pixsearch.data.records import Record, read_records

_TURN_LABELS = ("domain", "query_category", "dynamism", "image_quality")
_META_FIELDS = (
    "ego",
    "question_type",
    "needs_search",
    "split",
    "domain",
    "dynamism",
    "image_quality",
    "query_category",
)


def as_record_dict(record: Any) -> dict[str, Any]:
    """A record as a dict: dicts pass through, `Record`s and other dataclasses are converted."""
    if isinstance(record, Mapping):
        return dict(record)
    if isinstance(record, Record):
        return record.to_dict()
    if is_dataclass(record) and not isinstance(record, type):
        return asdict(record)
    raise TypeError(f"a record must be a dict or a dataclass, not {type(record).__name__}")


def record_turns(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The record's turns in order, each with `id`, `question`, `answer`, `answers` and a
    `meta` dict of grouping labels (turn labels override the record's)."""
    base_meta = {k: record[k] for k in _META_FIELDS if record.get(k) is not None}
    raw = record.get("conversation") or [record]
    turns = []
    for k, turn in enumerate(raw):
        if "question" not in turn or "answer" not in turn:
            raise ValueError(f"record {record.get('id')!r} turn {k} needs 'question' and 'answer'")
        meta = {**base_meta, **{f: turn[f] for f in _META_FIELDS if turn.get(f) is not None}}
        turns.append(
            {
                "id": turn.get("id") if turn is not record else None,
                "question": str(turn["question"]),
                "answer": str(turn["answer"]),
                "answers": [str(a) for a in turn.get("answers") or ()],
                "meta": meta,
            }
        )
    return turns


def load_records(path: str | Path, as_dataclass: bool = False) -> list[Any]:
    """Read a JSONL evaluation set in the project format (`read_records`).

    Returns dicts (`Record.to_dict`: every field, extra fields kept) plus `image_path` (the
    image resolved against the file's folder; absent for text-only questions). With
    `as_dataclass=True`, the `Record` objects themselves. Errors name the file and line.
    """
    path = Path(path)
    records = read_records(path)
    if as_dataclass:
        return records
    out = []
    for r in records:
        row = r.to_dict()
        if r.image:
            row["image_path"] = str((path.parent / r.image).resolve())
        out.append(row)
    return out


def _rows_of(columns: Any) -> list[dict[str, Any]]:
    """List-of-dicts from either a list of dicts or a dict of equal-length lists."""
    if isinstance(columns, Mapping):
        keys = list(columns)
        n = len(columns[keys[0]]) if keys else 0
        return [{k: columns[k][i] for k in keys} for i in range(n)]
    return [dict(c) for c in columns]


def _label_names(dataset: Any) -> dict[str, list[str]]:
    """ClassLabel names of the turn labels from an HF dataset's `features`, when it has them."""
    names: dict[str, list[str]] = {}
    turns = getattr(dataset, "features", {}).get("turns") if hasattr(dataset, "features") else None
    for key in _TURN_LABELS:
        feature = turns.get(key) if isinstance(turns, Mapping) else None
        feature = getattr(feature, "feature", feature)  # Sequence(ClassLabel) → ClassLabel
        if getattr(feature, "names", None):
            names[key] = list(feature.names)
    return names


def _label(value: Any, names: list[str] | None) -> Any:
    if isinstance(value, list):  # the official iterator takes the first of a list label
        value = value[0] if value else None
    if isinstance(value, int) and names is not None and 0 <= value < len(names):
        return names[value]
    return value


def _image(value: Any, image_dir: Path | None) -> Any:
    if isinstance(value, Mapping):  # HF Image feature without decoding
        if value.get("bytes"):
            from PIL import Image

            return Image.open(io.BytesIO(value["bytes"]))
        value = value.get("path")
    if isinstance(value, str) and value and image_dir is not None:
        return str(image_dir / value)
    return value


def crag_mm_record(
    row: Mapping[str, Any],
    split: str | None = None,
    label_names: Mapping[str, list[str]] | None = None,
    image_dir: str | Path | None = None,
) -> dict[str, Any]:
    """One CRAG-MM row (a session) as a project record with a `conversation` list."""
    label_names = label_names or {}
    answers = {str(a["interaction_id"]): str(a["ans_full"]) for a in _rows_of(row["answers"])}
    conversation = []
    for turn in _rows_of(row["turns"]):
        tid = str(turn["interaction_id"])
        if tid not in answers:
            raise ValueError(f"session {row.get('session_id')!r}: no answer for turn {tid!r}")
        labels = {k: _label(turn.get(k, row.get(k)), label_names.get(k)) for k in _TURN_LABELS}
        conversation.append(
            {
                "id": tid,
                "question": str(turn["query"]),
                "answer": answers[tid],
                "answers": [answers[tid]],
                **labels,
            }
        )
    if not conversation:
        raise ValueError(f"session {row.get('session_id')!r} has no turns")
    image_url = row.get("image_url") or None
    first = conversation[0]
    return {
        "id": str(row["session_id"]),
        "image": _image(row.get("image"), Path(image_dir) if image_dir else None),
        "image_url": image_url,
        "question": first["question"],
        "answer": first["answer"],
        "answers": [first["answer"]],
        "question_type": first["query_category"],
        "ego": image_url is None,
        "split": split,
        "conversation": conversation,
        "source": "crag-mm",
    }


def crag_mm_records(
    rows: Iterable[Mapping[str, Any]],
    split: str | None = None,
    label_names: Mapping[str, list[str]] | None = None,
    image_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Convert CRAG-MM rows (an HF `Dataset` split or a list of its rows) to project records.

    Args:
        rows: the rows; ClassLabel names are read from `rows.features` if present.
        split: stored as each record's `split`.
        label_names: explicit ClassLabel names per label (overrides `features`).
        image_dir: folder that relative image paths are resolved against.
    """
    names = {**_label_names(rows), **(label_names or {})}
    return [crag_mm_record(row, split, names, image_dir) for row in rows]


def load_crag_mm_jsonl(path: str | Path, split: str | None = None) -> list[dict[str, Any]]:
    """Read CRAG-MM rows exported to JSON Lines (images as paths relative to the file)."""
    path = Path(path)
    rows = [row for _, row in read_rows(path, "CRAG-MM export")]
    return crag_mm_records(rows, split=split, image_dir=path.parent)


BENCHMARK_FORMATS: tuple[str, ...] = FORMATS


@dataclass
class BenchmarkConfig:
    """How a published benchmark is read (`pixsearch.data.formats.read_benchmark`).

    Attributes:
        split_by: RefCOCO* partition, `unc`, `umd` or `google` (None: the dataset's usual one:
            unc for RefCOCO and RefCOCO+, umd for RefCOCOg).
        classes: class-list file of ADE20K / COCO-Stuff (None: the one in the data folder).
    """

    split_by: str | None = None
    classes: str | None = None


def load_benchmark_records(fmt: str, data: str | Path, split: str | None,
                           images: str | Path | None,
                           cfg: BenchmarkConfig | None = None) -> list[dict[str, Any]]:
    """The records of a published benchmark (see `read_benchmark` for the arguments), as
    evaluation dicts (`BenchmarkSample.to_record`: `task`, `source`, `image_path`, ...)."""
    cfg = cfg or BenchmarkConfig()
    samples = read_benchmark(fmt, data, split, images, cfg.split_by, cfg.classes)
    return [s.to_record() for s in samples]
