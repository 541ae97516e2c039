"""Decode-time abstention: the engine records the answer's log-probabilities, scores the trace
with the policy saved in the model's config (never a hard-coded threshold), and replaces a
low-confidence answer by "I don't know." while keeping the model's words in the trace."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pixsearch.abstention import AbstentionConfig
from pixsearch.decode.config import DecodeConfig
from pixsearch.decode.engine import Engine
from pixsearch.model.build import build_model
from pixsearch.model.checkpoint import load_checkpoint, save_checkpoint
from pixsearch.model.presets import get_preset
from pixsearch.types import Hit, Query

QUESTION = "What is the capital of Peru?"


class OneHit:
    def search(self, query, k: int) -> list[Hit]:
        return [Hit("PE:capital", "Peru", 0.8, "The capital of Peru is Lima.", "PE")]


def _policy(threshold: float) -> AbstentionConfig:
    # p_correct = sigmoid(-2 + 4 * searched): 0.88 after a search, 0.12 without one
    return AbstentionConfig(enabled=True, threshold=threshold, weights={"searched": 4.0},
                            bias=-2.0, fitted_on="unit test")


@pytest.fixture(scope="module")
def tiny():
    model = build_model(get_preset("tiny")).eval()
    return model


def _answer(model, cfg: DecodeConfig | None = None, **overrides):
    cfg = cfg or DecodeConfig(max_new_tokens=8)
    return Engine(model, OneHit(), cfg).answer(
        QUESTION, None, [Query("text", text="capital of Peru")], **overrides)


def test_answer_logprobs_are_recorded_after_the_evidence(tiny):
    ans = _answer(tiny)
    lp = ans.trace.lm_logprobs
    assert 0 < len(lp) <= ans.trace.n_generated and all(x <= 0 for x in lp)
    assert ans.trace.p_correct is None and not ans.trace.abstained  # no calibration: no score


def test_threshold_comes_from_the_models_config(tiny, tmp_path):
    model = tiny
    model.cfg = dataclasses.replace(model.cfg, abstention=_policy(0.95))
    try:
        low = _answer(model)
        assert low.text == "I don't know." and low.trace.abstained
        assert low.trace.p_correct == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item())
        assert low.trace.abstain_threshold == 0.95 and low.trace.raw_answer is not None
        # the same policy survives a checkpoint round trip and decides the same way
        save_checkpoint(model, tmp_path / "ckpt")
        loaded = load_checkpoint(tmp_path / "ckpt").eval()
        assert loaded.cfg.abstention == model.cfg.abstention
        assert _answer(loaded).trace.abstained
        # a lower saved threshold keeps the answer: nothing in the engine is hard-coded
        model.cfg = dataclasses.replace(model.cfg, abstention=_policy(0.5))
        kept = _answer(model)
        assert not kept.trace.abstained and kept.text != "I don't know."
        assert kept.text == low.trace.raw_answer
    finally:
        model.cfg = dataclasses.replace(model.cfg, abstention=AbstentionConfig())


def test_decode_config_switches_and_moves_the_threshold(tiny):
    model = tiny
    model.cfg = dataclasses.replace(model.cfg, abstention=_policy(0.95))
    try:
        assert not _answer(model, abstain=False).trace.abstained
        assert not _answer(model, abstain_threshold=0.5).trace.abstained
        assert _answer(model, DecodeConfig(max_new_tokens=8, abstain_threshold=0.9)).trace.abstained
    finally:
        model.cfg = dataclasses.replace(model.cfg, abstention=AbstentionConfig())


def test_abstaining_without_calibration_is_a_clear_error(tiny):
    with pytest.raises(ValueError, match="calibrate"):
        _answer(tiny, abstain=True)
    with pytest.raises(ValueError, match="abstain_threshold"):
        DecodeConfig(abstain_threshold=2.0)
