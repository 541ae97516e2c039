"""The training feature cache gives a batch the inputs the model's own preprocessing gives at
inference: for a SAM-vision preset, SAM's longest-side-resized, padded frame (where
`model/batch.py` puts the mask targets), not a stretched square."""

import numpy as np
import torch
from PIL import Image

from pixsearch.images import load_image
from pixsearch.model.build import build_model
from pixsearch.model.presets import get_preset
from pixsearch.train.features import FeatureCache


def test_cached_training_inputs_match_model_preprocessing(tmp_path):
    torch.manual_seed(0)
    model = build_model(get_preset("llava-tiny")).eval()
    assert model.mask_decoder.vision_encoder is not None  # SAM's own image encoder
    rng = np.random.default_rng(0)
    # a wide image: stretching it to a square and padding it give different SAM inputs
    pixels = rng.integers(30, 255, (40, 100, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "wide.png")

    cache = FeatureCache(model, tmp_path, tmp_path / "cache", progress=False)
    assert cache.precompute(["wide.png"]) == 1
    got = cache.get("wide.png")
    want = model.preprocess(load_image(tmp_path / "wide.png"))

    assert got.keys() == want.keys()
    assert torch.equal(got["sam"], want["sam"])
    # the image fills SAM's frame left to right and the rows below it are padding
    side = model.mask_decoder.sam_image_size
    filled = round(side * 40 / 100)
    assert got["sam"].shape == (3, side, side)
    assert got["sam"][:, filled + 1:].abs().sum() == 0
    assert got["sam"][:, : filled - 1].abs().sum() > 0
    # the cached backbone inputs are stored in float16: equal up to that rounding
    for k in want.keys() - {"sam"}:
        torch.testing.assert_close(got[k], want[k].float(), atol=1e-2, rtol=1e-2)

    # a second cache over the same file reads the features back instead of recomputing them
    again = FeatureCache(model, tmp_path, tmp_path / "cache", progress=False)
    assert again.precompute(["wide.png"]) == 0
    assert torch.equal(again.get("wide.png")["sam"], want["sam"])
