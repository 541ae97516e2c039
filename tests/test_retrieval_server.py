"""The search API over HTTP (TestClient and a real uvicorn server) and the CRAG-MM adapter."""

import numpy as np
import pytest
from PIL import Image

from pixsearch.retrieval.api import SearchAPI
from pixsearch.retrieval.cragmm import CragMMSearch
from pixsearch.retrieval.index import IndexConfig, KnowledgeIndex
from pixsearch.retrieval.server import HTTPSearch, make_app, query_payload
from pixsearch.types import Document, KBImage
from pixsearch.world.flags import render_flag

CODES = {"DE": "Germany", "IT": "Italy", "GR": "Greece", "NO": "Norway"}


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """A small real index; the thumbnail image embedder keeps it quick (no training)."""
    root = tmp_path_factory.mktemp("kb")
    docs, images = [], []
    for code, name in CODES.items():
        docs.append(Document(f"card-{code}", name, f"{name} <search>flag</search> card.", code,
                             "card"))
        render_flag(code, 120, 90).save(root / f"{code}.png")
        images.append(KBImage(f"img-{code}", f"{code}.png", f"card-{code}"))
    return KnowledgeIndex.build(docs, images, root, root / "index",
                                IndexConfig(image_embedder="thumbnail-16x12"))


def _queries():
    scene = Image.new("RGB", (200, 150), (20, 120, 30))
    scene.paste(render_flag("GR", 80, 60), (60, 40))
    mask = np.zeros((150, 200), bool)
    mask[40:100, 60:140] = True
    return ["Italy", render_flag("NO", 64, 48), (scene, mask)]


def test_app_with_test_client(index):
    from fastapi.testclient import TestClient

    client = TestClient(make_app(index))
    assert client.get("/health").json() == {"ok": True}
    for q in _queries():
        resp = client.post("/search", json=query_payload(q, 2))
        assert resp.status_code == 200
        hits = resp.json()["hits"]
        assert [h["doc_id"] for h in hits] == [h.doc_id for h in index.search(q, 2)]
    assert client.post("/search", json={"k": 2}).status_code == 400
    assert client.post("/search", json={"text": "x", "image": "aGk="}).status_code == 400
    assert client.post("/search", json={"image": "not base64!"}).status_code == 400


def test_real_server_round_trip(index, live_server):
    client = HTTPSearch(live_server(make_app(index), log_level="warning"))
    assert isinstance(client, SearchAPI)
    for q in _queries():
        assert client.search(q, 3) == index.search(q, 3)
    assert client.search(_queries()[2], 1)[0].doc_id == "card-GR"
    client.close()


class FakeCragPipeline:
    """Same call shape as cragmm_search's UnifiedSearchPipeline: image → entities, str → pages."""

    def __init__(self):
        self.calls = []

    def __call__(self, query, k=5):
        self.calls.append((type(query).__name__, getattr(query, "size", None), k))
        if isinstance(query, str):
            return [{"index": i, "score": 0.9 - i / 10, "page_name": f"Page {i}",
                     "page_url": f"https://example.org/{i}", "page_snippet": f"About {query} {i}"}
                    for i in range(k)]
        return [
            {"index": 0, "score": 0.95, "url": "u0", "entities": [
                {"entity_name": "Eiffel Tower", "entity_attributes": {"height": "330 m",
                                                                     "city": "Paris"}}]},
            {"index": 1, "score": 0.90, "url": "u1", "entities": [
                {"entity_name": "Eiffel Tower", "entity_attributes": {}},
                {"entity_name": "Champ de Mars", "entity_attributes": None}]},
        ][:k]


def test_cragmm_adapter():
    pipe = FakeCragPipeline()
    api = CragMMSearch(pipe)
    assert isinstance(api, SearchAPI)
    web = api.search("eiffel tower height", 3)
    assert [h.doc_id for h in web] == [f"https://example.org/{i}" for i in range(3)]
    assert web[0].title == "Page 0" and web[0].text == "About eiffel tower height 0"
    img = api.search(Image.new("RGB", (40, 30)), 5)
    assert [h.title for h in img] == ["Eiffel Tower", "Champ de Mars"]  # entities deduplicated
    assert img[0].text == "height: 330 m; city: Paris" and img[0].score == 0.95
    mask = np.zeros((30, 40), bool)
    mask[5:15, 10:30] = True
    api.search((Image.new("RGB", (40, 30)), mask), 2)
    assert pipe.calls[-1] == ("Image", (20, 10), 2)  # the region was cropped before searching


def test_cragmm_missing_package_names_the_install():
    try:
        import cragmm_search  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="cragmm-search-pipeline"):
            CragMMSearch()
    else:
        pytest.skip("cragmm_search is installed")
