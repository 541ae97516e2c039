"""Vector stores: the `VectorStore` protocol and the embedded FAISS default.

Vectors are L2-normalised, so inner product is cosine similarity. Each vector carries a string
key (a document id or an image id). `FaissStore` keeps an exact `IndexFlatIP` or an approximate
`IndexHNSWFlat` (inner-product metric) and persists to `<name>.faiss` + `<name>.keys.json`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

StoreKind = Literal["flat", "hnsw"]


@runtime_checkable
class VectorStore(Protocol):
    """Keyed vectors with top-k inner-product search."""

    dim: int

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Append vectors [N, dim] under `keys`."""
        ...

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """Top-k (key, score) per query row, best first."""
        ...

    def __len__(self) -> int: ...

    def save(self, directory: Path, name: str) -> None:
        """Persist under `directory` with file stem `name`."""
        ...


def _import_faiss():
    try:
        import faiss
    except ImportError as e:
        raise ImportError("vector search needs faiss: pip install 'pixsearch[retrieval]'") from e
    return faiss


class FaissStore:
    """FAISS inner-product index (exact or HNSW) with string keys."""

    def __init__(self, dim: int, kind: StoreKind = "flat", hnsw_m: int = 32,
                 ef_search: int = 64, index=None, keys: list[str] | None = None) -> None:
        faiss = _import_faiss()
        if kind not in ("flat", "hnsw"):
            raise ValueError(f"unknown FAISS index kind {kind!r}; use 'flat' or 'hnsw'")
        self.dim, self.kind = dim, kind
        if index is None:
            index = (faiss.IndexFlatIP(dim) if kind == "flat"
                     else faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT))
        if kind == "hnsw":
            index.hnsw.efSearch = ef_search
        self.index = index
        self.keys: list[str] = list(keys or [])
        assert self.index.ntotal == len(self.keys), "FAISS index and key list out of sync"

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors [N, {self.dim}], got {vectors.shape}")
        if len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
        self.index.add(vectors)
        self.keys.extend(keys)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if len(self.keys) == 0:
            return [[] for _ in queries]
        scores, ids = self.index.search(queries, min(k, len(self.keys)))
        return [[(self.keys[i], float(s)) for s, i in zip(row_s, row_i) if i >= 0]
                for row_s, row_i in zip(scores, ids)]

    def __len__(self) -> int:
        return len(self.keys)

    def save(self, directory: Path, name: str) -> None:
        faiss = _import_faiss()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(directory / f"{name}.faiss"))
        meta = {"dim": self.dim, "kind": self.kind, "keys": self.keys}
        (directory / f"{name}.keys.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: Path, name: str, ef_search: int = 64) -> FaissStore:
        """Reopen a store written by `save`."""
        faiss = _import_faiss()
        directory = Path(directory)
        path = directory / f"{name}.faiss"
        if not path.is_file():
            raise FileNotFoundError(f"no vector index {path}")
        meta = json.loads((directory / f"{name}.keys.json").read_text())
        return cls(meta["dim"], meta["kind"], ef_search=ef_search,
                   index=faiss.read_index(str(path)), keys=meta["keys"])
