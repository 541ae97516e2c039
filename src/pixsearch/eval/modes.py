"""Evaluation modes: PixSearch itself and the paper's baselines (Table 1), per task.

- `full`: the model decides when and how to search (the engine as configured);
- `no_search`: the budget is 0, the model answers from the image alone;
- `text_question`: the question itself is the one text query;
- `whole_image`: the whole image is the one image query;
- `pipeline`: the modular baseline — region proposals (`pixsearch.eval.proposals`), the best
  one is the region query.

The baselines choose their query themselves and hand it to the predictor as a forced query
(`Predictor.ask(forced_queries=...)`): the model sees `<search>…</search><information>…
</information>` exactly as if it had asked, then decodes with `max_searches=0`, so it adds
no searches of its own.

Tasks (a record's `task`, set by the benchmark readers of `pixsearch.data.formats`; records of
the project's own format are knowledge VQA):

- `vqa` (knowledge VQA: CRAG-MM, InfoSeek, OVEN, TextVQA, the project's records): as above;
- `text_qa` (HotpotQA, NQ-open, PopQA, MuSiQue): no image, so the engine may only write text
  searches (the run's allowed query types less region and image; none left means no search);
- `refseg`, `semseg`: the model segments without searching (`pixsearch.eval.segmentation`);
  the search modes do not apply to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image

from pixsearch.data.formats.sample import TASKS
from pixsearch.eval.proposals import ProposalConfig, propose_regions, rank_by_retrieval
from pixsearch.retrieval.api import SearchAPI
from pixsearch.types import MODALITIES, Query

Mode = Literal["full", "no_search", "text_question", "whole_image", "pipeline"]
MODES: tuple[str, ...] = ("full", "no_search", "text_question", "whole_image", "pipeline")


def task_of(record: dict[str, Any]) -> str:
    """The task of an evaluation record (`vqa` unless a benchmark reader said otherwise)."""
    task = record.get("task") or "vqa"
    if task not in TASKS:
        raise ValueError(f"record {record.get('id')!r}: unknown task {task!r}; one of {TASKS}")
    return task


@dataclass
class ModePlan:
    """What one mode does for one question: forced queries, DecodeConfig overrides, notes."""

    forced_queries: list[Query] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def plan(mode: str, question: str, image: Image.Image | None,
         search_api: SearchAPI | None = None, proposals: ProposalConfig | None = None,
         select: str = "saliency", top_k: int = 3, task: str = "vqa",
         allowed: Sequence[str] = MODALITIES) -> ModePlan:
    """The forced queries and decode overrides of `mode` for one question.

    Args:
        mode: one of `MODES`.
        question, image: the sample (image None for text-only questions).
        search_api: needed by `pipeline` with `select="retrieval"`.
        proposals: region-proposal settings of `pipeline`.
        select: `pipeline` picks the most salient proposal ("saliency") or the one whose top
            retrieval hit scores best ("retrieval").
        top_k: hits per proposal when ranking by retrieval.
        task: `vqa` or `text_qa` (the segmentation tasks have no search plan).
        allowed: the query types the run allows (`DecodeConfig.modalities`).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {MODES}")
    if task not in ("vqa", "text_qa"):
        raise ValueError(f"task {task!r} does not search; it has no mode plan")
    if mode == "full":
        if task == "text_qa":  # no image: text searches only
            text_only = tuple(m for m in allowed if m == "text")
            return ModePlan(overrides={"modalities": text_only} if text_only
                            else {"max_searches": 0})
        return ModePlan()
    baseline = ModePlan(overrides={"max_searches": 0})
    if mode == "no_search":
        return baseline
    if mode == "text_question":
        baseline.forced_queries.append(Query("text", text=question))
        return baseline
    if image is None:  # an image baseline on a text-only question: nothing to send
        baseline.info["forced"] = f"{mode} needs an image; answered without search"
        return baseline
    if mode == "whole_image":
        baseline.forced_queries.append(Query("image", image=image))
        return baseline
    return _pipeline_plan(baseline, image, search_api, proposals, select, top_k)


def _pipeline_plan(baseline: ModePlan, image: Image.Image, search_api: SearchAPI | None,
                   cfg: ProposalConfig | None, select: str, top_k: int) -> ModePlan:
    found = propose_regions(image, cfg)
    if select == "retrieval" and found:
        if search_api is None:
            raise ValueError("pipeline proposals ranked by retrieval need a search API")
        found = rank_by_retrieval(image, found, search_api, top_k)
    elif select not in ("saliency", "retrieval"):
        raise ValueError(f"unknown proposal selection {select!r}; use saliency or retrieval")
    baseline.info["proposals"] = [
        {"box": list(p.box), "score": p.score, "retrieval_score": p.retrieval_score, **p.meta}
        for p in found
    ]
    if not found:
        baseline.info["forced"] = "no region proposal; answered without search"
        return baseline
    baseline.forced_queries.append(Query("region", image=image, mask=found[0].mask))
    return baseline
