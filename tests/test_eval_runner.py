"""The evaluation runner with the random `tiny` model on a hand-made 6-record set: every mode
writes every report file, runs resume, settings are checked, the CLI and the report combine."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from eval_fixture import build_eval_set
from PIL import Image

from pixsearch.cli import main
from pixsearch.config import ConfigError, to_dict
from pixsearch.decode.config import DecodeConfig
from pixsearch.eval.modes import MODES
from pixsearch.eval.report import combine_runs
from pixsearch.eval.runner import EvalConfig, read_predictions, run_eval

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory) -> tuple[Path, Path]:
    return build_eval_set(tmp_path_factory.mktemp("evalset"))


def _cfg(eval_set, out: Path, decode: dict | None = None, **kw) -> EvalConfig:
    data, index = eval_set
    base = dict(data=str(data), index=str(index), model="tiny", progress=False, out=str(out))
    return EvalConfig(**{**base, **kw}, decode=DecodeConfig(**{"max_new_tokens": 8,
                                                                **(decode or {})}))


def _check_run_files(out: Path, n: int, groups=("all", "ego", "non_ego")) -> list[dict]:
    assert (out / "config.yaml").is_file()
    lines = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == n and all("trace" in x and "answer" in x for x in lines)
    scores = json.loads((out / "scores.json").read_text())
    assert scores["n_records"] == n
    assert set(groups) <= set(scores["groups"])
    assert "## CRAG-MM" in (out / "report.md").read_text()
    png = out / "search_patterns.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert Image.open(png).size[0] > 100
    return lines


def test_every_mode_writes_every_report_file_and_the_report_combines(eval_set, tmp_path):
    runs = []
    for mode in MODES:
        out = tmp_path / mode
        run_eval(_cfg(eval_set, out, mode=mode, limit=2))
        lines = _check_run_files(out, 2)
        steps = [x["trace"]["steps"] for x in lines]
        if mode == "no_search":
            assert all(s == [] for s in steps)
        elif mode == "text_question":
            assert all([st["modality"] for st in s] == ["text"] for s in steps)
            assert [s[0]["query_text"] for s in steps] == [x["question"] for x in lines]
        elif mode == "whole_image":
            assert all([st["modality"] for st in s] == ["image"] for s in steps)
        elif mode == "pipeline":
            assert all(s[0]["modality"] == "region" and s[0]["mask_rle"] for s in steps)
            assert all(x["mode_info"]["proposals"] for x in lines)
        if mode != "full":  # baselines add no searches of their own
            assert all(len(s) <= 1 for s in steps)
        runs.append(out)
    budget = tmp_path / "budget_0"
    run_eval(_cfg(eval_set, budget, mode="full", decode={"max_searches": 0}, limit=2))
    no_region = tmp_path / "no_region"
    run_eval(_cfg(eval_set, no_region, decode={"modalities": ("image", "text")}, limit=2))
    text = combine_runs([*runs, budget, no_region], tmp_path / "report")
    assert "## Table 1" in text and "Modular pipeline" in text and "Whole image" in text
    assert "## Table 6" in text and "image + text" in text
    assert "## Table 7" in text and "| ∞ |" in text
    assert (tmp_path / "report" / "budget_curve.png").read_bytes()[:8] == PNG_MAGIC
    table1 = text.split("## Table 1")[1].split("##")[0]
    assert sum(line.startswith("| ") for line in table1.splitlines()) == 1 + len(MODES)


def test_runs_resume_and_skip_finished_ids(eval_set, tmp_path):
    cfg = _cfg(eval_set, tmp_path, mode="no_search", limit=2)
    run_eval(cfg)
    first = (tmp_path / "predictions.jsonl").read_text().splitlines()
    # a crash mid-write leaves a cut-off line; resuming drops it and goes on
    with (tmp_path / "predictions.jsonl").open("a") as f:
        f.write('{"id": "r2", "answer": "cut of')
    scores = run_eval(replace(cfg, limit=4))
    lines = (tmp_path / "predictions.jsonl").read_text().splitlines()
    assert lines[:2] == first
    assert [json.loads(x)["id"] for x in lines] == ["r0", "r1", "r2", "r3"]
    assert scores["timing"]["answered"] == 2 and scores["timing"]["skipped"] == 2
    assert list(read_predictions(tmp_path / "predictions.jsonl")) == ["r0", "r1", "r2", "r3"]
    again = run_eval(replace(cfg, limit=4))
    assert again["timing"]["answered"] == 0


def test_resume_refuses_a_run_folder_with_other_settings(eval_set, tmp_path):
    run_eval(_cfg(eval_set, tmp_path, mode="no_search", limit=1))
    with pytest.raises(ConfigError, match="mode"):
        run_eval(_cfg(eval_set, tmp_path, mode="whole_image", limit=1))


def test_resume_accepts_a_run_folder_saved_before_a_setting_existed(eval_set, tmp_path):
    import yaml

    cfg = _cfg(eval_set, tmp_path, mode="no_search", limit=1)
    run_eval(cfg)
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    del saved["decode"]["deadline_s"]  # as written by a version without deadlines
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    assert run_eval(cfg)["timing"]["answered"] == 0
    with pytest.raises(ConfigError, match="deadline_s"):
        run_eval(replace(cfg, decode=replace(cfg.decode, deadline_s=5.0)))


def test_cli_run_and_report(eval_set, tmp_path, capsys):
    data, index = eval_set
    out = tmp_path / "run"
    assert main(["eval", "run", "--data", str(data), "--index", str(index), "--model", "tiny",
                 "--mode", "text_question", "--limit", "2", "--top-k", "2", "--no-progress",
                 "--max-new-tokens", "8", "--out", str(out)]) == 0
    assert "accuracy" in capsys.readouterr().out
    scores = json.loads((out / "scores.json").read_text())
    assert scores["config"]["decode"]["top_k"] == 2
    assert "recall@2" in scores["groups"]["all"]["retrieval"]["text"]
    assert main(["eval", "report", str(out), "--out", str(tmp_path / "rep")]) == 0
    assert "Text question" in (tmp_path / "rep" / "report.md").read_text()


def _evidence(out: Path) -> list[str]:
    lines = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    return [s["evidence"] for x in lines for s in x["trace"]["steps"] if s["skipped"] is None]


def test_cli_decode_overrides_reach_the_predictor(eval_set, tmp_path):
    """`decode.*` overrides (and the flag shorthands) land in the run's decode config, the
    worker's predictor decodes with it, and the evidence budget shapes the trace."""
    from pixsearch.eval.runner import load_config
    from pixsearch.eval.worker import Worker

    data, index = eval_set
    common = ["eval", "run", "--data", str(data), "--index", str(index), "--model", "tiny",
              "--mode", "text_question", "--limit", "3", "--no-progress", "--max-new-tokens",
              "6", "--max-searches", "2"]
    wide, narrow = tmp_path / "wide", tmp_path / "narrow"
    assert main([*common, "--out", str(wide), "decode.temperature=0.7",
                 "decode.evidence_max_words=60"]) == 0
    assert main([*common, "--out", str(narrow), "decode.evidence_max_words=6"]) == 0
    cfg = load_config(wide)
    assert (cfg.decode.temperature, cfg.decode.evidence_max_words) == (0.7, 60)
    assert (cfg.decode.max_new_tokens, cfg.decode.max_searches) == (6, 2)
    decode = Worker(to_dict(cfg), str(index)).predictor.decode_config
    assert (decode.temperature, decode.evidence_max_words) == (0.7, 60)
    assert (decode.max_new_tokens, decode.max_searches) == (6, 2)
    wide_ev, narrow_ev = _evidence(wide), _evidence(narrow)
    assert len(wide_ev) == len(narrow_ev) == 3  # text_question forces one search per record
    assert all(len(e.split()) <= 60 for e in wide_ev)
    assert all(len(e.split()) <= 6 for e in narrow_ev)
    assert sum(len(e.split()) for e in wide_ev) > sum(len(e.split()) for e in narrow_ev)


