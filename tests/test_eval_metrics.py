"""Text, segmentation and retrieval metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from pixsearch.eval.retrieval_metrics import (
    hit_rank,
    mean_reciprocal_rank,
    recall_at_k,
    search_decision_scores,
)
from pixsearch.eval.seg_metrics import (
    SemanticIoU,
    ciou,
    decode_mask,
    giou,
    mask_iou,
    referring_scores,
)
from pixsearch.eval.text_metrics import (
    exact_match,
    normalize_answer,
    relaxed_exact_match,
    score_text,
    token_f1,
)
from pixsearch.types import Hit

# --- text -------------------------------------------------------------------------------


def test_normalize_and_exact_match():
    assert normalize_answer("The  Flag of Peru!") == "flag of peru"
    assert exact_match("the flag of peru.", ["Flag of Peru"])
    assert not exact_match("flag of peru, probably", "flag of peru")


def test_relaxed_em_is_whole_token_containment():
    assert relaxed_exact_match("It is the flag of Peru.", "Peru")
    assert not relaxed_exact_match("Peruvian food", "Peru")
    assert relaxed_exact_match("Santiago de Chile", ["Lima", "Santiago"])


def test_token_f1_hand_computed():
    # pred tokens: [capital, is, lima], gold: [lima]; overlap 1 → P=1/3, R=1, F1=0.5
    assert token_f1("the capital is Lima", "Lima") == pytest.approx(0.5)
    assert token_f1("x", ["y", "x"]) == 1.0
    assert token_f1("", "lima") == 0.0
    scores = score_text(["Lima", "Quito city"], ["lima", "quito"])
    assert scores.exact_match == 0.5 and scores.relaxed_exact_match == 1.0
    assert scores.f1 == pytest.approx((1 + 2 / 3) / 2)


# --- segmentation -----------------------------------------------------------------------


def _box(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def test_mask_iou_hand_computed():
    a = _box(10, 10, 0, 4, 0, 4)  # 16 px
    b = _box(10, 10, 2, 6, 2, 6)  # 16 px, overlap 2x2 = 4
    assert mask_iou(a, b) == pytest.approx(4 / 28)
    assert mask_iou(a, a) == 1.0
    empty = np.zeros((10, 10), bool)
    assert mask_iou(empty, empty) == 1.0 and mask_iou(a, empty) == 0.0
    with pytest.raises(ValueError, match="differ in size"):
        mask_iou(a, np.zeros((5, 5), bool))


def test_giou_and_ciou_differ_as_defined():
    small_p, small_g = _box(10, 10, 0, 1, 0, 2), _box(10, 10, 0, 1, 0, 1)  # I=1, U=2
    big_p, big_g = _box(10, 10, 0, 10, 0, 10), _box(10, 10, 0, 8, 0, 10)  # I=80, U=100
    pairs = [(small_p, small_g), (big_p, big_g)]
    assert giou(pairs) == pytest.approx((0.5 + 0.8) / 2)
    assert ciou(pairs) == pytest.approx(81 / 102)
    assert referring_scores([]).n == 0


def test_rle_masks_decode_like_arrays():
    a = _box(6, 7, 1, 4, 2, 6)
    rle = mask_utils.encode(np.asfortranarray(a.astype(np.uint8)))
    as_str = {"size": rle["size"], "counts": rle["counts"].decode()}
    assert np.array_equal(decode_mask(as_str), a)
    assert np.array_equal(decode_mask(rle), a)
    assert mask_iou(as_str, a) == 1.0
    with pytest.raises(TypeError, match="COCO RLE"):
        decode_mask({"foo": 1})


def test_semantic_miou_hand_computed():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 255]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 2, 2]])
    meter = SemanticIoU(num_classes=4, ignore_index=255)
    meter.update(pred, gt)
    # class 0: TP 3, FP 0, FN 1 → 3/4; class 1: TP 2, FP 1, FN 1 → 2/4; class 2: TP 0, FP 1 → 0;
    # class 3 absent → left out.
    ious = meter.per_class_iou()
    assert ious[:3] == pytest.approx([0.75, 0.5, 0.0]) and np.isnan(ious[3])
    assert meter.miou() == pytest.approx(1.25 / 3)
    assert meter.pixel_accuracy() == pytest.approx(5 / 7)
    with pytest.raises(ValueError, match="outside"):
        meter.update(np.array([5]), np.array([0]))


# --- retrieval --------------------------------------------------------------------------


def test_recall_at_k_with_ids_and_hits():
    hits = [Hit("d1", "Chile", 0.9, "", entity="CL"), Hit("d2", "Peru", 0.8, "", entity="PE")]
    assert hit_rank(hits, "PE") == 2 and hit_rank(hits, "d1") == 1 and hit_rank(hits, "XX") is None
    ranked = [hits, ["a", "b", "c"], ["z"]]
    golds = ["PE", {"c", "q"}, "y"]
    assert recall_at_k(ranked, golds, 1) == 0.0
    assert recall_at_k(ranked, golds, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, golds, 3) == pytest.approx(2 / 3)
    assert mean_reciprocal_rank(ranked, golds) == pytest.approx((1 / 2 + 1 / 3) / 3)


def test_search_decision_precision_recall():
    searched = [True, True, False, False, True]
    needed = [True, False, True, False, True]
    s = search_decision_scores(searched, needed)
    assert (s.true_positive, s.false_positive, s.false_negative, s.true_negative) == (2, 1, 1, 1)
    assert s.precision == pytest.approx(2 / 3) and s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(2 / 3) and s.search_rate == pytest.approx(0.6)
