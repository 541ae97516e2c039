"""`pixsearch eval run --batch N`: records decoded together by the batched engine give the
predictions of the one-at-a-time run (the tiny model, the hand-made evaluation set, a real
index), for the model's own searches and for a baseline's forced queries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_fixture import build_eval_set

from pixsearch.cli import main
from pixsearch.config import ConfigError
from pixsearch.decode.config import DecodeConfig
from pixsearch.eval.runner import EvalConfig, run_eval


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory) -> tuple[Path, Path]:
    return build_eval_set(tmp_path_factory.mktemp("evalset"))


def predictions(out: Path) -> dict[str, dict]:
    lines = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    return {x["id"]: x for x in lines}


def test_batched_run_equals_the_one_at_a_time_run(eval_set, tmp_path):
    """The whole-image baseline: a forced search per record, then free decoding."""
    data, index = eval_set
    common = ["eval", "run", "--data", str(data), "--index", str(index), "--model", "tiny",
              "--mode", "whole_image", "--max-new-tokens", "12", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    assert main([*common, "--batch", "4", "--out", str(tmp_path / "batched")]) == 0
    one, batched = predictions(tmp_path / "one"), predictions(tmp_path / "batched")
    assert one.keys() == batched.keys() and len(one) == 6
    for rid, line in one.items():
        got = batched[rid]
        assert got["answer"] == line["answer"]
        assert got["trace"]["display"] == line["trace"]["display"]
        assert [s["modality"] for s in got["trace"]["steps"]] == [
            s["modality"] for s in line["trace"]["steps"]]
    assert all(x["trace"]["steps"] for x in batched.values())  # searched in the batch too
    scores = json.loads((tmp_path / "batched" / "scores.json").read_text())
    assert scores["config"]["batch"] == 4 and scores["n_records"] == 6


def test_batch_and_workers_are_exclusive_and_batch_resumes_freely(eval_set, tmp_path):
    data, index = eval_set
    with pytest.raises(ConfigError, match="either workers"):
        EvalConfig(data=str(data), workers=2, batch=4)
    cfg = EvalConfig(data=str(data), index=str(index), model="tiny", progress=False,
                     out=str(tmp_path / "run"), limit=2, batch=2,
                     decode=DecodeConfig(max_new_tokens=6))
    run_eval(cfg)
    more = EvalConfig(**{**cfg.__dict__, "limit": 4, "batch": 1})  # resumes: batch is free
    timing = run_eval(more)["timing"]
    assert timing["answered"] == 2 and timing["skipped"] == 2
    assert len(predictions(tmp_path / "run")) == 4
