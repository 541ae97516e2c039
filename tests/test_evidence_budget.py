"""One evidence budget (`EvidenceConfig`): the world records it, training copies it into the
model's config, the checkpoint keeps it, and decoding uses it unless `DecodeConfig` overrides
it (issue #11, point 2)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixsearch.config import load
from pixsearch.data.records import Record, write_records
from pixsearch.decode.config import DecodeConfig
from pixsearch.decode.engine import Engine
from pixsearch.masks import mask_to_rle
from pixsearch.model.build import build_model
from pixsearch.model.checkpoint import load_checkpoint, save_checkpoint
from pixsearch.model.config import ModelConfig
from pixsearch.model.presets import get_preset
from pixsearch.retrieval.evidence import EvidenceConfig
from pixsearch.train.data import world_evidence
from pixsearch.train.reading import reading_samples
from pixsearch.turns import Information
from pixsearch.types import Hit, Query

LONG = ("Peru is a country in western South America whose capital and largest city is Lima, "
        "on the Pacific coast.")


class CountingSearch:
    """A search API double: remembers each k, returns k long hits."""

    def __init__(self) -> None:
        self.ks: list[int] = []

    def search(self, query, k: int) -> list[Hit]:
        self.ks.append(k)
        return [Hit(f"d{i}", f"Doc {i}", 1.0 - i / 10, LONG) for i in range(k)]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = build_model(get_preset("tiny")).eval()
    model.cfg.evidence = EvidenceConfig(top_k=2, max_words=5)
    return model


def _evidence(model, cfg: DecodeConfig, **overrides) -> tuple[str, list[int]]:
    """Evidence of one forced text search, and the k the search API was asked for."""
    search = CountingSearch()
    ans = Engine(model, search, cfg).answer(
        "What is the capital of Peru?", None, [Query("text", text="capital of Peru")],
        **overrides)
    step = ans.trace.steps[0]
    assert f"<information>{step.evidence}</information>" in ans.trace.display
    return step.evidence, search.ks


def test_decoding_uses_the_models_saved_budget(tiny):
    evidence, ks = _evidence(tiny, DecodeConfig(max_new_tokens=1))
    assert ks == [2]
    assert 2 <= len(evidence.split()) <= 5 and evidence.endswith("…")


def test_an_explicit_decode_budget_wins(tiny):
    evidence, ks = _evidence(tiny, DecodeConfig(max_new_tokens=1, top_k=1,
                                                evidence_max_words=12))
    assert ks == [1] and 5 < len(evidence.split()) <= 12
    evidence, ks = _evidence(tiny, DecodeConfig(max_new_tokens=1), evidence_max_words=9)
    assert ks == [2] and 5 < len(evidence.split()) <= 9  # a per-call override, top_k saved


def test_decode_config_resolves_and_parses_the_overrides():
    saved = EvidenceConfig(top_k=2, max_words=5)
    assert DecodeConfig().evidence(saved) == saved
    assert DecodeConfig(top_k=4).evidence(saved) == EvidenceConfig(4, 5)
    cfg = load(DecodeConfig, overrides=["top_k=4", "evidence_max_words=60"])
    assert (cfg.top_k, cfg.evidence_max_words) == (4, 60)
    with pytest.raises(ValueError):
        DecodeConfig(evidence_max_words=0)


def test_checkpoint_round_trip_keeps_the_budget(tiny, tmp_path):
    loaded = load_checkpoint(save_checkpoint(tiny, tmp_path / "ckpt"))
    assert loaded.cfg.evidence == EvidenceConfig(top_k=2, max_words=5)
    assert _evidence(loaded.eval(), DecodeConfig(max_new_tokens=1)) == _evidence(
        tiny, DecodeConfig(max_new_tokens=1))


def test_a_config_saved_without_a_budget_loads_the_shipped_default():
    import pixsearch
    from pixsearch.model.checkpoint import CONFIG

    shipped = json.loads((Path(pixsearch.__file__).parent / "weights" / "mini" / CONFIG
                          ).read_text())
    shipped.pop("evidence", None)  # as configs written before the budget was saved
    assert ModelConfig.from_dict(shipped).evidence == EvidenceConfig(top_k=3, max_words=70)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A one-scene world in the benchmark format whose world.json sets a small budget."""
    root = tmp_path_factory.mktemp("world")
    (root / "images").mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
                    ).save(root / "images" / "s.jpg")
    mask = np.zeros((48, 64), bool)
    mask[10:30, 5:25] = True
    ents = [{"code": "PE", "name": "Peru", "kind": "flag", "box": [5, 10, 25, 30],
             "refexp": "the flag", "refexps": ["the flag"], "in_kb": True}]
    for split in ("train", "val"):
        write_records(root / f"{split}.jsonl", [Record(
            id=f"{split}-0", image="images/s.jpg", question="How many flags are there?",
            answer="1", question_type="counting", needs_search=False, split=split,
            entities=ents, masks=[mask_to_rle(mask)], trajectory="There is 1 flag.")])
    (root / "kb").mkdir()
    docs = [dict(id="PE:card", title="Peru", text=LONG, entity="PE", kind="card")] + [
        dict(id=f"PE:{f}", title=f"Peru — {f}", text=f"The {f} of Peru is {v}.", entity="PE",
             kind="passage") for f, v in (("capital", "Lima"), ("currency", "the Sol"),
                                          ("area", "1,285,216 square kilometres"))]
    (root / "kb" / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "world.json").write_text(json.dumps(
        {"config": {"evidence": {"top_k": 2, "max_words": 12}}}))
    return root


