"""A real Milvus server (PyPI's `milvus` standalone binary) on 127.0.0.1: the `VectorStore`
round trip, an index built into it, searched, the server restarted, searched again (the data
persisted), updated, stopped. The same client code runs on milvus-lite
(`test_retrieval_store.py`). Slow: the server takes ~15 s to start."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from index_kb import BUILD, CFG, doc_row, write_kb

pytest.importorskip("milvus", reason="needs pip install 'pixsearch[milvus-server]'")
pytest.importorskip("pymilvus", reason="needs pip install 'pixsearch[milvus]'")
pytestmark = pytest.mark.slow


def _queries():
    from PIL import Image

    rows = [doc_row(i) for i in (3, 17, 33)]
    return [f"{r['title']}: {r['text']}" for r in rows] + [Image.new("RGB", (40, 30),
                                                                     (5 * 37 % 256, 5 * 91 % 256,
                                                                      5 * 53 % 256))]


def test_milvus_server_store_and_index_survive_a_restart(tmp_path):
    from pixsearch.retrieval.builder import IndexBuilder
    from pixsearch.retrieval.embedders import normalize
    from pixsearch.retrieval.index import KnowledgeIndex
    from pixsearch.retrieval.milvus_server import LocalMilvusServer
    from pixsearch.retrieval.milvus_store import MilvusStore
    from pixsearch.retrieval.store import VectorStore

    kb = write_kb(tmp_path / "kb", range(40), range(10))
    IndexBuilder(tmp_path / "faiss", CFG, BUILD).build(*kb)
    reference = KnowledgeIndex.open(tmp_path / "faiss")
    server = LocalMilvusServer(tmp_path / "milvus")
    with server:
        assert server.url.startswith("http://127.0.0.1:")
        # the VectorStore on the server
        vecs = normalize(np.random.default_rng(0).normal(size=(300, 16)))
        store = MilvusStore(server.url, "plain", 16)
        assert isinstance(store, VectorStore)
        store.add([f"k{i}" for i in range(300)], vecs)
        assert [row[0][0] for row in store.search(vecs[:3], 4)] == ["k0", "k1", "k2"]
        assert store.remove(["k0", "nope"]) == 1 and len(store) == 299
        assert store.search(vecs[:1], 1)[0][0][0] != "k0"
        store.save()
        store.close()

        # a knowledge index whose vectors live in the server
        cfg = replace(CFG, vector_backend="milvus", milvus_uri=server.url)
        report = IndexBuilder(tmp_path / "idx", cfg, BUILD).build(*kb)
        assert report.stores == {"text": "milvus", "image": "milvus"}
        index = KnowledgeIndex.open(tmp_path / "idx")
        before = [index.search(q, 5) for q in _queries()]
        for got, want in zip(before, (reference.search(q, 5) for q in _queries())):
            assert [h.doc_id for h in got] == [h.doc_id for h in want]
            assert np.allclose([h.score for h in got], [h.score for h in want], atol=1e-4)
        index.close()

        server.restart()
        index = KnowledgeIndex.open(tmp_path / "idx")
        assert [index.search(q, 5) for q in _queries()] == before
        index.close()
        again = MilvusStore(server.url, "plain", 16)
        assert len(again) == 299 and again.search(vecs[1:2], 1)[0][0][0] == "k1"
        again.close()

        # an update publishes a new collection; collected versions drop theirs
        for ids in (["alpha-3"], ["alpha-17"]):
            IndexBuilder(tmp_path / "idx", build=BUILD).remove(doc_ids=ids)
        index = KnowledgeIndex.open(tmp_path / "idx")
        hits = index.search(_queries()[0], 40)
        assert "alpha-3" not in {h.doc_id for h in hits} and len(hits) == 38
        index.close()
        from pymilvus import MilvusClient

        client = MilvusClient(server.url)
        names = [n for n in client.list_collections() if n.startswith("pixsearch_")]
        assert len(names) == 4  # two versions kept, text + image each
        client.close()
    assert not server.running
