"""Checkpoint round-trip, strict loading, and hub loading paths from local tiny checkpoints."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import LlavaConfig, LlavaForConditionalGeneration, SamModel

from pixsearch.model.batch import collate
from pixsearch.model.build import build_model
from pixsearch.model.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_state,
    save_checkpoint,
)
from pixsearch.model.mask_decoder import sam_config
from pixsearch.model.presets import get_preset
from pixsearch.model.tokenizer import train_tokenizer
from pixsearch.tokens import TokenTable

DISPLAY = "The red flag <search><region></search><information>x</information> is Peru."


def _outputs(model):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8))
    r = model.renderer.trajectory("Which flag?", DISPLAY, spans=[(4, 12)])
    mask = np.zeros((40, 50), bool)
    mask[5:20, 10:30] = True
    with torch.no_grad():
        out = model(collate(model, [r], [img], [[mask]]))
    return out.logits, out.span_logits, out.mask_logits


@pytest.mark.parametrize("name", ["tiny", "qwen2.5-vl-tiny"])
def test_round_trip_gives_identical_outputs(tmp_path, name):
    torch.set_num_threads(1)
    model = build_model(get_preset(name)).eval()
    with torch.no_grad():  # perturb LoRA B (zero at init) so adapters matter in the comparison
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    save_checkpoint(model, tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt").eval()
    assert loaded.tokens.ids == model.tokens.ids
    for a, b in zip(_outputs(model), _outputs(loaded)):
        assert torch.equal(a, b)
    assert {n for n, p in loaded.named_parameters() if p.requires_grad} == \
        {n for n, p in model.named_parameters() if p.requires_grad}


def test_strict_loading_names_keys(tmp_path):
    model = build_model(get_preset("tiny"))
    path = save_checkpoint(model, tmp_path / "ckpt")
    from safetensors import safe_open

    with safe_open(str(path / "model.safetensors"), framework="pt") as f:
        meta = f.metadata()
    state = load_file(str(path / "model.safetensors"))
    dropped = "span_tagger.out.weight"
    state.pop(dropped)
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(path / "model.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError) as err:
        load_state(model, path)
    assert dropped in str(err.value) and "extra.weight" in str(err.value)
    (path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(path)


def test_hub_loading_paths_from_local_tiny_checkpoints(tmp_path):
    """LLaVA + SAM loaded by local path: config mapping, special-token resizing with mean
    initialisation, weight names of both checkpoints, then a checkpoint round trip."""
    torch.set_num_threads(1)
    cfg = get_preset("llava-tiny")
    # a "hub" tokenizer that knows LLaVA's <image> but none of our control tokens, and a hub
    # model whose vocabulary predates them
    other = TokenTable(*[f"<other{i}>" for i in range(6)], image_placeholder="<image>")
    tok = train_tokenizer(None, 512, other)
    hf = dict(cfg.lm.hf_config)
    hf["text_config"] = dict(hf["text_config"], vocab_size=len(tok))
    LlavaForConditionalGeneration(LlavaConfig(
        **hf, image_token_index=tok.convert_tokens_to_ids("<image>"))).save_pretrained(
        tmp_path / "llava")
    sam = SamModel(sam_config(cfg.mask_decoder))
    sam.save_pretrained(tmp_path / "sam")

    cfg.lm.pretrained = str(tmp_path / "llava")
    cfg.mask_decoder.sam_pretrained = str(tmp_path / "sam")
    model = build_model(cfg, tokenizer=tok)
    llava = LlavaForConditionalGeneration.from_pretrained(tmp_path / "llava")
    emb = model.backbone.input_embeddings().weight
    old = llava.get_input_embeddings().weight
    assert emb.shape[0] == len(tok) == old.shape[0] + 6
    torch.testing.assert_close(emb[: old.shape[0]], old)
    torch.testing.assert_close(emb[old.shape[0]:], old.mean(0, keepdim=True).expand(6, -1))
    assert model.tokens.id("image_placeholder") == tok.convert_tokens_to_ids("<image>")
    assert model.tokens.strings()["image_query"] == "<image_query>"
    assert model.backbone.model.config.image_token_index == model.tokens.id("image_placeholder")
    torch.testing.assert_close(model.mask_decoder.mask_decoder.iou_token.weight,
                               sam.mask_decoder.iou_token.weight)
    vis = model.mask_decoder.vision_encoder.patch_embed.projection.weight
    torch.testing.assert_close(vis, sam.vision_encoder.patch_embed.projection.weight)

    path = save_checkpoint(model, tmp_path / "ckpt")
    assert "backbone" in json.loads((path / "hub_configs.json").read_text())
    loaded = load_checkpoint(path)
    for a, b in zip(_outputs(model.eval()), _outputs(loaded.eval())):
        assert torch.equal(a, b)
