"""The benchmarks' scoring rules against values computed by hand: VQA accuracy over ten human
answers (leave-one-out over the 10-choose-9 subsets), InfoSeek's exact and numeric-range
rules and harmonic mean, OVEN's seen/unseen harmonic mean, and mIoU of prompted classes."""

from __future__ import annotations

import pytest

from pixsearch.eval.benchmark_scores import benchmark_scores
from pixsearch.eval.infoseek_scoring import (
    harmonic_mean,
    infoseek_normalize,
    infoseek_score,
    infoseek_summary,
    numeric_score,
    oven_summary,
    parse_number,
)
from pixsearch.eval.vqa_accuracy import vqa_accuracy, vqa_normalize

TEN = ["dakota"] * 5 + ["dakota digital"] * 3 + ["nous les gosses", "clos culombu"]


def test_vqa_accuracy_is_the_mean_over_leave_one_out_subsets():
    # "dakota": 5 votes; leaving out a dakota leaves 4 (≥ 3 → 1), any other leaves 5 → 1
    assert vqa_accuracy("dakota", TEN) == pytest.approx(1.0)
    # 3 votes: leaving one of them out leaves 2 → 2/3 (3 subsets), else 3 → 1 (7 subsets)
    assert vqa_accuracy("dakota digital", TEN) == pytest.approx((3 * 2 / 3 + 7) / 10)
    # 1 vote: 0 when it is left out, 1/3 in the 9 other subsets
    assert vqa_accuracy("nous les gosses", TEN) == pytest.approx(0.3)
    assert vqa_accuracy("canon", TEN) == 0.0


def test_vqa_accuracy_normalises_like_the_official_code():
    two = ["two"] * 4 + ["2"] * 6  # humans disagree: number words become digits
    assert vqa_accuracy("Two.", two) == pytest.approx(1.0)
    assert vqa_accuracy("The dakota!", TEN) == pytest.approx(1.0)  # article, punctuation
    assert vqa_normalize("dont know, 1,000 (approx)") == "don't know 1000 approx"
    # unanimous humans: the official code does not normalise at all
    assert vqa_accuracy("yes.", ["yes"] * 10) == 0.0
    assert vqa_accuracy("Yes", ["yes"] * 10) == 1.0


def test_infoseek_numbers_and_ranges():
    assert parse_number("It opened in 1990.") == 1990.0
    assert parse_number("about 1,995 people") == 1995.0
    assert parse_number("between 1989 and 1991") == [1989.0, 1991.0]
    assert parse_number("1980-1990") == [1980.0, 1990.0]  # "9-10" is a range
    assert parse_number("1991 or 1989") == 1991.0  # decreasing: the first number
    assert parse_number("no idea") == [0.0, 0.0]
    gold = [1989.0, 1991.0]
    assert numeric_score(1990.0, gold) == 1 and numeric_score(1995.0, gold) == 0
    assert numeric_score([1989.0, 1991.0], gold) == 1  # inside
    assert numeric_score([1988.0, 1992.0], gold) == 1  # IoU 2/4 = 0.5
    assert numeric_score([1980.0, 1990.0], gold) == 0  # IoU 1/11
    assert numeric_score([0.0, 0.0], gold) == 0
    # a single gold value gets ±10%
    assert numeric_score(310.0, 300.0) == 1 and numeric_score(340.0, 300.0) == 0


def test_infoseek_question_types():
    assert infoseek_score("In 1990", [1989.0, 1991.0], "NUMERICAL") == 1
    assert infoseek_score("1992", [1989.0, 1991.0], "numerical") == 0
    assert infoseek_score("Rubyville", ["Rubyville", "Ruby Ville"], "STRING") == 1
    assert infoseek_score("The Ruby-ville", ["Rubyville"], "STRING") == 1  # punctuation goes
    assert infoseek_normalize("the U.S.") == "us"
    assert infoseek_score("June 1815", ["1815", "June 1815"], "TIME") == 1
    sentence = "The capital is Rubyville."
    assert infoseek_score(sentence, ["Rubyville"], "STRING") == 0
    assert infoseek_score(sentence, ["Rubyville"], "STRING", relaxed=True) == 1


