"""Paper scale on the CPU, with tiny copies of the real classes (#14, points 1-3 and 7).

Hub checkpoints as they are published (llava-hf and SAM saved in float16) load into one
dtype and answer; the mask path runs in bfloat16; `--device` is honoured; `model.key=value`
overrides point a hub preset at local checkpoints on every verb, with a warning naming what
is untrained; and decoding prints no deprecation warning.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from pixsearch.cli import build_parser, main
from pixsearch.cli.eval import eval_config
from pixsearch.cli.options import split_model_overrides
from pixsearch.cli.train import train_overrides
from pixsearch.decode.config import DecodeConfig
from pixsearch.eval.segmentation import SegmentationConfig, expression_mask
from pixsearch.model.batch import collate
from pixsearch.model.build import build_model
from pixsearch.model.dtype import cast_parameters, parameter_dtypes
from pixsearch.model.mask_decoder import sam_config
from pixsearch.model.placement import resolve_device
from pixsearch.model.presets import get_preset
from pixsearch.predictor import Predictor, load_model

NO_LORA = ["projector", "span_tagger", "g", "prompt_encoder", "mask_decoder"]
DISPLAY = "The flag on the left <search><region></search><information>Peru</information> Peru."


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A tiny LLaVA (with its tokenizer) and a tiny SAM, each saved in float16 with
    `save_pretrained`, as llava-hf and facebook/sam-vit-huge are published."""
    root = tmp_path_factory.mktemp("hub")
    src = build_model(get_preset("llava-tiny", {"trainable": NO_LORA}))
    src.backbone.model.to(torch.float16).save_pretrained(root / "llava")
    src.tokenizer.save_pretrained(root / "llava")
    from transformers import SamModel

    SamModel(sam_config(src.cfg.mask_decoder)).to(torch.float16).save_pretrained(root / "sam")
    return {"lm": {"pretrained": str(root / "llava")},
            "mask_decoder": {"sam_pretrained": str(root / "sam")}}


def _wide_image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (40, 90, 3), dtype=np.uint8))


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_fp16_hub_checkpoints_load_and_answer_in_one_dtype(published, dtype):
    # before: the float16 CLIP tower met float32 pixels and float32 SAM ("Input type
    # (c10::Half) and bias type (float) should be the same")
    with pytest.warns(UserWarning) as record:
        model = load_model("llava-tiny", overrides={**published, "dtype": dtype})
    expect = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    assert parameter_dtypes(model) == {expect}
    text = str(record[0].message)
    assert f"LM: loaded from {published['lm']['pretrained']}" in text
    assert f"SAM: loaded from {published['mask_decoder']['sam_pretrained']}" in text
    assert "new heads: random (span tagger, g(·))" in text
    answer = Predictor(model, None, DecodeConfig(max_searches=0, max_new_tokens=4)).ask(
        "What is in the picture?", _wide_image())
    assert answer.text is not None
    mask = expression_mask(model, _wide_image(), "the flag", SegmentationConfig())
    assert mask.shape == (40, 90) and mask.dtype == bool


def test_bf16_mask_path_on_cpu():
    model = build_model(get_preset("tiny", {"dtype": "bf16"})).eval()
    assert parameter_dtypes(model) == {torch.bfloat16}
    # buffers keep the precision their modules made them in (rotary frequencies stay fp32)
    assert model.backbone.model.model.rotary_emb.inv_freq.dtype == torch.float32
    r = model.renderer.trajectory("What flag is this?", DISPLAY, spans=[(4, 17)])
    gold = np.zeros((40, 90), bool)
    gold[5:30, 50:80] = True
    out = model(collate(model, [r], [_wide_image()], [[gold]]))
    assert out.mask_logits.dtype == torch.bfloat16 and out.mask_logits.shape[0] == 1
    assert torch.isfinite(out.mask_logits.float()).all()
    mask = expression_mask(model, _wide_image(), "the flag", SegmentationConfig())
    assert mask.shape == (40, 90)


def test_each_module_casts_its_inputs():
    """A model whose parts differ in precision (SAM decoder kept in fp32, LM in bf16) runs."""
    model = build_model(get_preset("tiny")).eval()
    cast_parameters(model.backbone, torch.bfloat16)
    cast_parameters(model.span_tagger, torch.bfloat16)
    assert parameter_dtypes(model) == {torch.bfloat16, torch.float32}
    mask = expression_mask(model, _wide_image(), "the flag", SegmentationConfig())
    assert mask.shape == (40, 90)


