"""Assemble a new index version from checkpointed shards (and the version it updates).

`assemble` writes `versions/.tmp-vN/` — document store, vector shards (linked, not copied),
one FAISS index per modality, the image embedder, the manifest — flushes it to disk and
renames it to `versions/vN`: a version folder exists only once it is complete. It is
idempotent: a build killed while assembling assembles again from the same shards.

An update starts from its base version: the document store is copied and changed, the base's
vector shards are linked, and each FAISS index is extended (`add`), marked (`remove`:
tombstones) or, when its kind changes with the new size or tombstones pass
`compact_fraction`, rebuilt from the shards — never re-embedded.
"""

from __future__ import annotations

import os
import shutil
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pixsearch.config import to_dict
from pixsearch.logs import get_logger
from pixsearch.retrieval.chunks import EMBEDDER_DIR
from pixsearch.retrieval.config import IndexConfig
from pixsearch.retrieval.docstore import DocStore
from pixsearch.retrieval.layout import MANIFEST, fsync_tree, version_dir
from pixsearch.retrieval.shards import (
    Staging,
    iter_vectors,
    read_vectors,
    shard_files,
    shard_name,
    write_vectors,
)
from pixsearch.retrieval.store import FaissStore
from pixsearch.retrieval.vector_index import resolve_kind
from pixsearch.types import Document, KBImage

log = get_logger(__name__)
DOCS = "docs.sqlite"
VECTORS = "vectors"
MODALITIES = ("text", "image")


@dataclass
class Change:
    """What a new version changes relative to its base (None: a full build).

    Attributes:
        base: the base version folder.
        removed: keys removed per modality ("text": document ids, "image": image ids).
    """

    base: Path | None = None
    removed: dict[str, list[str]] = field(default_factory=lambda: {"text": [], "image": []})


def _link(src: Path, dst: Path) -> None:
    """Hard-link an immutable file into a version (a copy where links are not possible)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _docstore(tmp: Path, staging: Staging, change: Change) -> DocStore:
    if change.base is not None:
        shutil.copyfile(change.base / DOCS, tmp / DOCS)
    store = DocStore(tmp / DOCS)
    if change.removed["text"]:
        store.remove_documents(change.removed["text"])
    if change.removed["image"]:
        store.remove_images(change.removed["image"])
    for records in staging.records("text"):
        store.add_documents(Document(**r) for r in records)
    for records in staging.records("image"):
        store.add_images(KBImage(**r) for r in records)
    return store


def _shards(tmp: Path, staging: Staging, change: Change, modality: str) -> Path:
    """Link the base's shards (rewritten without removed keys) and the new ones."""
    out = tmp / VECTORS / modality
    out.mkdir(parents=True)
    removed = set(change.removed[modality])
    base = [] if change.base is None else shard_files(change.base / VECTORS / modality)
    if change.base is not None and not base and (change.base / f"{modality}.faiss").is_file():
        _export_unversioned(change.base, modality, out / shard_name(0, 0), removed)
    for path in base + shard_files(staging.vector_dir(modality)):
        if removed and path in base:
            keys, vectors = read_vectors(path)
            keep = [i for i, k in enumerate(keys) if k not in removed]
            if len(keep) < len(keys):
                write_vectors(out / path.name, [keys[i] for i in keep], vectors[keep], "")
                continue
        _link(path, out / path.name)
    return out


def _export_unversioned(base: Path, modality: str, path: Path, removed: set[str]) -> None:
    """The vectors of an index made before vector shards, as one shard (read back from its
    exact or HNSW index), without `removed` keys."""
    store = FaissStore.load(base, modality)
    vectors = store.index.reconstruct_n(0, store.index.ntotal)
    live = [i for i, k in enumerate(store.keys) if i not in store.deleted and k not in removed]
    write_vectors(path, [store.keys[i] for i in live], vectors[live], "")


def _count(folder: Path) -> tuple[int, int | None]:
    """(vectors, dim) of a shard folder, from the array headers (no vector is read)."""
    n, dim = 0, None
    for path in shard_files(folder):
        with zipfile.ZipFile(path) as z, z.open("vectors.npy") as f:
            major, _ = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if major == 1
                    else np.lib.format.read_array_header_2_0)
            shape = read(f)[0]
        n += shape[0]
        dim = shape[1] if shape[0] else dim
    return n, dim


