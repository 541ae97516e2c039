"""Text-only QA sets in their released files: HotpotQA, Natural Questions (open), PopQA,
MuSiQue. No image; the answers are the gold answer and its aliases.

- HotpotQA (hotpotqa.github.io, `hotpot_dev_distractor_v1.json` / `..._fullwiki_v1.json`):
  one JSON list of `{"_id", "question", "answer", "type", "level", "supporting_facts",
  "context"}`. `type` (bridge / comparison) is the question type.
- NQ-open (github.com/google-research-datasets/natural-questions, `nq_open/NQ-open.dev.jsonl`,
  also `NQ-open.efficientqa.dev.1.1.jsonl`): JSONL `{"question", "answer": [aliases]}`; no ids,
  so the id is the line number (`nq-<line>`), stable for a given file.
- PopQA (github.com/AlexTMallen/adaptive-retrieval, `data/popQA.tsv`; also the Hugging Face
  dataset akariasai/PopQA exported to TSV/CSV): a table with `id`, `question`,
  `possible_answers` (a JSON list), `prop` (the relation: the question type), `s_pop`.
- MuSiQue (github.com/StonyBrookNLP/musique, `musique_ans_v1.0_dev.jsonl`, also `full`): JSONL
  `{"id", "question", "answer", "answer_aliases", "answerable", "paragraphs",
  "question_decomposition"}`. Unanswerable questions of the `full` set are skipped (their gold
  is no answer); the number of hops (from the id, `2hop__…`) is the question type.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

from pixsearch.data.formats.sample import BenchmarkSample
from pixsearch.data.jsonl import FormatError, read_rows


def _sample(source: str, qid: str, question: str, answers: list[str], **kw) -> BenchmarkSample:
    answers = list(dict.fromkeys(a for a in answers if a))  # dedup, keep order
    return BenchmarkSample(id=qid, task="text_qa", source=source, question=question,
                           answers=answers, **kw)


def read_hotpotqa(path: str | Path) -> list[BenchmarkSample]:
    """The questions of a HotpotQA JSON file."""
    path = Path(path)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise FormatError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(rows, list):
        raise FormatError(f"{path}: a HotpotQA file is a JSON list of questions")
    out = []
    for k, row in enumerate(rows):
        missing = [key for key in ("_id", "question", "answer") if key not in row]
        if missing:
            raise FormatError(f"{path}: [{k}]: missing {', '.join(map(repr, missing))}")
        out.append(_sample("hotpotqa", str(row["_id"]), str(row["question"]),
                           [str(row["answer"])], question_type=row.get("type"),
                           meta={"level": row.get("level")}))
    return out


def read_nq_open(path: str | Path) -> list[BenchmarkSample]:
    """The questions of an NQ-open JSONL file."""
    path = Path(path)
    out = []
    for n, row in read_rows(path, "NQ-open questions"):
        if "question" not in row or not row.get("answer"):
            raise FormatError(f"{path}:{n}: needs 'question' and a non-empty 'answer' list")
        answers = row["answer"] if isinstance(row["answer"], list) else [row["answer"]]
        out.append(_sample("nq-open", str(row.get("id", f"nq-{n}")), str(row["question"]),
                           [str(a) for a in answers]))
    return out


def read_popqa(path: str | Path) -> list[BenchmarkSample]:
    """The questions of PopQA's table (tab-separated `.tsv`, or comma-separated `.csv`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PopQA file {path} does not exist")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="," if path.suffix == ".csv" else "\t")
        need = {"question", "possible_answers"}
        if not need <= set(reader.fieldnames or ()):
            raise FormatError(f"{path}: needs columns {sorted(need)} (has "
                              f"{reader.fieldnames})")
        out = []
        for n, row in enumerate(reader, 2):
            try:
                answers = json.loads(row["possible_answers"])
            except json.JSONDecodeError as e:
                raise FormatError(f"{path}:{n}: possible_answers is not a JSON list ({e})") from e
            out.append(_sample("popqa", str(row.get("id") or f"popqa-{n}"), row["question"],
                               [str(a) for a in answers], question_type=row.get("prop"),
                               meta={"s_pop": row.get("s_pop")}))
    return out


def read_musique(path: str | Path) -> list[BenchmarkSample]:
    """The answerable questions of a MuSiQue JSONL file."""
    path = Path(path)
    out = []
    for n, row in read_rows(path, "MuSiQue questions"):
        if not {"id", "question", "answer"} <= set(row):
            raise FormatError(f"{path}:{n}: needs 'id', 'question' and 'answer'")
        if row.get("answerable") is False:
            continue
        hops = str(row["id"]).split("__", 1)[0] if "__" in str(row["id"]) else None
        out.append(_sample("musique", str(row["id"]), str(row["question"]),
                           [str(row["answer"])] + [str(a) for a in row.get("answer_aliases")
                                                   or []], question_type=hops))
    return out


READERS: dict[str, Callable[[Path], list[BenchmarkSample]]] = {
    "hotpotqa": read_hotpotqa, "nq-open": read_nq_open, "popqa": read_popqa,
    "musique": read_musique,
}
