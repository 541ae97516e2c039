"""The shared retriever: batch queries and the upload limit of the search server, and a search
cache that records an evaluation once and replays it offline with identical predictions
(real index, real uvicorn servers, the real evaluation runner with the tiny model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from eval_fixture import build_eval_set, flag, scene
from PIL import Image

from pixsearch.decode.config import DecodeConfig
from pixsearch.eval.runner import EvalConfig, run_eval
from pixsearch.retrieval.api import SearchAPI
from pixsearch.retrieval.index import KnowledgeIndex
from pixsearch.retrieval.search_cache import CachedSearch, NotRecordedError, query_key
from pixsearch.retrieval.server import HTTPSearch, SearchServerLimits, make_app, query_payload


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory) -> tuple[Path, Path]:
    return build_eval_set(tmp_path_factory.mktemp("evalset"))


@pytest.fixture(scope="module")
def index(eval_set) -> KnowledgeIndex:
    return KnowledgeIndex.open(eval_set[1])


def _queries():
    img, masks = scene(["RED", "GRN"], ego=True)
    return ["capital of Redland", flag("GRN", 48, 32), (img, masks[0]), (img, masks[1])]


def test_keys_follow_the_query_not_the_object():
    img, masks = scene(["RED", "GRN"], ego=True)
    copy = Image.frombytes(img.mode, img.size, img.tobytes())
    assert query_key((img, masks[0]), 3) == query_key((copy, masks[0].copy()), 3)
    keys = {query_key(q, 3) for q in [(img, masks[0]), (img, masks[1]), img, "a", "a "]}
    assert len(keys) == 5
    assert query_key("a", 3) != query_key("a", 4)


def test_record_then_replay_offline(index, tmp_path):
    recorder = CachedSearch(index, tmp_path / "cache", "record")
    assert isinstance(recorder, SearchAPI)
    live = [index.search(q, 3) for q in _queries()]
    assert [recorder.search(q, 3) for q in _queries()] == live
    assert recorder.stats == {"hits": 0, "misses": 4}
    assert recorder.search_many(_queries(), 3) == live and recorder.stats["hits"] == 4
    replayer = CachedSearch(None, tmp_path / "cache", "replay")  # no index at all
    assert replayer.search_many(_queries(), 3) == live
    with pytest.raises(NotRecordedError, match="not recorded"):
        replayer.search("a question nobody asked", 3)
    with pytest.raises(FileNotFoundError, match="record one first"):
        CachedSearch(None, tmp_path / "nothing", "replay")


def test_batch_queries_and_upload_limit(index):
    from fastapi.testclient import TestClient

    client = TestClient(make_app(index, SearchServerLimits(max_body_bytes=20_000, max_batch=4)))
    body = {"queries": [query_payload(q, 2) for q in _queries()]}
    resp = client.post("/search/batch", json=body)
    assert resp.status_code == 200
    got = [[h["doc_id"] for h in r["hits"]] for r in resp.json()["results"]]
    assert got == [[h.doc_id for h in index.search(q, 2)] for q in _queries()]
    too_many = client.post("/search/batch", json={"queries": body["queries"] * 2})
    assert too_many.status_code == 400 and "4" in too_many.text
    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8))
    assert client.post("/search", json=query_payload(big, 2)).status_code == 413
    bad = client.post("/search/batch", json={"queries": [{"text": "x"}, {"k": 2}]})
    assert bad.status_code == 400 and "query 1" in bad.text


def _eval(eval_set, url: str, out: Path) -> list[dict]:
    cfg = EvalConfig(data=str(eval_set[0]), index=url, model="tiny", mode="whole_image",
                     progress=False, out=str(out), decode=DecodeConfig(max_new_tokens=8))
    run_eval(cfg)
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def _what_was_predicted(line: dict) -> dict:
    trace = line["trace"]
    return {"answer": line["answer"], "display": trace["display"],
            "steps": [{k: v for k, v in s.items() if k != "timings"} for s in trace["steps"]]}


def test_an_evaluation_replays_identically_without_the_index(eval_set, index, tmp_path,
                                                             live_server):
    cache = tmp_path / "cache"
    recorder = CachedSearch(index, cache, "record")
    recorded = _eval(eval_set, live_server(make_app(recorder)), tmp_path / "recorded")
    searches = recorder.stats["misses"] + recorder.stats["hits"]
    assert searches >= 6  # a whole-image search per record (two records share a picture)
    assert all(line["trace"]["steps"] and line["trace"]["steps"][0]["hits"] for line in recorded)

    replayer = CachedSearch(None, cache, "replay")  # offline: no index behind this server
    replayed = _eval(eval_set, live_server(make_app(replayer)), tmp_path / "replayed")
    assert replayer.stats == {"hits": searches, "misses": 0}
    by_id = {line["id"]: _what_was_predicted(line) for line in replayed}
    assert {line["id"]: _what_was_predicted(line) for line in recorded} == by_id

    client = HTTPSearch(live_server(make_app(replayer)))
    with pytest.raises(Exception, match="404"):
        client.search("never recorded", 3)
    client.close()


def test_serve_flags_build_a_replaying_app(eval_set, tmp_path):
    import argparse

    from pixsearch.cli import serve as cli_serve
    from pixsearch.serve.search_only import search_only_app

    parser = argparse.ArgumentParser()
    cli_serve.register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["serve", "--search-only", "--search-cache", str(tmp_path / "c"),
                              "--search-mode", "replay"])
    with pytest.raises(SystemExit, match="record one first"):
        search_only_app(args, None)
    CachedSearch(KnowledgeIndex.open(eval_set[1]), tmp_path / "c").search("capital", 2)
    app = search_only_app(args, None)
    from fastapi.testclient import TestClient

    client = TestClient(app)
    assert client.post("/search", json={"text": "capital", "k": 2}).status_code == 200
    assert client.get("/stats").json() == {"cache": "replay", "hits": 1, "misses": 0}