def _training_sample(folder: Path, n: int, size: int) -> np.ndarray:
    """Up to `size` vectors spread evenly over the shards (deterministic)."""
    step = max(1, n // size)
    parts, offset = [], 0
    for _, vectors in iter_vectors([folder]):
        rows = np.arange((-offset) % step, len(vectors), step)
        parts.append(vectors[rows])
        offset += len(vectors)
    return np.concatenate(parts)[:size]


def _vector_store(tmp: Path, folder: Path, modality: str, config: IndexConfig,
                  change: Change, dim: int | None, milvus: tuple[Path, str], new: list[str]
                  ) -> tuple[Any, str, dict | None]:
    """The modality's vector store for the version: a FAISS index extended from the base or
    rebuilt, or a Milvus collection filled from the shards; (store, kind, Milvus entry)."""
    base = change.base
    has_base = base is not None and (base / f"{modality}.faiss").is_file()
    if not shard_files(folder) and not has_base:
        return None, "-", None  # this modality has no items (e.g. an index without images)
    n, shard_dim = _count(folder)
    dim = shard_dim or dim
    if dim is None:
        return None, "-", None
    if config.vector_backend == "milvus":
        from pixsearch.retrieval import milvus_backend

        store, entry = milvus_backend.fill(config, *milvus, modality, folder, dim)
        return store, "milvus", entry
    kind = resolve_kind(config.store, n, dim, config)
    if has_base:
        store = FaissStore.load(base, modality)
        store.remove(change.removed[modality])
        if store.kind == kind and store.deleted_fraction <= config.compact_fraction:
            have = len(store.keys)
            for keys, vectors in iter_vectors_of(folder / name for name in new):
                store.add(keys, vectors)
            log.info("%s index: %s, %d vectors kept, %d added", modality, kind, have,
                     len(store.keys) - have)
            store.save(tmp, modality)
            return store, kind, None
    store = FaissStore.create(dim, n, config)
    if store.needs_training:
        t0 = time.perf_counter()
        store.train(_training_sample(folder, n, config.ivf_train_size))
        log.info("%s index: trained %s in %.1f s", modality, kind, time.perf_counter() - t0)
    for keys, vectors in iter_vectors([folder]):
        store.add(keys, vectors)
    store.save(tmp, modality)
    return store, kind, None


def iter_vectors_of(paths: Iterable[Path]):
    for path in paths:
        yield read_vectors(path)


def assemble(out_dir: Path, staging: Staging, config: IndexConfig, change: Change,
             embedders: dict[str, Any], started: float) -> Path:
    """Write version `staging.plan["version"]` (module docstring); returns its folder."""
    name = staging.plan["version"]
    final = version_dir(out_dir, name)
    tmp = final.with_name(f".tmp-{name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    docs = _docstore(tmp, staging, change)
    stores, kinds, milvus = {}, {}, {}
    for modality in MODALITIES:
        folder = _shards(tmp, staging, change, modality)
        info = embedders.get(modality)
        stores[modality], kinds[modality], entry = _vector_store(
            tmp, folder, modality, config, change, info["dim"] if info else None,
            (out_dir, staging.plan["id"]),
            [p.name for p in shard_files(staging.vector_dir(modality))])
        if entry is not None:
            milvus[modality] = entry
    src = staging.root / EMBEDDER_DIR
    if not src.is_dir() and change.base is not None:
        src = change.base
    for path in src.glob("image_embedder.*"):
        _link(path, tmp / path.name)
    counts = {**docs.counts(),
              **{f"{m}_vectors": len(stores[m]) if stores[m] is not None else 0
                 for m in MODALITIES}}
    docs.close()
    for store in stores.values():
        if hasattr(store, "close"):
            store.close()  # a Milvus client: its connection must not outlive the build
    manifest = {
        "config": to_dict(config),
        "text_embedder": embedders["text"],
        "image_embedder": embedders.get("image") if stores["image"] is not None else None,
        "counts": counts,
        "stores": kinds,
        **({"milvus": milvus} if milvus else {}),
        "build": {"id": staging.plan["id"], "op": staging.plan["op"], "version": name,
                  "base": change.base.name if change.base else None,
                  "finished": time.strftime("%Y-%m-%d %H:%M:%S")},
    }
    from pixsearch.provenance import write_provenance

    write_provenance(tmp, "index", time.perf_counter() - started)
    (tmp / MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False))
    fsync_tree(tmp)
    shutil.rmtree(final, ignore_errors=True)  # an unpublished leftover of a killed run
    os.replace(tmp, final)
    return final
