"""Error analysis of an evaluation run: why each answer that is not right went wrong.

Every scored record gets one category, decided from its record (gold entities, masks, planned
searches) and its trace (masks, hits, answer), in the order a search-interleaved answer can fail:

| category | meaning |
| --- | --- |
| `correct` | the judge accepted the answer |
| `abstained` | "I don't know" although the answer was knowable (honest, but a miss) |
| `absent_entity_hallucination` | the entity is not in the knowledge base, and the model answered anyway |
| `no_search` | the question needs retrieval and the model did not search |
| `wrong_referent` | the region mask lands on another object than the gold entity (IoU < `iou_ok`) |
| `retrieval_miss` | the query was right (or not a region), but the hits lack the gold entity |
| `wrong_attribute` | retrieval was right, and the answer states another attribute than asked |
| `reading_failure` | retrieval was right, and the answer fails to copy the asked fact |
| `logic` | a question that needs no retrieval (counting, colours, positions, yes/no) answered wrong |
| `unclassified` | the record carries too little annotation to tell (e.g. a bare user dataset) |

The categories need the project's record format (`docs/dataset_format.md`); missing fields make
the analysis fall back to coarser categories, never to an error. The attribute of a question
and of an answer is found with `FACT_WORDS` (the kinds of fact a knowledge base states); this is
a heuristic and is reported as one.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pixsearch.eval.crag import TurnResult, first_turns
from pixsearch.eval.scores import RecordScore
from pixsearch.types import Trace

CATEGORIES = ("correct", "abstained", "absent_entity_hallucination", "no_search",
              "wrong_referent", "retrieval_miss", "wrong_attribute", "reading_failure", "logic",
              "unclassified")
FAILURES = CATEGORIES[2:]

# fact kind -> words that name it in a question or an answer
FACT_WORDS: dict[str, tuple[str, ...]] = {
    "capital": ("capital",),
    "area": ("area", "square kilomet", "km²", "km2", "how large"),
    "population": ("population", "inhabitants", "people live", "people living", "populous"),
    "calling_code": ("calling code", "dialling code", "dialing code", "phone code",
                     "phone prefix", "telephone"),
    "currency": ("currency", "currencies", "money"),
    "language": ("language", "speak", "spoken"),
    "region": ("region", "continent", "subregion", "part of the world", "where in the world",
               "lies in"),
    "borders": ("border", "neighbour", "neighbor", "next to"),
    "demonym": ("demonym", "people called", "citizens called", "are called", "call someone",
                "called?"),
    "tld": ("domain", "tld"),
    "timezone": ("time zone", "timezone", "utc"),
}


@dataclass
class RecordError:
    """The category of one record and what an example row shows."""

    id: str
    category: str
    question: str
    gold: str
    answer: str
    iou: float | None = None


def fact_kinds(text: str) -> set[str]:
    """The fact kinds `text` names (see `FACT_WORDS`)."""
    low = text.lower()
    return {kind for kind, words in FACT_WORDS.items() if any(w in low for w in words)}


def _absent_target(record: Mapping[str, Any]) -> bool:
    t, ents = record.get("target"), record.get("entities") or []
    return isinstance(t, int) and 0 <= t < len(ents) and ents[t].get("in_kb") is False


def _last_sentence(answer: str) -> str:
    parts = [p for p in re.split(r"(?<=[.!?])\s+", answer.strip()) if p]
    return parts[-1] if parts else answer


def classify(record: Mapping[str, Any], prediction: Mapping[str, Any], turn: TurnResult,
             row: RecordScore, iou_ok: float = 0.5) -> str:
    """The category of one record (see the module docstring for the order of the checks)."""
    if turn.correct:
        return "correct"
    if turn.missing:
        return "abstained"
    if _absent_target(record):
        return "absent_entity_hallucination"
    needs = record.get("needs_search")
    if needs is None:
        return "unclassified"
    if not needs:
        return "logic"
    if not row.searched:
        return "no_search"
    if row.iou is not None and row.iou[1] and row.iou[0] / row.iou[1] < iou_ok:
        return "wrong_referent"
    steps = [s for s in row.steps if s[2]]
    if not steps:
        return "unclassified"
    if not all(set(ids) & gold for _, ids, gold in steps):
        return "retrieval_miss"
    asked = fact_kinds(str(record.get("question", "")))
    said = fact_kinds(_last_sentence(str(prediction.get("answer", ""))))
    if asked and said and not (asked & said):
        return "wrong_attribute"
    return "reading_failure"


def analyse(records: Sequence[Mapping[str, Any]], predictions: Mapping[str, Mapping[str, Any]],
            turns: Sequence[TurnResult], rows: Sequence[RecordScore],
            examples: int = 3) -> dict[str, Any]:
    """Per-record categories, counts per category (all / ego / non-ego), and a few examples
    of each failure. `turns` are the CRAG-MM turns (the first turn of each record is used),
    `rows` the per-record scores of `scores.score_record`."""
    first = first_turns(turns)
    row_of = {r.id: r for r in rows}
    out: list[RecordError] = []
    counts: dict[str, Counter] = {"all": Counter(), "ego": Counter(), "non_ego": Counter()}
    for rec in records:
        rid = str(rec["id"])
        if rid not in predictions or rid not in first:
            continue
        row, turn = row_of[rid], first[rid]
        cat = classify(rec, predictions[rid], turn, row)
        iou = row.iou[0] / row.iou[1] if row.iou is not None and row.iou[1] else None
        out.append(RecordError(rid, cat, turn.question, turn.gold, turn.response, iou))
        counts["all"][cat] += 1
        if rec.get("ego") is not None:
            counts["ego" if rec["ego"] else "non_ego"][cat] += 1
    chosen = {c: [asdict(e) for e in out if e.category == c][:examples] for c in FAILURES}
    return {
        "counts": {g: {c: cnt.get(c, 0) for c in CATEGORIES} for g, cnt in counts.items()},
        "records": {e.id: e.category for e in out},
        "examples": {c: ex for c, ex in chosen.items() if ex},
        "worst_regions": [e.id for e in sorted((e for e in out if e.iou is not None),
                                               key=lambda e: e.iou)[:6]],
    }


def error_table(analysis: Mapping[str, Any]) -> str:
    """Markdown: counts per category (all / ego / non-ego) and the examples of each failure."""
    counts = analysis["counts"]
    lines = ["| category | all | ego | non-ego |", "|---|---|---|---|"]
    for c in CATEGORIES:
        if any(counts[g].get(c, 0) for g in counts):
            lines.append(f"| {c} | {counts['all'].get(c, 0)} | {counts['ego'].get(c, 0)} | "
                         f"{counts['non_ego'].get(c, 0)} |")
    for c, examples in analysis["examples"].items():
        lines += ["", f"**{c}**", ""]
        for e in examples:
            lines.append(f"- `{e['id']}` Q: {_md(e['question'])} — gold: {_md(e['gold'])} — "
                         f"answer: {_md(e['answer'])}")
    return "\n".join(lines)


def _md(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def region_cases(records: Mapping[str, Mapping[str, Any]],
                 predictions: Mapping[str, Mapping[str, Any]],
                 ids: Sequence[str]) -> list[tuple[Mapping[str, Any], Trace]]:
    """(record, trace) of the given records, for mask overlays of the worst region cases."""
    return [(records[i], Trace.from_dict(predictions[i]["trace"])) for i in ids
            if i in records and i in predictions]
