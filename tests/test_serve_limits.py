"""Bad requests to the API: each gets a small 4xx JSON `{error, detail}` that names what was
wrong, never echoes the input, and costs no decoding; a model fault is a JSON 5xx or an error
event that ends the stream."""

from __future__ import annotations

import base64
import io
import json
import struct
import time
import zlib

import httpx
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from scripted import colour_scene
from servers import PacedLM

from pixsearch import Predictor
from pixsearch.decode.config import DecodeConfig
from pixsearch.images import ImageLimits
from pixsearch.model.build import build_model
from pixsearch.model.presets import get_preset
from pixsearch.retrieval.server import encode_image
from pixsearch.serve.app import create_app
from pixsearch.serve.limits import ServeLimits

SCRIPT = ["The flag on the left", "search_open", "region", "search_close", " is"]


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    return PacedLM(build_model(get_preset("tiny")).eval(), SCRIPT)


@pytest.fixture(scope="module")
def client(lm, colour_index):
    app = create_app(Predictor(lm, colour_index, DecodeConfig(max_new_tokens=12)), "tiny")
    return TestClient(app)


def png_header_bomb(w: int = 12000, h: int = 12000) -> bytes:
    """A ~100-byte PNG whose header claims w×h pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


BAD_JSON = [
    ({"question": ""}, "question"),
    ({"question": "   "}, "question"),
    ({"question": "x" * 2001}, "2000"),
    ({}, "question"),
    ({"question": 5}, "question"),
    ({"question": "q?", "max_searches": "two"}, "max_searches"),
    ({"question": "q?", "max_searches": -1}, "max_searches"),
    ({"question": "q?", "max_searches": 2.5}, "max_searches"),
    ({"question": "q?", "max_searches": True}, "max_searches"),
    ({"question": "q?", "max_searches": 17}, "max_searches"),
    ({"question": "q?", "top_k": 0}, "top_k"),
    ({"question": "q?", "top_k": 51}, "top_k"),
    ({"question": "q?", "max_new_tokens": 0}, "max_new_tokens"),
    ({"question": "q?", "max_new_tokens": 100000}, "max_new_tokens"),
    ({"question": "q?", "modalities": "audio"}, "unknown modalities"),
    ({"question": "q?", "modalities": ["region", "smell"]}, "unknown modalities"),
    ({"question": "q?", "modalities": ""}, "modalities"),
    ({"question": "q?", "modalities": []}, "modalities"),
    ({"question": "q?", "temperature": 2.0}, "temperature"),
    ({"question": "q?", "image": ""}, "image"),
    ({"question": "q?", "image": "not base64 !!"}, "base64"),
    ({"question": "q?", "image": b64(b"hello, not an image")}, "not an image"),
    ({"question": "q?", "image": b64(b"<svg xmlns='http://www.w3.org/2000/svg'/>")}, "SVG"),
    ({"question": "q?", "image": b64(png_bytes(colour_scene())[:200])}, "image"),
    ({"question": "q?", "image": b64(png_header_bomb())}, "megapixels"),
]


@pytest.mark.parametrize("body,says", BAD_JSON, ids=[f"bad{i}" for i in range(len(BAD_JSON))])
def test_bad_requests_get_400_json(client, lm, body, says):
    steps = lm.steps
    for path in ("/api/ask", "/api/ask/stream"):
        r = client.post(path, json=body)
        assert r.status_code == 400, (path, r.text)
        err = r.json()
        assert set(err) == {"error", "detail"} and says in err["detail"], err
        assert len(r.content) < 1000
    assert lm.steps == steps  # nothing was decoded


@pytest.mark.parametrize("raw,says", [
    (b'{"question": "\\ud800 lone surrogate"}', "surrogate"),
    (b'{"question": "caf\xe9"}', "UTF-8"),
    (b"question=hello", "JSON"),
    (b'["question"]', "object"),
    (b"[" * 100000 + b"]" * 100000, "JSON"),
    (b'{"question": "q?", "' + b"k" * 5000 + b'": 1}', "extra"),
])
def test_malformed_bodies_get_400(client, raw, says):
    r = client.post("/api/ask", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert says.lower() in r.json()["detail"].lower() and len(r.content) < 1000


def test_oversized_uploads_are_refused_without_echo(client):
    big = "A" * (50 * 2**20)  # a 50 MB "image"
    t0 = time.perf_counter()
    r = client.post("/api/ask", json={"question": "q?", "image": big})
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
    assert len(r.content) < 1000 and time.perf_counter() - t0 < 10
    small = create_app(client.app.state.worker.predictor,
                       limits=ServeLimits(image=ImageLimits(max_bytes=1000)))
    r = TestClient(small).post("/api/ask", json={"question": "q?", "image": "A" * 1600})
    assert r.status_code == 413 and "image" in r.json()["detail"]


def test_unknown_routes_and_methods_are_json(client):
    r = client.get("/api/nothing")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = client.get("/api/ask")
    assert r.status_code == 405 and set(r.json()) == {"error", "detail"}


def test_null_budget_is_unbounded_and_text_only_needs_no_image(client):
    r = client.post("/api/ask", json={"question": "What is the capital of Greenland?",
                                      "max_searches": None})
    assert r.status_code == 200
    assert [s["modality"] for s in r.json()["trace"]["steps"]] == ["region"]
    assert r.json()["trace"]["steps"][0]["skipped"]  # a region query needs an image


def test_model_fault_is_json_500_and_stream_error_event(colour_index, live_server):
    lm = PacedLM(build_model(get_preset("tiny")).eval(), SCRIPT, fail_at=3)
    app = create_app(Predictor(lm, colour_index, DecodeConfig(max_new_tokens=12)), "tiny")
    body = {"question": "Which flag?", "image": encode_image(colour_scene())}
    r = TestClient(app).post("/api/ask", json=body)
    assert r.status_code == 500 and r.json()["error"] == "answer_failed"
    assert "injected fault" in r.json()["detail"]
    url = live_server(app)
    with httpx.stream("POST", f"{url}/api/ask/stream", json=body, timeout=30) as r:
        assert r.status_code == 200
        lines = list(r.iter_lines())  # the stream ends (no hang) ...
    messages = [json.loads(x[6:]) for x in lines if x.startswith("data: ")]
    assert "event: error" in lines  # ... with an error event as its last message
    assert messages[-1]["type"] == "ErrorEvent" and "injected fault" in messages[-1]["detail"]
    lm.fail_at = None  # the server is fine afterwards
    assert httpx.post(f"{url}/api/ask", json=body, timeout=30).status_code == 200


def test_huge_bodies_over_a_real_socket_are_refused_quickly(client, live_server):
    url = live_server(client.app)

    def body(total: int):
        chunk = b"A" * 2**20
        for _ in range(total // len(chunk)):
            yield chunk

    for headers in ({"Content-Length": str(200 * 2**20)}, {}):  # declared, and chunked
        t0 = time.perf_counter()
        try:
            r = httpx.post(f"{url}/api/ask", content=body(200 * 2**20), timeout=30,
                           headers={"Content-Type": "application/json", **headers})
            assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
        except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
            pass  # the server answered and closed while the client was still sending
        assert time.perf_counter() - t0 < 10
    assert httpx.get(f"{url}/api/health", timeout=5).json()["ok"] is True


def test_uploads_go_through_the_one_loader(client):
    """A phone JPEG with EXIF Orientation=6 (stored 160×120, shown 120×160) is decoded
    upright: the region mask has the shape the browser shows."""
    stored = colour_scene()  # 160 wide, 120 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buf = io.BytesIO()
    stored.save(buf, format="JPEG", exif=exif.tobytes())
    r = client.post("/api/ask", json={"question": "Which flag?", "image": b64(buf.getvalue())})
    assert r.status_code == 200
    assert r.json()["trace"]["steps"][0]["mask_rle"]["size"] == [160, 120]  # [h, w] upright
