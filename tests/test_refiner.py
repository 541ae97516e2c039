"""Coarse-to-fine zoom refinement: windows, frame mapping, the refiner in a session, training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from pixsearch.model.build import build_model
from pixsearch.model.checkpoint import load_checkpoint, save_checkpoint
from pixsearch.model.config import RefinerConfig
from pixsearch.model.presets import get_preset
from pixsearch.model.processors import sam_frame, stretch_frame
from pixsearch.model.refiner import OUTSIDE, keep_touching, paste, to_frame, zoom_box


def _mask(h: int, w: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    out = np.zeros((h, w), dtype=bool)
    out[y0:y1, x0:x1] = True
    return out


def test_zoom_box_grows_the_box_about_its_centre_and_clips_to_the_image():
    cfg = RefinerConfig(context=2.0, min_side=0.0)
    assert zoom_box(_mask(100, 200, 90, 40, 110, 50), cfg) == (80, 35, 120, 55)
    # at the border the window is cut by the image
    assert zoom_box(_mask(100, 200, 0, 0, 20, 10), cfg) == (0, 0, 30, 15)
    # a speck still gets min_side of the image around it
    x0, y0, x1, y1 = zoom_box(_mask(100, 200, 100, 50, 101, 51), RefinerConfig(min_side=0.25))
    assert (x1 - x0, y1 - y0) == (50, 25)
    with pytest.raises(ValueError, match="empty"):
        zoom_box(np.zeros((10, 10), dtype=bool), cfg)


def test_zoom_box_jitter_is_seeded_and_keeps_the_window_in_the_image():
    cfg, mask = RefinerConfig(), _mask(100, 200, 60, 30, 90, 60)
    boxes = [zoom_box(mask, cfg, 0.3, np.random.default_rng(s)) for s in (0, 0, 1)]
    assert boxes[0] == boxes[1] != boxes[2]
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= 200 and 0 <= y0 < y1 <= 100


@pytest.mark.parametrize("frame", [stretch_frame(30, 20), sam_frame(30, 20, 64)])
def test_to_frame_is_the_inverse_of_to_original(frame):
    logits = torch.full((20, 30), -5.0)
    logits[5:15, 10:20] = 5.0
    framed = to_frame(frame, logits, 64)
    assert framed.shape == (1, 1, 64, 64)
    back = frame.to_original(framed)[0, 0]
    assert torch.equal(back > 0, logits > 0)
    if not frame.is_stretch:  # SAM's padding is outside everything
        assert float(framed[0, 0, -1, -1]) == OUTSIDE


def test_paste_puts_the_window_back_and_keep_touching_drops_other_entities():
    full = paste(torch.ones(4, 6), (2, 3, 8, 7), 10, 9)
    assert full.shape == (9, 10) and (full > 0).sum() == 24 and float(full[0, 0]) == OUTSIDE
    refined = _mask(20, 20, 2, 2, 6, 6) | _mask(20, 20, 12, 12, 16, 16)
    coarse = _mask(20, 20, 3, 3, 5, 5)
    assert np.array_equal(keep_touching(refined, coarse), _mask(20, 20, 2, 2, 6, 6))
    # the refiner lost the entity: the coarse mask stays
    assert np.array_equal(keep_touching(np.zeros((20, 20), bool), coarse), coarse)
    assert np.array_equal(keep_touching(_mask(20, 20, 12, 12, 16, 16), coarse), coarse)


def test_a_session_of_a_model_with_a_refiner_zooms_into_its_region_mask(tmp_path):
    cfg = get_preset("tiny", {"referent": {"enabled": True, "min_area": 0.0},
                              "refiner": {"enabled": True}})
    model = build_model(cfg).eval()
    assert model.refiner is not None and model.refiner.features is not None
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8))
    coarse = torch.full((48, 64), -4.0)
    coarse[10:20, 30:40] = 4.0
    span = torch.randn(1, model.backbone.model.get_input_embeddings().weight.shape[1])
    refined = model.refine_region(image, coarse, span)
    assert refined.shape == (48, 64) and refined.dtype == bool
    # whatever the refiner segments, it is the part of it that touches the coarse mask
    assert refined.any() and (refined & (coarse > 0).numpy()).any()
    # the refiner's weights go into the checkpoint and come back
    out = save_checkpoint(model, tmp_path / "m")
    again = load_checkpoint(out)
    assert again.cfg.refiner.enabled
    for name, p in model.refiner.state_dict().items():
        assert torch.equal(p, again.refiner.state_dict()[name]), name
    # no refiner: the model is as before
    assert build_model(get_preset("tiny")).refiner is None


def test_refiner_training_on_small_world_changes_only_the_refiner(small_world, tmp_path):
    from pixsearch.train.referent import ReferentTrainConfig, ReferentTrainer
    from pixsearch.train.refiner import RefinerTrainConfig, RefinerTrainer

    base_dir = save_checkpoint(build_model(get_preset("tiny")), tmp_path / "base")
    cache = str(tmp_path / "cache")
    ref = ReferentTrainConfig(model=str(base_dir), world=str(small_world),
                              out=str(tmp_path / "ref"), selector_samples=16, val_samples=8,
                              selector_epochs=1, selector_batch=4, num_threads=1,
                              referent={"min_area": 0.0}, cache=cache)
    ref_dir = ReferentTrainer(ref, load_checkpoint(base_dir)).run()
    # an untrained tiny decoder's masks are specks: make the cached span masks the gold ones
    # (as a trained model's are, nearly), so that every expression has a coarse mask
    for path in (tmp_path / "cache").glob("spans-*.pt"):
        exprs = torch.load(path)
        for e in exprs:
            e["span_logits"] = (e["gold"].float() * 10 - 5).half()
        torch.save(exprs, path)
    cfg = RefinerTrainConfig(model=str(ref_dir), world=str(small_world),
                             out=str(tmp_path / "zoom"), samples=16, val_samples=8, epochs=1,
                             batch=4, min_iou=0.0, cache=cache, num_threads=1)
    trainer = RefinerTrainer(cfg, load_checkpoint(ref_dir))
    start = {k: v.clone() for k, v in trainer.model.refiner.state_dict().items()}
    out = trainer.run()
    report = json.loads((out / "refiner_report.json").read_text())
    assert report["train_samples"] > 0 and report["val"]["n"] > 0
    assert 0.0 <= report["val"]["right_after"] <= 1.0
    model = load_checkpoint(out)
    assert model.cfg.refiner.enabled and model.refiner is not None
    assert any(not torch.equal(p, start[k]) for k, p in model.refiner.state_dict().items())
    # everything else is the referent model's, bit for bit
    base = load_checkpoint(ref_dir)
    for name, p in base.state_dict().items():
        assert torch.equal(p, model.state_dict()[name]), name
    # the referent recipe's cache (keyed by the frozen weights) served the refiner's run
    assert len(list((tmp_path / "cache").glob("spans-*.pt"))) == 2


def test_refiner_needs_a_model_with_referent_selection(small_world, tmp_path):
    from pixsearch.train.refiner import RefinerTrainConfig, RefinerTrainer

    cfg = RefinerTrainConfig(model="tiny", world=str(small_world), out=str(tmp_path / "z"))
    with pytest.raises(ValueError, match="referent"):
        RefinerTrainer(cfg, build_model(get_preset("tiny")))
