"""g(·): the projection from a span embedding to the mask decoder's query (prompt) tokens.

In LISA/PLUM the `[SEG]`/span hidden state is mapped by an MLP into SAM's prompt space; here a
span embedding [d_lm] becomes `num_queries` sparse prompt tokens [num_queries, d_mask] that the
two-way transformer of the mask decoder attends with, in place of SAM's point/box prompts.
"""

from __future__ import annotations

import torch
from torch import nn


class SpanToQueries(nn.Module):
    """MLP d_lm → d_lm → num_queries · d_mask, reshaped to [B, num_queries, d_mask]."""

    def __init__(self, d_lm: int, d_mask: int, num_queries: int) -> None:
        super().__init__()
        self.num_queries, self.d_mask = num_queries, d_mask
        self.net = nn.Sequential(nn.Linear(d_lm, d_lm), nn.GELU(),
                                 nn.Linear(d_lm, num_queries * d_mask))

    def forward(self, span_embeddings: torch.Tensor) -> torch.Tensor:
        """[B, d_lm] → [B, num_queries, d_mask]."""
        x = self.net(span_embeddings.to(self.net[0].weight.dtype))
        return x.view(-1, self.num_queries, self.d_mask)
