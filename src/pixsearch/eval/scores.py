"""Scores of an evaluation run: every metric per record, then per group of records.

Per record (from the record and its prediction line): the CRAG-MM verdict (`score_crag`, with
the rule judge or an LLM judge, agreement when both ran), exact / relaxed exact match and token
F1, the IoU of the first region search's mask against the gold mask of the entity that search
is about, whether each search's hits hold the gold entity (recall@k), the search decision
against `needs_search`, and the number and types of searches.

Groups: `all`, `ego` / `non_ego`, `split=…`, `seen` / `unseen` (when a split is "…unseen"),
`in_kb` / `not_in_kb` (the target entity), `question_type=…`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pixsearch.eval.crag import aggregate, score_crag
from pixsearch.eval.judges import Judge
from pixsearch.eval.retrieval_metrics import recall_at_k, search_decision_scores
from pixsearch.eval.seg_metrics import intersection_union
from pixsearch.eval.text_metrics import score_text
from pixsearch.types import MODALITIES, SearchStep, Trace


@dataclass
class RecordScore:
    """Metrics of one record that are aggregated later (CRAG-MM turns are kept apart)."""

    id: str
    groups: list[str]
    answer: str
    golds: list[str]
    iou: tuple[int, int] | None = None  # (intersection, union) of the first region mask
    steps: list[tuple[str, list[str], set[str]]] = field(default_factory=list)  # hits, gold
    searched: bool = False
    needs_search: bool | None = None
    modalities: list[str] = field(default_factory=list)


def record_groups(record: Mapping[str, Any], unseen_present: bool) -> list[str]:
    """The group names a record belongs to."""
    out = ["all"]
    if record.get("ego") is not None:
        out.append("ego" if record["ego"] else "non_ego")
    split = record.get("split")
    if split:
        out.append(f"split={split}")
        if unseen_present:
            out.append("unseen" if "unseen" in str(split) else "seen")
    target = _target(record)
    if target is not None and target.get("in_kb") is not None:
        out.append("in_kb" if target["in_kb"] else "not_in_kb")
    if record.get("question_type"):
        out.append(f"question_type={record['question_type']}")
    return out


def _target(record: Mapping[str, Any]) -> dict | None:
    t, ents = record.get("target"), record.get("entities") or []
    return ents[t] if isinstance(t, int) and 0 <= t < len(ents) else None


def _entity_code(record: Mapping[str, Any], index: int | None) -> str | None:
    ents = record.get("entities") or []
    if index is None or not 0 <= index < len(ents):
        return None
    return None if ents[index].get("in_kb") is False else ents[index].get("code")


def _gold_of_step(record: Mapping[str, Any], modality: str, ordinal: int) -> set[str]:
    """Gold entity ids a search should retrieve: the gold search of the same type and order
    (its `expect`, else its entity's code), else any gold search's entity or the target.
    Entities known to be outside the knowledge base cannot be retrieved and are left out."""
    absent = {e.get("code") for e in record.get("entities") or [] if e.get("in_kb") is False}
    searches = record.get("searches") or []
    same = [s for s in searches if s.get("type") == modality]
    chosen = [same[ordinal]] if ordinal < len(same) else searches
    codes = {s.get("expect") or _entity_code(record, s.get("entity")) for s in chosen}
    if ordinal >= len(same):
        codes.add(_entity_code(record, record.get("target")))
    return {c for c in codes if c and c not in absent}


def _region_iou(record: Mapping[str, Any], steps: list[SearchStep]) -> tuple[int, int] | None:
    """(I, U) of the first region search's mask and the gold mask of the searched entity."""
    first = next((s for s in steps if s.modality == "region" and s.mask_rle), None)
    masks = record.get("masks") or []
    if first is None or not masks:
        return None
    region = [s for s in record.get("searches") or [] if s.get("type") == "region"]
    index = region[0].get("entity") if region else record.get("target")
    if not isinstance(index, int) or not 0 <= index < len(masks):
        return None
    return intersection_union(first.mask_rle, masks[index])


def score_record(record: Mapping[str, Any], prediction: Mapping[str, Any],
                 unseen_present: bool = False) -> RecordScore:
    """Per-record metrics from a record and its prediction line (`answer`, `trace`: a
    `Trace` as a dict, read back with `Trace.from_dict`)."""
    steps = Trace.from_dict(prediction["trace"]).steps
    done = [s for s in steps if s.skipped is None]
    seen: Counter[str] = Counter()
    scored = []
    for s in done:
        gold = _gold_of_step(record, s.modality, seen[s.modality])
        seen[s.modality] += 1
        ids = [h.entity or h.doc_id for h in s.hits]
        scored.append((s.modality, ids, gold))
    needs = record.get("needs_search")
    return RecordScore(
        id=str(record["id"]), groups=record_groups(record, unseen_present),
        answer=prediction["answer"], golds=list(record.get("answers") or [record["answer"]]),
        iou=_region_iou(record, steps), steps=scored, searched=bool(done),
        needs_search=None if needs is None else bool(needs),
        modalities=[s.modality for s in done],
    )


def _group_metrics(rows: Sequence[RecordScore], turns: list, top_k: int) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(rows), "crag": aggregate(turns).as_dict()}
    out["text"] = score_text([r.answer for r in rows], [r.golds for r in rows]).as_dict()
    pairs = [r.iou for r in rows if r.iou is not None]
    inter, union = sum(p[0] for p in pairs), sum(p[1] for p in pairs)
    out["segmentation"] = {
        "n": len(pairs),
        "giou": sum(i / u if u else 1.0 for i, u in pairs) / len(pairs) if pairs else None,
        "ciou": (inter / union if union else 1.0) if pairs else None,
    }
    out["retrieval"] = _retrieval(rows, top_k)
    decided = [r for r in rows if r.needs_search is not None]
    out["search_decision"] = search_decision_scores(
        [r.searched for r in decided], [r.needs_search for r in decided]).as_dict()
    counts = Counter(m for r in rows for m in r.modalities)
    total = sum(counts.values())
    out["searches"] = {
        "per_sample": total / len(rows) if rows else 0.0,
        "histogram": dict(sorted(Counter(len(r.modalities) for r in rows).items())),
        "counts": {m: counts.get(m, 0) for m in MODALITIES},
        "shares": {m: counts.get(m, 0) / total if total else 0.0 for m in MODALITIES},
    }
    return out


