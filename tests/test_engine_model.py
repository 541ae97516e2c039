"""The engine end to end on real (untrained) models and a real knowledge index: the KV cache,
evidence prefill and the model's own region mask, for `tiny` and `mini`."""

from __future__ import annotations

import pytest
import torch
from scripted import SteeredLM, colour_scene

from pixsearch.decode.config import DecodeConfig
from pixsearch.decode.engine import Engine
from pixsearch.model.build import build_model
from pixsearch.model.presets import get_preset
from pixsearch.retrieval.index import KnowledgeIndex


@pytest.mark.parametrize("preset", ["tiny", "mini"])
def test_region_search_end_to_end(preset, colour_index: KnowledgeIndex):
    torch.manual_seed(0)
    model = build_model(get_preset(preset)).eval()
    lm = SteeredLM(model, ["The flag on the left", "search_open", "region", "search_close",
                           " is", "search_open", "capital of Greenland", "search_close"])
    cfg = DecodeConfig(max_new_tokens=len(lm.script) + 4, top_k=2)
    ans = Engine(lm, colour_index, cfg).answer("Which flag is on the left?", colour_scene())
    steps = [s for s in ans.trace.steps if not s.skipped]
    assert [s.modality for s in steps][:2] == ["region", "text"]
    region = steps[0]
    assert region.mask_rle["size"] == [120, 160]
    assert ans.masks[0].shape == (120, 160) and ans.masks[0].dtype == bool
    assert len(region.hits) >= 1 and region.evidence.startswith("[1]")
    assert 0.0 <= region.mask_score <= 1.0 and steps[1].mask_score is None
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
    image = colour_scene()
    session, _ = model.start(prompt, image)
    for t in gen:
        session.extend([t])
    cont = session.extend(ev)
    full_prompt = type(prompt)(**{**prompt.__dict__, "input_ids": prompt.input_ids + gen + ev})
    _, full = model.start(full_prompt, image)
    torch.testing.assert_close(cont, full, atol=1e-4, rtol=1e-4)


def test_region_search_opening_the_answer_reads_the_question(colour_index: KnowledgeIndex):
    """`<search><region>` as the very first tokens: the span comes from the question."""
    torch.manual_seed(0)
    model = build_model(get_preset("tiny")).eval()
    lm = SteeredLM(model, ["search_open", "region", "search_close"])
    ans = Engine(lm, colour_index, DecodeConfig(max_new_tokens=5)).answer(
        "Which country has the flag on the left?", colour_scene())
    assert ans.trace.steps[0].modality == "region" and ans.masks[0].shape == (120, 160)
