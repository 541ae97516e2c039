"""The HTTP API and page: /api/ask returns the Answer JSON, /api/ask/stream streams events,
bad requests get 422; one test goes through a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import re

import httpx
import pytest
import torch
from eval_fixture import build_eval_set
from fastapi.testclient import TestClient
from scripted import SteeredLM, colour_scene

from pixsearch import Predictor
from pixsearch.decode.config import DecodeConfig
from pixsearch.model.build import build_model
from pixsearch.model.presets import get_preset
from pixsearch.retrieval.server import encode_image
from pixsearch.serve.app import create_app

SCRIPT = ["The flag on the left", "search_open", "region", "search_close", " is",
          "search_open", "capital of Greenland", "search_close"]


@pytest.fixture(scope="module")
def app(colour_index):
    torch.manual_seed(0)
    lm = SteeredLM(build_model(get_preset("tiny")).eval(), SCRIPT)
    predictor = Predictor(lm, colour_index, DecodeConfig(max_new_tokens=24, top_k=2))
    return create_app(predictor, name="tiny")


def body(**kw):
    return {"question": "Which flag is on the left?", "image": encode_image(colour_scene()), **kw}


def test_ask_returns_answer_and_trace(app):
    client = TestClient(app)
    assert client.get("/api/health").json()["index"] is True
    r = client.post("/api/ask", json=body())
    assert r.status_code == 200
    trace = r.json()["trace"]
    assert [s["modality"] for s in trace["steps"]][:2] == ["region", "text"]
    assert trace["steps"][0]["mask_rle"]["size"] == [120, 160]
    assert trace["steps"][1]["hits"][0]["doc_id"] == "green"


def test_budget_and_modalities_pass_through(app):
    r = TestClient(app).post("/api/ask", json=body(max_searches=0))
    assert r.json()["trace"]["steps"] == []
    r = TestClient(app).post("/api/ask", json=body(modalities="audio"))
    assert r.status_code == 400 and "unknown modalities" in r.json()["detail"]
    assert TestClient(app).post("/api/ask", json={"question": ""}).status_code == 400


def test_page_and_docs_are_served_with_local_assets_only(app):
    client = TestClient(app)
    html = client.get("/").text
    assert "<canvas" in html and 'name="viewport"' in html
    assets = {name: client.get(f"/static/{name}") for name in
              ("app.js", "rle.js", "style.css", "docs.html")}
    assert all(r.status_code == 200 for r in assets.values())
    assert "/api/ask/stream" in assets["app.js"].text
    assert "@media (max-width" in assets["style.css"].text
    docs = client.get("/docs").text
    assert "/openapi.json" in docs and "CDN" in docs
    spec = client.get("/openapi.json").json()
    assert "question" in json.dumps(spec["paths"]["/api/ask"])
    for text in [html, docs, *(r.text for r in assets.values())]:  # nothing from the internet
        assert re.search(r"(src|href)=\"https?://", text) is None
        assert re.search(r"fetch\(\"https?://", text) is None


def test_samples_are_served(colour_index):
    from pixsearch.serve.samples import Sample

    png = encode_image(colour_scene())
    app = create_app(Predictor(build_model(get_preset("tiny")).eval(), colour_index), "tiny",
                     samples=[Sample("Which flag is on the left?", base64.b64decode(png))])
    client = TestClient(app)
    listed = client.get("/api/samples").json()
    assert listed == [{"id": 0, "question": "Which flag is on the left?", "label": "",
                       "image": "/api/samples/0"}]
    r = client.get("/api/samples/0")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert client.get("/api/samples/7").json()["error"] == "not_found"


def test_world_and_skimage_samples(tmp_path):
    from pixsearch.serve.samples import find_samples, world_samples

    (tmp_path / "index").mkdir()
    assert world_samples(tmp_path) == []
    pictures = find_samples(str(tmp_path / "index"))  # no world here: scikit-image's own
    assert [s.label for s in pictures] == ["astronaut", "coffee", "chelsea"]
    assert all(s.data.startswith(b"\x89PNG") for s in pictures)
    records, index = build_eval_set(tmp_path / "world")  # a world-like folder: records + index
    records.rename(records.parent / "test.jsonl")
    scenes = find_samples(str(index), n=3)
    assert [s.label for s in scenes] == ["factoid", "attribute", "factoid"]  # types first
    assert scenes[1].question == "What colour is the top stripe of the flag?"


def test_stream_over_a_real_server(app, live_server):
    url = live_server(app)
    events = []
    with httpx.stream("POST", f"{url}/api/ask/stream", json=body(), timeout=60) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    kinds = [e["type"] for e in events if e["type"] != "TokenEvent"]
    assert kinds[:4] == ["SearchStarted", "MaskEvent", "HitsEvent", "EvidenceEvent"]
    assert kinds[-1] == "DoneEvent"
    assert len(events[-1]["answer"]["trace"]["steps"]) >= 2
    assert any(e["type"] == "TokenEvent" for e in events)
