"""The model ↔ trainer seams: seeded builds that leave the caller's RNG alone, trainable groups
given explicitly (never by mutating the model's config), and the typed `Batch` of collation."""

import random

import numpy as np
import pytest
import torch
from PIL import Image

from pixsearch.model.batch import Batch, collate
from pixsearch.model.build import _build, build_model, set_trainable
from pixsearch.model.presets import get_preset
from pixsearch.train.config import StageConfig
from pixsearch.train.losses import pixsearch_loss
from pixsearch.train.optim import stage_parameters

DISPLAY = ("The flag on the left <search><region></search><information>Peru is a country"
           "</information> is Peru.")


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    return build_model(get_preset("tiny"))


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _trainable_names(model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_build_leaves_the_callers_rng_alone_and_depends_on_the_seed_only(tiny):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    py, npy = random.getstate(), np.random.get_state()
    again = build_model(get_preset("tiny"))
    assert torch.equal(torch.get_rng_state(), state)
    assert random.getstate() == py and np.array_equal(np.random.get_state()[1], npy[1])
    # two builds with one seed agree wherever the global RNG stood; another seed differs
    assert _same_weights(tiny, again)
    assert not _same_weights(tiny, build_model(get_preset("tiny", {"seed": 1})))
    # the weights are those of the builder that seeded the global RNG itself (old builds,
    # and tests that compare numbers of `tiny`, are reproduced bit for bit)
    torch.manual_seed(0)
    assert _same_weights(tiny, _build(get_preset("tiny"), None, None))


def test_set_trainable_takes_the_groups_and_leaves_the_config(tiny):
    built = list(tiny.cfg.trainable)
    try:
        names = set_trainable(tiny, ["span_tagger", "lora"])
        assert list(names) == ["span_tagger", "lora"]
        assert all(n.startswith("span_tagger.") for n in names["span_tagger"])
        assert names["lora"] and all("lora_" in n for n in names["lora"])
        assert _trainable_names(tiny) == set(names["span_tagger"]) | set(names["lora"])
        assert tiny.cfg.trainable == built
        with pytest.raises(ValueError, match="unknown trainable group"):
            set_trainable(tiny, ["span_tagger", "nope"])
        with pytest.raises(ValueError, match="no SAM image encoder"):
            set_trainable(tiny, ["sam_vision"])
    finally:
        set_trainable(tiny, built)
    assert any("lora_" in n for n in _trainable_names(tiny))


def test_lora_is_trainable_only_on_a_model_built_with_it():
    model = build_model(get_preset("tiny", {"trainable": ["span_tagger", "g"]}))
    assert not any("lora_" in n for n, _ in model.named_parameters())
    assert _trainable_names(model) == {n for n, _ in model.named_parameters()
                                       if n.startswith(("span_tagger.", "g."))}
    with pytest.raises(ValueError, match="built without LoRA adapters"):
        set_trainable(model, ["lora"])


def test_stage_parameters_follow_the_stage_and_keep_the_built_config(tiny):
    built = list(tiny.cfg.trainable)
    try:
        groups = stage_parameters(tiny, StageConfig(name="s", trainable=["g", "lora"]))
        assert len(groups) == 2
        ids = [id(p) for g in groups for p in g]
        assert len(ids) == len(set(ids))  # each parameter in exactly one group
        assert set(ids) == {id(p) for p in tiny.parameters() if p.requires_grad}
        assert tiny.cfg.trainable == built  # a checkpoint saved now rebuilds the adapters
        with pytest.raises(ValueError, match="not built with"):
            stage_parameters(tiny, StageConfig(name="s", trainable=["lm"]))
        everything = stage_parameters(tiny, StageConfig(name="s"))  # empty: the model's own
        assert sum(len(g) for g in everything) > sum(len(g) for g in groups)
    finally:
        set_trainable(tiny, built)


def _image(w: int = 80, h: int = 60) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8))


def test_collate_returns_a_typed_batch_the_model_and_losses_read(tiny):
    r1 = tiny.renderer.trajectory("What flag is this?", DISPLAY, spans=[(4, 17)])
    r2 = tiny.renderer.trajectory("What is it?", "No idea.")
    mask = np.zeros((60, 80), bool)
    mask[10:30, 20:50] = True
    batch = collate(tiny, [r1, r2], [_image(), _image(50, 70)], [[mask], []],
                    kinds=["trajectory", "vqa"])
    assert isinstance(batch, Batch) and len(batch) == 2
    assert batch.kinds == ["trajectory", "vqa"]
    assert batch.input_ids.shape == batch.loss_mask.shape == batch.span_labels.shape
    assert batch.prompt_len.tolist() == [r1.prompt_len, r2.prompt_len]
    assert batch.region_targets.shape == (1, tiny.mask_size, tiny.mask_size)
    moved = batch.to("meta")
    tensors = [moved.input_ids, moved.attention_mask, moved.loss_mask, moved.span_labels,
               moved.prompt_len, moved.region_targets, *moved.images.values()]
    assert all(t.device.type == "meta" for t in tensors)
    assert batch.input_ids.device.type == "cpu" and moved.kinds == batch.kinds  # a copy
    with torch.no_grad():
        out = tiny(batch)
    total, parts = pixsearch_loss(out, batch)
    assert torch.isfinite(total) and {"lm", "span", "seg", "bce"} <= set(parts)
    with pytest.raises(ValueError, match="kinds"):
        collate(tiny, [r1], [_image()], [[mask]], kinds=["a", "b"])


def test_text_only_batch_has_no_images_or_targets(tiny):
    r = tiny.renderer.trajectory("What is the capital of Peru?",
                                 "<search>capital of Peru</search><information>Lima"
                                 "</information> Lima.", has_image=False)
    batch = collate(tiny, [r])
    assert batch.images is None and batch.region_targets is None and batch.kinds == []
    with torch.no_grad():
        out = tiny(batch)
    total, parts = pixsearch_loss(out, batch)
    assert torch.isfinite(total) and set(parts) == {"lm", "span"}
