"""Index versions whose vectors live in Milvus (`IndexConfig.vector_backend: milvus`).

Each published version owns one collection per modality, named after the build
(`<milvus_prefix>_<build id>_<modality>`), filled from the version's vector shards when it
is assembled: a version's collections are complete before the version is published, so the
atomic publish of `layout` covers them too, and a collection of a collected version is
dropped with it. The manifest records the URI and the collection names; the document store
and the shards stay in the index folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pixsearch.retrieval.config import IndexConfig
from pixsearch.retrieval.milvus_store import MilvusIndex, MilvusStore
from pixsearch.retrieval.shards import iter_vectors

LITE_FILE = "milvus.db"


def resolve_uri(uri: str, root: Path) -> str:
    """The configured URI, or the milvus-lite file of the index folder `root` when empty."""
    return uri or str(Path(root) / LITE_FILE)


def milvus_index(config: IndexConfig) -> MilvusIndex:
    return MilvusIndex("HNSW", {"M": config.hnsw_m, "efConstruction": config.hnsw_ef_construction},
                       {"ef": config.ef_search})


def collection_name(config: IndexConfig, build_id: str, modality: str) -> str:
    return f"{config.milvus_prefix}_{build_id[:16]}_{modality}"


def fill(config: IndexConfig, root: Path, build_id: str, modality: str, shards: Path,
         dim: int) -> tuple[MilvusStore, dict[str, Any]]:
    """A fresh collection holding every vector of the shard folder `shards` (one left by a
    killed run is dropped first); returns it and its manifest entry."""
    uri = resolve_uri(config.milvus_uri, root)
    name = collection_name(config, build_id, modality)
    store = MilvusStore(uri, name, dim, milvus_index(config))
    if len(store):
        store.drop()
        store = MilvusStore(uri, name, dim, milvus_index(config))
    for keys, vectors in iter_vectors([shards]):
        store.add(keys, vectors)
    store.save()
    return store, {"uri": config.milvus_uri, "collection": name}


def open_store(entry: dict[str, Any], root: Path, dim: int, config: IndexConfig) -> MilvusStore:
    """The collection a manifest entry names (ValueError if it is gone)."""
    uri = resolve_uri(entry["uri"], root)
    store = MilvusStore(uri, entry["collection"], dim, milvus_index(config), create=False)
    return store


def drop(manifest: dict[str, Any], root: Path) -> None:
    """Drop the collections of a version being deleted (missing ones are fine)."""
    for entry in (manifest.get("milvus") or {}).values():
        try:
            from pymilvus import MilvusClient

            client = MilvusClient(resolve_uri(entry["uri"], root))
            if client.has_collection(entry["collection"]):
                client.drop_collection(entry["collection"])
            client.close()
        except Exception:  # noqa: BLE001 - an unreachable server must not fail a publish
            pass
