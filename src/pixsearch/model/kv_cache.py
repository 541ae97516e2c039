"""The decoding session's KV cache: appends in amortised O(1) instead of O(sequence).

`transformers`' `DynamicCache` grows each layer by `torch.cat`, so every decoded token copies
the whole cache of every layer: decoding slows down as the context grows, by more than the
attention itself needs. With an image (577 tokens) and three searches' evidence in context
(1085 tokens), the `cache` line of `benchmarks/decode_bench.py` measured 4.75 → 4.14 ms per
decoded token for the `mini` shape and 40.7 → 34.9 ms for a 114M-parameter LM (2 threads,
best of interleaved runs on the 2-core box).
`GrowingLayer` keeps each layer's keys and values in a buffer with spare capacity (doubling when
full, like a Python list) and hands attention views of the filled part. `StaticCache` would
also avoid the copy, but it must know the final length up front and attends over all of it;
a search-interleaved answer's length is not known when the prompt is prefilled.
"""

from __future__ import annotations

import torch
from transformers import Cache, DynamicCache, DynamicLayer, PretrainedConfig

MIN_CAPACITY = 256  # tokens; the first prefill usually sets a larger one


class GrowingLayer(DynamicLayer):
    """A `DynamicLayer` whose `keys`/`values` are views into buffers with spare capacity.

    Anything the base class does by reassigning `keys`/`values` (crop, reorder, batch select)
    stays correct: `update` notices that the views no longer point into its buffers and
    re-seeds them from the current tensors.
    """

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = self.get_seq_length()
        end = n + key_states.shape[-2]
        if not self._owns_views(key_states) or end > self._k.shape[-2]:
            self._regrow(key_states, value_states, n, end)
        self._k[..., n:end, :].copy_(key_states)
        self._v[..., n:end, :].copy_(value_states)
        self.keys, self.values = self._k[..., :end, :], self._v[..., :end, :]
        return self.keys, self.values

    def _owns_views(self, key_states: torch.Tensor) -> bool:
        """True when `keys`/`values` are still the prefix views of this layer's buffers."""
        if self._k is None or self.keys.numel() == 0:
            return False
        return (self.keys.data_ptr() == self._k.data_ptr()
                and self.values.data_ptr() == self._v.data_ptr()
                and self._k.shape[:-2] == key_states.shape[:-2])

    def _regrow(self, key_states: torch.Tensor, value_states: torch.Tensor, n: int, end: int
                ) -> None:
        cap = max(MIN_CAPACITY, 2 * end)
        k_shape = (*key_states.shape[:-2], cap, key_states.shape[-1])
        v_shape = (*value_states.shape[:-2], cap, value_states.shape[-1])
        k = key_states.new_empty(k_shape)
        v = value_states.new_empty(v_shape)
        if n:
            k[..., :n, :].copy_(self.keys)
            v[..., :n, :].copy_(self.values)
        self._k, self._v = k, v

    def reset(self) -> None:
        self._k = self._v = None
        super().reset()


class GrowingCache(Cache):
    """A cache of `GrowingLayer`s, one added per attention layer on its first `update`."""

    def __init__(self) -> None:
        super().__init__(layer_class_to_replicate=GrowingLayer)


def layer_types(config: PretrainedConfig) -> set[str]:
    """The attention kinds of the LM's layers ("full_attention", "sliding_attention", …)."""
    text = config.get_text_config(decoder=True)
    return set(getattr(text, "layer_types", None) or ["full_attention"])


def new_decode_cache(config: PretrainedConfig) -> Cache:
    """The cache a decoding session starts with: `GrowingCache` for models whose layers all use
    full attention (the native LM, Vicuna, Qwen2.5's text model without sliding windows);
    otherwise `transformers`' own per-layer-type `DynamicCache`."""
    text = config.get_text_config(decoder=True)
    if getattr(text, "use_sliding_window", False) or layer_types(config) != {"full_attention"}:
        return DynamicCache(config=config)
    return GrowingCache()
