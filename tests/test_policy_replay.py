"""Abstention policies measured without decoding again, and fitted on several runs at once.

`pixsearch eval apply-policy` re-decides a finished run with a checkpoint's policy: its answers
must be those a fresh run of the same weights with that policy gives, and it must refuse a
policy fitted for other weights. `pixsearch eval calibrate` pools repeated `--run`s (one model,
several modes) into one fit."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from eval_fixture import build_eval_set

from pixsearch.abstention import AbstentionConfig
from pixsearch.cli import main
from pixsearch.config import save
from pixsearch.eval.abstention import calibrate_run, cross_validate, pooled_outcomes
from pixsearch.eval.runner import EvalConfig
from pixsearch.model.build import build_model
from pixsearch.model.checkpoint import save_checkpoint
from pixsearch.model.presets import get_preset
from pixsearch.types import Hit, SearchStep, Trace


def _policy(threshold: float) -> AbstentionConfig:
    # p_correct = sigmoid(-2 + 4 * searched): 0.88 after a search, 0.12 without one
    return AbstentionConfig(enabled=True, threshold=threshold, weights={"searched": 4.0},
                            bias=-2.0, fitted_on="unit test")


def _checkpoint(path: Path, threshold: float, seed: int = 0) -> Path:
    # the preset's own seed sets the initial weights
    model = build_model(dataclasses.replace(get_preset("tiny"), seed=seed)).eval()
    model.cfg = dataclasses.replace(model.cfg, abstention=_policy(threshold))
    save_checkpoint(model, path)
    return path


def _lines(run: Path) -> dict[str, dict]:
    return {(x := json.loads(line))["id"]: x
            for line in (run / "predictions.jsonl").read_text().splitlines()}


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory) -> tuple[Path, Path]:
    return build_eval_set(tmp_path_factory.mktemp("evalset"))


def _run(eval_set, model: Path, out: Path) -> None:
    data, index = eval_set
    assert main(["eval", "run", "--data", str(data), "--index", str(index), "--model", str(model),
                 "--mode", "text_question", "--no-progress", "--max-new-tokens", "6",
                 "--out", str(out)]) == 0


def test_a_replayed_run_answers_as_a_fresh_run_with_that_policy(eval_set, tmp_path):
    keep = _checkpoint(tmp_path / "keep", 0.5)  # 0.88 ≥ 0.5: every searched answer kept
    strict = _checkpoint(tmp_path / "strict", 0.95)  # same weights, abstains on all of them
    _run(eval_set, keep, tmp_path / "run_keep")
    _run(eval_set, strict, tmp_path / "run_strict")
    assert main(["eval", "apply-policy", "--run", str(tmp_path / "run_keep"), "--model",
                 str(strict), "--out", str(tmp_path / "replayed")]) == 0
    kept, fresh, replayed = (_lines(tmp_path / d) for d in ("run_keep", "run_strict", "replayed"))
    assert set(replayed) == set(fresh) == set(kept)
    assert any(not x["trace"]["abstained"] for x in kept.values())
    for rid, line in replayed.items():
        assert line["answer"] == fresh[rid]["answer"]
        for key in ("abstained", "raw_answer", "p_correct", "abstain_threshold"):
            assert line["trace"][key] == fresh[rid]["trace"][key], (rid, key)
        # the model's words are kept, whichever policy decided
        assert (line["trace"]["raw_answer"] or line["answer"]) == kept[rid]["answer"]
    scores = json.loads((tmp_path / "replayed" / "scores.json").read_text())
    assert scores["replayed"]["policy"]["threshold"] == 0.95
    assert scores["groups"]["all"]["crag"] == json.loads(
        (tmp_path / "run_strict" / "scores.json").read_text())["groups"]["all"]["crag"]
    # replaying a replay with the first policy gives the first run back
    back = tmp_path / "back"
    assert main(["eval", "apply-policy", "--run", str(tmp_path / "replayed"), "--model",
                 str(keep), "--out", str(back)]) == 0
    assert {k: v["answer"] for k, v in _lines(back).items()} == \
        {k: v["answer"] for k, v in kept.items()}


def test_a_policy_of_other_weights_is_refused(eval_set, tmp_path, capsys):
    _run(eval_set, _checkpoint(tmp_path / "a", 0.5), tmp_path / "run")
    other = _checkpoint(tmp_path / "b", 0.5, seed=1)
    capsys.readouterr()
    assert main(["eval", "apply-policy", "--run", str(tmp_path / "run"), "--model", str(other),
                 "--out", str(tmp_path / "out")]) == 2
    assert "own weights" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main(["eval", "apply-policy", "--run", str(tmp_path / "run"), "--model",
                 str(tmp_path / "a"), "--out", str(tmp_path / "run")]) == 2
    assert "another folder" in capsys.readouterr().err
    # the run records the weights that answered: once the folder it names holds other weights
    # (a shipped model updated in place), its policy no longer re-decides the old answers
    recorded = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert len(recorded["model_weights_sha256"]) == 64
    shutil.copy(other / "model.safetensors", tmp_path / "a" / "model.safetensors")
    assert main(["eval", "apply-policy", "--run", str(tmp_path / "run"), "--model",
                 str(tmp_path / "a"), "--out", str(tmp_path / "out")]) == 2
    assert "sha256" in capsys.readouterr().err and not (tmp_path / "out").exists()


def _trace(score: float, modality: str) -> dict:
    hit = Hit("d", "Redland", score, "Redland is a country.", "RED")
    return Trace(steps=[SearchStep(0, modality, hits=[hit])], display="Redland.",
                 lm_logprobs=[-0.1]).to_dict()


def _hand_run(root: Path, records: Path, mode: str, right: list[bool], scores: list[float],
              modality: str) -> Path:
    """A run folder on a val split whose answers are right where `right` says; the first
    search's top score is the signal that tells them apart."""
    root.mkdir()
    save(EvalConfig(data=str(records), split="val", model="tiny", mode=mode), root / "config.yaml")
    with (root / "predictions.jsonl").open("w") as f:
        for i, (ok, s) in enumerate(zip(right, scores)):
            f.write(json.dumps({"id": f"q{i}", "answer": "Rubyville" if ok else "Nowhere",
                                "trace": _trace(s, modality)}) + "\n")
    return root


