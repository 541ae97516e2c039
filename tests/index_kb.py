"""Test helpers of index builds: a small knowledge base written as files, and a snapshot of an
index folder (document store, keys and vectors of each vector index, manifest) to compare
two builds with."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from pixsearch.retrieval.config import BuildConfig, IndexConfig
from pixsearch.retrieval.index import KnowledgeIndex

CFG = IndexConfig(image_embedder="thumbnail-8x6", num_threads=1)
BUILD = BuildConfig(chunk_size=6, progress=False)
TOPICS = ("rivers", "mountains", "bridges", "castles", "deserts", "forests", "harbours")


def doc_row(i: int, family: str = "alpha") -> dict:
    topic = TOPICS[i % len(TOPICS)]
    return {"id": f"{family}-{i}", "title": f"{family.title()} {topic} {i}",
            "text": f"Entry {i} of the {family} atlas describes {topic} near town {i * 7 % 23}.",
            "entity": f"E{i % 5}", "kind": "card" if i % 3 else "passage"}


def write_kb(root: Path, docs: Iterable[int], images: Iterable[int], family: str = "alpha"
             ) -> tuple[Path, Path]:
    """`root/docs.jsonl` and `root/images/` (a plain-colour picture per image, linked to the
    document of the same number); returns both paths."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    with (root / "docs.jsonl").open("w") as f:
        for i in docs:
            f.write(json.dumps(doc_row(i, family)) + "\n")
    with (root / "images" / "images.jsonl").open("w") as f:
        for i in images:
            rgb = (i * 37 % 256, i * 91 % 256, i * 53 % 256)
            Image.new("RGB", (40, 30), rgb).save(root / "images" / f"{family}{i}.png")
            f.write(json.dumps({"id": f"img-{family}-{i}", "path": f"{family}{i}.png",
                                "doc_id": f"{family}-{i}"}) + "\n")
    return root / "docs.jsonl", root / "images"


def live_vectors(store) -> dict[str, np.ndarray]:
    """Key → vector of the rows of a FaissStore that were not removed."""
    vecs = store.index.reconstruct_n(0, store.index.ntotal) if store.index.ntotal else []
    return {k: vecs[i] for i, k in enumerate(store.keys) if i not in store.deleted}


def snapshot(directory: Path) -> dict:
    """Everything that defines an index's answers, in comparable form."""
    index = KnowledgeIndex.open(directory)
    manifest = yaml.safe_load((index.directory / "index.yaml").read_text())
    snap = {"documents": index.docs.documents(), "images": index.docs.images(),
            "counts": manifest["counts"], "stores": manifest["stores"],
            "config": manifest["config"]}
    for name in ("text", "image"):
        store = getattr(index, f"{name}_store")
        if store is not None:
            vecs = live_vectors(store)
            snap[f"{name}_keys"] = list(vecs)
            snap[f"{name}_vectors"] = np.stack(list(vecs.values())) if vecs else None
    index.close()
    return snap


def assert_same_index(a: dict, b: dict, exact: bool = True) -> None:
    """Two snapshots describe the same index (vectors bit for bit with `exact`)."""
    for key in ("documents", "images", "counts", "stores", "config", "text_keys", "image_keys"):
        assert a.get(key) == b.get(key), key
    for key in ("text_vectors", "image_vectors"):
        if a.get(key) is None:
            assert b.get(key) is None, key
        elif exact:
            assert np.array_equal(a[key], b[key]), key
        else:
            np.testing.assert_allclose(a[key], b[key], atol=1e-5, err_msg=key)
