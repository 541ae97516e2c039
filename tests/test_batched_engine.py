"""The batched engine (continuous batching) against the single-answer engine, on real tiny
models of every backbone and a real knowledge index: the slot KV cache, answers that match
one-at-a-time decoding, a sequence that searches while another finishes, and cancellation
that frees a slot."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from scripted import colour_scene

from pixsearch.decode.batched import BatchedEngine
from pixsearch.decode.batched_request import BatchConfig, RequestCancelled
from pixsearch.decode.config import DecodeConfig
from pixsearch.decode.engine import Engine
from pixsearch.model.batched_decoder import BatchDecoder
from pixsearch.model.build import build_model
from pixsearch.model.presets import get_preset
from pixsearch.types import Query

PRESETS = ["tiny", "llava-tiny", "qwen2.5-vl-tiny", "gemma-tiny"]
QUESTIONS = ["Which country has the flag on the left?", "What is this flag?",
             "Name the capital of the green country.", "Hi"]


class GatedSearch:
    """A real index whose searches of one modality wait until the test opens the gate."""

    def __init__(self, index, modality: str) -> None:
        self.index, self.modality = index, modality
        self.gate, self.waiting = threading.Event(), threading.Event()

    def search(self, query, k: int = 5):
        if query.modality == self.modality:
            self.waiting.set()
            assert self.gate.wait(30), "the test never opened the gate"
        return self.index.search(query, k)


def tiny_model(preset: str):
    torch.manual_seed(0)
    return build_model(get_preset(preset)).eval()


def region_query(image) -> Query:
    mask = np.zeros((image.height, image.width), bool)
    mask[30:70, 20:80] = True  # the green flag of `colour_scene`
    return Query("region", image=image, mask=mask)


@pytest.mark.parametrize("preset", PRESETS)
def test_slot_cache_matches_single_sessions(preset):
    """Prefill through a slot is bit-identical to a single session; a batched decode step
    matches it up to float rounding, and a step of one row is bit-identical."""
    model = tiny_model(preset)
    r, image = model.renderer, colour_scene()
    dec = BatchDecoder(model, max_slots=3)
    pairs = []
    for q, im in [(QUESTIONS[0], image), (QUESTIONS[1], image), (QUESTIONS[3], None)]:
        prompt = r.prompt(q, im is not None)
        single, l1 = model.start(prompt, im)
        batched, l2 = dec.open(prompt, im)
        assert torch.equal(l1, l2)
        pairs.append([single, batched, l1])
    for step in range(6):
        tokens = [int(torch.argmax(p[2])) for p in pairs]
        rows = dec.step([p[1] for p in pairs], tokens)
        for p, t, row in zip(pairs, tokens, rows):
            p[2] = p[0].extend([t])
            torch.testing.assert_close(row, p[2], atol=1e-5, rtol=1e-5)
        if step == 2:  # one sequence gets evidence (prefill at batch 1) while the others wait
            ev = r.information("[1] Greenland: a green flag. Capital: Emerald City.")
            a, b = pairs[1][0].extend(ev), pairs[1][1].extend(ev)
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
            pairs[1][2] = a
    if dec.cache.window is not None:  # the window really hides the start of a sequence
        assert max(len(p[1].ids) for p in pairs) > dec.cache.window
    dec.release(pairs[0][1])  # a hole in the rows: slot 0 is free, slots 1 and 2 go on
    dec.release(pairs[1][1])
    single, batched, logits = pairs[2]
    t = int(torch.argmax(logits))
    row = dec.step([batched], [t])[0]
    assert dec.cache.rows() == 3 and dec.free_slots == 2
    torch.testing.assert_close(row, single.extend([t]), atol=1e-5, rtol=1e-5)
    assert batched.ids == single.ids


def test_a_single_row_batch_is_bit_identical_to_the_single_session():
    model = tiny_model("tiny")
    prompt = model.renderer.prompt(QUESTIONS[0], True)
    dec = BatchDecoder(model, max_slots=2)
    single, l1 = model.start(prompt, colour_scene())
    batched, l2 = dec.open(prompt, colour_scene())
    for _ in range(12):
        t = int(torch.argmax(l1))
        l1, l2 = single.extend([t]), dec.step([batched], [t])[0]
        assert torch.equal(l1, l2)
    torch.testing.assert_close(torch.cat(batched.hidden), torch.cat(single.hidden))


@pytest.mark.parametrize("preset", PRESETS)
def test_batched_answers_equal_single_answers(preset, colour_index):
    """Greedy answers of a batch (free decoding, and forced text / image / region searches
    that step aside and rejoin) are the single-answer engine's, token for token."""
    model = tiny_model(preset)
    image = colour_scene()
    cfg = DecodeConfig(max_new_tokens=20, top_k=2)
    jobs = [(QUESTIONS[0], image, []), (QUESTIONS[1], image, [Query("image", image=image)]),
            (QUESTIONS[2], image, [region_query(image), Query("text", text="green flag")]),
            (QUESTIONS[3], None, [Query("text", text="capital of Redland")])]
    single = Engine(model, colour_index, cfg)
    expected = [single.answer(q, im, f) for q, im, f in jobs]
    with BatchedEngine(model, colour_index, cfg, BatchConfig(max_batch=3)) as engine:
        got = [r.result(60) for r in [engine.submit(q, im, f) for q, im, f in jobs]]
        assert engine.stats["max_rows"] >= 2  # they really shared decode steps
    for a, b in zip(expected, got):
        assert b.text == a.text and b.trace.display == a.trace.display
        assert [(s.modality, s.query_text, [h.doc_id for h in s.hits], s.mask_rle)
                for s in b.trace.steps] == [(s.modality, s.query_text,
                                             [h.doc_id for h in s.hits], s.mask_rle)
                                            for s in a.trace.steps]
        assert b.trace.n_generated == a.trace.n_generated and b.trace.stop_reason == a.trace.stop_reason