def test_a_mode_budget_wins_over_the_decode_config(eval_set, tmp_path, monkeypatch):
    """A model that always writes a text search: with B=3 the full mode runs it; a baseline
    runs only its forced query, because its budget of 0 overrides the run's B."""
    from scripted import ScriptedLM

    import pixsearch.predictor

    script = ["It is", "search_open", "capital of Redland", "search_close", " Rubyville"]
    monkeypatch.setattr(pixsearch.predictor, "load_model",
                        lambda spec, device=None, overrides=None: ScriptedLM(script))
    steps = {}
    for mode in ("full", "whole_image"):
        run_eval(_cfg(eval_set, tmp_path / mode, mode=mode, limit=2,
                      decode={"max_searches": 3, "max_new_tokens": 40}))
        lines = (tmp_path / mode / "predictions.jsonl").read_text().splitlines()
        steps[mode] = [[(s["modality"], s["skipped"]) for s in json.loads(x)["trace"]["steps"]]
                       for x in lines]
    assert steps["full"] == [[("text", None)]] * 2
    assert steps["whole_image"] == [[("image", None)]] * 2


def test_eval_config_rejects_bad_decode_settings(capsys):
    # the CLI turns the ConfigError into one line on stderr and exit status 2 (issue #13)
    assert main(["eval", "run", "--data", "x.jsonl", "--out", "unused",
                 "decode.temprature=1"]) == 2
    assert "unknown field" in capsys.readouterr().err
    assert main(["eval", "run", "--data", "x.jsonl", "--out", "unused",
                 "decode.temperature=-1"]) == 2
    assert "temperature" in capsys.readouterr().err


