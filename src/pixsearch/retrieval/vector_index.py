"""FAISS index kinds: which one a corpus gets, how it is made and trained, how it is searched.

Three kinds, all over inner product (vectors are L2-normalised, so it is cosine similarity),
compared in `pixsearch.retrieval.config` and measured by `benchmarks/ann_bench.py`:

    flat    IndexFlatIP                      exact
    hnsw    IndexHNSWFlat (M = hnsw_m)       graph search, no training
    ivfpq   IVF{nlist},PQ{m} + re-ranking    trained on a sample, compressed

"auto" resolves to one of them from the number of vectors (`resolve_kind`). Removed vectors
stay in an index as tombstones until it is rebuilt; every kind filters them while it
searches (a FAISS `IDSelector` in the search parameters), so k live hits come back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pixsearch.retrieval.config import IndexConfig

KINDS = ("flat", "hnsw", "ivfpq")
MIN_IVF_VECTORS = 1000  # below this an IVF-PQ index cannot train its codebooks


def import_faiss():
    try:
        import faiss
    except ImportError as e:
        raise ImportError("vector search needs faiss: pip install 'pixsearch[retrieval]'") from e
    return faiss


@dataclass
class SearchKnobs:
    """Search-time breadth of the approximate kinds (saved with the index, overridable).

    Attributes:
        ef_search: HNSW candidate list size.
        nprobe: IVF lists visited.
        k_factor: IVF-PQ candidates re-ranked per requested hit.
    """

    ef_search: int = 256
    nprobe: int = 128
    k_factor: int = 8

    @classmethod
    def of(cls, cfg: IndexConfig) -> SearchKnobs:
        return cls(cfg.ef_search, cfg.ivf_nprobe, cfg.refine_k_factor)


def resolve_kind(kind: str, n: int, dim: int, cfg: IndexConfig) -> str:
    """The concrete kind for `n` vectors of size `dim` ("auto": module docstring)."""
    if kind != "auto":
        if kind not in KINDS:
            raise ValueError(f"unknown vector index {kind!r}; use auto, {', '.join(KINDS)}")
        return kind
    if n < cfg.auto_hnsw_from:
        return "flat"
    if n * dim * 4 > cfg.auto_memory_gb * 2**30 and n >= MIN_IVF_VECTORS:
        return "ivfpq"
    return "hnsw"


def ivf_lists(n: int, cfg: IndexConfig) -> int:
    """IVF list count: the configured one, else ~4·sqrt(n); at most n/39 (k-means needs
    about 39 training points a centroid)."""
    want = cfg.ivf_nlist or int(4 * math.sqrt(max(n, 1)))
    return max(1, min(want, n // 39))


def pq_bytes(dim: int, cfg: IndexConfig) -> int:
    m = cfg.pq_bytes or max(1, dim // 8)
    if dim % m:
        raise ValueError(f"pq_bytes={m} must divide the vector size {dim}")
    return m


def factory_string(dim: int, kind: str, n: int, cfg: IndexConfig) -> str:
    """The `faiss.index_factory` description of a kind for `n` vectors."""
    if kind == "flat":
        return "Flat"
    if kind == "hnsw":
        return f"HNSW{cfg.hnsw_m},Flat"
    if n < MIN_IVF_VECTORS:
        raise ValueError(f"an IVF-PQ index needs at least {MIN_IVF_VECTORS} vectors to train, "
                         f"got {n}; use store=flat or store=auto")
    refine = {"sq8": ",Refine(SQ8)", "flat": ",RFlat", "none": ""}[cfg.pq_refine]
    # "np": no polysemous training (minutes at scale, for a Hamming pre-filter not used here)
    return f"IVF{ivf_lists(n, cfg)},PQ{pq_bytes(dim, cfg)}np{refine}"


def make_index(dim: int, kind: str, n: int, cfg: IndexConfig):
    """An empty FAISS index of `kind` sized for `n` vectors (IVF-PQ still to be trained)."""
    faiss = import_faiss()
    index = faiss.index_factory(dim, factory_string(dim, kind, n, cfg),
                                faiss.METRIC_INNER_PRODUCT)
    if kind == "hnsw":
        index.hnsw.efConstruction = cfg.hnsw_ef_construction
    return index


def kind_of(index) -> str:
    """The kind of a FAISS index read from disk."""
    faiss = import_faiss()
    if isinstance(index, faiss.IndexHNSW):
        return "hnsw"
    if faiss.try_extract_index_ivf(index) is not None:
        return "ivfpq"
    return "flat"


def search_params(index, knobs: SearchKnobs, exclude: np.ndarray | None):
    """FAISS search parameters for `index`: its breadth knobs, and a filter dropping the
    ids in `exclude` (tombstones); None when plain search does."""
    faiss = import_faiss()
    # keyword constructors: FAISS's wrappers then keep the selector alive with the params
    sel = {}
    if exclude is not None and len(exclude):
        sel = {"sel": faiss.IDSelectorNot(faiss.IDSelectorBatch(np.asarray(exclude, np.int64)))}
    if isinstance(index, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(efSearch=knobs.ef_search, **sel)
    if isinstance(index, faiss.IndexRefine):
        base = faiss.SearchParametersIVF(nprobe=knobs.nprobe, **sel)
        return faiss.IndexRefineSearchParameters(k_factor=knobs.k_factor,
                                                 base_index_params=base)
    if faiss.try_extract_index_ivf(index) is not None:
        return faiss.SearchParametersIVF(nprobe=knobs.nprobe, **sel)
    return faiss.SearchParameters(**sel) if sel else None
