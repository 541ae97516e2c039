"""PixSearchModel on tiny random presets: builder, shapes, KV continuation, masks, gradients."""

import numpy as np
import pytest
import torch
from PIL import Image

from pixsearch.model.batch import collate
from pixsearch.model.build import build_model
from pixsearch.model.interface import DecodeSession, SearchLM
from pixsearch.model.presets import get_preset, preset_names
from pixsearch.render import Rendered
from pixsearch.train.losses import pixsearch_loss

TINY = ["tiny", "llava-tiny", "qwen2.5-vl-tiny"]
DISPLAY = ("The flag on the left <search><region></search><information>Peru is a country"
           "</information> is Peru.")


@pytest.fixture(scope="module", params=TINY)
def model(request):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    return build_model(get_preset(request.param)).eval()


def _image(w=80, h=60, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def _batch(model):
    r1 = model.renderer.trajectory("What flag is this?", DISPLAY, spans=[(4, 17)])
    r2 = model.renderer.trajectory("What is it?", "No idea.")
    mask = np.zeros((60, 80), bool)
    mask[10:30, 20:50] = True
    return collate(model, [r1, r2], [_image(), _image(50, 70, 1)], [[mask], []]), r1


def test_every_preset_is_a_valid_config():
    for name in preset_names():
        cfg = get_preset(name)
        assert cfg.name == name
    assert get_preset("llava-1.5-13b").lm.pretrained == "llava-hf/llava-1.5-13b-hf"
    assert get_preset("tiny", {"lm": {"tokenizer_vocab": 300}}).lm.tokenizer_vocab == 300
    with pytest.raises(KeyError, match="available"):
        get_preset("nope")


def test_protocol_and_special_tokens(model):
    assert isinstance(model, SearchLM)
    t = model.tokens
    assert t.id("image_placeholder") != t.id("image_query")
    for role in t.roles:  # every control string is one token of the tokenizer
        assert model.tokenizer.encode(t.strings()[role], add_special_tokens=False) == [t.id(role)]
    emb = model.backbone.input_embeddings().weight
    assert emb.shape[0] >= len(model.tokenizer)


def test_forward_shapes(model):
    batch, r1 = _batch(model)
    out = model(batch)
    B, T = batch.input_ids.shape
    V = model.backbone.input_embeddings().weight.shape[0]
    assert out.logits.shape == (B, T, V)
    assert out.span_logits.shape[0] == 2 and out.span_logits.shape[2] == 3  # region + no-region
    assert out.span_targets.shape == out.span_logits.shape[:2]
    M = model.mask_size
    assert out.mask_logits.shape == (1, 1, M, M)
    assert out.span_embeddings.shape == (1, out.hidden.shape[-1])
    assert out.region_batch.tolist() == [0]
    # gold span labels reach the tagger targets: B then I over "flag on the left"
    tgt = out.span_targets[0][out.span_targets[0] >= 0].tolist()
    assert tgt.count(1) == 1 and tgt.count(2) >= 1


def test_kv_continuation_equals_full_recompute(model):
    _, r1 = _batch(model)
    img = _image()
    cut = r1.region_positions[0] + 1
    session, _ = model.start(model.renderer.prompt("What flag is this?"), img)
    assert isinstance(session, DecodeSession)
    gen = r1.input_ids[r1.prompt_len:cut]
    logits = session.extend(gen[:3])
    logits = session.extend(gen[3:])
    full = Rendered(input_ids=r1.input_ids[:cut], prompt_len=r1.prompt_len,
                    image_slice=r1.image_slice)
    _, ref = model.start(full, img)
    assert session.ids == r1.input_ids[:cut]
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=1e-4)


def test_region_mask_in_original_size(model):
    _, r1 = _batch(model)
    session, _ = model.start(model.renderer.prompt("What flag is this?"), _image(91, 47))
    session.extend(r1.input_ids[r1.prompt_len:r1.region_positions[0] + 1])
    mask = session.region_mask()
    assert mask.dtype == bool and mask.shape == (47, 91)
    no_img, _ = model.start(model.renderer.prompt("What flag is this?", has_image=False), None)
    with pytest.raises(RuntimeError, match="image"):
        no_img.region_mask()


def test_gradients_reach_exactly_the_trainable_parts(model):
    model.zero_grad()
    batch, _ = _batch(model)
    out = model(batch)
    loss, _ = pixsearch_loss(out, batch, teacher_span_embeddings=out.span_embeddings.detach() + 1)
    loss.backward()
    got = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert got <= trainable
    assert any("lora_" in n for n in got)
    embs = {n for n, p in model.named_parameters()
            if any(p is e.weight for e in (model.backbone.input_embeddings(),
                                           model.backbone.model.get_output_embeddings()))}
    assert not any("lora_" not in n and n.startswith("backbone.model.") and "projector" not in n
                   and "merger" not in n and n not in embs for n in got), \
        "frozen LM base weights got gradients"
    # the embedding matrices get gradients in their control-token rows only ("control_rows")
    control = sorted(set(model.tokens.ids.values()))
    for n in embs & got:
        g = dict(model.named_parameters())[n].grad.abs().sum(1)
        others = torch.ones_like(g, dtype=torch.bool)
        others[control] = False
        assert g[control].sum() > 0 and not g[others].any(), n
    for part in ("span_tagger.", "g.", "mask_decoder.mask_decoder.", "mask_decoder.prompt_encoder."):
        assert any(n.startswith(part) for n in got), part
    # one optimiser step moves only parameters that got gradients (k-projection biases get
    # ~1e-12 gradients, softmax being shift invariant, and may not move in float32)
    params = dict(model.named_parameters())
    before = {n: p.detach().clone() for n, p in params.items()}
    torch.optim.SGD([p for p in params.values() if p.requires_grad], lr=0.1).step()
    moved = {n for n, p in params.items() if not torch.equal(p, before[n])}
    assert moved <= got and any(n.startswith("mask_decoder.") for n in moved)
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(before[n])
    model.zero_grad()


def test_region_search_opening_the_answer_trains(model):
    """A trajectory that opens with `<search><region>` gets its mask (span from the question)."""
    r = model.renderer.trajectory("Which country has the flag on the left?",
                                  "<search><region></search><information>Peru</information> Peru.")
    mask = np.zeros((60, 80), bool)
    mask[5:25, 10:40] = True
    batch = collate(model, [r], [_image()], [[mask]])
    out = model(batch)
    assert out.mask_logits.shape[0] == 1
    total, parts = pixsearch_loss(out, batch)
    assert torch.isfinite(total)
