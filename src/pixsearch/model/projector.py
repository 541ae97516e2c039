"""The vision → language projector of native backbones (LLaVA-1.5's MLP projector).

Hub backbones bring their own projector (LLaVA's `multi_modal_projector`, Qwen2.5-VL's patch
merger); this one maps native vision tokens (patch encoder or DINOv2-S) to the LM's width.
"""

from __future__ import annotations

import torch
from torch import nn

from pixsearch.model.config import ProjectorConfig


class Projector(nn.Module):
    """MLP of `cfg.depth` linear layers with GELU between them: [B, N, d_in] → [B, N, d_lm]."""

    def __init__(self, d_in: int, d_out: int, cfg: ProjectorConfig) -> None:
        super().__init__()
        if cfg.depth < 1:
            raise ValueError(f"projector depth must be ≥ 1, got {cfg.depth}")
        layers: list[nn.Module] = [nn.Linear(d_in, d_out)]
        for _ in range(cfg.depth - 1):
            layers += [nn.GELU(), nn.Linear(d_out, d_out)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(self.net[0].weight.dtype))
