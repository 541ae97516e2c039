"""The vector index kinds (exact, HNSW, IVF-PQ) on clustered vectors: recall against exact
search, tombstones filtered by every kind, save/reopen, and "auto" picking by size."""

from __future__ import annotations

import numpy as np
import pytest

from pixsearch.retrieval.config import IndexConfig
from pixsearch.retrieval.embedders import normalize
from pixsearch.retrieval.store import FaissStore
from pixsearch.retrieval.vector_index import resolve_kind

DIM = 32


def clustered(n: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 40 centres (structure like real embeddings, not uniform noise)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, DIM))
    return normalize(centres[rng.integers(0, 40, n)] + 0.35 * rng.normal(size=(n, DIM)))


def _store(kind: str, vectors: np.ndarray) -> FaissStore:
    cfg = IndexConfig(store=kind, ivf_nlist=32, ivf_nprobe=8, pq_bytes=8, hnsw_m=16)
    store = FaissStore.create(DIM, len(vectors), cfg)
    if store.needs_training:
        store.train(vectors)
    store.add([f"k{i}" for i in range(len(vectors))], vectors)
    return store


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_recall_tombstones_and_reopen(kind, tmp_path):
    vectors, queries = clustered(3000), clustered(50, seed=1)
    exact = _store("flat", vectors).search(queries, 10)
    store = _store(kind, vectors)
    assert store.kind == kind
    got = store.search(queries, 10)
    recall = np.mean([len({k for k, _ in a} & {k for k, _ in b}) / 10
                      for a, b in zip(got, exact)])
    assert recall >= (1.0 if kind == "flat" else 0.8), recall

    gone = [k for k, _ in exact[0][:5]]  # the best hits of query 0
    assert store.remove(gone + ["never-there"]) == 5
    assert len(store) == 2995
    after = store.search(queries[:1], 10)[0]
    assert len(after) == 10 and not set(gone) & {k for k, _ in after}

    store.save(tmp_path, "vec")
    again = FaissStore.load(tmp_path, "vec")
    assert again.kind == kind and again.deleted == store.deleted
    assert again.search(queries, 10) == store.search(queries, 10)


def test_auto_picks_by_size():
    cfg = IndexConfig(auto_hnsw_from=1000, auto_memory_gb=1.0)
    assert resolve_kind("auto", 999, 384, cfg) == "flat"
    assert resolve_kind("auto", 1000, 384, cfg) == "hnsw"
    assert resolve_kind("auto", 1_000_000, 384, cfg) == "ivfpq"  # 1.4 GiB of raw vectors
    assert resolve_kind("hnsw", 10, 384, cfg) == "hnsw"
    with pytest.raises(ValueError, match="at least 1000 vectors"):
        FaissStore.create(DIM, 500, IndexConfig(store="ivfpq"))


def test_a_built_index_records_its_kind(tmp_path):
    from index_kb import BUILD, CFG, write_kb

    from pixsearch.retrieval.builder import IndexBuilder
    from pixsearch.retrieval.index import KnowledgeIndex

    kb = write_kb(tmp_path / "kb", range(12), range(4))
    cfg = IndexConfig(**{**CFG.__dict__, "auto_hnsw_from": 8})  # 12 docs: HNSW, 4 images: flat
    report = IndexBuilder(tmp_path / "idx", cfg, BUILD).build(*kb)
    assert report.stores == {"text": "hnsw", "image": "flat"}
    index = KnowledgeIndex.open(tmp_path / "idx")
    assert index.text_store.kind == "hnsw" and index.image_store.kind == "flat"
    assert index.search("Alpha rivers 7", 1)
