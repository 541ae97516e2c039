"""Training a `model.dtype=bf16` model: the trainable parameters stay float32 master weights,
the frozen base stays bfloat16, the forward runs under bf16 autocast, checkpoints keep the
masters and a resumed run gets them back unrounded (`train/precision.py`)."""

import json
import math
from dataclasses import replace

import pytest
import torch
from safetensors import safe_open
from test_train import world  # noqa: F401 (the four-scene world fixture)

from pixsearch import config
from pixsearch.model.checkpoint import load_checkpoint
from pixsearch.model.dtype import parameter_dtypes
from pixsearch.train.config import TrainConfig
from pixsearch.train.precision import mixed_precision, restore_master_weights
from pixsearch.train.trainer import Trainer


@pytest.fixture(autouse=True)
def _fresh_accelerator_state():
    """accelerate keeps one mixed-precision setting per process (its state is a singleton):
    the other tests' Trainers ran without autocast, these run with bf16."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def _config(world, out, *overrides) -> TrainConfig:  # noqa: F811
    return config.load(TrainConfig, "configs/train/tiny_smoke.yaml",
                       [f"world={world}", f"out={out}", f"feature_cache={out}/cache",
                        "model_overrides.dtype=bf16", *overrides])


def test_bf16_model_trains_float32_masters(world, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    cfg = _config(world, out)
    # two steps of referring segmentation: the LM (LoRA) and the mask path both train
    cfg.stages = [replace(cfg.stages[1], steps=2)]
    trainer = Trainer(cfg)
    assert trainer.acc.mixed_precision == "bf16"  # autocast although the CPU default is "no"
    final = trainer.run()

    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss/total" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(math.isfinite(r["loss/total"]) and math.isfinite(r["loss/seg"]) for r in steps)

    model = load_checkpoint(final)
    assert parameter_dtypes(model) == {torch.bfloat16}  # answers in its configured dtype
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable)
    with safe_open(str(final / "model.safetensors"), framework="pt") as f:
        dtypes = {k: f.get_slice(k).get_dtype() for k in f.keys()}
        stored = {k: f.get_tensor(k) for k in trainable if k in dtypes}
    assert stored.keys() == trainable
    # the masters are stored in float32, the frozen base in the model's bfloat16
    assert {dtypes[k] for k in trainable} == {"F32"}
    assert {v for k, v in dtypes.items() if k not in trainable} == {"BF16"}
    # and hold what bfloat16 cannot: the updates were not rounded away
    assert any(not torch.equal(t, t.bfloat16().float()) for t in stored.values())

    # a resumed run takes the masters back from checkpoint-last unrounded
    last = out / "checkpoint-last"
    resumed = load_checkpoint(last)
    assert restore_master_weights(resumed, last) == len(trainable)
    params = dict(resumed.named_parameters())
    with safe_open(str(last / "model.safetensors"), framework="pt") as f:
        for name in trainable:
            assert params[name].dtype == torch.float32
            assert torch.equal(params[name].data, f.get_tensor(name))
    # and the trainer does so: a longer stage continues from step 2 with finite losses
    cfg = _config(world, out)
    cfg.stages = [replace(cfg.stages[1], steps=3)]
    Trainer(cfg).run()
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss/total" in r]
    assert [r["step"] for r in steps] == [1, 2, 3] and math.isfinite(steps[-1]["loss/total"])


def test_precision_must_agree_with_a_half_precision_model(world, tmp_path):  # noqa: F811
    # `precision=no` is read as the word (YAML 1.1 would make it False)
    cfg = _config(world, tmp_path / "run", "precision=no")
    assert cfg.precision == "no"
    with pytest.raises(ValueError, match="precision=no with model.dtype=bf16.*precision=auto"):
        Trainer(cfg)
    assert mixed_precision("auto", "fp32", device_bf16=False) == "no"
    assert mixed_precision("auto", "fp32", device_bf16=True) == "bf16"
    assert mixed_precision("no", "fp32", device_bf16=True) == "no"
    assert mixed_precision("auto", "fp16", device_bf16=True) == "fp16"
