"""Experiment tracking of a training run: a tiny `pixsearch train` writes TensorBoard event files
(losses per term, lr, throughput, validation metrics, sample predictions), curves and sample
PNGs, provenance in the run and model folders and a model card in each model folder; `-q`
silences it all; tracker choices fail with errors that say what to install."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_train import world  # noqa: F401 - the four-scene world fixture of the training tests

from pixsearch.cli import main
from pixsearch.config import ConfigError
from pixsearch.provenance import read_provenance
from pixsearch.train.tracking import TRACKERS, RunTracker, check_tracker, row_metrics

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _train(world, out, *overrides, flags=()):  # noqa: F811 - `world` is the imported fixture
    return main([*flags, "train", "--config", "configs/train/tiny_smoke.yaml", f"world={world}",
                 f"out={out}", f"feature_cache={out}/cache", *overrides])


def _scalars(out: Path) -> tuple[set[str], set[str], set[str]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted((out / "tracking").rglob("events.out.tfevents.*"))
    assert files, "no TensorBoard event file"
    scalars, images, tensors = set(), set(), set()
    for f in files:
        acc = EventAccumulator(str(f), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
        acc.Reload()
        tags = acc.Tags()
        scalars |= set(tags["scalars"])
        images |= set(tags["images"])
        tensors |= set(tags["tensors"])
    return scalars, images, tensors


def test_tiny_run_writes_tensorboard_curves_provenance_and_cards(world, tmp_path, capfd):  # noqa: F811
    out = tmp_path / "run"
    assert _train(world, out) == 0
    err = capfd.readouterr().err
    assert "[train] stage stage0" in err  # the library's log lines reach the CLI's stderr
    scalars, images, tensors = _scalars(out)
    for tag in ("loss/total", "loss/lm", "loss/span", "loss/seg", "loss/bce", "loss/kl", "lr",
                "throughput/samples_per_s", "throughput/tokens_per_s", "val/mask_iou",
                "val/lm_loss", "val/stage1/mask_iou", "val/stage2/token_acc"):
        assert tag in scalars, (tag, sorted(scalars))
    assert "val/predictions" in images
    assert any(t.startswith("val/predictions_text") for t in tensors)
    assert (out / "curves.png").read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "step-000001.png", "step-000002.png", "step-000003.png"]
    for folder in (out, out / "final"):
        prov = read_provenance(folder)
        assert prov["kind"] == "train" and prov["command"][:2] == ["pixsearch", "train"]
        assert "torch" in prov["packages"] and prov["machine"]["cpu_count"] >= 1
        assert prov["wall_seconds"] > 0
        if (ROOT / ".git").exists():
            assert re.fullmatch(r"[0-9a-f]{40}", prov["git"]["commit"])
    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "final" / "README.md")
    assert card.data.library_name == "pixsearch" and card.data.parameters["trainable"] > 0
    assert "## Training" in card.text and "tiny_smoke.yaml" in card.text
    stage = (out / "stage-stage1" / "README.md").read_text()
    assert "after stage `stage1`" in stage
    # a quiet resume (one more stage-2 step) writes nothing on stderr
    assert _train(world, out, "stages.2.steps=2", flags=["-q"]) == 0
    quiet = capfd.readouterr()
    assert quiet.err == "", quiet.err
    steps = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in steps) == 4


def test_tracker_choices_name_what_to_install():
    from accelerate.tracking import get_available_trackers

    with pytest.raises(ConfigError, match="not one of"):
        check_tracker("tensorbored")
    available = {str(t.value) for t in get_available_trackers()}
    missing = [t for t in TRACKERS if t not in available and t != "none"]
    assert missing  # this machine lacks at least one (W&B, MLflow, ...)
    with pytest.raises(ImportError, match="pip install"):
        check_tracker(missing[0])
    assert RunTracker("none", Path("x")).accelerator_kwargs() == {}
    kwargs = RunTracker("tensorboard", Path("x")).accelerator_kwargs()
    assert kwargs["log_with"] == "tensorboard"


def test_log_rows_become_tracker_scalars():
    step = {"step": 3, "stage": "s", "stage_step": 1, "lr": 1e-3, "loss/total": 2.0,
            "loss/seg": 0.5, "samples_per_s": 4.0, "tokens_per_s": 90.0}
    assert row_metrics(step) == {"loss/total": 2.0, "loss/seg": 0.5, "lr": 1e-3,
                                 "throughput/samples_per_s": 4.0, "throughput/tokens_per_s": 90.0}
    val = {"step": 3, "stage": "s", "eval": {"mask_iou": 0.4, "stage2/token_acc": 0.9}}
    assert row_metrics(val) == {"val/mask_iou": 0.4, "val/stage2/token_acc": 0.9}
    assert row_metrics({"step": 3, "stage": "s", "budget_spent_at": 2}) == {}


def test_sample_predictions_are_distinct_and_spread_over_the_pools():
    from types import SimpleNamespace

    def pool(name: str, n: int, masks: bool = True) -> list:
        return [SimpleNamespace(record_id=f"{name}{i}", image="x.png", masks=[{}] if masks else [])
                for i in range(n)]

    from pixsearch.train.tracking import pick_samples

    ids = [s.record_id for s in pick_samples({"a": pool("a", 10), "b": pool("b", 3)}, 4)]
    assert ids == ["a0", "a5", "b0", "b1"]
    ids = [s.record_id for s in pick_samples({"a": pool("a", 2), "b": pool("b", 5, False)}, 4)]
    assert ids == ["a0", "a1"]  # fewer than asked rather than the same sample twice
    assert pick_samples({"a": pool("a", 3)}, 0) == []
