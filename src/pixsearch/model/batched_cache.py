"""The batched engine's KV cache: one padded buffer per layer, one row ("slot") per sequence.

Layout: padding + attention masks, not pages. Each attention layer keeps keys and values in
one buffer [slots, kv_heads, capacity, head_dim]; slot i holds sequence i's cache in columns
[0, length_i). A decode step runs rows 0..n-1 (n = highest slot in use + 1) with one new token
each, written at column length_i of its row, and a boolean mask [n, 1, 1, L] (L = longest
length + 1) hides every column past a row's own length. Why this and not a paged layout:

- On CPU (the project's default machine) neither torch nor `transformers` has a paged-attention
  kernel: pages would be gathered into a contiguous tensor for every step and layer, a copy of
  every sequence's whole cache per token — the memory traffic batching exists to save. Padded
  rows are read in place by one SDPA call per layer.
- `transformers` models take a ready 4-D mask as it is (`masking_utils.create_causal_mask`), so
  the native Llama, LLaVA-1.5 and Qwen2.5-VL (M-RoPE positions come from the caller) batch
  through the same two `Cache` views with no code of their own.
- The price is memory and masked work: every slot has the capacity of the longest sequence,
  and a step attends over the longest length for every row. For answers of a few hundred to a
  few thousand tokens and tens of slots this stays small (mini: 16 slots × 1024 tokens × 4
  layers × K and V × 256 float32 = 128 MiB; LLaVA-1.5-13B in bf16 at 16 × 2048 tokens: 25 GiB
  beside 26 GiB of weights); a GPU deployment with hundreds of concurrent sequences of very
  different lengths is where pages would pay.

Prefill (a prompt, an evidence block) goes through `SlotKVCache.view(slot)`: batch 1 over the
slot's own columns, no padding, no mask beyond the causal one — the arithmetic of the
single-answer session (`kv_cache.GrowingLayer`). Rows that take no part in a step (free slots,
sequences stepped aside for a search) get a dummy token written one column past their length:
it is never attended and their next real write overwrites it. A slot's length advances when the
model's last layer has written, since every layer writes exactly once per forward pass.

Sliding-window layers (Gemma 3 has five for every full one) keep every column too: a step
hands the model one mask per layer type, the sliding one hiding what lies `sliding_window` or
more positions behind each row, and a prefill's own window mask is built by `transformers`
over the slot's columns. Windows are a mask here, not an eviction: a slot keeps at most the
capacity of its longest sequence, which for this project's answers is a few hundred tokens.
"""

from __future__ import annotations

import torch
from transformers import Cache, CacheLayerMixin, PretrainedConfig

from pixsearch.model.kv_cache import layer_types

# a step's attention mask: none, one for every layer, or one per layer type (sliding windows)
Mask = torch.Tensor | dict[str, torch.Tensor] | None

MIN_CAPACITY = 256  # tokens per slot; grows by doubling like `kv_cache.GrowingLayer`


def sliding_window(config: PretrainedConfig) -> int | None:
    """The window of the LM's sliding-window layers (Gemma 3 interleaves them with full ones),
    or None when every layer attends to the whole context."""
    if "sliding_attention" in layer_types(config):
        return int(config.get_text_config(decoder=True).sliding_window)
    return None


def slot_cache_supports(config: PretrainedConfig) -> bool:
    """True when the slot cache can hold the LM: its layers attend to the whole context or to
    a sliding window of it (masked per row); other kinds (chunked, linear) it cannot."""
    return layer_types(config) <= {"full_attention", "sliding_attention"}


