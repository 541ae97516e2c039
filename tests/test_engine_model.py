"""The engine end to end on real (untrained) models and a real knowledge index: the KV cache,
evidence prefill and the model's own region mask, for `tiny` and `mini`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scripted import SteeredLM

from pixsearch.decode.config import DecodeConfig
from pixsearch.decode.engine import Engine
from pixsearch.model.build import build_model
from pixsearch.model.presets import get_preset
from pixsearch.retrieval.index import IndexConfig, KnowledgeIndex
from pixsearch.types import Document, KBImage

COLOURS = {"red": (220, 30, 30), "green": (30, 160, 60), "blue": (30, 60, 200)}


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> KnowledgeIndex:
    root = tmp_path_factory.mktemp("kb")
    docs, images = [], []
    for name, rgb in COLOURS.items():
        docs.append(Document(id=name, title=f"{name.title()}land",
                             text=f"{name.title()}land has a plain {name} flag. Its capital is "
                                  f"{name.title()}ville.", entity=name, kind="card"))
        Image.new("RGB", (64, 48), rgb).save(root / f"{name}.png")
        images.append(KBImage(id=f"img-{name}", path=f"{name}.png", doc_id=name))
    cfg = IndexConfig(image_embedder="thumbnail-16x12")
    return KnowledgeIndex.build(docs, images, root, root / "index", cfg)


def scene() -> Image.Image:
    img = np.full((120, 160, 3), 200, dtype=np.uint8)
    img[30:70, 20:80] = COLOURS["green"]
    return Image.fromarray(img)


@pytest.mark.parametrize("preset", ["tiny", "mini"])
def test_region_search_end_to_end(preset, index):
    torch.manual_seed(0)
    model = build_model(get_preset(preset)).eval()
    lm = SteeredLM(model, ["The flag on the left", "search_open", "region", "search_close",
                           " is", "search_open", "capital of Greenland", "search_close"])
    cfg = DecodeConfig(max_new_tokens=len(lm.script) + 4, top_k=2)
    ans = Engine(lm, index, cfg).answer("Which flag is on the left?", scene())
    steps = [s for s in ans.trace.steps if not s.skipped]
    assert [s.modality for s in steps][:2] == ["region", "text"]
    region = steps[0]
    assert region.mask_rle["size"] == [120, 160]
    assert ans.masks[0].shape == (120, 160) and ans.masks[0].dtype == bool
    assert len(region.hits) >= 1 and region.evidence.startswith("[1]")
    assert steps[1].hits[0].doc_id == "green"  # the text search really ran
    assert ans.trace.n_forced > 0


@pytest.mark.parametrize("preset", ["tiny", "mini"])
def test_kv_continuation_equals_full_recompute(preset):
    """Logits after prefill + extend(generated) + extend(evidence) equal one full pass."""
    torch.manual_seed(0)
    model = build_model(get_preset(preset)).eval()
    r = model.renderer
    prompt = r.prompt("What is this flag?")
    gen = r.text_ids("The flag") + [model.tokens.id("search_open"), model.tokens.id("region"),
                                    model.tokens.id("search_close")]
    ev = r.information("[1] Peru: red white red")
    image = scene()
    session, _ = model.start(prompt, image)
    for t in gen:
        session.extend([t])
    cont = session.extend(ev)
    full_prompt = type(prompt)(**{**prompt.__dict__, "input_ids": prompt.input_ids + gen + ev})
    _, full = model.start(full_prompt, image)
    torch.testing.assert_close(cont, full, atol=1e-4, rtol=1e-4)
