"""The perception line (`pixsearch/perception.py`): what a region mask shows, written the same
way into gold trajectories and into the evidence the engine injects."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scripted import ScriptedLM
from test_engine import RecordingSearch

from pixsearch.decode.config import DecodeConfig
from pixsearch.decode.engine import Engine
from pixsearch.perception import RegionView, instance_masks, region_view
from pixsearch.retrieval.evidence import EvidenceConfig
from pixsearch.types import Hit

RED, BLUE, WHITE = (0.85, 0.1, 0.1), (0.1, 0.2, 0.8), (0.97, 0.97, 0.97)


def scene() -> tuple[np.ndarray, list[np.ndarray]]:
    """A grey 60 × 120 image with three flags, left to right: red/white (red larger), blue,
    white; and their masks."""
    rgb = np.full((60, 120, 3), 0.5, np.float32)
    boxes = [(10, 40, 5, 35), (10, 40, 45, 75), (10, 40, 85, 115)]
    masks = []
    for y0, y1, x0, x1 in boxes:
        m = np.zeros((60, 120), bool)
        m[y0:y1, x0:x1] = True
        masks.append(m)
    rgb[10:40, 5:35] = RED
    rgb[30:40, 5:35] = WHITE  # a third of the first flag is white
    rgb[10:40, 45:75] = BLUE
    rgb[10:40, 85:115] = WHITE
    return rgb, masks


def test_region_view_names_colours_and_counts_instances():
    rgb, masks = scene()
    first = region_view(masks[0], rgb, masks)
    assert [c for c, _ in first.colours] == ["red", "white"]
    assert first.colours[0][1] == pytest.approx(2 / 3, abs=0.01)
    assert (first.total, first.left) == (3, 0)
    assert first.text() == "[0] Seen: mostly red, then white; 3 like it in the image, 0 left of it."
    last = region_view(masks[2], rgb, masks)
    assert (last.total, last.left) == (3, 2) and last.colours[0][0] == "white"
    # the instances may leave the region's own mask out: it still counts once
    assert region_view(masks[1], rgb, [masks[0], masks[2]]) == region_view(masks[1], rgb, masks)
    # without instances the line names the colours only
    alone = region_view(masks[1], rgb, None)
    assert alone.total is None and alone.text() == "[0] Seen: mostly blue."


def test_region_view_counts_entity_centres_as_it_counts_instances():
    """Centres (the proposer's heatmap peaks) give the line the masks give: one inside the
    region is its own, however many of them fall there."""
    rgb, masks = scene()
    centres = np.array([[20.0, 25.0], [60.0, 25.0], [100.0, 25.0]])
    for mask in masks:
        assert region_view(mask, rgb, None, centres) == region_view(mask, rgb, masks)
    # two peaks on the first flag: as the region they are its own, seen from elsewhere they
    # count twice; the region itself counts once though no peak lies on it
    doubled = np.array([[15.0, 20.0], [25.0, 30.0], [100.0, 25.0]])
    assert (region_view(masks[0], rgb, None, doubled).total,
            region_view(masks[1], rgb, None, doubled).total) == (2, 4)
    view = region_view(masks[2], rgb, None, doubled)
    assert (view.total, view.left) == (3, 2)
    with pytest.raises(ValueError, match="not both"):
        region_view(masks[0], rgb, masks, centres)


def test_region_view_of_an_empty_mask_and_of_a_mismatched_image():
    rgb, masks = scene()
    assert region_view(np.zeros((60, 120), bool), rgb, masks).text() == "[0] Seen: nothing."
    with pytest.raises(ValueError, match="differ in size"):
        region_view(masks[0], rgb[:30], masks)


def test_instance_masks_cut_touching_entities_apart():
    prob = np.zeros((256, 256), np.float32)
    prob[40:120, 20:100] = 0.9  # two flags that touch: one component
    prob[60:140, 98:178] = 0.8
    prob[200:203, 200:203] = 0.9  # a speck below the minimum area
    pieces = instance_masks(prob)
    assert len(pieces) == 2
    assert sorted(int(p.sum()) > 5000 for p in pieces) == [True, True]


def test_evidence_opens_with_the_line_only_when_the_budget_says_so():
    hits = [Hit(doc_id="a", title="Peru", score=0.9, text="Capital: Lima.")]
    line = RegionView((("red", 0.6),), 2, 1).text()
    assert EvidenceConfig().format(hits, line).text == "[1] Peru: Capital: Lima."
    on = EvidenceConfig(perception=True).format(hits, line)
    assert on.text == f"{line}\n[1] Peru: Capital: Lima." and on.hits == hits
    assert EvidenceConfig(perception=True).format(hits, None).text == "[1] Peru: Capital: Lima."
    # the decode config's overrides keep the model's perception switch
    assert DecodeConfig(top_k=5).evidence(EvidenceConfig(perception=True)).perception


class CountingLM(ScriptedLM):
    """A scripted model trained with the perception line, whose sessions tell instances."""

    def __init__(self, script, mask, instances):
        super().__init__(script, mask=mask)
        self.cfg = type("Cfg", (), {"evidence": EvidenceConfig(perception=True)})()
        self.instances = instances

    def start(self, prompt, image):
        session, logits = super().start(prompt, image)
        session.instances = lambda: self.instances
        return session, logits


def test_engine_injects_what_the_models_mask_shows():
    rgb, masks = scene()
    image = Image.fromarray((rgb * 255).astype(np.uint8))
    lm = CountingLM(["The blue flag", "search_open", "region", "search_close", " is blue."],
                    masks[1], masks)
    ans = Engine(lm, RecordingSearch(), DecodeConfig(max_new_tokens=64)).answer("?", image)
    evidence = ans.trace.steps[0].evidence
    assert evidence.startswith("[0] Seen: mostly blue; 3 like it in the image, 1 left of it.\n")
    assert lm.renderer.information(evidence) in lm.sessions[0].extend_calls