class SlotKVCache:
    """Per-layer padded K/V buffers shared by up to `max_slots` sequences (see module doc)."""

    def __init__(self, config: PretrainedConfig, max_slots: int) -> None:
        if not slot_cache_supports(config):
            raise ValueError("batched decoding supports layers with full or sliding-window "
                             "attention; this LM has others (decode it with the single-answer "
                             "Engine)")
        if max_slots < 1:
            raise ValueError(f"max_slots must be >= 1, got {max_slots}")
        self.n_layers = config.get_text_config(decoder=True).num_hidden_layers
        self.max_slots = max_slots
        self.window = sliding_window(config)
        self.lengths: list[int] = []  # cached tokens of each slot
        self.in_use: list[bool] = []
        self._k: list[torch.Tensor | None] = [None] * self.n_layers
        self._v: list[torch.Tensor | None] = [None] * self.n_layers

    # ---- slots ----------------------------------------------------------------------------
    def acquire(self) -> int:
        """The lowest free slot, emptied (lowest first keeps the decoded rows few)."""
        for i, used in enumerate(self.in_use):
            if not used:
                self.in_use[i], self.lengths[i] = True, 0
                return i
        if len(self.in_use) >= self.max_slots:
            raise RuntimeError(f"all {self.max_slots} slots are in use")
        self.in_use.append(True)
        self.lengths.append(0)
        return len(self.in_use) - 1

    def release(self, slot: int) -> None:
        assert self.in_use[slot], f"slot {slot} is not in use"
        self.in_use[slot], self.lengths[slot] = False, 0
        while self.in_use and not self.in_use[-1]:  # trailing free slots leave the rows
            self.in_use.pop()
            self.lengths.pop()

    @property
    def free(self) -> int:
        return self.max_slots - sum(self.in_use)

    def rows(self) -> int:
        """Rows a decode step runs: highest slot in use + 1."""
        return len(self.in_use)

    # ---- views given to the model ----------------------------------------------------------
    def view(self, slot: int) -> Cache:
        """A `transformers` cache over one slot: prefill at batch 1 appends to its columns."""
        assert self.in_use[slot], f"slot {slot} is not in use"
        return Cache(layers=[_SlotLayer(self, i, slot) for i in range(self.n_layers)])

    def step(self, advance: list[bool]) -> tuple[Cache, Mask, torch.Tensor]:
        """A cache over rows 0..len(advance)-1 for one new token per row, the attention mask
        of that step and the rows' write positions [rows]. Rows with `advance[i]` False are
        dummies: written past their length, not advanced.

        The mask is a 4-D boolean [rows, 1, 1, L] (None when every row has the same length, as
        SDPA then needs no mask); for an LM with sliding-window layers it is a mapping from
        layer type to mask, the sliding one also hiding what lies `window` or more positions
        behind each row's own (so a row sees what the single-answer cache would keep)."""
        rows = len(advance)
        assert rows == self.rows(), "a step covers every row in use"
        pos = torch.tensor(self.lengths, dtype=torch.long)
        kv_len = int(pos.max()) + 1
        cols = torch.arange(kv_len)[None, :]
        mask: Mask = None
        if self.window is not None:
            full = cols <= pos[:, None]
            near = full & (cols > pos[:, None] - self.window)
            mask = {"full_attention": full[:, None, None, :],
                    "sliding_attention": near[:, None, None, :]}
        elif int(pos.min()) + 1 != kv_len:
            mask = (cols <= pos[:, None])[:, None, None, :]
        view = Cache(layers=[_StepLayer(self, i, pos, kv_len, advance)
                             for i in range(self.n_layers)])
        return view, mask, pos

    # ---- storage -------------------------------------------------------------------------
    def buffers(self, layer: int, like: torch.Tensor, like_v: torch.Tensor, rows: int,
                tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer `layer`'s K and V buffers, grown (by doubling) to hold `rows` slots of
        `tokens` columns; `like`/`like_v` give heads, head size, dtype and device."""
        k = self._k[layer]
        if k is not None and k.shape[0] >= rows and k.shape[2] >= tokens:
            return k, self._v[layer]
        old_rows, old_cap = (0, 0) if k is None else (k.shape[0], k.shape[2])
        new_rows = min(self.max_slots, max(rows, 2 * old_rows, 1))
        cap = old_cap if old_cap >= tokens else max(MIN_CAPACITY, 2 * tokens)
        new_k = like.new_zeros((new_rows, like.shape[1], cap, like.shape[3]))
        new_v = like_v.new_zeros((new_rows, like_v.shape[1], cap, like_v.shape[3]))
        if k is not None:
            new_k[:old_rows, :, :old_cap].copy_(k)
            new_v[:old_rows, :, :old_cap].copy_(self._v[layer])
        self._k[layer], self._v[layer] = new_k, new_v
        return new_k, new_v

    def nbytes(self) -> int:
        """Bytes the buffers hold now."""
        return sum(t.numel() * t.element_size() for t in self._k + self._v if t is not None)


class _SlotLayer(CacheLayerMixin):
    """One layer of `SlotKVCache.view`: appends a chunk to one slot's columns."""

    is_sliding = False

    def __init__(self, pool: SlotKVCache, layer: int, slot: int) -> None:
        super().__init__()
        self.pool, self.layer, self.slot = pool, layer, slot
        self.is_initialized = True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        pass

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        pool, s = self.pool, self.slot
        start = pool.lengths[s]
        end = start + key_states.shape[-2]
        k, v = pool.buffers(self.layer, key_states, value_states, s + 1, end)
        k[s, :, start:end].copy_(key_states[0])
        v[s, :, start:end].copy_(value_states[0])
        if self.layer == pool.n_layers - 1:
            pool.lengths[s] = end
        return k[s:s + 1, :, :end], v[s:s + 1, :, :end]

    def get_seq_length(self) -> int:
        return self.pool.lengths[self.slot]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.get_seq_length() + query_length, 0

    def get_max_length(self) -> int:
        return -1


class _StepLayer(CacheLayerMixin):
    """One layer of `SlotKVCache.step`: writes one token per row at that row's length."""

    is_sliding = False

    def __init__(self, pool: SlotKVCache, layer: int, pos: torch.Tensor, kv_len: int,
                 advance: list[bool]) -> None:
        super().__init__()
        self.pool, self.layer, self.pos, self.kv_len, self.advance = pool, layer, pos, kv_len, advance
        self.is_initialized = True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        pass

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        rows = key_states.shape[0]
        assert key_states.shape[-2] == 1, "a decode step writes one token per row"
        k, v = self.pool.buffers(self.layer, key_states, value_states, rows, self.kv_len)
        pos = self.pos.to(k.device)
        idx = torch.arange(rows, device=k.device)
        k[idx, :, pos] = key_states[:, :, 0]
        v[idx, :, pos] = value_states[:, :, 0]
        if self.layer == self.pool.n_layers - 1:
            lengths = self.pool.lengths
            for r, go in enumerate(self.advance):
                lengths[r] += int(go)
        return k[:rows, :, :self.kv_len], v[:rows, :, :self.kv_len]

    def get_seq_length(self) -> int:
        return int(self.pos.max())

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.kv_len, 0

    def get_max_length(self) -> int:
        return -1
