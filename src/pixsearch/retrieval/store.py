"""Vector stores: the `VectorStore` protocol and the embedded FAISS default.

Vectors are L2-normalised, so inner product is cosine similarity. Each vector carries a string
key (a document id or an image id). `FaissStore` keeps one FAISS index of a kind chosen by
size (`vector_index`: exact, HNSW or IVF-PQ) and persists to `<name>.faiss` +
`<name>.keys.json`. Removing keys marks their rows as tombstones that searches skip; the
index is rebuilt from the raw vectors when tombstones pile up (`KnowledgeIndex` updates).

The keys file says which key each vector row is, so it must stay paired with its vectors: it
records a checksum of the vector file and the keys in their order, and `load` refuses a pair
that does not match (keys reordered or edited, a vector file from another build, different
counts) with a `StoreError` instead of answering with silently wrong hits. Stores written
before the checksum existed are still read (their counts are checked).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from pixsearch.retrieval.config import IndexConfig, StoreKind
from pixsearch.retrieval.vector_index import (
    KINDS,
    SearchKnobs,
    import_faiss,
    kind_of,
    make_index,
    resolve_kind,
    search_params,
)

__all__ = ["FaissStore", "StoreError", "StoreKind", "VectorStore", "pairing_checksum"]


class StoreError(ValueError):
    """A vector store on disk whose parts do not hold together (see the module docstring)."""


def pairing_checksum(vector_file: Path, keys: Sequence[str]) -> str:
    """sha256 of a vector file's bytes and the keys in their order: what ties the two."""
    h = hashlib.sha256()
    with open(vector_file, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    h.update(json.dumps(list(keys)).encode())
    return h.hexdigest()


@runtime_checkable
class VectorStore(Protocol):
    """Keyed vectors with top-k inner-product search."""

    dim: int

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Append vectors [N, dim] under `keys`."""
        ...

    def remove(self, keys: Sequence[str]) -> int:
        """Drop the vectors of `keys` (unknown keys are ignored); returns how many went."""
        ...

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """Top-k (key, score) per query row, best first."""
        ...

    def __len__(self) -> int: ...

    def save(self, directory: Path, name: str) -> None:
        """Persist under `directory` with file stem `name`."""
        ...


class FaissStore:
    """A FAISS inner-product index (flat, HNSW or IVF-PQ) with string keys and tombstones.

    Args:
        dim: vector size.
        kind: "flat" or "hnsw" for a new empty index (IVF-PQ must be trained: `create`).
        index: an existing FAISS index (its kind is read from it).
        keys: the key of each row of `index`.
        deleted: rows removed since the index was built (skipped by searches).
        knobs: search breadth of the approximate kinds.
    """

    def __init__(self, dim: int, kind: StoreKind = "flat", hnsw_m: int = 32,
                 ef_search: int = 64, index=None, keys: list[str] | None = None,
                 deleted: Sequence[int] = (), knobs: SearchKnobs | None = None) -> None:
        if index is None:
            if kind not in ("flat", "hnsw"):
                raise ValueError(f"unknown FAISS index kind {kind!r} for an empty store; use "
                                 "'flat' or 'hnsw' (IVF-PQ needs training: FaissStore.create)")
            index = make_index(dim, kind, 0, IndexConfig(hnsw_m=hnsw_m))
        self.dim, self.index = dim, index
        self.kind = kind_of(index)
        self.knobs = knobs or SearchKnobs(ef_search=ef_search)
        self.keys: list[str] = list(keys or [])
        self.deleted: set[int] = set(int(i) for i in deleted)
        self._rows: dict[str, int] | None = None
        if self.index.ntotal != len(self.keys):
            raise StoreError(f"the vector index holds {self.index.ntotal} vectors but there are "
                             f"{len(self.keys)} keys")
        if self.index.d != dim:
            raise StoreError(f"the vector index has dimension {self.index.d}, expected {dim}")
        if any(not 0 <= i < len(self.keys) for i in self.deleted):
            raise StoreError("a removed row lies outside the index")

    @classmethod
    def create(cls, dim: int, n: int, cfg: IndexConfig) -> FaissStore:
        """An empty store of the kind `cfg.store` gives `n` vectors (train it if
        `needs_training`)."""
        kind = resolve_kind(cfg.store, n, dim, cfg)
        return cls(dim, index=make_index(dim, kind, n, cfg), knobs=SearchKnobs.of(cfg))

    @property
    def needs_training(self) -> bool:
        return not self.index.is_trained

    def train(self, vectors: np.ndarray) -> None:
        """Train the codebooks of an IVF-PQ index on a sample of the vectors."""
        self.index.train(np.ascontiguousarray(vectors, dtype=np.float32))

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors [N, {self.dim}], got {vectors.shape}")
        if len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
        if len(keys) == 0:
            return
        self.index.add(vectors)
        if self._rows is not None:
            self._rows.update((k, len(self.keys) + i) for i, k in enumerate(keys))
        self.keys.extend(keys)

    def remove(self, keys: Sequence[str]) -> int:
        if self._rows is None:
            self._rows = {k: i for i, k in enumerate(self.keys) if i not in self.deleted}
        gone = [self._rows.pop(k) for k in keys if k in self._rows]
        self.deleted.update(gone)
        return len(gone)

    def live_keys(self) -> Iterator[str]:
        """The keys of the rows not removed, in row order."""
        return (k for i, k in enumerate(self.keys) if i not in self.deleted)

    @property
    def deleted_fraction(self) -> float:
        return len(self.deleted) / max(len(self.keys), 1)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(k, len(self))
        if k <= 0:
            return [[] for _ in queries]
        exclude = np.fromiter(self.deleted, np.int64) if self.deleted else None
        params = search_params(self.index, self.knobs, exclude)
        scores, ids = self.index.search(queries, k, params=params)
        return [[(self.keys[i], float(s)) for s, i in zip(row_s, row_i) if i >= 0]
                for row_s, row_i in zip(scores, ids)]

    def __len__(self) -> int:
        return len(self.keys) - len(self.deleted)

    def save(self, directory: Path, name: str) -> None:
        faiss = import_faiss()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.faiss"
        faiss.write_index(self.index, str(path))
        meta = {"dim": self.dim, "kind": self.kind, "keys": self.keys,
                "deleted": sorted(self.deleted), "search": asdict(self.knobs),
                "checksum": pairing_checksum(path, self.keys)}
        (directory / f"{name}.keys.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: Path, name: str, ef_search: int = 64,
             knobs: SearchKnobs | None = None) -> FaissStore:
        """Reopen a store written by `save`, checking that its keys and vectors still pair
        (`StoreError` says what does not; a missing file is a FileNotFoundError). `knobs`
        replace the search breadth saved with it."""
        faiss = import_faiss()
        directory = Path(directory)
        path, keys_path = directory / f"{name}.faiss", directory / f"{name}.keys.json"
        for p in (path, keys_path):
            if not p.is_file():
                raise FileNotFoundError(f"no vector store file {p}")
        try:
            meta = json.loads(keys_path.read_text())
            keys, dim, kind = meta["keys"], int(meta["dim"]), meta["kind"]
            deleted = [int(i) for i in meta.get("deleted", [])]
            saved = SearchKnobs(**meta["search"]) if "search" in meta else None
        except (ValueError, KeyError, TypeError) as e:
            raise StoreError(f"{keys_path} is not a keys file ({type(e).__name__}: {e})") from e
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise StoreError(f"{keys_path}: 'keys' must be a list of strings")
        if kind not in KINDS:
            raise StoreError(f"{keys_path}: unknown index kind {kind!r}")
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as e:  # FAISS reports an unreadable file this way
            raise StoreError(f"{path} is not a FAISS index: {str(e).splitlines()[0]}") from e
        try:
            store = cls(dim, index=index, keys=keys, deleted=deleted,
                        knobs=knobs or saved or SearchKnobs(ef_search=ef_search))
        except ValueError as e:  # StoreError included: counts or dimension disagree
            raise StoreError(f"{path} and {keys_path.name} do not match: {e}") from None
        if "checksum" in meta and meta["checksum"] != pairing_checksum(path, keys):
            raise StoreError(f"{keys_path.name} does not match {path.name}: the keys were "
                             "reordered or edited, or one file comes from another build "
                             "(rebuild the index)")
        return store
