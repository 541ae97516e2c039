"""The BIO span tagger: which words of the answer so far name the entity a `<region>` is about.

A small bidirectional transformer encoder reads the LM's final hidden states of the assistant
tokens and tags each token O / B / I (the renderer's `span_labels`). When the model writes
`<search><region>`, the last tagged span before `<search>` is the entity being talked about;
its hidden states are mean-pooled into the span embedding that g(·) turns into mask queries.
If the tagger marks nothing, the last few text tokens before `<search>` stand in for it.
"""

from __future__ import annotations

import torch
from torch import nn

from pixsearch.model.config import SpanTaggerConfig
from pixsearch.render import BIO_B, BIO_I, BIO_O

NUM_TAGS = 3
assert (BIO_O, BIO_B, BIO_I) == (0, 1, 2)


class SpanTagger(nn.Module):
    """Bidirectional encoder over LM hidden states → BIO logits [B, L, 3]."""

    def __init__(self, d_lm: int, cfg: SpanTaggerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.inp = nn.Linear(d_lm, cfg.dim)
        layer = nn.TransformerEncoderLayer(cfg.dim, cfg.heads, dim_feedforward=2 * cfg.dim,
                                           dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.out = nn.Linear(cfg.dim, NUM_TAGS)

    def forward(self, hidden: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        """`hidden` [B, L, d_lm]; `pad` [B, L] True at padding. Returns logits [B, L, 3]."""
        x = self.inp(hidden.to(self.inp.weight.dtype))
        return self.out(self.encoder(x, src_key_padding_mask=pad))


def spans_from_tags(tags: list[int]) -> list[tuple[int, int]]:
    """Half-open [start, end) spans of a BIO sequence; a stray I opens a span too."""
    spans: list[tuple[int, int]] = []
    start = None
    for i, t in enumerate(tags):
        if t == BIO_B or (t == BIO_I and start is None):
            if start is not None:
                spans.append((start, i))
            start = i
        elif t == BIO_O and start is not None:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(tags)))
    return spans


def select_span(tags: list[int], end: int, fallback: int) -> tuple[int, int]:
    """The last span that ends at or before `end` (the `<search>` position, exclusive), else
    the `fallback` tokens right before `end`."""
    spans = [s for s in spans_from_tags(tags[:end]) if s[1] <= end]
    if spans:
        return spans[-1]
    assert end > 0, "a region search needs at least one token before <search>"
    return max(0, end - fallback), end


def pool_span(hidden: torch.Tensor, span: tuple[int, int]) -> torch.Tensor:
    """Mean of hidden [L, d] over span [start, end) → [d]."""
    a, b = span
    assert 0 <= a < b <= hidden.shape[0], (span, hidden.shape)
    return hidden[a:b].mean(dim=0)
