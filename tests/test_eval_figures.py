"""The figures of an evaluation report: every plot is written, linked from report.md and titled
with model, split and run; the data behind the confusion matrix, the IoU histogram and the
best/median/worst gallery is right on hand-made records and traces (no model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from eval_fixture import scene
from PIL import Image

from pixsearch.config import to_dict
from pixsearch.eval.figures import (
    gallery_cases,
    query_type_confusion,
    region_ious,
    write_run_figures,
)
from pixsearch.eval.judges import RuleJudge
from pixsearch.eval.plots import run_caption
from pixsearch.eval.report import combine_runs, run_report
from pixsearch.eval.runner import EvalConfig
from pixsearch.eval.scores import score_run
from pixsearch.masks import mask_to_rle
from pixsearch.types import Hit, SearchStep, Trace

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("crag_bars", "question_types", "query_confusion", "recall_at_k", "search_patterns",
           "iou_histogram", "mask_gallery", "worst_regions")


def _hits(*codes: str) -> list[Hit]:
    return [Hit(doc_id=f"card:{c}", title=c, score=1.0 - i / 10, text="", entity=c)
            for i, c in enumerate(codes)]


def _shifted(mask: np.ndarray, dx: int) -> np.ndarray:
    return np.roll(mask, dx, axis=1)


def _run(root: Path) -> tuple[list[dict], dict[str, dict]]:
    """Six ego records (region + text searches; masks exact, shifted or missed), two close-ups
    (image search), one counting question (no search); answers right and wrong."""
    (root / "images").mkdir(parents=True)
    records, predictions = [], {}
    shifts = [0, 2, 6, 10, 30, 60]  # IoU from 1 down to 0
    for i, dx in enumerate(shifts):
        img, masks = scene(["RED", "GRN"], ego=True)
        img.save(root / "images" / f"e{i}.png")
        rid = f"e{i}"
        records.append({
            "id": rid, "image": f"images/e{i}.png", "image_path": str(root / "images" / f"e{i}.png"),
            "question": "What is the capital of the country of the left flag?",
            "answer": "Rubyville", "question_type": "factoid" if i % 2 else "multi_hop",
            "needs_search": True, "ego": True, "split": "test", "target": 0,
            "entities": [{"code": "RED", "in_kb": True}, {"code": "GRN", "in_kb": True}],
            "masks": [mask_to_rle(m) for m in masks],
            "searches": [{"type": "region", "entity": 0}, {"type": "text", "entity": 0}]})
        region = SearchStep(0, "region", mask_rle=mask_to_rle(_shifted(masks[0], dx)),
                            hits=_hits("RED" if dx < 10 else "GRN", "RED"))
        # the fourth record searched the whole image where the gold search is a region
        first = SearchStep(0, "image", hits=_hits("GRN")) if i == 3 else region
        text = SearchStep(1, "text", query_text="capital of Redland", hits=_hits("RED"))
        predictions[rid] = {"id": rid, "answer": "Rubyville" if dx < 10 else "Greentown",
                            "trace": Trace([first, text]).to_dict()}
    for i in range(2):
        img, masks = scene(["GRN"], ego=False)
        img.save(root / "images" / f"n{i}.png")
        rid = f"n{i}"
        records.append({
            "id": rid, "image": f"images/n{i}.png", "image_path": str(root / "images" / f"n{i}.png"),
            "question": "Which country's flag is this?", "answer": "Greenia",
            "question_type": "identification", "needs_search": True, "ego": False,
            "split": "test", "target": 0, "entities": [{"code": "GRN", "in_kb": True}],
            "masks": [mask_to_rle(m) for m in masks], "searches": [{"type": "image", "entity": 0}]})
        predictions[rid] = {"id": rid, "answer": "Greenia" if i else "I don't know",
                            "trace": Trace([SearchStep(0, "image", hits=_hits("GRN"))]).to_dict()}
    records.append({"id": "c0", "image": "images/n0.png",
                    "image_path": str(root / "images" / "n0.png"), "question": "How many flags?",
                    "answer": "1", "question_type": "counting", "needs_search": False,
                    "ego": False, "split": "test", "target": 0, "searches": [],
                    "entities": [{"code": "GRN", "in_kb": True}], "masks": records[-1]["masks"]})
    predictions["c0"] = {"id": "c0", "answer": "2", "trace": Trace([]).to_dict()}
    return records, predictions


def _scores(records, predictions, out: Path) -> dict:
    scores = score_run(records, predictions, RuleJudge())
    scores["config"] = to_dict(EvalConfig(data="set.jsonl", model="tiny", out=str(out)))
    return scores


def test_report_writes_and_links_every_figure(tmp_path):
    records, predictions = _run(tmp_path / "set")
    out = tmp_path / "run"
    out.mkdir()
    scores = _scores(records, predictions, out)
    scores["figures"] = write_run_figures(scores, records, predictions, out)
    assert set(FIGURES) <= set(scores["figures"]), scores["figures"]
    for name in FIGURES:
        png = out / scores["figures"][name]
        assert png.read_bytes()[:8] == PNG_MAGIC, name
        assert min(Image.open(png).size) > 200, name
    report = run_report(scores)
    for name in FIGURES:
        assert f"]({scores['figures'][name]})" in report, name
    assert "## Figures" in report and scores["errors"]["overlays"] == "worst_regions.png"
    # scores.json stays JSON with the figure list in it
    json.loads(json.dumps(scores))


def test_captions_name_model_split_and_run():
    cfg = to_dict(EvalConfig(data="w", split="test_unseen", model="/ckpt/run7/final",
                             out="runs/test_unseen_full"))
    assert run_caption(cfg) == "model final · split test_unseen · run test_unseen_full"
    assert run_caption(cfg, "other") == "model final · split test_unseen · run other"


def test_query_type_confusion_pairs_searches_in_order(tmp_path):
    records, predictions = _run(tmp_path / "set")
    labels, m = query_type_confusion(records, predictions)
    assert labels == ["region", "image", "text", "none"]
    at = {(g, c): m[labels.index(g)][labels.index(c)] for g in labels for c in labels}
    assert at[("region", "region")] == 5 and at[("region", "image")] == 1
    assert at[("text", "text")] == 6 and at[("image", "image")] == 2
    assert at[("none", "none")] == 1  # the counting question: no search needed, none made
    assert sum(map(sum, m)) == 6 * 2 + 2 + 1


def test_region_ious_and_gallery_pick_best_median_worst(tmp_path):
    records, predictions = _run(tmp_path / "set")
    ious = dict((rid, iou) for rid, iou, _ in region_ious(records, predictions))
    assert set(ious) == {"e0", "e1", "e2", "e4", "e5"}  # e3 made no region search
    assert ious["e0"] == 1.0 and ious["e5"] == 0.0 and ious["e1"] > ious["e2"] > ious["e4"]
    picks = gallery_cases(region_ious(records, predictions), per_kind=1)
    assert picks == [("best", "e0"), ("median", "e2"), ("worst", "e5")]


def test_combined_report_draws_table_1_as_bars(tmp_path):
    records, predictions = _run(tmp_path / "set")
    dirs = []
    for mode in ("full", "no_search"):
        run = tmp_path / mode
        run.mkdir()
        scores = _scores(records, predictions, run)
        scores["config"]["mode"] = mode
        (run / "scores.json").write_text(json.dumps(scores))
        dirs.append(run)
    text = combine_runs(dirs, tmp_path / "report")
    assert "![Table 1 as bars](table1_bars.png)" in text
    assert (tmp_path / "report" / "table1_bars.png").read_bytes()[:8] == PNG_MAGIC
    assert (tmp_path / "report" / "provenance.json").is_file()
