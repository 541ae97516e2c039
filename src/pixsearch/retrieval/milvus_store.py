"""Vector search past one machine: a `VectorStore` on Milvus (optional `milvus` extra).

`pymilvus.MilvusClient` speaks the same API to a Milvus server or cluster
(`http://host:19530`; `LocalMilvusServer` starts a standalone one here) and to the embedded
`milvus-lite` (a local `*.db` file), so this one class is the client of both; the tests run
it against a real server (start, build, search, restart, search, stop) and against lite.

A collection holds one row per key: the key is the primary field (VARCHAR), so `remove`
deletes by key and adding a key again replaces nothing silently (use `remove` first).
Searches use bounded consistency (milliseconds; strong consistency waits for the server's
time tick, ~200 ms a query), except the first search after this store's own writes, which
is strong so that it sees them; counts and the lookups of `remove` are strong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

INSTALL_HINT = "pip install 'pixsearch[milvus]'"
MAX_KEY = 512  # longest key (document or image id) a collection stores
INSERT_BATCH = 2000  # rows per insert call (stays under gRPC's message size at 768-d)


@dataclass
class MilvusIndex:
    """The Milvus vector index of a collection and its search breadth.

    Attributes:
        index_type: "HNSW", "IVF_FLAT", "FLAT" or "AUTOINDEX" (the server's choice).
        params: build parameters (HNSW: M, efConstruction; IVF_FLAT: nlist).
        search: search parameters (HNSW: ef; IVF_FLAT: nprobe).
        consistency: the consistency level of searches ("Bounded", "Strong", "Session",
            "Eventually").
    """

    index_type: str = "HNSW"
    params: dict[str, Any] = field(default_factory=lambda: {"M": 32, "efConstruction": 40})
    search: dict[str, Any] = field(default_factory=lambda: {"ef": 256})
    consistency: str = "Bounded"


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
        collection: collection name (created with `dim` and `index` if it does not exist).
        dim: vector size.
        index: the vector index of a new collection, and the search breadth.
        create: create a missing collection (else ValueError).
    """

    def __init__(self, uri: str | Path, collection: str, dim: int,
                 index: MilvusIndex | None = None, create: bool = True) -> None:
        self.uri, self.collection, self.dim = str(uri), collection, dim
        self.index = index or MilvusIndex()
        self.client = _client(self.uri)
        self._written = False  # the next search must see this store's writes
        if not self.client.has_collection(collection):
            if not create:
                self.client.close()
                raise ValueError(f"Milvus collection {collection!r} is missing from {self.uri}")
            self._create()
        else:
            have = self._dim_of_collection()
            if have != dim:
                raise ValueError(f"Milvus collection {collection!r} at {self.uri} holds "
                                 f"{have}-d vectors, not {dim}-d")
            self.client.load_collection(collection)  # a restarted server loads on demand

    def _create(self) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=MAX_KEY)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        params = self.client.prepare_index_params()
        params.add_index(field_name="vector", index_type=self.index.index_type,
                         metric_type="IP", params=dict(self.index.params))
        self.client.create_collection(self.collection, schema=schema, index_params=params,
                                      consistency_level=self.index.consistency)

    def _dim_of_collection(self) -> int:
        info = self.client.describe_collection(self.collection)
        for f in info["fields"]:
            if f["name"] == "vector":
                return int(f["params"]["dim"])
        raise ValueError(f"Milvus collection {self.collection!r} has no 'vector' field")

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors [N, {self.dim}], got {vectors.shape}")
        if len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
        too_long = [k for k in keys if len(k.encode("utf-8")) > MAX_KEY]
        if too_long:
            raise ValueError(f"key {too_long[0][:40]!r}… is longer than {MAX_KEY} bytes")
        for i in range(0, len(keys), INSERT_BATCH):
            rows = [{"key": k, "vector": v} for k, v in
                    zip(keys[i : i + INSERT_BATCH], vectors[i : i + INSERT_BATCH].tolist())]
            self.client.insert(collection_name=self.collection, data=rows)
        self._written = True

    def remove(self, keys: Sequence[str]) -> int:
        """Delete the rows of `keys`; returns how many of them the collection held."""
        keys = list(dict.fromkeys(keys))
        if not keys:
            return 0
        held = self.client.query(self.collection, ids=keys, output_fields=["key"],
                                 consistency_level="Strong")
        if held:
            self.client.delete(self.collection, ids=[r["key"] for r in held])
            self._written = True
        return len(held)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        if k <= 0:
            return [[] for _ in queries]
        res = self.client.search(
            collection_name=self.collection, data=queries.tolist(), limit=k,
            output_fields=["key"],
            consistency_level="Strong" if self._written else self.index.consistency,
            search_params={"metric_type": "IP", "params": dict(self.index.search)})
        self._written = False
        return [[(hit["entity"].get("key", hit.get("id")), float(hit["distance"]))
                 for hit in row] for row in res]

    def __len__(self) -> int:
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"],
                                 consistency_level="Strong")
        return int(rows[0]["count(*)"])

    def save(self, directory: Path | None = None, name: str | None = None) -> None:
        """Milvus persists on insert; flushing seals the rows into durable segments."""
        self.client.flush(self.collection)

    def drop(self) -> None:
        """Delete the collection and its data."""
        self.client.drop_collection(self.collection)

    def close(self) -> None:
        self.client.close()
