"""Image encoding of the batched engine (`decode/image_batcher.py`): images of requests that
wait together are encoded in one call, their features are those of one-at-a-time encoding,
one bad image fails only its own request, and (slow, shipped `mini`) answers decoded with
group-encoded images are exactly the single-answer engine's."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch
from scripted import colour_scene

from pixsearch.decode.image_batcher import ImageBatcher
from pixsearch.model.build import build_model
from pixsearch.model.presets import get_preset


def _scenes(n: int):
    rng = np.random.default_rng(0)
    from PIL import Image

    return [Image.fromarray(rng.integers(0, 256, (80 + 16 * i, 120, 3), dtype=np.uint8))
            for i in range(n)]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model(get_preset("tiny")).eval()


def test_images_submitted_while_the_encoder_is_busy_share_one_group(tiny):
    """The first image holds the encoding thread; the four that arrive meanwhile are encoded
    as one group, and every image's features equal `model.preprocess` of it alone."""
    batcher = ImageBatcher(tiny, max_group=4)
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        assert release.wait(30)

    images = [colour_scene(), *_scenes(4)]
    try:
        futures = [batcher.submit(images[0], on_start=hold)]
        assert started.wait(30)
        futures += [batcher.submit(im) for im in images[1:]]
        release.set()
        features = [f.result(30) for f in futures]
    finally:
        batcher.close()
    assert batcher.stats == {"groups": 2, "images": 5}
    for im, got in zip(images, features):
        want = tiny.preprocess(im)
        assert got.keys() == want.keys()
        assert all(torch.equal(got[k], want[k]) for k in want)


def test_a_bad_image_fails_alone_and_a_skipped_one_is_not_encoded(tiny):
    batcher = ImageBatcher(tiny, max_group=8)
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        assert release.wait(30)

    good = _scenes(2)
    try:
        first = batcher.submit(good[0], on_start=hold)
        assert started.wait(30)
        bad = batcher.submit("not an image")  # type: ignore[arg-type]
        skipped = batcher.submit(good[1], skip=lambda: True)
        second = batcher.submit(good[1])
        release.set()
        assert first.result(30) is not None and second.result(30) is not None
        assert skipped.result(30) is None
        with pytest.raises(AttributeError):
            bad.result(30)
    finally:
        batcher.close()
    assert torch.equal(second.result()["vision"], tiny.preprocess(good[1])["vision"])


def test_dinov2_tokens_of_a_group_match_one_at_a_time():
    """DINOv2's ONNX graph takes a batch dimension; each image's tokens in a group are those
    it gets alone (equal here; asserted within float tolerance, which is all ONNX Runtime
    promises across batch sizes)."""
    pytest.importorskip("onnxruntime")
    from pixsearch.encoders.dinov2 import dinov2_encoder

    enc = dinov2_encoder(num_threads=1)
    options = enc.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    images = [colour_scene(), *_scenes(3)]
    alone = np.concatenate([enc.tokens([im]) for im in images])
    together = enc.tokens(images)
    assert together.shape == (4, 257, 384)
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_mini_answers_with_group_encoded_images_equal_single_answers(small_world):
    """Six image questions submitted at once to the batched engine (so their images are
    encoded in groups) get exactly the single-answer engine's answers: text, display, masks
    and hits."""
    pytest.importorskip("onnxruntime")
    from pixsearch import Predictor
    from pixsearch.decode.batched import BatchedEngine
    from pixsearch.decode.batched_request import BatchConfig
    from pixsearch.images import load_image
    from pixsearch.predictor import trained_checkpoint

    if trained_checkpoint("mini") is None:
        pytest.skip("no trained mini checkpoint")
    records = [json.loads(x) for x in (small_world / "test.jsonl").read_text().splitlines()][:6]
    predictor = Predictor.load("mini", str(small_world / "index"))
    asks = [(r["question"], load_image(small_world / r["image"])) for r in records]
    singles = [predictor.ask(q, im) for q, im in asks]
    engine = BatchedEngine(predictor.model, predictor.search_api, predictor.decode_config,
                           BatchConfig(max_batch=6, encode_group=3))
    with engine:
        answers = [r.result(300) for r in [engine.submit(q, im) for q, im in asks]]
        stats = dict(engine.images.stats)
    assert stats["images"] == 6 and stats["groups"] < 6  # some images shared a group
    for single, batched in zip(singles, answers):
        assert batched.text == single.text
        assert batched.trace.display == single.trace.display
        assert [s.mask_rle for s in batched.trace.steps] == [s.mask_rle for s in single.trace.steps]
        assert [[h.doc_id for h in s.hits] for s in batched.trace.steps] == [
            [h.doc_id for h in s.hits] for s in single.trace.steps]