def test_ray_workers_name_the_extra_when_ray_is_missing(eval_set, tmp_path):
    try:
        import ray  # noqa: F401
        pytest.skip("ray is installed")
    except ImportError:
        pass
    cfg = _cfg(eval_set, tmp_path, mode="no_search", limit=3, workers=2, ray=True)
    with pytest.raises(ImportError, match=r"pixsearch\[distributed\]"):
        run_eval(cfg)


@pytest.mark.slow
def test_process_pool_workers_answer_every_record(eval_set, tmp_path):
    scores = run_eval(_cfg(eval_set, tmp_path, mode="whole_image", workers=2))
    assert scores["n_records"] == 6
    ids = sorted(json.loads(x)["id"] for x in (tmp_path / "predictions.jsonl").open())
    assert ids == [f"r{i}" for i in range(6)]


@pytest.mark.slow
def test_ray_actors_answer_every_record(eval_set, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    try:
        scores = run_eval(_cfg(eval_set, tmp_path, mode="whole_image", workers=2, ray=True))
    finally:
        ray.shutdown()
    assert scores["n_records"] == 6
    lines = [json.loads(x) for x in (tmp_path / "predictions.jsonl").open()]
    assert sorted(x["id"] for x in lines) == [f"r{i}" for i in range(6)]
    assert all(x["trace"]["steps"][0]["modality"] == "image" for x in lines)


@pytest.mark.slow
def test_tiny_model_on_the_small_world_writes_every_report_file(tmp_path):
    world = tmp_path / "world"
    assert main(["world", "build", "--out", str(world), "--scale", "small",
                 "--no-progress"]) == 0
    for mode in MODES:  # the index defaults to the world's own
        out = tmp_path / mode
        assert main(["eval", "run", "--data", str(world), "--split", "test_unseen", "--model",
                     "tiny", "--mode", mode, "--limit", "4", "--max-new-tokens", "16",
                     "--no-progress", "--out", str(out)]) == 0
        _check_run_files(out, 4, groups=("all", "unseen"))
        scores = json.loads((out / "scores.json").read_text())
        assert "unseen" in scores["groups"]
        assert scores["config"]["index"] == str(world / "index")
    assert main(["eval", "report", *[str(tmp_path / m) for m in MODES], "--out",
                 str(tmp_path / "report")]) == 0
    assert "## Table 1" in (tmp_path / "report" / "report.md").read_text()


def test_process_pool_worker_that_cannot_start_fails_the_run(eval_set, tmp_path):
    # a pool whose initializer raises would respawn its processes forever; the run must stop
    # with the worker's own error instead
    from pixsearch.eval.parallel import answer_parallel

    cfg = _cfg(eval_set, tmp_path, mode="whole_image", workers=2, model=str(tmp_path / "none"))
    records = [json.loads(x) for x in Path(cfg.data).open()][:2]
    with pytest.raises(Exception, match="none"):
        list(answer_parallel(cfg, cfg.index, records))
