"""Next-token selection: greedy, or temperature / top-k / top-p sampling with a seeded generator."""

from __future__ import annotations

import torch

from pixsearch.decode.config import DecodeConfig


class Sampler:
    """Picks the next token from logits, honouring banned ids and an optional allow-list."""

    def __init__(self, cfg: DecodeConfig) -> None:
        self.cfg = cfg
        self.generator: torch.Generator | None = None
        if cfg.temperature > 0:
            self.generator = torch.Generator()
            if cfg.seed is not None:
                self.generator.manual_seed(cfg.seed)
            else:
                self.generator.seed()

    def __call__(self, logits: torch.Tensor, banned: set[int] | None = None,
                 allowed: set[int] | None = None) -> int:
        logits = logits.detach().float().reshape(-1).cpu().clone()
        if allowed is not None:
            keep = torch.full_like(logits, float("-inf"))
            idx = sorted(allowed - (banned or set()))
            if not idx:
                raise ValueError("the decode constraints leave no token to choose")
            keep[idx] = logits[idx]
            logits = keep
        if banned:
            logits[sorted(banned)] = float("-inf")
        if self.cfg.temperature <= 0:
            return int(torch.argmax(logits))
        logits = logits / self.cfg.temperature
        if self.cfg.sample_top_k > 0:
            kth = torch.topk(logits, min(self.cfg.sample_top_k, logits.numel())).values[-1]
            logits[logits < kth] = float("-inf")
        probs = torch.softmax(logits, dim=-1)
        if self.cfg.top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            # keep the smallest prefix whose mass reaches top_p (the first token always stays)
            drop = torch.cumsum(sorted_p, 0) - sorted_p >= self.cfg.top_p
            sorted_p[drop] = 0.0
            probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
        return int(torch.multinomial(probs / probs.sum(), 1, generator=self.generator))
