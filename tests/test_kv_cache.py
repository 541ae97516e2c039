"""`GrowingCache` against `transformers`' `DynamicCache` on a real (tiny, random) Llama:
same logits through prefill, token-by-token decoding across buffer regrowth, crop and batch
selection; sliding-window models keep `DynamicCache`."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM, Qwen2Config

from pixsearch.model import kv_cache
from pixsearch.model.kv_cache import GrowingCache, GrowingLayer, new_decode_cache


@pytest.fixture(scope="module")
def lm() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    return LlamaForCausalLM(cfg).eval()


def _step(lm, cache, ids: torch.Tensor, past: int) -> torch.Tensor:
    pos = torch.arange(past, past + ids.shape[1]).expand(ids.shape[0], -1)
    return lm(input_ids=ids, cache=cache, position_ids=pos, use_cache=True).logits


@torch.no_grad()
def test_decoding_across_regrowth_matches_dynamic_cache(lm, monkeypatch):
    monkeypatch.setattr(kv_cache, "MIN_CAPACITY", 8)
    ids = torch.randint(0, 97, (1, 40))
    grow, dyn = GrowingCache(), DynamicCache()
    torch.testing.assert_close(_step(lm, grow, ids[:, :5], 0), _step(lm, dyn, ids[:, :5], 0))
    capacities = set()
    for t in range(5, 40):  # capacity 10 → 22 → 46: two regrowths on the way
        a, b = _step(lm, grow, ids[:, t:t + 1], t), _step(lm, dyn, ids[:, t:t + 1], t)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        capacities.add(grow.layers[0]._k.shape[-2])
    assert capacities == {10, 22, 46}
    assert grow.get_seq_length() == dyn.get_seq_length() == 40
    layer = grow.layers[0]
    assert isinstance(layer, GrowingLayer) and layer.keys.data_ptr() == layer._k.data_ptr()


@torch.no_grad()
def test_crop_then_extend_writes_in_place(lm):
    ids = torch.randint(0, 97, (1, 30))
    grow, dyn = GrowingCache(), DynamicCache()
    _step(lm, grow, ids[:, :20], 0), _step(lm, dyn, ids[:, :20], 0)
    buf = grow.layers[0]._k
    grow.crop(-5), dyn.crop(-5)  # drop the last 5, e.g. rejected draft tokens
    a, b = _step(lm, grow, ids[:, 20:30], 15), _step(lm, dyn, ids[:, 20:30], 15)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert grow.get_seq_length() == 25 and grow.layers[0]._k is buf  # no reallocation


@torch.no_grad()
def test_batch_select_reseeds_buffers(lm):
    ids = torch.randint(0, 97, (2, 12))
    grow, dyn = GrowingCache(), DynamicCache()
    _step(lm, grow, ids[:, :10], 0), _step(lm, dyn, ids[:, :10], 0)
    keep = torch.tensor([1])
    grow.batch_select_indices(keep), dyn.batch_select_indices(keep)
    a, b = _step(lm, grow, ids[1:, 10:12], 10), _step(lm, dyn, ids[1:, 10:12], 10)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert grow.layers[0]._k.shape[0] == 1


def test_sliding_window_models_keep_dynamic_cache(lm):
    assert isinstance(new_decode_cache(lm.config), GrowingCache)
    sliding = Qwen2Config(num_hidden_layers=2, use_sliding_window=True, sliding_window=16,
                          max_window_layers=1)
    cache = new_decode_cache(sliding)
    assert isinstance(cache, DynamicCache) and not isinstance(cache, GrowingCache)
