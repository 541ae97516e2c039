"""InfoSeek and OVEN: JSONL question files over the OVEN image snapshot.

Both come from the same release (open-vision-language; evaluation code at
github.com/edchengg/infoseek_eval and github.com/edchengg/oven_eval) and share its images,
named by `image_id` (`oven_04925844`) and resolved through `ImageFolder`.

InfoSeek (`infoseek_{val,test,human}.jsonl`), one question a line:
    {"data_id", "image_id", "question", "answer": [...], "answer_eval": [...],
     "data_split": "val_unseen_question" | "val_unseen_entity" | ...}
`answer_eval` holds the strings the official scorer accepts or, for numerical questions,
`[{"wikidata": 1990, "range": [1989, 1991]}]` (or that dict alone). Two companion files, found
beside the question file by name: `<stem>_qtype.jsonl` (`{"data_id", "question_type"}`: STRING,
TIME or NUMERICAL; without it, a question with a range is NUMERICAL and any other STRING, which
scores the same as TIME) and `<stem>_withkb.jsonl` (`{"data_id", "entity_id"}`, the gold
Wikidata entity).

OVEN (`oven_{entity,query}_{val,test}.jsonl`, `oven_human.jsonl`), one line per image:
    {"data_id", "image_id", "question", "entity_id", "entity_text", "data_split"}
The answer is the entity's name (`entity_text`); `data_split` ends in `_seen` or `_unseen`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pixsearch.data.formats.images import ImageFolder
from pixsearch.data.formats.sample import BenchmarkSample
from pixsearch.data.jsonl import FormatError, read_rows

QUESTION_TYPES = ("STRING", "TIME", "NUMERICAL")


def _need(path: Path, n: int, row: dict[str, Any], keys: tuple[str, ...]) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise FormatError(f"{path}:{n}: missing {', '.join(map(repr, missing))} (fields: "
                          f"{sorted(row)})")


def _companion(path: Path, suffix: str, key: str) -> dict[str, str]:
    """`data_id → key` from `<stem>_<suffix>.jsonl` beside `path` (empty if there is none)."""
    other = path.with_name(f"{path.stem}_{suffix}.jsonl")
    if not other.is_file():
        return {}
    out = {}
    for n, row in read_rows(other, f"InfoSeek {suffix}"):
        _need(other, n, row, ("data_id", key))
        out[str(row["data_id"])] = str(row[key])
    return out


def numeric_range(answer_eval: Any) -> list[float] | None:
    """`[low, high]` of an InfoSeek numerical `answer_eval` (a range dict, or a list holding
    one), None for a list of strings."""
    item = answer_eval[0] if isinstance(answer_eval, list) and answer_eval else answer_eval
    if isinstance(item, dict) and "range" in item:
        low, high = (float(v) for v in item["range"][:2])
        return [low, high]
    return None


def _strings(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def read_infoseek(path: str | Path, images: str | Path) -> list[BenchmarkSample]:
    """The questions of an InfoSeek JSONL file, images resolved under `images`."""
    path, folder = Path(path), ImageFolder(images)
    qtypes = _companion(path, "qtype", "question_type")
    entities = _companion(path, "withkb", "entity_id")
    out = []
    for n, row in read_rows(path, "InfoSeek questions"):
        _need(path, n, row, ("data_id", "image_id", "question", "answer"))
        qid = str(row["data_id"])
        raw_eval = row.get("answer_eval", row["answer"])
        rng = numeric_range(raw_eval)
        qtype = qtypes.get(qid, "NUMERICAL" if rng is not None else "STRING").upper()
        if qtype not in QUESTION_TYPES:
            raise FormatError(f"{path}:{n}: question type {qtype!r} is not one of "
                              f"{QUESTION_TYPES}")
        answer_eval: list[Any] = rng if rng is not None else _strings(raw_eval)
        # EM / F1 accept the answer and every string the official scorer accepts
        answers = list(dict.fromkeys(_strings(row["answer"]) + (answer_eval if rng is None
                                                                  else [])))
        if qtype == "NUMERICAL" and rng is None:  # a numerical question given as strings
            answer_eval = [float(a) for a in answer_eval[:2]]
        out.append(BenchmarkSample(
            id=qid, task="vqa", source="infoseek", question=str(row["question"]),
            answers=answers, image=folder.path(str(row["image_id"])),
            split=row.get("data_split"), question_type=qtype,
            entity_id=entities.get(qid) or row.get("entity_id"), answer_eval=answer_eval,
            meta={"image_id": str(row["image_id"])}))
    return out


def read_oven(path: str | Path, images: str | Path) -> list[BenchmarkSample]:
    """The images of an OVEN JSONL file (entity or query split), resolved under `images`."""
    path, folder = Path(path), ImageFolder(images)
    out = []
    for n, row in read_rows(path, "OVEN questions"):
        _need(path, n, row, ("data_id", "image_id", "question", "entity_id"))
        name = row.get("entity_text")
        if not name:
            raise FormatError(f"{path}:{n}: no 'entity_text': the answer is the entity's name "
                              "(the released val/test files have it)")
        out.append(BenchmarkSample(
            id=str(row["data_id"]), task="vqa", source="oven", question=str(row["question"]),
            answers=[str(name)], image=folder.path(str(row["image_id"])),
            split=row.get("data_split"), entity_id=str(row["entity_id"]),
            meta={"image_id": str(row["image_id"])}))
    return out
