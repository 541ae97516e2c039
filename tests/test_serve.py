"""The HTTP API and page: /api/ask returns the Answer JSON, /api/ask/stream streams events,
bad requests get 422; one test goes through a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import json

import httpx
import pytest
import torch
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
    assert r.status_code == 422 and "unknown modalities" in r.text
    assert TestClient(app).post("/api/ask", json={"question": ""}).status_code == 422


def test_page_is_served(app):
    html = TestClient(app).get("/").text
    assert "/api/ask/stream" in html and "<canvas" in html


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