def test_infoseek_and_oven_harmonic_means():
    rows = [("val_unseen_question", 1, 1), ("val_unseen_question", 0, 1),
            ("val_unseen_entity", 1, 1), ("val_unseen_entity", 0, 0),
            ("val_unseen_entity", 0, 1), ("val_unseen_entity", 0, 0)]
    s = infoseek_summary(rows)
    assert s["unseen_question"]["accuracy"] == 0.5 and s["unseen_entity"]["accuracy"] == 0.25
    assert s["final"] == pytest.approx(1 / 3)  # 2 / (1/0.5 + 1/0.25)
    assert s["all"]["accuracy"] == pytest.approx(2 / 6)
    assert s["final_relaxed"] == pytest.approx(2 / (1 / 1.0 + 1 / 0.5))
    o = oven_summary([("entity_val_seen", 1), ("entity_val_seen", 1), ("entity_val_seen", 0),
                      ("entity_val_unseen", 1), ("entity_val_unseen", 0)])
    assert o["final"] == pytest.approx(2 / (1.5 + 2.0))
    assert harmonic_mean([0.0, 1.0]) == pytest.approx(2e-12, rel=1e-3)  # the official guard
    assert infoseek_summary([("val_unseen_entity", 1, 1)])["final"] is None  # one split only


def test_benchmark_scores_of_a_run():
    records = [
        {"id": "a", "source": "textvqa", "task": "vqa", "answers": ["dakota"],
         "vqa_answers": TEN},
        {"id": "b", "source": "textvqa", "task": "vqa", "answers": ["2", "two"],
         "vqa_answers": ["two"] * 4 + ["2"] * 6},
    ]
    preds = {"a": {"answer": "dakota digital"}, "b": {"answer": "It says two."}}
    b = benchmark_scores(records, preds)
    # "It says two." normalises to "it says 2", which no human said
    assert b["vqa_accuracy"] == pytest.approx((0.9 + 0.0) / 2)
    assert b["sources"] == ["textvqa"] and b["n"] == 2
    assert benchmark_scores([{"id": "a", "answers": ["x"]}], {"a": {"answer": "x"}}) is None


def test_semantic_miou_of_prompted_classes_by_hand(tmp_path):
    import numpy as np
    from PIL import Image

    from pixsearch.eval.segmentation import score_segmentation
    from pixsearch.masks import mask_to_rle

    gold = np.array([[1, 1, 2, 2], [1, 1, 2, 0]], np.uint8)  # ADE-style: 0 is not scored
    Image.fromarray(gold, mode="L").save(tmp_path / "g.png")
    lut = [255] * 256
    lut[1], lut[2] = 0, 1
    record = {"id": "x", "task": "semseg", "source": "ade20k", "label_map": str(tmp_path / "g.png"),
              "label_lut": lut, "label_names": ["wall", "sky"], "label_prompts": ["wall", "sky"]}
    c0 = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], bool)  # (1, 1) is left unlabelled: a miss
    c1 = np.array([[0, 0, 1, 0], [0, 0, 1, 1]], bool)  # (1, 3) falls on a pixel not scored
    line = {"id": "x", "task": "semseg", "size": [2, 4],
            "class_masks": {"0": mask_to_rle(c0), "1": mask_to_rle(c1)}}
    seg = score_segmentation([record], {"x": line})["segmentation"]
    # wall: TP 3, union 4; sky: TP 2, union 3 (the ignored pixel counts for nobody)
    assert seg["per_class"] == pytest.approx({"wall": 3 / 4, "sky": 2 / 3})
    assert seg["miou"] == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert seg["pixel_accuracy"] == pytest.approx(5 / 7)
