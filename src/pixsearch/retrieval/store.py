"""Vector stores: the `VectorStore` protocol and the embedded FAISS default.

Vectors are L2-normalised, so inner product is cosine similarity. Each vector carries a string
key (a document id or an image id). `FaissStore` keeps an exact `IndexFlatIP` or an approximate
`IndexHNSWFlat` (inner-product metric) and persists to `<name>.faiss` + `<name>.keys.json`.

The keys file says which key each vector row is, so it must stay paired with its vectors: it
records a checksum of the vector file and the keys in their order, and `load` refuses a pair
that does not match (keys reordered or edited, a vector file from another build, different
counts) with a `StoreError` instead of answering with silently wrong hits. Stores written
before the checksum existed are still read (their counts are checked).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

StoreKind = Literal["flat", "hnsw"]


class StoreError(ValueError):
    """A vector store on disk whose parts do not hold together (see the module docstring)."""


def pairing_checksum(vector_file: Path, keys: Sequence[str]) -> str:
    """sha256 of a vector file's bytes and the keys in their order: what ties the two."""
    h = hashlib.sha256(Path(vector_file).read_bytes())
    h.update(json.dumps(list(keys)).encode())
    return h.hexdigest()


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
        if self.index.ntotal != len(self.keys):
            raise StoreError(f"the vector index holds {self.index.ntotal} vectors but there are "
                             f"{len(self.keys)} keys")
        if self.index.d != dim:
            raise StoreError(f"the vector index has dimension {self.index.d}, expected {dim}")

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
        path = directory / f"{name}.faiss"
        faiss.write_index(self.index, str(path))
        meta = {"dim": self.dim, "kind": self.kind, "keys": self.keys,
                "checksum": pairing_checksum(path, self.keys)}
        (directory / f"{name}.keys.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: Path, name: str, ef_search: int = 64) -> FaissStore:
        """Reopen a store written by `save`, checking that its keys and vectors still pair
        (`StoreError` says what does not; a missing file is a FileNotFoundError)."""
        faiss = _import_faiss()
        directory = Path(directory)
        path, keys_path = directory / f"{name}.faiss", directory / f"{name}.keys.json"
        for p in (path, keys_path):
            if not p.is_file():
                raise FileNotFoundError(f"no vector store file {p}")
        try:
            meta = json.loads(keys_path.read_text())
            keys, dim, kind = meta["keys"], int(meta["dim"]), meta["kind"]
        except (ValueError, KeyError, TypeError) as e:
            raise StoreError(f"{keys_path} is not a keys file ({type(e).__name__}: {e})") from e
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise StoreError(f"{keys_path}: 'keys' must be a list of strings")
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as e:  # FAISS reports an unreadable file this way
            raise StoreError(f"{path} is not a FAISS index: {str(e).splitlines()[0]}") from e
        try:
            store = cls(dim, kind, ef_search=ef_search, index=index, keys=keys)
        except ValueError as e:  # StoreError included: counts or dimension disagree
            raise StoreError(f"{path} and {keys_path.name} do not match: {e}") from None
        if "checksum" in meta and meta["checksum"] != pairing_checksum(path, keys):
            raise StoreError(f"{keys_path.name} does not match {path.name}: the keys were "
                             "reordered or edited, or one file comes from another build "
                             "(rebuild the index)")
        return store
