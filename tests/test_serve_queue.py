"""Load without hangs, over a real uvicorn server: a client that drops its stream mid-answer
frees the model at once (this hung the server for good before the decode worker), work for
clients that left is not computed, a full queue answers 429 with Retry-After, health answers
while the model is busy, and an API key guards the ask endpoints."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
import torch
from scripted import colour_scene
from servers import PacedLM

from pixsearch import Predictor
from pixsearch.cli import build_parser
from pixsearch.cli.serve import api_key, is_loopback
from pixsearch.decode.config import DecodeConfig
from pixsearch.model.build import build_model
from pixsearch.model.presets import get_preset
from pixsearch.retrieval.server import encode_image
from pixsearch.serve.app import create_app
from pixsearch.serve.limits import ServeLimits

SCRIPT = ["The flag on the left", "search_open", "region", "search_close", " is"]
TOKENS = 40


def paced_app(colour_index, delay_s: float, max_queue: int = 16, **kw):
    torch.manual_seed(0)
    lm = PacedLM(build_model(get_preset("tiny")).eval(), SCRIPT, delay_s)
    predictor = Predictor(lm, colour_index, DecodeConfig(max_new_tokens=TOKENS))
    return lm, create_app(predictor, "tiny", ServeLimits(max_queue=max_queue), **kw)


def body() -> dict:
    return {"question": "Which flag is on the left?", "image": encode_image(colour_scene())}


def first_event_then_drop(url: str) -> None:
    with httpx.stream("POST", f"{url}/api/ask/stream", json=body(), timeout=30) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                return  # leaving the block closes the connection mid-answer


def wait_until(cond, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_dropped_stream_frees_the_model_and_stops_its_work(colour_index, live_server):
    lm, app = paced_app(colour_index, delay_s=0.05)
    url = live_server(app)
    first_event_then_drop(url)
    worker = app.state.worker
    # generous waits: a loaded CI machine is slow, but a hang would never end
    assert wait_until(lambda: worker.depth()["running"] == 0, 20), "the dropped answer runs on"
    steps_after_drop = lm.steps
    assert steps_after_drop < TOKENS // 2  # stopped within a few tokens of the disconnect
    r = httpx.post(f"{url}/api/ask", json=body(), timeout=60)
    assert r.status_code == 200 and r.json()["trace"]["n_generated"] > 0
    assert worker.stats["cancelled"] == 1 and worker.stats["answered"] == 1


def test_full_queue_is_429_and_health_does_not_wait(colour_index, live_server):
    lm, app = paced_app(colour_index, delay_s=0.05, max_queue=1)
    url = live_server(app)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(
        httpx.post(f"{url}/api/ask", json=body(), timeout=60).status_code)) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.3)  # the first is decoding, the second waits
    worker = app.state.worker
    assert wait_until(lambda: worker.depth() == {"running": 1, "waiting": 1, "max_waiting": 1})
    t0 = time.perf_counter()
    health = httpx.get(f"{url}/api/health", timeout=5)
    assert time.perf_counter() - t0 < 0.5
    assert health.json()["queue"]["waiting"] == 1 and health.json()["model_loaded"] is True
    r = httpx.post(f"{url}/api/ask/stream", json=body(), timeout=5)
    assert r.status_code == 429 and r.json()["error"] == "queue_full"
    assert int(r.headers["Retry-After"]) >= 1
    for t in threads:
        t.join(60)
    assert results == [200, 200]


def test_a_request_that_leaves_the_queue_is_never_computed(colour_index, live_server):
    lm, app = paced_app(colour_index, delay_s=0.05)
    url = live_server(app)
    running = threading.Thread(target=lambda: httpx.post(f"{url}/api/ask", json=body(),
                                                         timeout=60))
    running.start()
    worker = app.state.worker
    assert wait_until(lambda: worker.depth()["running"] == 1)
    with pytest.raises(httpx.ReadTimeout):  # waits behind the first, gives up
        httpx.post(f"{url}/api/ask", json=body(), timeout=0.5)
    assert wait_until(lambda: worker.depth()["waiting"] == 0, 3)
    running.join(60)
    assert lm.started == 1 and worker.stats["cancelled"] == 1


def test_model_loads_in_the_background_while_health_answers(colour_index, live_server):
    gate = threading.Event()

    def load():
        gate.wait(10)
        return Predictor(PacedLM(build_model(get_preset("tiny")).eval(), SCRIPT),
                         colour_index, DecodeConfig(max_new_tokens=8))

    url = live_server(create_app(load, "tiny"))
    h = httpx.get(f"{url}/api/health", timeout=2).json()
    assert h["model_loaded"] is False and h["ok"] is False and h["index"] is None
    pending = threading.Thread(target=lambda: setattr(
        pending, "status", httpx.post(f"{url}/api/ask", json=body(), timeout=60).status_code))
    pending.start()  # queues behind the load
    gate.set()
    pending.join(60)
    assert pending.status == 200
    assert httpx.get(f"{url}/api/health", timeout=2).json()["ok"] is True


def test_failed_model_load_is_503_not_a_hang(live_server):
    def load():
        raise FileNotFoundError("no checkpoint at /nowhere")

    app = create_app(load, "broken")
    url = live_server(app)
    assert wait_until(lambda: app.state.worker.load_error is not None)
    assert "no checkpoint" in httpx.get(f"{url}/api/health").json()["model_error"]
    r = httpx.post(f"{url}/api/ask", json=body(), timeout=5)
    assert r.status_code == 503 and "no checkpoint" in r.json()["detail"]


def test_api_key_guards_the_ask_endpoints(colour_index, live_server):
    _, app = paced_app(colour_index, delay_s=0.0, api_key="s3cret")
    url = live_server(app)
    assert httpx.get(f"{url}/api/health").json()["auth"] is True  # health stays open
    for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": "s3cr\u00e9t".encode("latin-1")}):
        r = httpx.post(f"{url}/api/ask/stream", json=body(), headers=headers, timeout=10)
        assert r.status_code == 401 and "X-API-Key" in r.json()["detail"]
    with httpx.stream("POST", f"{url}/api/ask/stream", json=body(),
                      headers={"X-API-Key": "s3cret"}, timeout=30) as r:
        events = [json.loads(x[6:]) for x in r.iter_lines() if x.startswith("data: ")]
    assert events[-1]["type"] == "DoneEvent"


def test_public_bind_needs_an_api_key(monkeypatch):
    monkeypatch.delenv("PIXSEARCH_API_KEY", raising=False)
    args = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--model", "tiny"])
    with pytest.raises(SystemExit, match="--api-key"):
        api_key(args)
    monkeypatch.setenv("PIXSEARCH_API_KEY", "from-env")
    assert api_key(args) == "from-env"
    args = build_parser().parse_args(["serve", "--model", "tiny"])  # loopback: optional
    monkeypatch.delenv("PIXSEARCH_API_KEY")
    assert api_key(args) is None
    assert [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "10.1.2.3",
                                     "example.org")] == [True, True, True, False, False, False]


def test_shutdown_ends_open_streams_and_refuses_waiting_requests(colour_index, live_server):
    lm, app = paced_app(colour_index, delay_s=0.05)
    url = live_server(app)
    worker, waiting = app.state.worker, {}
    thread = threading.Thread(target=lambda: waiting.setdefault(
        "r", httpx.post(f"{url}/api/ask", json=body(), timeout=30)))
    with httpx.stream("POST", f"{url}/api/ask/stream", json=body(), timeout=30) as r:
        lines = r.iter_lines()
        next(x for x in lines if x.startswith("data: "))
        thread.start()
        assert wait_until(lambda: worker.depth()["waiting"] == 1)
        t0 = time.perf_counter()
        worker.shutdown()  # what `pixsearch serve` does on SIGTERM / Ctrl-C
        last = [x for x in lines if x.startswith("data: ")][-1]
    assert time.perf_counter() - t0 < 2
    assert json.loads(last[6:])["error"] == "shutting_down"
    thread.join(10)
    assert waiting["r"].status_code == 503 and waiting["r"].headers["Retry-After"] == "5"
    assert httpx.post(f"{url}/api/ask", json=body(), timeout=5).json()["error"] == \
        "shutting_down"


@pytest.mark.parametrize("argv,says", [
    (["--index", "/nonexistent/index"], "no knowledge index"),
    (["--index", "/tmp"], "not a knowledge index"),
    (["--model", "no-such-model"], "neither a checkpoint folder nor a preset"),
    (["--max-queue", "-1"], "max_queue"),
])
def test_serve_checks_its_inputs_before_loading_or_listening(argv, says, colour_index):
    from pixsearch.cli.serve import run

    args = build_parser().parse_args(["serve", "--model", "tiny", "--index",
                                      str(colour_index.directory), *argv])
    with pytest.raises(SystemExit, match=says):
        run(args)