def _retrieval(rows: Sequence[RecordScore], top_k: int) -> dict[str, Any]:
    """recall@1 and recall@k of the gold entity over searches that have one, per modality."""
    out: dict[str, Any] = {}
    for name in ("all", *MODALITIES):
        steps = [(ids, gold) for r in rows for m, ids, gold in r.steps
                 if gold and (name == "all" or m == name)]
        ranked, golds = [s[0] for s in steps], [s[1] for s in steps]
        out[name] = {"n": len(steps), "recall@1": recall_at_k(ranked, golds, 1),
                     f"recall@{top_k}": recall_at_k(ranked, golds, top_k)}
    return out


def score_run(records: Sequence[Mapping[str, Any]], predictions: Mapping[str, Mapping[str, Any]],
              judge: Judge | None, second_judge: Judge | None = None,
              top_k: int = 3) -> dict[str, Any]:
    """Every metric per group for the records that have a prediction.

    Args:
        records: evaluation records (dicts as `load_records` returns them).
        predictions: prediction lines by record id (`answer`, `turn_answers`, `trace`).
        judge: CRAG-MM judge (None: exact matches only); second_judge: agreement reported.
        top_k: the k of recall@k (the run's hits per search).
    """
    # error analysis builds on this module's per-record scores (imported here: no cycle)
    from pixsearch.eval.abstention import run_curve
    from pixsearch.eval.errors import analyse

    records = [r for r in records if str(r["id"]) in predictions]
    unseen = any("unseen" in str(r.get("split") or "") for r in records)
    answers = {str(r["id"]): _turn_answers(predictions[str(r["id"])]) for r in records}
    crag = score_crag(records, answers, judge, ("all",), second_judge=second_judge)
    turns_of: dict[str, list] = {}
    for t in crag.turns:
        turns_of.setdefault(t.record_id, []).append(t)
    rows = [score_record(r, predictions[str(r["id"])], unseen) for r in records]
    by_group: dict[str, list[RecordScore]] = {}
    for row in rows:
        for g in row.groups:
            by_group.setdefault(g, []).append(row)
    groups = {g: _group_metrics(by_group[g], [t for r in by_group[g] for t in turns_of[r.id]],
                                top_k) for g in sorted(by_group, key=_group_order)}
    out: dict[str, Any] = {"n_records": len(rows), "groups": groups}
    if crag.agreement is not None:
        out["judge_agreement"] = crag.agreement.as_dict()
    out["errors"] = analyse(records, predictions, crag.turns, rows)
    curve = run_curve(records, predictions, crag.turns, judge)
    if curve is not None:
        out["risk_coverage"] = curve
    return out


def _group_order(name: str) -> tuple[int, str]:
    """all, ego, non_ego, then seen/unseen, in-KB, splits, question types (alphabetical)."""
    fixed = ("all", "ego", "non_ego", "seen", "unseen", "in_kb", "not_in_kb")
    if name in fixed:
        return fixed.index(name), ""
    return len(fixed) + name.startswith("question_type="), name


def _turn_answers(prediction: Mapping[str, Any]) -> str | list[str]:
    return prediction.get("turn_answers") or prediction["answer"]
