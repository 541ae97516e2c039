"""Stage-2 data construction (§4.3, Fig. 3): raw visual questions → search trajectories.

For each record (image, question, gold answer; no trajectory):

1. select — question type and whether retrieval helps (`selection.py`);
2. decompose — atomic sub-questions (`decompose.py`);
3. respond — N candidate search-interleaved responses; self-refinement ranks them
   (`responses.py`);
4. type the queries of the best candidate — region / image / text (`queries.py`);
5. run its searches on the index, fill its placeholders from the real hits, check that the
   evidence supports the gold answer, repairing with other hits, masks and candidates
   (`execute.py`);
6. write the record with its trajectory (the training format, `pixsearch train` reads it) or
   a dropped row with the reason.

The run is resumable: kept records go to OUT, dropped rows to OUT's `.dropped.jsonl`, one
line each as soon as a record is done; a rerun skips every id in either (a partly written last
line after a kill is cut off). Statistics (`stats.py`) go to OUT's `.stats.json`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixsearch.construct.annotator import Annotator, Question
from pixsearch.construct.execute import ExecConfig, Execution, Executor
from pixsearch.construct.plan import searches
from pixsearch.construct.responses import draft, typed_plan
from pixsearch.construct.segmentation import SegRequest
from pixsearch.construct.stats import summarize, write_stats
from pixsearch.data.records import Record
from pixsearch.logs import get_logger, progress_bar
from pixsearch.masks import mask_to_rle
from pixsearch.turns import region_spans, to_display

log = get_logger(__name__)


@dataclass
class ConstructConfig:
    """Settings of a construction run.

    Attributes:
        n_candidates: candidate responses per question (the paper: 5).
        max_searches: a candidate with more searches fails the checks.
        keep_no_search: write questions that need no retrieval with a direct-answer trajectory
            (they feed the Stage-1 pool of no-search questions); False drops them.
        execute: budgets of the repair search (the `Executor` is built with them).
        limit: construct at most this many records of the input (0 = all).
        progress: show a progress bar.
    """

    n_candidates: int = 5
    max_searches: int = 4
    keep_no_search: bool = True
    execute: ExecConfig = field(default_factory=ExecConfig)
    limit: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.n_candidates < 1 or self.max_searches < 1:
            raise ValueError("n_candidates and max_searches must be at least 1")


def side_paths(out: Path) -> tuple[Path, Path]:
    """(dropped rows, statistics) files beside the output `out`."""
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(stem + ".dropped.jsonl"), out.with_name(stem + ".stats.json")


def read_done(path: Path) -> list[dict[str, Any]]:
    """The complete JSON lines of `path` (none if missing); a partial last line (a kill
    mid-write) is cut off the file."""
    if not path.exists():
        return []
    rows, good = [], 0
    with open(path, "rb") as f:
        data = f.read()
    for line in data.splitlines(keepends=True):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
        if not line.endswith(b"\n"):
            rows.pop()
            break
        good += len(line)
    if good < len(data):
        log.warning("cutting a partly written line off %s (an interrupted run)", path)
        with open(path, "r+b") as f:
            f.truncate(good)
    return rows


class Constructor:
    """Runs the pipeline over records (see the module docstring).

    Args:
        annotator: who makes the decisions (rule or LLM).
        executor: runs searches on the index with the segmentation back-end.
        cfg: run settings.
        segmenter_name: recorded in each record's metadata.
    """

    def __init__(self, annotator: Annotator, executor: Executor,
                 cfg: ConstructConfig | None = None, segmenter_name: str = "") -> None:
        self.annotator, self.executor = annotator, executor
        self.cfg = cfg or ConstructConfig()
        self.segmenter_name = segmenter_name

    def construct(self, rec: Record, root: Path) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """(constructed record dict or None, metadata — with `reason` when dropped)."""
        t0 = time.perf_counter()
        q = Question(rec.question, tuple(rec.answers or [rec.answer]), bool(rec.image))
        sel = self.annotator.select(q)
        subs = self.annotator.decompose(q, sel)
        meta: dict[str, Any] = {
            "question_type": sel.question_type, "needs_search": sel.needs_search,
            "selection_parsed": sel.parsed, "sub_questions": [
                {"text": s.text, "needs_search": s.needs_search} for s in subs],
            "annotator": self.annotator.name, "segmenter": self.segmenter_name}
        result: Execution | None = None
        reason = "no retrieval needed"
        if sel.needs_search or self.cfg.keep_no_search:
            result, reason = self._best(rec, root, q, sel, subs, meta)
        meta["seconds"] = round(time.perf_counter() - t0, 3)
        if result is None:
            meta["reason"] = reason
            return None, meta
        return self._record(rec, root, result, sel, meta), meta

    def _best(self, rec, root, q, sel, subs, meta) -> tuple[Execution | None, str]:
        d = draft(self.annotator, q, sel, subs, self.cfg.n_candidates, self.cfg.max_searches)
        meta["candidates"] = [{"text": c.text, "problems": c.problems} for c in d.candidates]
        image = rec.load_image(root) if rec.image else None
        req = SegRequest(str(Path(root) / rec.image), "", Path(root), rec) if rec.image else None
        reasons = []
        for rank, (i, cand) in enumerate(d.ranked()):
            if cand.problems:
                continue  # the checks hold something against it: not training data
            typed = typed_plan(self.annotator, q, cand.steps)
            result = self.executor.run(typed, q, image, req)
            meta.setdefault("tried", []).append({
                "candidate": i, "query_types": [s.type for s in searches(typed)],
                "result": "kept" if isinstance(result, Execution) else result})
            if isinstance(result, Execution):
                meta.update(chosen=i, chosen_rank=rank, support=result.support,
                            repaired=result.repaired or rank > 0, leaves=result.leaves,
                            bindings={str(k): v for k, v in result.bindings.items()})
                return result, ""
            reasons.append(result)
        if not reasons:
            return None, "no candidate passes the checks"
        return None, reasons[0]

    def _record(self, rec: Record, root: Path, ex: Execution, sel, meta) -> dict[str, Any]:
        d = rec.to_dict()
        entities, masks = list(rec.entities), list(rec.masks)
        if entities and not masks and any(s.region and s.region.entity is None
                                          for s in ex.searches):
            # boxes without masks: constructed masks get their own entities (one mask each)
            d["source_entities"], entities = entities, []
        searches = []
        used = set(ex.bindings)
        for n, s in enumerate(ex.searches, start=1):
            entity = None
            if s.region is not None:
                entity = s.region.entity
                if entity is None:
                    entity = len(entities)
                    entities.append({"name": "", "kind": "region", "box": list(s.region.box),
                                     "refexp": s.refexp, "refexps": [], "constructed": True})
                    masks.append(mask_to_rle(s.region.mask))
            searches.append(s.to_dict(entity, n in used))
        d.update(
            trajectory=to_display(ex.parts), region_spans=[list(x) for x in region_spans(ex.parts)],
            search_types=[s.type for s in ex.searches], searches=searches,
            entities=entities, masks=masks, needs_search=bool(ex.searches),
            question_type=rec.question_type or sel.question_type, construct=meta)
        return d

    def run(self, records: list[Record], root: Path, out: Path) -> dict[str, Any]:
        """Construct `records` (images relative to `root`) into `out`, resuming; returns the
        statistics (also written beside `out`)."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        dropped_path, stats_path = side_paths(out)
        done = {r["id"] for r in read_done(out)} | {r["id"] for r in read_done(dropped_path)}
        todo = [r for r in (records[: self.cfg.limit] if self.cfg.limit else records)
                if r.id not in done]
        if done:
            log.info("resuming: %d records already constructed, %d to go", len(done), len(todo))
        rel = os.path.relpath(Path(root).resolve(), out.parent.resolve())
        with open(out, "a", encoding="utf-8") as fk, open(dropped_path, "a", encoding="utf-8") as fd:
            for rec in progress_bar(todo, desc="construct", disable=not self.cfg.progress):
                row, meta = self.construct(rec, root)
                if row is None:
                    fd.write(json.dumps({"id": rec.id, "question": rec.question,
                                         "reason": meta["reason"], "construct": meta},
                                        ensure_ascii=False) + "\n")
                    fd.flush()
                    continue
                if row.get("image"):  # images stay where they are: paths relative to OUT
                    row["image"] = os.path.normpath(os.path.join(rel, row["image"]))
                Record.from_dict(row)  # the output must read back in the training format
                fk.write(json.dumps(row, ensure_ascii=False) + "\n")
                fk.flush()
        stats = summarize(read_done(out), read_done(dropped_path), self.run_counters())
        write_stats(stats_path, stats)
        return stats

    def run_counters(self) -> dict[str, Any]:
        """This run's model calls, cache hits, unreadable replies and searches."""
        lm = getattr(self.annotator, "lm", None)
        cache = getattr(lm, "cache", None)
        return {"llm_requests": getattr(lm, "calls", 0),
                "cache_hits": getattr(cache, "hits", 0), "cache_misses": getattr(cache, "misses", 0),
                "unreadable_replies": dict(self.annotator.failures),
                "searches_run": self.executor.searches_run}
