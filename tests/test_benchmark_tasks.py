"""Every task mode of `pixsearch eval run` end to end on the `tiny` preset, over the fixtures of
the published formats and a knowledge index built from the Wiki6M fixture: knowledge VQA
(InfoSeek, OVEN, TextVQA), text-only QA, referring and semantic segmentation, and the
combined report's Tables 2–5."""

from __future__ import annotations

import json

import numpy as np
import pytest
from benchmark_fixtures import write_all
from PIL import Image

from pixsearch.cli import main
from pixsearch.data.formats.wiki6m import Wiki6MSource
from pixsearch.decode.config import DecodeConfig
from pixsearch.eval.modes import plan
from pixsearch.eval.report import combine_runs
from pixsearch.eval.runner import EvalConfig, read_predictions, run_eval
from pixsearch.eval.seg_metrics import mask_iou
from pixsearch.masks import rle_to_mask
from pixsearch.retrieval.index import IndexConfig, KnowledgeIndex


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    paths = write_all(root)
    src = Wiki6MSource(paths["wiki6m"], paths["wiki_images"])
    KnowledgeIndex.build(list(src.documents()), list(src.images()), src.image_root,
                         root / "index", IndexConfig(image_embedder="thumbnail-16x12",
                                                     store="flat"))
    paths["index"] = root / "index"
    return paths


def _run(bench, fmt, out, images=None, split="test", **kw):
    cfg = EvalConfig(data=str(bench[fmt]), format=fmt, split=split, model="tiny",
                     images=str(bench[images]) if images else None, index=str(bench["index"]),
                     progress=False, out=str(out), decode=DecodeConfig(max_new_tokens=8), **kw)
    return run_eval(cfg), read_predictions(out / "predictions.jsonl")


def test_infoseek_whole_image_searches_reach_the_gold_entity(bench, tmp_path):
    scores, preds = _run(bench, "infoseek", tmp_path / "infoseek", "oven_images",
                         mode="whole_image")
    assert len(preds) == 4
    for line in preds.values():
        assert [s["modality"] for s in line["trace"]["steps"]] == ["image"]
    # the red/green/blue question images find their entity's KB image; the fourth entity
    # (Q4) has no image on disk, so no image search can find it
    ret = scores["groups"]["all"]["retrieval"]["all"]
    assert ret["n"] == 4 and ret["recall@1"] == pytest.approx(0.75)
    info = scores["benchmark"]["infoseek"]
    assert info["unseen_question"]["n"] == 2 and info["unseen_entity"]["n"] == 2
    assert "## Benchmark scores" in (tmp_path / "infoseek" / "report.md").read_text()


def test_oven_and_textvqa_full_mode(bench, tmp_path):
    scores, preds = _run(bench, "oven", tmp_path / "oven", "oven_images")
    assert len(preds) == 3 and set(scores["benchmark"]["oven"]) >= {"seen", "unseen", "final"}
    scores, preds = _run(bench, "textvqa", tmp_path / "textvqa", "textvqa_images")
    assert len(preds) == 2 and 0.0 <= scores["benchmark"]["vqa_accuracy"] <= 1.0
    report = (tmp_path / "textvqa" / "report.md").read_text()
    assert "VQA accuracy (ten human answers)" in report


def test_text_only_questions_search_text_only(bench, tmp_path):
    assert plan("full", "q", None, task="text_qa").overrides == {"modalities": ("text",)}
    assert plan("full", "q", None, task="text_qa",
                allowed=("region", "image")).overrides == {"max_searches": 0}
    assert plan("full", "q", None, task="vqa").overrides == {}
    scores, preds = _run(bench, "hotpotqa", tmp_path / "hot", mode="text_question")
    for line in preds.values():
        steps = line["trace"]["steps"]
        assert [s["modality"] for s in steps] == ["text"] and steps[0]["hits"]
    assert scores["benchmark"]["task"] == "text_qa"
    _, preds = _run(bench, "nq-open", tmp_path / "nq")  # full mode: the engine, no image
    assert len(preds) == 2
    assert all(s["modality"] == "text" for p in preds.values() for s in p["trace"]["steps"])


def test_referring_segmentation_scores_the_predicted_masks(bench, tmp_path):
    scores, preds = _run(bench, "refcoco", tmp_path / "ref", "coco_images", split="val")
    assert set(preds) == {"0:0", "0:1"}
    gold = rle_to_mask(json.loads((tmp_path / "ref" / "predictions.jsonl").read_text()
                                  .splitlines()[0])["mask"])
    assert gold.shape == (30, 40)  # predicted at the image's size
    from pixsearch.data.formats import read_benchmark

    golds = {s.id: rle_to_mask(s.mask) for s in read_benchmark(
        "refcoco", bench["refcoco"], "val", images=bench["coco_images"])}
    ious = [mask_iou(rle_to_mask(preds[k]["mask"]), golds[k]) for k in sorted(preds)]
    seg = scores["segmentation"]
    assert seg["giou"] == pytest.approx(np.mean(ious)) and 0.0 <= seg["ciou"] <= 1.0
    assert "gIoU" in (tmp_path / "ref" / "report.md").read_text()


def test_semantic_segmentation_prompts_each_class(bench, tmp_path):
    scores, preds = _run(bench, "ade20k", tmp_path / "ade", split="val")
    (line,) = preds.values()
    assert line["prompted"] == [0, 2]  # wall and sky are in the gold map; building is not
    assert set(line["class_masks"]) <= {"0", "2"} and line["size"] == [24, 32]
    seg = scores["segmentation"]
    assert 0.0 <= seg["miou"] <= 1.0 and set(seg["per_class"]) <= {"wall", "sky"}
    _, preds = _run(bench, "coco-stuff", tmp_path / "stuff", split="val",
                    segmentation={"semseg_classes": "all"})
    assert next(iter(preds.values()))["prompted"] == [0, 1, 2]


def test_cli_runs_a_benchmark_and_the_report_lays_out_tables_2_to_5(bench, tmp_path, capsys):
    common = ["--model", "tiny", "--index", str(bench["index"]), "--no-progress",
              "--max-new-tokens", "6"]
    runs = {
        "info": ["--format", "infoseek", "--data", str(bench["infoseek"]), "--images",
                 str(bench["oven_images"])],
        "pop": ["--format", "popqa", "--data", str(bench["popqa"])],
        "ref": ["--format", "refcoco+", "--data", str(bench["refcoco+"]), "--images",
                str(bench["coco_images"]), "--split", "testA"],
        "stuff": ["--format", "coco-stuff", "--data", str(bench["coco-stuff"]), "--split",
                  "val"],
    }
    for name, args in runs.items():
        assert main(["eval", "run", *args, *common, "--out", str(tmp_path / name)]) == 0
    out = capsys.readouterr().out
    assert "gIoU" in out and "mIoU" in out
    text = combine_runs([tmp_path / n for n in runs], tmp_path / "report")
    for title in ("Table 2: knowledge-intensive VQA", "Table 3: text-only QA",
                  "Table 4: referring segmentation", "Table 5: semantic segmentation"):
        assert title in text
    row4, row5 = [line for line in text.splitlines() if line.startswith("| segment")]
    assert row4.split(" | ")[5] != "–" and row4.count("–") == 7  # RefCOCO+ testA only
    assert row5.split(" | ")[1] == "–" and row5.split(" | ")[2] != "–"  # COCO-Stuff only
    assert "Table 1" not in text  # no CRAG-MM / project-format run
    assert Image.open(tmp_path / "info" / "search_patterns.png").size[0] > 0
