"""The batched engine with the shipped `mini` on the small world: a sequence that writes
`<search><region></search>` mid-answer steps aside (its mask decoded and its retrieval held at a
gate) while another request decodes and finishes; it then rejoins and ends exactly as the
single-answer engine's answer does. Slow: the DINOv2 encoder and several answers."""

from __future__ import annotations

import json

import pytest
from test_batched_engine import GatedSearch

from pixsearch import Predictor
from pixsearch.decode.batched import BatchedEngine
from pixsearch.decode.batched_request import BatchConfig
from pixsearch.images import load_image
from pixsearch.predictor import trained_checkpoint

pytest.importorskip("onnxruntime")


@pytest.mark.slow
def test_a_region_search_mid_answer_steps_aside_while_another_finishes(small_world):
    if trained_checkpoint("mini") is None:
        pytest.skip("no trained mini checkpoint")
    records = [json.loads(x) for x in (small_world / "test.jsonl").read_text().splitlines()]
    predictor = Predictor.load("mini", str(small_world / "index"))
    found = None
    for r in records[:9]:  # the first record whose answer searches a region
        image = load_image(small_world / r["image"])
        single = predictor.ask(r["question"], image)
        if any(s.modality == "region" and s.hits for s in single.trace.steps):
            found = (r, image, single)
            break
    assert found is not None, "mini searched no region in the first records"
    record, image, single = found
    other = records[-1]
    gated = GatedSearch(predictor.search_api, "region")
    engine = BatchedEngine(predictor.model, gated, predictor.decode_config,
                           BatchConfig(max_batch=4))
    with engine:
        a = engine.submit(record["question"], image)
        assert gated.waiting.wait(60)  # A wrote </search>: its mask is decoded, it waits
        assert engine.depth()["searching"] == 1
        b = engine.submit(other["question"], load_image(small_world / other["image"]),
                          max_searches=0)
        b_answer = b.result(120)
        assert not a.finished.is_set() and b_answer.trace.n_generated > 0
        gated.gate.set()
        a_answer = a.result(120)
    assert a_answer.text == single.text and a_answer.trace.display == single.trace.display
    assert [s.mask_rle for s in a_answer.trace.steps] == [s.mask_rle for s in single.trace.steps]
    assert [[h.doc_id for h in s.hits] for s in a_answer.trace.steps] == [
        [h.doc_id for h in s.hits] for s in single.trace.steps]
