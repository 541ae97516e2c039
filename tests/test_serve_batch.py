"""`pixsearch serve` with continuous batching, over a real uvicorn server and a real tiny model:
concurrent requests share decode steps and get the one-at-a-time answers (a full-attention LM
and Gemma 3's sliding-window one), a full queue is 429
beyond the batch, and a client that drops its stream frees its slot at once."""

from __future__ import annotations

import threading

import httpx
import pytest
import torch
from scripted import colour_scene
from test_serve_queue import wait_until

from pixsearch import Predictor
from pixsearch.decode.config import DecodeConfig
from pixsearch.model.build import build_model
from pixsearch.model.presets import get_preset
from pixsearch.retrieval.server import encode_image
from pixsearch.serve.app import create_app
from pixsearch.serve.limits import ServeLimits

QUESTIONS = ["Which flag is on the left?", "What is this flag?", "Name the country.",
             "Which capital?"]
LONG = 1000  # tokens: the tiny model writes them all (no EOS), several seconds of decoding


def batched_app(colour_index, batch: int, max_queue: int = 16, preset: str = "tiny"):
    torch.manual_seed(0)
    model = build_model(get_preset(preset)).eval()
    predictor = Predictor(model, colour_index, DecodeConfig(max_new_tokens=24, top_k=2,
                                                            deadline_s=None))
    return predictor, create_app(predictor, "tiny", ServeLimits(max_queue=max_queue),
                                 batch=batch)


def body(question: str, **kw) -> dict:
    return {"question": question, "image": encode_image(colour_scene()), **kw}


def stream_then_drop(url: str, started: threading.Event, **kw) -> None:
    with httpx.stream("POST", f"{url}/api/ask/stream", json=body(QUESTIONS[0], **kw),
                      timeout=60) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                started.set()
                return  # leaving the block closes the connection mid-answer


@pytest.mark.parametrize("preset", ["tiny", "gemma-tiny"])  # full / sliding-window attention
def test_concurrent_requests_share_the_batch_and_match_single_answers(colour_index,
                                                                       live_server, preset):
    predictor, app = batched_app(colour_index, batch=4, preset=preset)
    url = live_server(app)
    results: dict[int, dict] = {}

    def ask(i: int) -> None:
        r = httpx.post(f"{url}/api/ask", json=body(QUESTIONS[i], max_new_tokens=60),
                       timeout=120)
        assert r.status_code == 200, r.text
        results[i] = r.json()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    health = httpx.get(f"{url}/api/health", timeout=10).json()
    assert health["queue"]["slots"] == 4 and health["stats"]["answered"] == 4
    assert health["stats"]["batch_max_rows"] >= 2  # requests really shared decode steps
    for i, got in results.items():
        want = predictor.ask(QUESTIONS[i], colour_scene(), max_new_tokens=60)
        assert got["text"] == want.text and got["trace"]["display"] == want.trace.display


def test_a_dropped_stream_frees_its_slot(colour_index, live_server):
    _, app = batched_app(colour_index, batch=2)
    url, worker = live_server(app), app.state.worker
    started = threading.Event()
    stream_then_drop(url, started, max_new_tokens=LONG)
    assert started.is_set()
    # the engine notices within a poll of the connection, long before 1000 tokens are done
    assert wait_until(lambda: worker.depth()["running"] == 0, 5), "the dropped answer runs on"
    assert wait_until(lambda: worker.engine.depth()["decoding"] == 0, 2)
    assert worker.stats["cancelled"] == 1 and worker.stats["answered"] == 0
    r = httpx.post(f"{url}/api/ask", json=body(QUESTIONS[1]), timeout=60)
    assert r.status_code == 200
    # the counter moves when the worker finishes the job, which may be just after the reply
    assert wait_until(lambda: worker.stats["answered"] == 1, 5)


def test_beyond_the_batch_and_the_queue_is_429(colour_index, live_server):
    _, app = batched_app(colour_index, batch=2, max_queue=1)
    url, worker = live_server(app), app.state.worker
    codes = []

    def hold(i: int) -> None:  # a client that reads its stream until the server ends it
        with httpx.stream("POST", f"{url}/api/ask/stream",
                          json=body(QUESTIONS[i], max_new_tokens=LONG), timeout=60) as r:
            codes.append(r.status_code)
            for _ in r.iter_lines():
                pass

    holders = [threading.Thread(target=hold, args=(i,), daemon=True) for i in range(3)]
    assert wait_until(lambda: worker.engine is not None, 10)  # the batch is up
    for i, t in enumerate(holders):  # one by one: each is in before the next asks
        t.start()
        assert wait_until(lambda n=i + 1: worker.depth()["running"]
                          + worker.depth()["waiting"] >= n, 10)
    assert wait_until(lambda: worker.depth() == {"running": 2, "waiting": 1, "max_waiting": 1,
                                                 "slots": 2}, 10), worker.depth()
    r = httpx.post(f"{url}/api/ask", json=body(QUESTIONS[3]), timeout=10)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    worker.shutdown()  # what `pixsearch serve` does on SIGTERM: the batch empties at once
    assert wait_until(lambda: worker.depth()["running"] == 0, 5)
    for t in holders:
        t.join(10)
    assert sorted(codes) == [200, 200, 503]  # the waiting one is told the server stops
    assert wait_until(lambda: worker.engine.depth()["decoding"] == 0, 2)