@pytest.mark.parametrize("preset", ["tiny", "llava-tiny", "qwen2.5-vl-tiny"])
def test_decoding_prints_no_deprecation(preset, caplog):
    model = build_model(get_preset(preset)).eval()
    predictor = Predictor(model, None, DecodeConfig(max_searches=0, max_new_tokens=6))
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        predictor.ask("What is in the picture?", _wide_image())
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in caplog.records if r.name.startswith("transformers")] == []


def test_device_option_is_honoured_on_cpu():
    cfg = DecodeConfig(max_searches=0, max_new_tokens=3)
    for device in ("cpu", "auto"):
        p = Predictor.load("tiny", None, cfg, device=device)
        devices = {t.device.type for t in p.model.parameters()}
        assert devices == {resolve_device(device).split(":")[0]}
        assert p.ask("What?", _wide_image()).text is not None
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            Predictor.load("tiny", None, cfg, device="cuda")
        assert main(["ask", "--model", "tiny", "--device", "cuda", "-q", "x",
                     "--max-searches", "0"]) == 2


def test_model_overrides_are_split_from_the_verbs_own():
    model, rest = split_model_overrides(["model.lm.pretrained=/ckpt/llava", "top_k=3",
                                         "model.sam_pretrained=/ckpt/sam", "model.dtype=bf16"])
    assert model == {"lm": {"pretrained": "/ckpt/llava"}, "dtype": "bf16",
                     "mask_decoder": {"sam_pretrained": "/ckpt/sam"}}
    assert rest == ["top_k=3"]
    args = build_parser().parse_args(["eval", "run", "--data", "x.jsonl", "--out", "o",
                                      "--model", "llava-1.5-13b", "--device", "auto",
                                      "model.lm.pretrained=/ckpt/llava", "limit=2"])
    cfg = eval_config(args)
    assert cfg.model_overrides == {"lm": {"pretrained": "/ckpt/llava"}}
    assert cfg.device == "auto" and cfg.limit == 2
    args = build_parser().parse_args(["train", "--config", "c.yaml", "--model", "llava-1.5-13b",
                                      "model.sam_pretrained=/ckpt/sam", "stages.0.steps=1"])
    assert train_overrides(args) == ["model=llava-1.5-13b",
                                     "model_overrides.mask_decoder.sam_pretrained=/ckpt/sam",
                                     "stages.0.steps=1"]


def test_ask_points_a_hub_preset_at_local_checkpoints(published, capsys):
    lm, sam = published["lm"]["pretrained"], published["mask_decoder"]["sam_pretrained"]
    with pytest.warns(UserWarning, match=f"LM: loaded from {lm}; .*SAM: loaded from {sam}"):
        rc = main(["ask", "--model", "llava-tiny", "--device", "cpu", "--max-searches", "0",
                   "--max-new-tokens", "3", "-q", "What is it?", "--json",
                   f"model.lm.pretrained={lm}", f"model.sam_pretrained={sam}",
                   "model.dtype=bf16"])
    assert rc == 0 and '"text"' in capsys.readouterr().out
    # a misspelt model field fails before anything loads, naming the field
    assert main(["ask", "--model", "llava-tiny", "--max-searches", "0", "-q", "x",
                 "model.lm.pretrianed=/x"]) == 2
    assert "pretrianed" in capsys.readouterr().err


def test_a_checkpoint_takes_only_the_dtype_override(tmp_path):
    from pixsearch.model.checkpoint import save_checkpoint

    save_checkpoint(build_model(get_preset("tiny")), tmp_path / "ckpt")
    model = load_model(str(tmp_path / "ckpt"), overrides={"dtype": "bf16"})
    assert parameter_dtypes(model) == {torch.bfloat16} and model.cfg.dtype == "bf16"
    with pytest.raises(ValueError, match="lm.*trained checkpoint"):
        load_model(str(tmp_path / "ckpt"), overrides={"lm": {"pretrained": "/x"}})
    # the CLI refuses them before the model loads (the shipped `mini` is a checkpoint too)
    for spec, override in ((str(tmp_path / "ckpt"), "model.dtype=fp8"),
                           ("mini", "model.lm.pretrained=/x")):
        assert main(["ask", "--model", spec, "--max-searches", "0", "-q", "x", override]) == 2
