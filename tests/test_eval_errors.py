"""Error analysis and abstention calibration on hand-written records and traces (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from pixsearch.abstention import (
    FEATURES,
    SEEN_READ,
    AbstentionConfig,
    confidence_features,
    grounding_features,
)
from pixsearch.eval.abstention import Outcome, calibrate, fit_logistic, outcomes, risk_coverage
from pixsearch.eval.crag import score_crag
from pixsearch.eval.errors import analyse, classify, error_table, fact_kinds
from pixsearch.eval.judges import RuleJudge
from pixsearch.eval.scores import score_record
from pixsearch.masks import mask_to_rle
from pixsearch.types import Hit, SearchStep, Trace


def _mask(rows: slice) -> np.ndarray:
    m = np.zeros((10, 10), bool)
    m[rows] = True
    return m


TOP, BOTTOM = _mask(slice(0, 5)), _mask(slice(5, 10))


def _hits(*codes: str, top: float = 0.9) -> list[Hit]:
    return [Hit(f"card:{c}", c, top - i / 10, "", c) for i, c in enumerate(codes)]


def _record(rid: str, **kw) -> dict:
    base = {"id": rid, "question": "What is the capital of the country of the top flag?",
            "answer": "Rubyville", "ego": True, "needs_search": True, "target": 0,
            "entities": [{"code": "RED", "in_kb": True}, {"code": "GRN", "in_kb": True}],
            "masks": [mask_to_rle(TOP), mask_to_rle(BOTTOM)],
            "searches": [{"type": "region", "entity": 0}]}
    return {**base, **kw}


def _pred(answer: str, steps: list[SearchStep], logprobs: list[float] | None = None) -> dict:
    return {"answer": answer, "trace": Trace(steps, lm_logprobs=logprobs or []).to_dict()}


def _region(mask: np.ndarray, *codes: str, top: float = 0.9) -> SearchStep:
    return SearchStep(0, "region", mask_rle=mask_to_rle(mask), hits=_hits(*codes, top=top))


CASES = {
    # id: (record overrides, prediction, expected category)
    "right": ({}, _pred("The capital is Rubyville.", [_region(TOP, "RED")]), "correct"),
    "idk": ({}, _pred("I don't know.", [_region(TOP, "RED")]), "abstained"),
    "absent": ({"answer": "I don't know",
                "entities": [{"code": "BLU", "in_kb": False}, {"code": "GRN", "in_kb": True}]},
               _pred("The capital is Emerald City.", [_region(TOP, "GRN")]),
               "absent_entity_hallucination"),
    "nosearch": ({}, _pred("The capital is Paris.", []), "no_search"),
    "referent": ({}, _pred("The capital is Emerald City.", [_region(BOTTOM, "GRN")]),
                 "wrong_referent"),
    "miss": ({}, _pred("The capital is Emerald City.", [_region(TOP, "GRN", "BLU")]),
             "retrieval_miss"),
    "attribute": ({}, _pred("The calling code of Redland is +7.", [_region(TOP, "RED")]),
                  "wrong_attribute"),
    "reading": ({}, _pred("The capital of Redland is Redland.", [_region(TOP, "RED")]),
                "reading_failure"),
    "logic": ({"question": "How many flags are in the picture?", "answer": "2",
               "needs_search": False, "searches": []}, _pred("There are 3 flags.", []), "logic"),
}


def _scored():
    records = [_record(k, **v[0]) for k, v in CASES.items()]
    preds = {k: v[1] for k, v in CASES.items()}
    turns = score_crag(records, {k: p["answer"] for k, p in preds.items()}, RuleJudge(),
                       ("all",)).turns
    rows = [score_record(r, preds[r["id"]]) for r in records]
    return records, preds, turns, rows


def test_every_category_is_told_apart():
    records, preds, turns, rows = _scored()
    for rec, turn, row in zip(records, turns, rows):
        assert classify(rec, preds[rec["id"]], turn, row) == CASES[rec["id"]][2], rec["id"]


def test_analysis_counts_examples_and_worst_regions():
    records, preds, turns, rows = _scored()
    a = analyse(records, preds, turns, rows, examples=2)
    assert a["counts"]["all"]["correct"] == 1 and a["counts"]["all"]["wrong_referent"] == 1
    assert sum(a["counts"]["all"].values()) == len(CASES)
    assert a["records"]["miss"] == "retrieval_miss"
    assert a["worst_regions"][0] == "referent"  # IoU 0: the mask is on the other flag
    table = error_table(a)
    assert "| wrong_attribute | 1 | 1 | 0 |" in table and "`attribute`" in table


def test_fact_kinds_reads_question_and_answer_wording():
    assert fact_kinds("What is the dialling code of Peru?") == {"calling_code"}
    assert fact_kinds("Lima is the capital.") == {"capital"}


def test_confidence_features_from_a_trace():
    trace = Trace([_region(TOP, "RED", "GRN", top=0.8),
                   SearchStep(1, "text", query_text="capital", hits=_hits("RED", top=0.6)),
                   SearchStep(2, "image", skipped="budget")], lm_logprobs=[-0.5, -1.5])
    f = confidence_features(trace)
    assert set(f) == {*FEATURES, SEEN_READ}
    assert f["n_searches"] == 2 and f["region"] == 1.0 and f["image"] == 0.0
    assert f["hit_top1_min"] == pytest.approx(0.6) and f["hit_top1_first"] == pytest.approx(0.8)
    assert f["hit_margin_min"] == pytest.approx(0.1)
    assert f["lm_mean_logprob"] == pytest.approx(-1.0) and f["lm_min_logprob"] == -1.5
    assert f["mask_score_min"] == 1.0  # no mask confidence was recorded
    trace.steps[0].mask_score = 0.3
    f = confidence_features(trace)
    assert f["mask_score_min"] == pytest.approx(0.3)
    # the region route's own copies of its first search's signals
    assert f["region_mask_score"] == pytest.approx(0.3)
    assert f["region_hit_top1"] == pytest.approx(0.8) and f["region_hit_margin"] == pytest.approx(0.1)
    text_first = confidence_features(Trace(trace.steps[1:], lm_logprobs=[-0.5]))
    assert text_first["text"] == 1.0 and text_first["hit_top1_first"] == pytest.approx(0.6)
    assert (text_first["region_mask_score"], text_first["region_hit_top1"],
            text_first["region_hit_margin"]) == (0.0, 0.0, 0.0)


def test_grounding_features_catch_answers_the_evidence_does_not_support():
    hits = [Hit("RU:card", "Russia", 0.9, "Russia: Country in Eastern Europe. Capital: Moscow. "
                "Calling code: +7. Population 146,171,015."),
            Hit("UA:card", "Ukraine", 0.5, "Ukraine: Country in Eastern Europe. Capital: Kyiv.")]

    def feats(answer: str) -> dict:
        display = ("This <search><region></search><information>[1] Russia: …</information>"
                   + answer)
        return grounding_features(Trace([SearchStep(0, "region", hits=hits)], display=display))

    assert feats(" is the flag of Russia. Its capital is Moscow.") == \
        {"top_title_named": 1.0, "final_grounded": 1.0}
    assert feats(" is the flag of Russia. Its population is 146,171,015.")["final_grounded"] == 1.0
    wrong_fact = feats(" is the flag of Russia. The calling code of Russia is +1.")
    assert wrong_fact["top_title_named"] == 1.0 and wrong_fact["final_grounded"] == pytest.approx(2 / 3)
    other = feats(" is the flag of Kazakhstan. The capital of Kazakhstan is Astana.")
    assert other == {"top_title_named": 0.0, "final_grounded": 0.0}
    # nothing to check: no search, or no name or number in the answer
    assert grounding_features(Trace(display="There are 2 flags in the picture.")) == \
        {"top_title_named": 1.0, "final_grounded": 1.0}


def test_policy_probability_and_validation():
    cfg = AbstentionConfig(enabled=True, threshold=0.5, weights={"hit_top1_first": 4.0},
                           bias=-2.0)
    assert cfg.p_correct({"hit_top1_first": 1.0}) > 0.5 > cfg.p_correct({"hit_top1_first": 0.0})
    with pytest.raises(ValueError, match="unknown abstention feature"):
        AbstentionConfig(weights={"nonsense": 1.0})
    with pytest.raises(ValueError, match="threshold"):
        AbstentionConfig(threshold=1.5)


def test_logistic_fit_separates_a_separable_signal():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = (x[:, 0] > 0).astype(float)
    w, b = fit_logistic(x, y, l2=0.1)
    assert w[0] > 2 * abs(w[1]) and abs(b) < 1.0


def _outcome(i: int, score: int, top: float, abstain: int = 0) -> Outcome:
    f = dict.fromkeys(FEATURES, 0.0)
    f["hit_top1_first"] = top
    return Outcome(str(i), f, score, abstain)


def test_calibration_abstains_where_answers_are_wrong():
    # confident answers are right; unsure ones are hallucinations about absent entities
    outs = ([_outcome(i, 1, 0.9 + i / 1000) for i in range(30)]
            + [_outcome(100 + i, -1, 0.3 + i / 1000, abstain=1) for i in range(30)])
    cfg, curve = calibrate(outs, fitted_on="unit")
    assert cfg.enabled and 0 < cfg.threshold < 1
    chosen = max(curve, key=lambda p: p["truthfulness"])
    assert chosen["truthfulness"] == pytest.approx(1.0)  # right answers kept, absent → IDK
    never = next(p for p in curve if p["threshold"] == 0.0)
    assert never["truthfulness"] == pytest.approx(0.0) and never["coverage"] == 1.0
    conf = [cfg.p_correct(o.features) for o in outs]
    assert min(conf[:30]) >= cfg.threshold > max(conf[30:])


def test_risk_coverage_counts_abstentions_as_missing():
    outs = [_outcome(0, 1, 0.9), _outcome(1, -1, 0.1), _outcome(2, -1, 0.5)]
    pts = {p["threshold"]: p for p in risk_coverage([0.9, 0.1, 0.5], outs)}
    assert pts[0.5]["coverage"] == pytest.approx(2 / 3) and pts[0.5]["risk"] == 0.5
    assert pts[0.9]["truthfulness"] == pytest.approx(1 / 3)


def test_outcomes_score_abstention_against_the_gold():
    records, preds, turns, _ = _scored()
    outs = {o.id: o for o in outcomes(records, preds, turns)}
    assert outs["absent"].abstain_score == 1 and outs["absent"].answer_score == -1
    assert outs["right"].abstain_score == 0 and outs["right"].answer_score == 1
