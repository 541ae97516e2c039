"""Each loss term against values computed by hand."""

import math

import torch

from pixsearch.train.losses import (
    IGNORE,
    LossWeights,
    focal_tversky_loss,
    gaussian_kl_loss,
    lm_loss,
    mask_bce_loss,
    span_loss,
)


def test_lm_loss_counts_only_unmasked_targets():
    # vocab 2; uniform logits except one position with confident correct prediction
    logits = torch.zeros(1, 4, 2)
    logits[0, 1] = torch.tensor([0.0, math.log(3.0)])  # p(token 1) = 3/4
    ids = torch.tensor([[0, 1, 1, 0]])
    # targets: t1=1 (mask 0 → ignored), t2=1 (mask 1, from logits[1]), t3=0 (mask 1, uniform)
    mask = torch.tensor([[0, 0, 1, 1]])
    expected = (-math.log(0.75) + math.log(2.0)) / 2
    assert abs(lm_loss(logits, ids, mask).item() - expected) < 1e-6
    # information tokens masked out entirely → zero loss, still differentiable
    assert lm_loss(logits, ids, torch.zeros_like(mask)).item() == 0.0


def test_span_loss_ignores_padding():
    logits = torch.zeros(1, 3, 3)
    logits[0, 0] = torch.tensor([0.0, math.log(2.0), 0.0])  # p(B) = 2/4
    targets = torch.tensor([[1, 0, IGNORE]])
    expected = (-math.log(0.5) + math.log(3.0)) / 2
    assert abs(span_loss(logits, targets).item() - expected) < 1e-6


def test_focal_tversky_by_hand():
    # sigmoid(0) = 0.5 everywhere; 2 pixels, one positive
    logits = torch.zeros(1, 1, 1, 2)
    target = torch.tensor([[[1.0, 0.0]]])
    tp, fn, fp = 0.5, 0.5, 0.5
    ti = (tp + 1) / (tp + 0.7 * fn + 0.3 * fp + 1)
    expected = (1 - ti) ** 0.75
    got = focal_tversky_loss(logits, target, alpha=0.7, beta=0.3, gamma=0.75, eps=1.0)
    assert abs(got.item() - expected) < 1e-6
    # a perfect (saturated) prediction costs ~0
    perfect = torch.tensor([[[[20.0, -20.0]]]])
    assert focal_tversky_loss(perfect, target).item() < 1e-3


def test_mask_bce_by_hand():
    logits = torch.tensor([[[[0.0, math.log(3.0)]]]])  # p = 0.5, 0.75
    target = torch.tensor([[[1.0, 0.0]]])
    expected = (-math.log(0.5) - math.log(0.25)) / 2
    assert abs(mask_bce_loss(logits, target).item() - expected) < 1e-6


def test_gaussian_kl_by_hand():
    s = torch.tensor([[1.0, 2.0]])
    t = torch.tensor([[0.0, 0.0]])
    # unit variances: ½‖s−t‖² = 2.5
    assert abs(gaussian_kl_loss(s, t).item() - 2.5) < 1e-6
    # σs² = 1, σt² = e² (logvar 2) in one dim: ½(2 − 0 + (1 + 1)/e² − 1)
    ls = torch.zeros(1, 1)
    lt = torch.full((1, 1), 2.0)
    expected = 0.5 * (2.0 + 2.0 / math.e**2 - 1.0)
    got = gaussian_kl_loss(torch.tensor([[1.0]]), torch.tensor([[0.0]]), ls, lt)
    assert abs(got.item() - expected) < 1e-6
    # the teacher is frozen: no gradient reaches it
    t2 = torch.zeros(1, 2, requires_grad=True)
    gaussian_kl_loss(s.requires_grad_(), t2).backward()
    assert t2.grad is None


def test_paper_default_weights():
    w = LossWeights()
    assert (w.lm, w.span, w.seg, w.bce, w.kl) == (1.0, 2.0, 8.0, 2.0, 0.1)