def test_events_of_a_batched_request_are_the_single_engines(colour_index):
    model = tiny_model("tiny")
    image, cfg = colour_scene(), DecodeConfig(max_new_tokens=12, top_k=2)
    forced = [Query("text", text="green flag")]
    want = [type(e).__name__ for e in Engine(model, colour_index, cfg).stream(
        QUESTIONS[0], image, forced)]
    with BatchedEngine(model, colour_index, cfg) as engine:
        got = [type(e).__name__ for e in engine.stream(QUESTIONS[0], image, forced)]
    assert got == want and got[-1] == "DoneEvent" and "HitsEvent" in got


def test_one_sequence_searches_while_another_finishes(colour_index):
    """A's search is held at the gate; B decodes and finishes meanwhile; A then rejoins with
    its evidence prefilled and finishes like the single-answer engine would."""
    model = tiny_model("tiny")
    image = colour_scene()
    gated = GatedSearch(colour_index, "text")
    cfg = DecodeConfig(max_new_tokens=16, top_k=2, search_timeout_s=60)
    forced = [Query("text", text="capital of Greenland")]
    with BatchedEngine(model, gated, cfg, BatchConfig(max_batch=2)) as engine:
        a = engine.submit(QUESTIONS[0], image, forced)
        assert gated.waiting.wait(30)
        b = engine.submit(QUESTIONS[1], image)
        b_answer = b.result(60)  # finishes while A waits for its search
        assert not a.finished.is_set() and engine.depth()["searching"] == 1
        gated.gate.set()
        a_answer = a.result(60)
    assert b_answer.trace.steps == [] and b_answer.trace.n_generated > 0
    assert a_answer.trace.steps[0].hits[0].doc_id == "green"
    single = Engine(model, colour_index, cfg).answer(QUESTIONS[0], image, forced)
    assert a_answer.text == single.text and a_answer.trace.display == single.trace.display


def test_a_cancelled_request_frees_its_slot(colour_index):
    """One slot: A holds it (searching), B waits; cancelling A lets B in at once, while A's
    search is still held. A request cancelled while waiting is never computed."""
    model = tiny_model("tiny")
    image = colour_scene()
    gated = GatedSearch(colour_index, "text")
    cfg = DecodeConfig(max_new_tokens=10, top_k=2, search_timeout_s=60)
    with BatchedEngine(model, gated, cfg, BatchConfig(max_batch=1)) as engine:
        a = engine.submit(QUESTIONS[0], image, [Query("text", text="green")])
        assert gated.waiting.wait(30)
        b = engine.submit(QUESTIONS[1], image)
        c = engine.submit(QUESTIONS[2], image)
        assert engine.depth()["waiting"] == 2 and not b.finished.wait(0.5)
        c.cancel()
        with pytest.raises(RequestCancelled):
            c.result(5)
        a.cancel()
        assert b.result(60).trace.n_generated > 0  # B got A's slot...
        assert not gated.gate.is_set()  # ...while A's search is still held
        with pytest.raises(RequestCancelled):
            a.result(5)
        assert engine.stats["sequences"] == 2  # A and B; C never took a slot
        gated.gate.set()
        d = engine.submit(QUESTIONS[3], None)  # the slot is reusable after A's search ends
        assert d.result(60).trace.n_generated > 0
        assert engine.depth() == {"decoding": 0, "searching": 0, "waiting": 0, "slots": 1}


class FailingSearch:
    """A search back-end that is down for text queries."""

    def __init__(self, index) -> None:
        self.index = index

    def search(self, query, k: int = 5):
        if query.modality == "text":
            raise ConnectionError("search server down")
        return self.index.search(query, k)


def test_a_failing_search_fails_only_its_answer(colour_index):
    """As in the single-answer engine: "I don't know." with the reason; the batch goes on."""
    model = tiny_model("tiny")
    image = colour_scene()
    cfg = DecodeConfig(max_new_tokens=8, top_k=2)
    with BatchedEngine(model, FailingSearch(colour_index), cfg) as engine:
        bad = engine.submit(QUESTIONS[0], image, [Query("text", text="green")])
        good = engine.submit(QUESTIONS[1], image, [Query("image", image=image)])
        bad_answer, good_answer = bad.result(60), good.result(60)
    assert bad_answer.trace.stop_reason == "search_failed"
    assert "search server down" in bad_answer.trace.failure
    assert good_answer.trace.failure is None and good_answer.trace.steps[0].hits


def test_models_without_a_batched_cache_are_refused(colour_index):
    from scripted import ScriptedLM

    with pytest.raises(TypeError, match="PixSearchModel"):
        BatchedEngine(ScriptedLM(["Hello"]), colour_index)
