"""The abstention policy's own regression for answers read off a perception line (a count the
model saw), on hand-written traces and outcomes (no model)."""

from __future__ import annotations

import pytest

from pixsearch.abstention import (
    FEATURES,
    SEEN_READ,
    AbstentionConfig,
    Logistic,
    confidence_features,
    seen_read,
)
from pixsearch.config import to_dict
from pixsearch.eval.abstention import Outcome, calibrate, cross_validate
from pixsearch.model.config import ModelConfig
from pixsearch.perception import image_view
from pixsearch.types import Hit, SearchStep, Trace

HITS = [Hit("CA:card", "Canada", 0.31, "Country in Northern America. Capital: Ottawa."),
        Hit("BZ:card", "Belize", 0.29, "Country in Central America. Capital: Belmopan.")]


def _trace(answer: str, seen: str | None = image_view(3)) -> Trace:
    evidence = "\n".join([*([seen] if seen else []), "[1] Canada: …", "[2] Belize: …"])
    display = f"<search><image></search><information>{evidence}</information> {answer}"
    return Trace([SearchStep(0, "image", hits=HITS, evidence=evidence)], display=display)


def test_an_answer_is_read_off_the_look_when_all_its_names_and_numbers_are_in_it():
    assert seen_read(_trace("There are 3 flags in the picture.")) == 1.0
    assert confidence_features(_trace("There are 3 flags in the picture."))[SEEN_READ] == 1.0
    assert seen_read(_trace("There are 4 flags in the picture.")) == 0.0  # not what it saw
    # a name from nowhere in the look (here a hit's) makes it an answer about the hits
    assert seen_read(_trace("This is the flag of Canada. 3 flags in the picture.")) == 0.0
    assert seen_read(_trace("I don't know.")) == 0.0  # nothing read
    assert seen_read(_trace("There are 3 flags in the picture.", seen=None)) == 0.0
    # a region's line: colours, then the count and position of its like
    region = "[0] Seen: mostly red, then white; 2 like it in the image, 1 left of it."
    assert seen_read(_trace("There are 2 flags in the picture.", seen=region)) == 1.0
    assert seen_read(Trace(display="There are 2 flags in the picture.")) == 0.0  # no search


def _outcome(i: int, score: int, top: float, seen: bool, logprob: float = -0.1) -> Outcome:
    f = dict.fromkeys(FEATURES, 0.0)
    f.update(hit_top1_first=top, lm_mean_logprob=logprob, image=1.0, searched=1.0,
             n_searches=1.0, mask_score_min=1.0)
    f[SEEN_READ] = float(seen)
    return Outcome(str(i), f, score, 0)


def _pool() -> list[Outcome]:
    """Retrieved answers are right when the hit is strong, wrong when it is weak. Counts read
    off the look come with weak hits (a scene of small flags) and are right 3 times in 4."""
    retrieved = ([_outcome(i, 1, 0.8 + i / 1000, False) for i in range(40)]
                 + [_outcome(100 + i, -1, 0.3 + i / 1000, False) for i in range(40)])
    counts = [_outcome(200 + i, 1 if i % 4 else -1, 0.3 + i / 1000, True) for i in range(40)]
    return retrieved + counts


def test_counts_read_off_the_look_get_a_regression_of_their_own():
    outs = _pool()
    cfg, curve = calibrate(outs, fitted_on="unit")
    assert cfg.perception is not None and set(cfg.perception.weights) <= set(FEATURES)
    conf = [cfg.p_correct(o.features) for o in outs]
    kept = [o for o, c in zip(outs, conf) if c >= cfg.threshold]
    assert {o.id for o in kept} == {str(i) for i in range(40)} | {o.id for o in outs[80:]}
    best = max(curve, key=lambda p: p["truthfulness"])
    assert best["truthfulness"] == pytest.approx((40 + 30 - 10) / 120)
    # one regression for all would drop the counts with the weak retrieved answers
    alone, curve_alone = calibrate([*outs[:80], *(Outcome(o.id, {**o.features, SEEN_READ: 0.0},
                                                          o.answer_score, 0) for o in outs[80:])])
    assert alone.perception is None
    kept_alone = sum(alone.p_correct({**o.features, SEEN_READ: 0.0}) >= alone.threshold
                     for o in outs[80:])
    assert kept_alone < 20 and max(p["truthfulness"] for p in curve_alone) < best["truthfulness"]
    held = cross_validate(outs, folds=4)
    assert sum(held[(0, o.id)] for o in outs[80:]) == 20  # held out too: 30 right, 10 wrong


def test_too_few_or_one_kind_of_read_answers_leave_one_regression():
    few = [*_pool()[:80], *(_outcome(300 + i, 1, 0.3, True) for i in range(10))]
    assert calibrate(few)[0].perception is None
    one_kind = [*_pool()[:80], *(_outcome(300 + i, 1, 0.3, True) for i in range(30))]
    assert calibrate(one_kind)[0].perception is None


def test_the_read_off_regression_is_saved_with_the_model():
    cfg, _ = calibrate(_pool(), fitted_on="unit")
    data = to_dict(ModelConfig(abstention=cfg))
    back = ModelConfig.from_dict(data).abstention
    assert isinstance(back.perception, Logistic)
    f = _pool()[-1].features
    assert back.p_correct(f) == pytest.approx(cfg.p_correct(f))
    with pytest.raises(ValueError, match="unknown abstention feature"):
        AbstentionConfig(perception=Logistic({"not_a_feature": 1.0}))


def test_what_the_look_did_not_say_is_not_read_off_it():
    # the whole image's line counts the flags; it says nothing of left, right or colours
    assert seen_read(_trace("There are 3 flags to the left of the red one.")) == 0.0
    region = "[0] Seen: mostly blue, then red; 4 like it in the image, 2 left of it."
    assert seen_read(_trace("There are 2 flags to the left of the blue-red flag.",
                            seen=region)) == 1.0
    assert seen_read(_trace("There are 2 flags to the left of the green flag.",
                            seen=region)) == 0.0