def test_world_evidence_reads_new_and_old_world_files(world, tmp_path):
    assert world_evidence(world) == EvidenceConfig(top_k=2, max_words=12)
    (tmp_path / "world.json").write_text(json.dumps({"config": {"top_k": 4,
                                                                "evidence_words": 50}}))
    assert world_evidence(tmp_path) == EvidenceConfig(top_k=4, max_words=50)
    assert world_evidence(tmp_path / "nowhere") is None


def test_reading_samples_keep_the_budget_and_the_answer(world):
    from pixsearch.data.records import read_records

    budget = EvidenceConfig(top_k=2, max_words=12)
    samples = reading_samples(world, read_records(world / "train.jsonl"), budget, passes=3)
    assert len(samples) == 3 * 3
    evidence = []
    for s in samples:
        info = next(p for p in s.parts if isinstance(p, Information))
        assert len(info.evidence.split()) <= 12
        answer = s.display.rsplit("</information> ", 1)[1]
        assert answer in info.evidence  # the copied sentence is always in the evidence
        evidence.append(info.evidence)
    # the budget did cut: the long card is cut short or left out
    assert any(e.endswith("…") or "[2]" not in e for e in evidence)
    unlimited = reading_samples(world, read_records(world / "train.jsonl"),
                                EvidenceConfig(2, 1000), passes=3)
    assert all("[2]" in s.display and "…" not in s.display for s in unlimited)


def test_training_takes_the_worlds_budget_into_the_model(world, tmp_path):
    from pixsearch.train.config import TrainConfig
    from pixsearch.train.trainer import Trainer

    cfg = load(TrainConfig, "configs/train/tiny_smoke.yaml",
               [f"world={world}", f"out={tmp_path / 'run'}", f"feature_cache={tmp_path}/cache"])
    cfg = dataclasses.replace(cfg, stages=cfg.stages[:1])  # stage 0: reading samples only
    final = Trainer(cfg).run()
    assert load_checkpoint(final).cfg.evidence == EvidenceConfig(top_k=2, max_words=12)


def test_training_from_a_calibrated_checkpoint_drops_its_abstention_policy(world, tmp_path):
    """A policy is fitted to the weights it was calibrated on: new weights start without one."""
    from pixsearch.abstention import AbstentionConfig
    from pixsearch.train.config import TrainConfig
    from pixsearch.train.trainer import Trainer

    init = build_model(get_preset("tiny"))
    init.cfg = dataclasses.replace(init.cfg, abstention=AbstentionConfig(
        enabled=True, threshold=0.4, weights={"searched": 1.0}))
    save_checkpoint(init, tmp_path / "init")
    cfg = load(TrainConfig, "configs/train/tiny_smoke.yaml",
               [f"world={world}", f"out={tmp_path / 'run'}", f"feature_cache={tmp_path}/cache",
                f"init_from={tmp_path / 'init'}"])
    cfg = dataclasses.replace(cfg, stages=cfg.stages[:1])
    final = Trainer(cfg).run()
    assert load_checkpoint(final).cfg.abstention == AbstentionConfig()
