"""Faults degrade honestly: a search back-end that is dead, answers HTTP 500, garbage or
wrongly shaped hits, no hits, or is too slow; an answer that runs out of time. Each fault is
injected with real parts (a real uvicorn server, a real closed port, real sleeping calls) and
the answer must be "I don't know." (CRAG-MM's missing) with the reason in the trace, the
model's words kept, and no hang."""

from __future__ import annotations

import re
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image
from scripted import ScriptedLM

from pixsearch.decode.config import DecodeConfig
from pixsearch.decode.deadline import CallTimeout, Deadline, call_with_timeout
from pixsearch.decode.engine import Engine
from pixsearch.decode.events import DoneEvent, SearchFailed
from pixsearch.eval.crag import is_missing
from pixsearch.retrieval.api import SearchError, check_hits
from pixsearch.retrieval.server import HTTPSearch, parse_hits
from pixsearch.types import Hit

IMAGE = Image.new("RGB", (48, 32), (120, 30, 30))
TEXT_SEARCH = ["The capital", "search_open", "capital of Peru", "search_close", " is Lima."]
HIT = {"doc_id": "d1", "title": "Peru", "score": 0.9, "text": "Lima is the capital of Peru."}


def _fault_app(delay_s: float = 3.0):
    """A search server whose answer is chosen by the path: /<mode>/search."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, PlainTextResponse

    app = FastAPI()
    bodies = {
        "ok": {"hits": [HIT]},
        "empty": {"hits": []},
        "shape": {"results": [HIT]},
        "hit_shape": {"hits": [{"doc_id": "d1"}]},
        "hit_types": {"hits": [{**HIT, "score": "high"}]},
        "hit_nan": {"hits": [{**HIT, "score": float("nan")}]},
        "list": [HIT],
    }

    @app.post("/{mode}/search")
    def search(mode: str):
        if mode == "http500":
            return PlainTextResponse("Internal Server Error", status_code=500)
        if mode == "garbage":
            return PlainTextResponse("<html>502 Bad Gateway</html>")
        if mode == "slow":
            time.sleep(delay_s)
            return {"hits": [HIT]}
        if mode == "hit_nan":  # JSON has no NaN: write the token by hand, as a buggy server would
            return PlainTextResponse('{"hits": [{"doc_id": "d1", "title": "t", "score": NaN, '
                                     '"text": "x"}]}', media_type="application/json")
        return JSONResponse(bodies[mode])

    return app


@pytest.fixture(scope="module")
def fault_server():
    from servers import serve_in_thread

    with serve_in_thread(_fault_app()) as url:
        yield url


def _closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there any more
    return f"http://127.0.0.1:{port}"


def _answer(search, cfg: DecodeConfig | None = None, script=TEXT_SEARCH, forced=None):
    lm = ScriptedLM(script)
    engine = Engine(lm, search, cfg or DecodeConfig(max_new_tokens=64))
    events = list(engine.stream("What is the capital?", IMAGE, forced))
    assert isinstance(events[-1], DoneEvent)
    return events[-1].answer, events


def _assert_honest(ans, events, reason: str, stop: str = "search_failed"):
    assert ans.text == "I don't know." and is_missing(ans.text)
    tr = ans.trace
    assert tr.stop_reason == stop and tr.failure is not None
    assert tr.raw_answer == "The capital"  # the model's words so far, kept
    step = tr.steps[0]
    assert step.error is not None and re.search(reason, step.error), step.error
    assert step.evidence.startswith("No evidence: the search failed")
    assert any(isinstance(e, SearchFailed) for e in events)
    assert not tr.abstained  # not the calibrated policy's doing


@pytest.mark.parametrize("mode, reason", [
    ("http500", "HTTP 500"),
    ("garbage", "not JSON"),
    ("shape", r"not \{\"hits\""),
    ("list", r"not \{\"hits\""),
    ("hit_shape", "lacks"),
    ("hit_types", "not a finite number"),
    ("hit_nan", "not a finite number"),
    ("empty", "no hits"),
])
def test_bad_answers_of_a_real_search_server(fault_server, mode, reason):
    search = HTTPSearch(f"{fault_server}/{mode}")
    ans, events = _answer(search)
    _assert_honest(ans, events, reason)
    search.close()


def test_a_good_server_still_answers(fault_server):
    ans, _ = _answer(HTTPSearch(f"{fault_server}/ok"))
    assert ans.text == "The capital is Lima." and ans.trace.failure is None
    assert ans.trace.steps[0].hits[0].doc_id == "d1"


def test_a_dead_server():
    t0 = time.perf_counter()
    ans, events = _answer(HTTPSearch(_closed_port_url()))
    _assert_honest(ans, events, "unreachable")
    assert time.perf_counter() - t0 < 5


def test_a_slow_server_is_bounded_by_the_search_timeout(fault_server):
    cfg = DecodeConfig(max_new_tokens=64, search_timeout_s=0.5)
    t0 = time.perf_counter()
    ans, events = _answer(HTTPSearch(f"{fault_server}/slow"), cfg)
    took = time.perf_counter() - t0
    _assert_honest(ans, events, "no answer within 0.5 s")
    assert took < 2.5, took  # the server sleeps 3 s
    # the HTTP client's own timeout bounds it too (no decode timeout at all)
    cfg = DecodeConfig(max_new_tokens=64, search_timeout_s=None, deadline_s=None)
    t0 = time.perf_counter()
    ans, events = _answer(HTTPSearch(f"{fault_server}/slow", timeout=0.5), cfg)
    _assert_honest(ans, events, "gave no answer within 0.5 s")
    assert time.perf_counter() - t0 < 2.5


class _Raising:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def search(self, query, k):
        raise self.exc


class _Returning:
    def __init__(self, value) -> None:
        self.value = value

    def search(self, query, k):
        return self.value


@pytest.mark.parametrize("api, reason", [
    (_Raising(RuntimeError("index on fire")), "RuntimeError: index on fire"),
    (_Raising(KeyError("doc-7")), "KeyError"),
    (_Returning(None), "returned NoneType"),
    (_Returning([{"doc_id": "x"}]), "not a Hit"),
    (_Returning([Hit("d", "t", float("inf"), "x")]), "finite"),
    (_Returning([Hit("d", None, 1.0, "x")]), "title"),  # type: ignore[arg-type]
    (_Returning([]), "no hits"),
    (None, "no search API"),
])
def test_in_process_back_ends_that_fail(api, reason):
    ans, events = _answer(api)
    _assert_honest(ans, events, reason)


def test_a_failed_forced_search_fails_the_baseline():
    from pixsearch.types import Query

    lm = ScriptedLM([" Peru."])
    ans = Engine(lm, _Returning([]), DecodeConfig(max_new_tokens=8, max_searches=0)).answer(
        "Which country?", IMAGE, forced_queries=[Query("image", image=IMAGE)])
    assert ans.text == "I don't know." and ans.trace.steps[0].error
    assert ans.trace.stop_reason == "search_failed" and ans.trace.n_generated == 0


class _Sleeping:
    def __init__(self, seconds: float) -> None:
        self.seconds, self.threads = seconds, []

    def search(self, query, k):
        self.threads.append(threading.current_thread())
        time.sleep(self.seconds)
        return [Hit("d", "Peru", 0.9, "Lima is the capital of Peru.")]


def test_a_slow_search_is_cut_by_the_answer_deadline():
    cfg = DecodeConfig(max_new_tokens=64, deadline_s=0.6, search_timeout_s=None)
    t0 = time.perf_counter()
    ans, events = _answer(_Sleeping(5.0), cfg)
    assert time.perf_counter() - t0 < 2.0
    _assert_honest(ans, events, "no answer within", stop="deadline")
    assert "deadline" not in (ans.trace.steps[0].skipped or "")


class _SlowLM(ScriptedLM):
    """A scripted model whose forward passes and region masks take the given seconds."""

    def __init__(self, script, extend_s: float = 0.0, mask_s: float = 0.0, **kw) -> None:
        super().__init__(script, **kw)
        self.extend_s, self.mask_s = extend_s, mask_s

    def start(self, prompt, image):
        session, logits = super().start(prompt, image)
        extend, mask = session.extend, session.region_mask

        def slow_extend(ids):
            time.sleep(self.extend_s)
            return extend(ids)

        def slow_mask():
            time.sleep(self.mask_s)
            return mask()

        session.extend, session.region_mask = slow_extend, slow_mask
        return session, logits


def test_a_slow_model_stops_at_the_deadline():
    lm = _SlowLM(["word " * 60], extend_s=0.05)
    t0 = time.perf_counter()
    ans = Engine(lm, None, DecodeConfig(max_new_tokens=200, deadline_s=0.5)).answer("q", IMAGE)
    assert time.perf_counter() - t0 < 1.5
    tr = ans.trace
    assert tr.stop_reason == "deadline" and "deadline of 0.5 s" in tr.failure
    assert ans.text == "I don't know." and tr.raw_answer.startswith("word")
    assert 3 <= tr.n_generated < 60


def test_a_search_that_would_start_after_the_deadline_is_not_started():
    """The deadline passes while the region mask is predicted: the search is not started."""
    mask = np.zeros((32, 48), bool)
    mask[4:12, 10:30] = True
    lm = _SlowLM(["The flag", "search_open", "region", "search_close", " is Peru."],
                 mask_s=0.8, mask=mask)
    search = _Sleeping(0.0)
    ans = Engine(lm, search, DecodeConfig(max_new_tokens=64, deadline_s=0.6)).answer("q", IMAGE)
    assert search.threads == []  # never called
    step = ans.trace.steps[0]
    assert step.skipped.startswith("not started") and step.box == (10, 4, 30, 12)
    assert ans.trace.stop_reason == "deadline" and ans.text == "I don't know."
    assert ans.trace.raw_answer == "The flag"


def test_first_token_deadline_covers_forced_searches():
    from pixsearch.types import Query

    lm = ScriptedLM([" Peru."])
    cfg = DecodeConfig(max_new_tokens=8, max_searches=0, first_token_s=0.4, deadline_s=None,
                       search_timeout_s=None)
    t0 = time.perf_counter()
    ans = Engine(lm, _Sleeping(3.0), cfg).answer(
        "Which country?", IMAGE, forced_queries=[Query("image", image=IMAGE)])
    assert time.perf_counter() - t0 < 1.5
    assert ans.trace.stop_reason == "deadline" and ans.trace.n_generated == 0
    assert ans.text == "I don't know."


def test_no_limits_means_the_search_runs_in_the_callers_thread():
    search = _Sleeping(0.0)
    cfg = DecodeConfig(max_new_tokens=64, deadline_s=None, first_token_s=None,
                       search_timeout_s=None)
    ans, _ = _answer(search, cfg)
    assert ans.text == "The capital is Lima." and search.threads == [threading.current_thread()]
    search = _Sleeping(0.0)
    ans, _ = _answer(search)  # the default limits: a worker thread, same answer
    assert ans.text == "The capital is Lima." and search.threads[0] is not threading.main_thread()
    assert "first_token" in ans.trace.timings


def test_deadline_clock_and_bounded_calls():
    now = [0.0]
    d = Deadline(30.0, 10.0, clock=lambda: now[0])
    assert d.remaining() == 10.0 and d.budget(15.0) == 10.0 and d.expired() is None
    now[0] = 4.0
    d.token()
    assert d.remaining() == 26.0 and d.budget(10.0) == 10.0 and d.budget(None) == 26.0
    now[0] = 31.0
    assert "30 s" in d.expired() and d.budget(10.0) == 0.0
    late = Deadline(None, 1.0, clock=lambda: now[0])
    now[0] += 2
    assert "first-token" in late.expired()
    assert Deadline(None, None).budget(None) is None
    assert call_with_timeout(lambda: 7, 1.0) == 7
    with pytest.raises(ZeroDivisionError):
        call_with_timeout(lambda: 1 / 0, 1.0)
    t0 = time.perf_counter()
    with pytest.raises(CallTimeout):
        call_with_timeout(lambda: time.sleep(5), 0.2)
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("field", ["deadline_s", "first_token_s", "search_timeout_s"])
def test_limits_are_validated(field):
    with pytest.raises(ValueError, match=field):
        DecodeConfig(**{field: 0})
    assert getattr(DecodeConfig(**{field: None}), field) is None
    assert (DecodeConfig().deadline_s, DecodeConfig().first_token_s) == (30.0, 10.0)


def test_parse_hits_and_check_hits():
    assert parse_hits({"hits": [HIT, {**HIT, "entity": "PE", "via": "img-1", "x": 1}]})[1].via \
        == "img-1"
    for body, msg in [(None, "NoneType"), ({"hits": {}}, "dict"), ({"hits": [1]}, "not an object"),
                      ({"hits": [{**HIT, "text": 3}]}, "text"),
                      ({"hits": [{**HIT, "score": True}]}, "finite")]:
        with pytest.raises(SearchError, match=msg):
            parse_hits(body)
    with pytest.raises(SearchError):
        check_hits((Hit("d", "t", 1.0, "x"),))  # a tuple is not the protocol's list


def test_the_real_tiny_model_with_a_dead_server_answers_i_dont_know():
    """The whole path with a real model: its answer is steered into a text search, the
    search server is down, and the predictor answers "I don't know." at once."""
    from scripted import SteeredLM

    from pixsearch.model.build import build_model
    from pixsearch.model.presets import get_preset
    from pixsearch.predictor import Predictor

    model = SteeredLM(build_model(get_preset("tiny")).eval(),
                      ["It is", "search_open", "capital of Peru", "search_close"])
    p = Predictor(model, HTTPSearch(_closed_port_url()), DecodeConfig(max_new_tokens=30))
    ans = p.ask("What is the capital?", IMAGE)
    assert ans.text == "I don't know." and ans.trace.stop_reason == "search_failed"
    assert "unreachable" in ans.trace.steps[0].error
    assert ans.trace.steps[0].query_text == "capital of Peru"
    assert ans.trace.display.endswith("</search>")  # nothing was decoded after the failure
