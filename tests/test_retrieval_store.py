"""Vector stores and the document store: add, search, save, reopen identically."""

import importlib.util

import numpy as np
import pytest

from pixsearch.retrieval.docstore import DocStore
from pixsearch.retrieval.embedders import normalize
from pixsearch.retrieval.store import FaissStore, VectorStore
from pixsearch.types import Document, KBImage


def _data(n=200, dim=32, seed=0):
    rng = np.random.default_rng(seed)
    vecs = normalize(rng.normal(size=(n, dim)))
    return [f"k{i}" for i in range(n)], vecs


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_faiss_round_trip(tmp_path, kind):
    keys, vecs = _data()
    store = FaissStore(32, kind)
    assert isinstance(store, VectorStore)
    store.add(keys, vecs)
    queries = vecs[:10] + 0.01
    before = store.search(queries, 5)
    assert [row[0][0] for row in before] == keys[:10]  # each vector finds itself
    assert all(len(row) == 5 for row in before)
    store.save(tmp_path, "vec")
    again = FaissStore.load(tmp_path, "vec")
    assert again.kind == kind and len(again) == 200
    assert again.search(queries, 5) == before


def test_faiss_rejects_bad_shapes_and_empty_search():
    store = FaissStore(8)
    assert store.search(np.ones((1, 8), np.float32), 3) == [[]]
    with pytest.raises(ValueError):
        store.add(["a"], np.ones((1, 7), np.float32))
    with pytest.raises(ValueError):
        store.add(["a", "b"], np.ones((1, 8), np.float32))


def test_docstore_round_trip(tmp_path):
    docs = [Document("d1", "France", "Capital: Paris.", "FR", "card"),
            Document("d2", "France economy", "Uses the euro.", "FR")]
    store = DocStore(tmp_path / "docs.sqlite")
    store.add_documents(docs)
    store.add_images([KBImage("i1", "fr.png", "d1")])
    with pytest.raises(ValueError, match="unknown document"):
        store.add_images([KBImage("i2", "x.png", "nope")])
    store.close()
    again = DocStore(tmp_path / "docs.sqlite")
    assert again.documents() == docs
    assert again.documents(("card",)) == docs[:1]
    assert again.document("d2") == docs[1]
    assert again.image("i1") == KBImage("i1", "fr.png", "d1")
    assert again.counts() == {"documents": 2, "images": 1}
    with pytest.raises(KeyError):
        again.document("missing")


@pytest.mark.skipif(importlib.util.find_spec("pymilvus") is None, reason="pymilvus not installed")
def test_milvus_lite_store(tmp_path):
    from pixsearch.retrieval.milvus_store import MilvusStore

    keys, vecs = _data(50, 16)
    store = MilvusStore(tmp_path / "vec.db", "vectors", 16)
    store.add(keys, vecs)
    res = store.search(vecs[:3], 4)
    assert [row[0][0] for row in res] == keys[:3]
    assert res[0][0][1] == pytest.approx(1.0, abs=1e-4)
    assert len(store) == 50
    store.save(tmp_path, "vec")
    store.close()
    again = MilvusStore(tmp_path / "vec.db", "vectors", 16)
    res2 = again.search(vecs[:3], 4)
    assert [[key for key, _ in row] for row in res2] == [[key for key, _ in row] for row in res]
    assert np.allclose([[s for _, s in row] for row in res2], [[s for _, s in row] for row in res],
                       atol=1e-5)
    again.close()
