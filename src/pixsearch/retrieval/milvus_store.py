"""Vector search past one machine: a `VectorStore` on Milvus (optional `distributed` extra).

`pymilvus.MilvusClient` speaks the same API to a Milvus cluster (`http://host:19530`) and to
the embedded `milvus-lite` (a local `*.db` file URI), so the store is tested here on milvus-lite
and runs unchanged against a cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

INSTALL_HINT = "pip install 'pixsearch[milvus]'"


def _client(uri: str):
    try:
        from pymilvus import MilvusClient
    except ImportError as e:
        raise ImportError(f"the Milvus vector store needs pymilvus (+ milvus-lite for local "
                          f"files): {INSTALL_HINT}") from e
    return MilvusClient(uri)


class MilvusStore:
    """Keyed vectors in a Milvus collection, inner-product metric (vectors are normalised).

    Args:
        uri: a Milvus server URL or a local milvus-lite file path ending in `.db`.
        collection: collection name (created with `dim` if it does not exist).
        dim: vector size.
    """

    def __init__(self, uri: str | Path, collection: str, dim: int) -> None:
        self.uri, self.collection, self.dim = str(uri), collection, dim
        self.client = _client(self.uri)
        if not self.client.has_collection(collection):
            self.client.create_collection(
                collection_name=collection, dimension=dim, primary_field_name="pk",
                id_type="int", vector_field_name="vector", metric_type="IP", auto_id=False,
            )
        self._next = len(self)

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors [N, {self.dim}], got {vectors.shape}")
        if len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
        rows = [{"pk": self._next + i, "vector": v.tolist(), "key": key}
                for i, (key, v) in enumerate(zip(keys, vectors))]
        self.client.insert(collection_name=self.collection, data=rows)
        self._next += len(rows)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        res = self.client.search(collection_name=self.collection, data=queries.tolist(),
                                 limit=k, output_fields=["key"],
                                 search_params={"metric_type": "IP"})
        return [[(hit["entity"]["key"], float(hit["distance"])) for hit in row] for row in res]

    def __len__(self) -> int:
        stats = self.client.get_collection_stats(self.collection)
        return int(stats.get("row_count", 0))

    def save(self, directory: Path, name: str) -> None:
        """Milvus persists on insert; flushing makes the rows durable."""
        self.client.flush(self.collection)

    def close(self) -> None:
        self.client.close()
