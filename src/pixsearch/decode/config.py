"""Inference-time controls of search-interleaved decoding (the paper's ablation knobs included)."""

from __future__ import annotations

from dataclasses import dataclass

from ..types import MODALITIES


@dataclass
class DecodeConfig:
    """How an answer is decoded.

    Attributes:
        max_new_tokens: generated tokens (evidence tokens are forced and not counted).
        max_searches: search budget B; None is unbounded, 0 forbids searching (the
            "no search" baseline). Once spent, `<search>` can no longer be generated.
        modalities: query types the model may use ("region", "image", "text"); a forbidden
            payload token is masked out of the logits (the paper's Table 6 ablation).
        top_k: number of hits retrieved per search.
        evidence_max_words: word budget of one `<information>` block.
        max_payload_tokens: a text query longer than this is closed by force.
        temperature: 0 is greedy decoding; > 0 samples.
        top_p: nucleus sampling threshold (only when sampling).
        sample_top_k: keep only the k most likely tokens before sampling (0 = all).
        seed: seed of the sampling generator (None = nondeterministic).
        region_components: "largest" keeps the largest connected component of a predicted
            region mask before cropping (SAM-style post-processing: a mask that spills onto a
            second object would give a crop spanning both); "all" keeps the mask as predicted.
    """

    max_new_tokens: int = 128
    max_searches: int | None = None
    modalities: tuple[str, ...] = MODALITIES
    top_k: int = 3
    evidence_max_words: int = 80
    max_payload_tokens: int = 24
    temperature: float = 0.0
    top_p: float = 1.0
    sample_top_k: int = 0
    seed: int | None = 0
    region_components: str = "largest"

    def __post_init__(self) -> None:
        bad = set(self.modalities) - set(MODALITIES)
        if bad:
            raise ValueError(f"unknown modalities {sorted(bad)}; choose from {MODALITIES}")
        if self.region_components not in ("largest", "all"):
            raise ValueError(f"region_components must be 'largest' or 'all', got "
                             f"{self.region_components!r}")
        if self.max_searches is not None and self.max_searches < 0:
            raise ValueError("max_searches must be >= 0 or None (unbounded)")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")