def test_calibration_pools_runs_in_several_modes(tmp_path, capsys):
    n = 32
    records = tmp_path / "val.jsonl"
    records.write_text("".join(json.dumps({"id": f"q{i}", "question": "What is the capital?",
                                           "answer": "Rubyville", "ego": True}) + "\n"
                               for i in range(n)))
    # full mode: region searches, mostly right; whole image: image searches, mostly wrong,
    # and right only where the top score is high
    full = _hand_run(tmp_path / "full", records, "full", [i % 4 != 0 for i in range(n)],
                     [0.8] * n, "region")
    wi_right = [i >= n - 4 for i in range(n)]
    whole = _hand_run(tmp_path / "whole", records, "whole_image", wi_right,
                      [0.9 if ok else 0.3 for ok in wi_right], "image")
    alone, _, _ = calibrate_run(full)
    pooled, curve, cfg = calibrate_run([full, whole])
    assert f"mode full, {n} records" in pooled.fitted_on
    assert f"mode whole_image, {n} records" in pooled.fitted_on
    assert len(curve) >= 2 and cfg["mode"] == "full"
    low_image = json.loads(json.dumps(_trace(0.3, "image")))
    from pixsearch.abstention import confidence_features

    feats = confidence_features(Trace.from_dict(low_image))
    # fitted on full-mode answers alone, the policy knows nothing of the image route; pooled,
    # it abstains on the image searches that found nothing clear
    assert pooled.p_correct(feats) < pooled.threshold
    assert pooled.p_correct(feats) < alone.p_correct(feats)
    # held out (folds over records): the pooled fit is what decides whole-image answers well
    outs, _, _ = pooled_outcomes([full, whole])
    pooled_held = cross_validate(outs, folds=4)
    single_held = cross_validate(outs, folds=4, fit_runs={0})
    assert set(pooled_held) == {(o.run, o.id) for o in outs} == set(single_held)

    def truth(held: dict, run: int) -> float:
        return sum(v for (r, _), v in held.items() if r == run) / n

    assert truth(single_held, 1) < 0 < truth(pooled_held, 1)
    assert main(["eval", "calibrate", "--run", str(full), "--run", str(whole), "--dry-run",
                 "--folds", "4"]) == 0
    assert "held out (4-fold over records), truthfulness: full" in capsys.readouterr().out
    with pytest.raises(ValueError, match="different models"):
        other = _hand_run(tmp_path / "other", records, "full", [True] * n, [0.8] * n, "region")
        cfg_other = (other / "config.yaml").read_text().replace("model: tiny", "model: mini")
        (other / "config.yaml").write_text(cfg_other)
        calibrate_run([full, other])
