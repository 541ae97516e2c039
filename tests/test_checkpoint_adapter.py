"""Adapter-only checkpoints of hub presets (base from its pretrained folders, only what training
changes is stored), full checkpoints of native presets, and the shipped `mini` loading as is."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from test_checkpoint import _outputs  # the same forward pass as the full-checkpoint tests
from transformers import LlavaConfig, LlavaForConditionalGeneration, SamModel

import pixsearch
from pixsearch.model.build import build_model
from pixsearch.model.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from pixsearch.model.mask_decoder import sam_config
from pixsearch.model.presets import get_preset
from pixsearch.model.tokenizer import train_tokenizer
from pixsearch.tokens import TokenTable


def _stored_keys(path: Path) -> set[str]:
    with safe_open(str(path / "model.safetensors"), framework="pt") as f:
        return set(f.keys())


@pytest.fixture(scope="module")
def llava_base(tmp_path_factory):
    """A tiny LLaVA and a tiny SAM saved as published checkpoints (save_pretrained), with a
    tokenizer that predates the control tokens (so the build adds and initialises rows)."""
    root = tmp_path_factory.mktemp("base")
    cfg = get_preset("llava-tiny")
    tok = train_tokenizer(None, 512, TokenTable(*[f"<other{i}>" for i in range(6)],
                                                image_placeholder="<image>"))
    hf = dict(cfg.lm.hf_config)
    hf["text_config"] = dict(hf["text_config"], vocab_size=len(tok))
    torch.manual_seed(1)
    LlavaForConditionalGeneration(LlavaConfig(
        **hf, image_token_index=tok.convert_tokens_to_ids("<image>"))).save_pretrained(
        root / "llava")
    tok.save_pretrained(root / "llava")
    SamModel(sam_config(cfg.mask_decoder)).save_pretrained(root / "sam")
    return root


def _hub_model(base: Path):
    cfg = get_preset("llava-tiny", {"lm": {"pretrained": str(base / "llava")},
                                    "mask_decoder": {"sam_pretrained": str(base / "sam")}})
    model = build_model(cfg).eval()
    # "train" it: every stored tensor must then come back from the file. The embedding
    # matrices train their control-token rows only ("control_rows")
    embs = {id(m.weight): m.weight for m in (model.backbone.input_embeddings(),
                                             model.backbone.model.get_output_embeddings())}
    ids = sorted(set(model.tokens.ids.values()))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad and id(p) not in embs:
                p.add_(torch.randn_like(p) * 0.05)
        for w in embs.values():
            w[ids] += torch.randn(len(ids), w.shape[1])
    return model


def test_hub_checkpoint_stores_only_what_training_changes(llava_base, tmp_path):
    torch.set_num_threads(1)
    model = _hub_model(llava_base)
    path = save_checkpoint(model, tmp_path / "ckpt")
    assert read_metadata(path)["format"] == "adapter"
    stored = _stored_keys(path)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    rows = {k for k in stored if k.startswith("token_rows::")}
    # the control-token rows of the (frozen) embedding and output matrices
    assert {k.split("::")[1] for k in rows} == {
        "backbone.model.model.language_model.embed_tokens.weight", "backbone.model.lm_head.weight"}
    # every trainable tensor is stored (the embeddings train their control rows only, which
    # are stored as rows); anything else stored is a head's buffer, never the base
    assert trainable - {k.split("::")[1] for k in rows} <= stored
    others = stored - trainable - rows
    assert all(not k.startswith("backbone.model.") for k in others), sorted(others)[:5]
    assert not any(".base_layer." in k or "vision_tower" in k or "vision_encoder" in k
                   for k in stored)
    full = sum(v.numel() for v in model.state_dict().values())
    with safe_open(str(path / "model.safetensors"), framework="pt") as f:
        saved = sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())
    assert saved < 0.5 * full, (saved, full)

    loaded = load_checkpoint(path).eval()
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    for x, y in zip(_outputs(model), _outputs(loaded)):
        assert torch.equal(x, y)
    assert {n for n, p in loaded.named_parameters() if p.requires_grad} == trainable


def test_adapter_checkpoint_follows_its_base_when_moved(llava_base, tmp_path):
    torch.set_num_threads(1)
    model = _hub_model(llava_base)
    path = save_checkpoint(model, tmp_path / "ckpt")
    moved = tmp_path / "moved"
    (llava_base / "llava").rename(moved)
    try:
        with pytest.raises(CheckpointError, match="pretrained"):
            load_checkpoint(path)
        loaded = load_checkpoint(path, overrides={"lm": {"pretrained": str(moved)}})
        assert loaded.cfg.lm.pretrained == str(moved)
        a, b = model.state_dict(), loaded.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    finally:
        moved.rename(llava_base / "llava")


def test_native_checkpoint_is_full_and_round_trips(tmp_path):
    torch.set_num_threads(1)
    model = build_model(get_preset("tiny")).eval()
    path = save_checkpoint(model, tmp_path / "ckpt")
    assert read_metadata(path)["format"] == "full"
    aliases = json.loads(read_metadata(path)["aliases"])
    assert _stored_keys(path) | set(aliases) == set(model.state_dict())
    loaded = load_checkpoint(path).eval()
    a, b = model.state_dict(), loaded.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_random_config_hub_checkpoint_is_full_and_built_on_meta(tmp_path):
    """A hub class from a random config has no base to return to: its checkpoint is full,
    and loading builds it on the meta device and adopts the saved tensors."""
    torch.set_num_threads(1)
    model = build_model(get_preset("qwen2.5-vl-tiny")).eval()
    path = save_checkpoint(model, tmp_path / "ckpt")
    assert read_metadata(path)["format"] == "full"
    loaded = load_checkpoint(path).eval()
    assert {p.device.type for p in loaded.parameters()} == {"cpu"}
    for x, y in zip(_outputs(model), _outputs(loaded)):
        assert torch.equal(x, y)


@pytest.mark.parametrize("legacy", [False, True])
def test_shipped_mini_loads_unchanged(tmp_path, legacy):
    """The shipped `mini` loads with its stored tensors; so does a copy of it written before
    checkpoints recorded their format (no "format" in the metadata: read as full)."""
    import shutil

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = Path(pixsearch.__file__).parent / "weights" / "mini"
    stored = load_file(str(path / "model.safetensors"))
    if legacy:
        path = Path(shutil.copytree(path, tmp_path / "mini"))
        with safe_open(str(path / "model.safetensors"), "pt") as f:
            meta = {k: v for k, v in (f.metadata() or {}).items() if k != "format"}
        save_file(stored, str(path / "model.safetensors"), metadata=meta)
        assert "format" not in read_metadata(path)
    model = load_checkpoint(path)
    assert model.cfg.name == "mini"
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in stored.items())
