"""Inference-time controls of search-interleaved decoding (the paper's ablation knobs included)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from pixsearch.abstention import AbstentionConfig
from pixsearch.retrieval.evidence import EvidenceConfig
from pixsearch.types import MODALITIES


@dataclass
class DecodeConfig:
    """How an answer is decoded.

    Attributes:
        max_new_tokens: generated tokens (evidence tokens are forced and not counted).
        max_searches: search budget B; None is unbounded, 0 forbids searching (the
            "no search" baseline). Once spent, `<search>` can no longer be generated.
        modalities: query types the model may use ("region", "image", "text"); a forbidden
            payload token is masked out of the logits (the paper's Table 6 ablation).
        top_k: number of hits retrieved per search; None = the model's own (the
            `EvidenceConfig` it was trained with, saved in its config).
        evidence_max_words: word budget of one `<information>` block; None = the model's own.
        max_payload_tokens: a text query longer than this is closed by force.
        temperature: 0 is greedy decoding; > 0 samples.
        top_p: nucleus sampling threshold (only when sampling).
        sample_top_k: keep only the k most likely tokens before sampling (0 = all).
        seed: seed of the sampling generator (None = nondeterministic).
        region_components: "largest" keeps the largest connected component of a predicted
            region mask before cropping (SAM-style post-processing: a mask that spills onto a
            second object would give a crop spanning both); "all" keeps the mask as predicted.
        abstain: apply the model's calibrated abstention policy (answer "I don't know" below
            its threshold); None = as the model's config says (on once it is calibrated).
        abstain_threshold: replace the model's calibrated threshold (None = the model's own).
        deadline_s: seconds the whole answer may take (CRAG-MM's 30 s per answer by default;
            None = no limit). Checked before every token and before each search; past it the
            answer stops and becomes "I don't know." (stop reason "deadline").
        first_token_s: seconds until the first generated token (CRAG-MM's 10 s; None = no
            limit); the prompt prefill and any forced searches count against it.
        search_timeout_s: seconds one search may take (None = no limit of its own); it is also
            cut to the time left before the deadline. A search that times out, raises, or
            returns no hits fails the answer: "I don't know.", with the reason in the trace.
    """

    max_new_tokens: int = 128
    max_searches: int | None = None
    modalities: tuple[str, ...] = MODALITIES
    top_k: int | None = None
    evidence_max_words: int | None = None
    max_payload_tokens: int = 24
    temperature: float = 0.0
    top_p: float = 1.0
    sample_top_k: int = 0
    seed: int | None = 0
    region_components: str = "largest"
    abstain: bool | None = None
    abstain_threshold: float | None = None
    deadline_s: float | None = 30.0
    first_token_s: float | None = 10.0
    search_timeout_s: float | None = 10.0

    def __post_init__(self) -> None:
        bad = set(self.modalities) - set(MODALITIES)
        if bad:
            raise ValueError(f"unknown modalities {sorted(bad)}; choose from {MODALITIES}")
        if self.region_components not in ("largest", "all"):
            raise ValueError(f"region_components must be 'largest' or 'all', got "
                             f"{self.region_components!r}")
        if self.max_new_tokens < 1 or self.max_payload_tokens < 1 or self.sample_top_k < 0:
            raise ValueError("max_new_tokens and max_payload_tokens must be >= 1 and "
                             "sample_top_k >= 0")
        if self.max_searches is not None and self.max_searches < 0:
            raise ValueError("max_searches must be >= 0 or None (unbounded)")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")
        if any(v is not None and v < 1 for v in (self.top_k, self.evidence_max_words)):
            raise ValueError("top_k and evidence_max_words must be >= 1 or None (the model's)")
        if self.abstain_threshold is not None and not 0 <= self.abstain_threshold <= 1:
            raise ValueError("abstain_threshold must be in [0, 1] or None (the model's)")
        for name in ("deadline_s", "first_token_s", "search_timeout_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 seconds or None (no limit), got {value}")

    def evidence(self, model: EvidenceConfig) -> EvidenceConfig:
        """The evidence budget to decode with: `model`'s (the one it was trained with), with
        `top_k` / `evidence_max_words` replacing its fields where they are set."""
        return replace(model, top_k=model.top_k if self.top_k is None else self.top_k,
                       max_words=model.max_words if self.evidence_max_words is None
                       else self.evidence_max_words)

    def abstention(self, model: AbstentionConfig) -> AbstentionConfig:
        """The abstention policy to decode with: `model`'s calibrated one, switched on or off by
        `abstain` and with `abstain_threshold` replacing its threshold where they are set."""
        if self.abstain and not model.weights:
            raise ValueError("abstain=True needs a calibrated model: run `pixsearch eval "
                             "calibrate --run VAL_RUN --model DIR` on a validation run first")
        return replace(model,
                       enabled=model.enabled if self.abstain is None else self.abstain,
                       threshold=(model.threshold if self.abstain_threshold is None
                                  else self.abstain_threshold))
