"""Referent selection: instance proposals, candidate features, the selector, its training."""

from __future__ import annotations

import json

import pytest
import torch

from pixsearch.model.build import build_model
from pixsearch.model.checkpoint import load_checkpoint
from pixsearch.model.colours import (
    MATCH,
    RELATION,
    colour_match,
    colour_shares,
    expression_colours,
    relation_match,
)
from pixsearch.model.config import ReferentConfig
from pixsearch.model.presets import get_preset
from pixsearch.model.proposals import grid_points, heatmap_peaks, mask_iou_matrix, span_components
from pixsearch.model.referent import (
    ReferentSelector,
    SelectorEnsemble,
    candidate_features,
    feature_dim,
    peak_counts,
)


def _box(m: int, x0: int, y0: int, x1: int, y1: int) -> torch.Tensor:
    out = torch.zeros(m, m, dtype=torch.bool)
    out[y0:y1, x0:x1] = True
    return out


def test_grid_points_are_cell_centres():
    pts = grid_points(2)
    assert pts.tolist() == [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]]


def test_heatmap_peaks_are_local_maxima_best_first():
    heat = torch.zeros(8, 8)
    heat[1, 2], heat[1, 3], heat[6, 5] = 0.9, 0.5, 0.7
    pts = heatmap_peaks(heat, k=5, threshold=0.2)
    assert pts.tolist() == [[2.5 / 8, 1.5 / 8], [5.5 / 8, 6.5 / 8]]
    assert len(heatmap_peaks(heat, k=1, threshold=0.2)) == 1
    assert len(heatmap_peaks(heat, k=5, threshold=0.95)) == 0


def test_mask_iou_matrix_matches_hand_values():
    a = torch.stack([_box(8, 0, 0, 4, 4), _box(8, 4, 4, 8, 8)])
    b = torch.stack([_box(8, 0, 0, 4, 2)])
    assert mask_iou_matrix(a, b).tolist() == [[0.5], [0.0]]


def test_candidate_features_geometry_ranks_and_colour():
    m = 16
    masks = torch.stack([_box(m, 8, 0, 16, 4), _box(m, 0, 8, 4, 16)])
    rgb = torch.zeros(3, m, m)
    rgb[0, :, 8:] = 1.0  # right half red
    emb = torch.randn(5, 4, 4)
    f = candidate_features(masks, torch.tensor([0.9, 0.8]), emb, torch.zeros(m, m), rgb)
    assert f.shape == (2, feature_dim(5))
    x0, y0, x1, y1 = f[0, :4].tolist()
    assert (x0, y0, x1, y1) == (0.5, 0.0, 1.0, 0.25)
    assert f[0, 9].item() == 1.0 and f[1, 9].item() == 0.0  # cx rank: first is rightmost
    assert f[0, 12].item() == 1.0 and f[1, 12].item() == 0.0  # mean red inside


def test_peak_counts_count_entity_centres_inside_and_to_each_side():
    """Three flags in a row and a blob merging the first two: the middle flag holds one centre
    with one to its left and one to its right; the blob holds two with one to its right."""
    m = 16
    masks = torch.stack([_box(m, 0, 4, 4, 8), _box(m, 6, 4, 10, 8), _box(m, 12, 4, 16, 8),
                         _box(m, 0, 4, 10, 8)])
    peaks = torch.tensor([[2.5, 6.0], [8.5, 6.0], [14.5, 6.0]]) / m
    counts = peak_counts(masks, peaks) * 4.0  # PEAK_SCALE
    # inside, left, right, above, below, all
    assert counts.tolist() == [[1, 0, 2, 0, 0, 3], [1, 1, 1, 0, 0, 3], [1, 2, 0, 0, 0, 3],
                               [2, 0, 1, 0, 0, 3]]
    assert peak_counts(masks, torch.zeros(0, 2)).abs().sum() == 0
    emb = torch.randn(5, 4, 4)
    f = candidate_features(masks, torch.ones(4), emb, torch.zeros(m, m), torch.zeros(3, m, m),
                           peaks)
    assert f.shape == (4, feature_dim(5, peaks=True)) and torch.equal(f[:, -6:], counts / 4.0)
    words = expression_colours("the black flag")
    g = candidate_features(masks, torch.ones(4), emb, torch.zeros(m, m), torch.zeros(3, m, m),
                           peaks, words)
    assert g.shape == (4, feature_dim(5, peaks=True, colour_words=True))
    assert torch.equal(g[:, :-MATCH], f)
    shares = colour_shares(masks, torch.zeros(3, m, m))
    assert torch.equal(g[:, -MATCH:], colour_match(shares, words.own))
    assert torch.equal(g[:, -MATCH + 1], torch.ones(4))  # a black image: all black
    # split words: the referent's own colours, then the related flag's
    split = expression_colours("the flag behind the black one", relations=True)
    h = candidate_features(masks, torch.ones(4), emb, torch.zeros(m, m), torch.zeros(3, m, m),
                           peaks, split)
    assert h.shape == (4, feature_dim(5, peaks=True, colour_words=True, relation_words=True))
    assert torch.equal(h[:, :-MATCH - RELATION], f)
    assert not h[:, -MATCH - RELATION:-RELATION].any()  # no colour of its own
    assert torch.equal(h[:, -RELATION:], relation_match(masks, shares, split.other))


def test_selector_pads_ragged_sets_and_follows_candidate_order():
    torch.manual_seed(0)
    sel = ReferentSelector(8, 6, ReferentConfig(dim=16, layers=1, heads=2)).eval()
    span = torch.randn(2, 8)
    a, b = torch.randn(3, 6), torch.randn(1, 6)
    logits = sel(span, [a, b])
    assert logits.shape == (2, 3)
    assert torch.isinf(logits[1, 1:]).all() and torch.isfinite(logits[0]).all()
    perm = torch.tensor([2, 0, 1])
    again = sel(span[:1], [a[perm]])
    assert torch.allclose(again[0], logits[0, perm], atol=1e-5)


def test_an_ensemble_averages_its_members_probabilities():
    torch.manual_seed(0)
    cfg = ReferentConfig(dim=16, layers=1, heads=2, members=3)
    ens = SelectorEnsemble(8, 6, cfg).eval()
    assert len(ens.members) == 3
    span, feats = torch.randn(2, 8), [torch.randn(3, 6), torch.randn(2, 6)]
    out = ens(span, feats)
    mean = torch.stack([m(span, feats).softmax(-1) for m in ens.members]).mean(0)
    assert torch.allclose(out.exp(), mean, atol=1e-6)
    assert out[1, 2] == float("-inf") and torch.allclose(out.exp().sum(-1), torch.ones(2))
    with pytest.raises(ValueError, match="members"):
        ReferentConfig(members=0)


def test_tiny_model_with_referent_proposes_and_selects():
    cfg = get_preset("tiny", {"referent": {"enabled": True, "source": "points",
                                           "peak_threshold": 0.0,
                                           "score_threshold": -10.0, "min_area": 0.0}})
    model = build_model(cfg).eval()
    emb = torch.randn(1, model.mask_decoder.hidden, model.mask_decoder.grid,
                      model.mask_decoder.grid)
    logits, iou = model.proposer.decode_points(emb, grid_points(3)[None])
    assert logits.shape == (1, 9, model.mask_size, model.mask_size) and iou.shape == (1, 9)
    props = model.proposer.propose(emb)
    assert len(props) <= cfg.referent.max_candidates
    if len(props) > 1:
        ious = mask_iou_matrix(props.masks, props.masks)
        assert (ious - torch.eye(len(props)) <= cfg.referent.nms_iou + 1e-6).all()
    span_logits = torch.randn(1, 1, model.mask_size, model.mask_size)
    out, prob = model.select_region(emb, torch.randn(1, 32), span_logits,
                                    torch.rand(3, model.mask_size, model.mask_size), props)
    assert out.shape == span_logits.shape
    if len(props):
        assert any(torch.equal(out[0, 0], lg) for lg in props.logits) and 0 < prob <= 1


def _at_region_search(model):
    """A session of `model` on a random 91 × 47 image, run up to its `<region>` token."""
    import numpy as np
    from PIL import Image

    traj = model.renderer.trajectory("What flag is this?", "The flag on the left <search>"
                                     "<region></search><information>x</information> is Peru.",
                                     spans=[(4, 17)])
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (47, 91, 3), np.uint8))
    session, _ = model.start(model.renderer.prompt("What flag is this?"), img)
    return session, img, traj.input_ids[traj.prompt_len:traj.region_positions[0] + 1]


def test_centres_from_the_proposer_while_selecting_among_components():
    """`instances: points`: the perception line counts the peaks of the proposer's centre
    heatmap, one per entity of the image, whatever the span mask looks like; selection still
    uses the span mask's components."""
    import numpy as np

    from pixsearch.perception import region_view

    torch.manual_seed(0)
    cfg = get_preset("tiny", {"referent": {"enabled": True, "source": "components",
                                           "instances": "points", "peak_threshold": 0.0}})
    model = build_model(cfg).eval()
    assert model.proposer is not None
    session, img, ids = _at_region_search(model)
    before = session.centres()  # a whole-image search counts them before any region search
    session.extend(ids)
    mask = session.region_mask()
    assert session.instances() is None  # the span mask's instances are not what is counted
    centres = session.centres()
    peaks = model.proposer.points(session.mask_emb)
    np.testing.assert_array_equal(before, centres)  # once per image, whatever was written
    assert 0 < len(centres) <= len(peaks) <= cfg.referent.max_points
    assert ((centres >= 0) & (centres < [91, 47])).all()
    assert mask.shape == (47, 91)
    region = np.zeros((47, 91), bool)  # the untrained model's own mask may be empty
    region[10:30, 20:60] = True
    view = region_view(region, np.asarray(img, np.float32) / 255, None, centres)
    outside = [x for x, y in centres if not region[int(y), int(x)]]
    assert view.total == 1 + len(outside)
    assert view.left == sum(x < np.nonzero(region)[1].mean() for x in outside)
    with pytest.raises(ValueError, match="instances"):
        ReferentConfig(instances="grid")
    with pytest.raises(ValueError, match="peak_window"):
        ReferentConfig(peak_window=4)


def test_span_components_are_blobs_at_each_threshold():
    m = 16
    logits = torch.full((m, m), -8.0)
    logits[2:6, 2:6] = 3.0  # the entity the span mask chose (p ≈ 0.95)
    logits[10:14, 9:15] = -2.0  # another it hesitated over (p ≈ 0.12)
    cfg = ReferentConfig(enabled=True, thresholds=[0.5, 0.05], min_area=0.0, nms_iou=0.7)
    props = span_components(logits, cfg)
    boxes = {(int(k.nonzero()[:, 0].min()), int(k.nonzero()[:, 1].min())) for k in props.masks}
    assert len(props) == 2 and boxes == {(2, 2), (10, 9)}  # the core twice is suppressed
    assert props.scores[0] > props.scores[1]
    for lg, mk in zip(props.logits, props.masks):  # positive exactly on its own component
        assert torch.equal(lg > 0, mk)
    cfg.min_area = 20 / (m * m)
    assert len(span_components(logits, cfg)) == 1  # the 16-pixel blob is too small
    assert len(span_components(torch.full((m, m), -9.0), cfg)) == 0


def test_split_components_add_each_of_two_touching_entities():
    """Two overlapping flags at one probability are one component at every threshold; the
    watershed split of its distance transform adds each flag as a candidate of its own."""
    m = 48  # square flags: a long ridge of the distance map may seed more than one piece
    a, b = _box(m, 4, 8, 22, 26), _box(m, 18, 20, 38, 40)
    logits = torch.where(a | b, torch.tensor(4.0), torch.tensor(-8.0))
    cfg = ReferentConfig(enabled=True, thresholds=[0.5, 0.05], min_area=0.0, nms_iou=0.7)
    plain = span_components(logits, cfg)
    assert len(plain) == 1 and torch.equal(plain.masks[0], a | b)
    cfg.split_min_distance = 4
    split = span_components(logits, cfg)
    iou = mask_iou_matrix(split.masks, torch.stack([a, b, a | b]))
    assert len(split) == 3 and (iou.amax(0) > 0.8).all()  # the pair, and each flag
    for lg, mk in zip(split.logits, split.masks):
        assert torch.equal(lg > 0, mk)
    # a single flag has one distance peak: nothing to split
    assert len(span_components(torch.where(b, 4.0, -8.0), cfg)) == 1
    with pytest.raises(ValueError, match="split_min_distance"):
        ReferentConfig(split_min_distance=-1)


def test_components_are_cut_at_the_entity_centres_inside_them():
    """`split_at_peaks`: two flags touching along a long side are one component and a single
    distance ridge; the centre heatmap's two peaks inside it cut it into the two flags, and
    a peak outside every component (or a lone one) cuts nothing."""
    m = 48
    a, b = _box(m, 4, 10, 40, 22), _box(m, 4, 22, 40, 34)  # wide flags, one above the other
    logits = torch.where(a | b, torch.tensor(4.0), torch.tensor(-8.0))
    cfg = ReferentConfig(enabled=True, thresholds=[0.5], min_area=0.0, nms_iou=0.7,
                         split_at_peaks=True)
    centres = torch.tensor([[22.0, 16.0], [22.0, 28.0], [44.0, 44.0]]) / m  # (x, y)
    split = span_components(logits, cfg, centres)
    iou = mask_iou_matrix(split.masks, torch.stack([a, b, a | b]))
    assert len(split) == 3 and (iou.amax(0) > 0.9).all()  # the pair, and each flag
    for lg, mk in zip(split.logits, split.masks):
        assert torch.equal(lg > 0, mk)
    assert len(span_components(logits, cfg, centres[:1])) == 1  # one centre: one entity
    assert len(span_components(logits, cfg, centres[2:])) == 1  # a centre off the mask
    assert len(span_components(logits, cfg)) == 1  # no centres: the plain components
    assert ReferentConfig(split_at_peaks=True).needs_centres
    assert not ReferentConfig().needs_centres


def test_a_session_cuts_components_at_its_centre_peaks():
    """The decoding session hands the proposer's peaks to the component proposals once per
    image; a model with `split_at_peaks` builds the proposer."""
    torch.manual_seed(0)
    cfg = get_preset("tiny", {"referent": {"enabled": True, "split_at_peaks": True,
                                           "peak_threshold": 0.0, "min_area": 0.0}})
    model = build_model(cfg).eval()
    assert model.proposer is not None
    session, _, ids = _at_region_search(model)
    session.extend(ids)
    assert session.region_mask().shape == (47, 91)
    peaks = session.entity_points
    assert peaks is not None and torch.equal(peaks, model.proposer.points(session.mask_emb))
    expected = span_components(session.span_logits, cfg.referent, peaks)
    assert len(session._proposals(session.span_logits[None, None])) == len(expected)


def test_a_session_hands_its_centres_to_a_selector_that_counts_them():
    """With `peak_features` the selector is built wider and reads the session's peaks."""
    torch.manual_seed(0)
    cfg = get_preset("tiny", {"referent": {"enabled": True, "peak_features": True,
                                           "peak_threshold": 0.0, "min_area": 0.0}})
    model = build_model(cfg).eval()
    assert model.proposer is not None
    assert model.referent.candidate[0].in_features == feature_dim(cfg.mask_decoder.hidden, True)
    session, _, ids = _at_region_search(model)
    session.extend(ids)
    assert session.region_mask().shape == (47, 91)
    assert session.entity_points is not None and session.mask_score is not None


def test_a_session_hands_the_span_words_to_a_selector_that_reads_colours():
    """With `colour_words` the selector is built wider and gets the words of the span the
    tagger chose, decoded from the session's own tokens."""
    torch.manual_seed(0)
    cfg = get_preset("tiny", {"referent": {"enabled": True, "colour_words": True,
                                           "min_area": 0.0}})
    model = build_model(cfg).eval()
    assert model.referent.candidate[0].in_features == feature_dim(cfg.mask_decoder.hidden,
                                                                  colour_words=True)
    session, _, ids = _at_region_search(model)
    seen = []
    select = model.select_region

    def spy(*args, **kwargs):
        seen.append(args[6] if len(args) > 6 else kwargs.get("span_text"))
        return select(*args, **kwargs)

    model.select_region = spy
    session.extend(ids)
    assert session.region_mask().shape == (47, 91)
    answer = model.tokenizer.decode(ids)
    assert len(seen) == 1 and seen[0].strip() and seen[0].strip() in answer


def test_tiny_model_with_component_referent_selects_a_component():
    torch.manual_seed(0)
    model = build_model(get_preset("tiny", {"referent": {"enabled": True,
                                                         "min_area": 0.0}})).eval()
    assert model.proposer is None and model.referent is not None
    m = model.mask_size
    span_logits = torch.full((1, 1, m, m), -8.0)
    span_logits[0, 0, :4, :4], span_logits[0, 0, -4:, -4:] = 2.0, -1.0
    props = span_components(span_logits[0, 0], model.cfg.referent)
    emb = torch.randn(1, model.mask_decoder.hidden, model.mask_decoder.grid,
                      model.mask_decoder.grid)
    out, prob = model.select_region(emb, torch.randn(1, 32), span_logits,
                                    torch.rand(3, m, m), props)
    assert len(props) == 2 and any(torch.equal(out[0, 0], lg) for lg in props.logits)
    assert 0.5 <= prob <= 1.0  # the most probable of two


def test_referent_config_rejects_unknown_source():
    with pytest.raises(ValueError, match="components"):
        ReferentConfig(source="grid")
    with pytest.raises(ValueError, match="colour_words=true"):
        ReferentConfig(relation_words=True)


@pytest.mark.parametrize("source,instances,split,counts,colours", [
    ("components", "span", False, False, False), ("points", "span", False, False, False),
    ("components", "points", False, False, False), ("components", "span", True, False, False),
    ("components", "span", False, True, True)])
def test_referent_training_on_small_world_saves_a_loadable_model(small_world, tmp_path, source,
                                                                 instances, split, counts,
                                                                 colours):
    from pixsearch.model.checkpoint import save_checkpoint
    from pixsearch.train.referent import ReferentTrainConfig, ReferentTrainer

    base_dir = save_checkpoint(build_model(get_preset("tiny")), tmp_path / "base")
    cfg = ReferentTrainConfig(model=str(base_dir), world=str(small_world),
                              out=str(tmp_path / "ref"), proposal_steps=3, proposal_images=2,
                              proposal_points=4, selector_samples=16, val_samples=8,
                              selector_epochs=2, selector_batch=4, num_threads=1,
                              referent={"source": source, "instances": instances,
                                        "split_at_peaks": split, "peak_features": counts,
                                        "colour_words": colours, "relation_words": colours,
                                        "members": 2 if colours else 1,
                                        "peak_threshold": 0.0,
                                        "score_threshold": -10.0,
                                        "min_area": 0.0},
                              cache=str(tmp_path / "cache"))
    out = ReferentTrainer(cfg, load_checkpoint(base_dir)).run()
    report = json.loads((out / "referent_report.json").read_text())
    assert 0.0 <= report["val"]["right_referent"] <= 1.0 and report["val"]["n"] > 0
    proposer = report["val_proposer"]
    centres = "points" in (source, instances) or split or counts
    if centres:
        assert proposer["scenes"] > 0 and 0.0 <= proposer["count_right"] <= 1.0
        assert ("entity_recall" in proposer) == (source == "points")
        # the peak settings the recipe chose on val are the saved model's, and the best
        grid = report["val_proposer_as_trained"]["count_right_by_peak_threshold_and_window"]
        ref = load_checkpoint(out).cfg.referent
        assert grid[f"{ref.peak_threshold}/{ref.peak_window}"] == max(grid.values())
    else:
        assert proposer is None
    model = load_checkpoint(out)
    assert (model.proposer is not None) == centres
    if colours:  # an ensemble of two selectors, trained apart
        a, b = (m.q_out.weight for m in model.referent.members)
        assert not torch.equal(a, b)
    assert model.cfg.referent.enabled and model.referent is not None
    selector = model.referent.members[0] if colours else model.referent
    assert selector.candidate[0].in_features == feature_dim(
        model.mask_decoder.hidden, counts, colours, colours)
    # the frozen parts are the base model's, bit for bit
    base = load_checkpoint(base_dir)
    for name, p in base.state_dict().items():
        assert torch.equal(p, model.state_dict()[name]), name
    # the frozen model's outputs are cached: a second trainer reads them instead of recomputing
    cached = sorted((tmp_path / "cache").glob("spans-*.pt"))
    assert len(cached) == 2
    again = ReferentTrainer(cfg, load_checkpoint(base_dir))
    exprs = again.expressions(again.val, cfg.val_samples, "val")
    assert exprs and torch.equal(exprs[0]["span"], torch.load(cached[1])[0]["span"])
    assert all(isinstance(e["words"], str) and e["words"] for e in exprs)
    # fewer expressions are the first of a larger cached run, read, not computed or saved
    fewer = again.expressions(again.train, 5, "train")
    train = torch.load(cached[0])
    assert len(fewer) == 5 and all(torch.equal(a["span"], b["span"]) and a["words"] == b["words"]
                                   for a, b in zip(fewer, train))
    assert sorted((tmp_path / "cache").glob("spans-*.pt")) == cached


def test_referent_recipe_cuts_samples_after_their_last_region_search(small_world, tmp_path):
    """The recipe's frozen pass reads samples only up to their last `<search><region>`: the
    spans, their embeddings and masks are those of the whole samples."""
    from pixsearch.model.checkpoint import save_checkpoint
    from pixsearch.train.data import build_pools, make_batch
    from pixsearch.train.referent import ReferentTrainConfig, ReferentTrainer

    torch.manual_seed(0)
    base_dir = save_checkpoint(build_model(get_preset("tiny")), tmp_path / "base")
    cfg = ReferentTrainConfig(model=str(base_dir), world=str(small_world),
                              out=str(tmp_path / "ref"), num_threads=1)
    trainer = ReferentTrainer(cfg, load_checkpoint(base_dir))
    samples = [s for pool in build_pools(trainer.train).values() for s in pool if s.masks][:6]
    full = make_batch(trainer.model, samples, trainer.features)
    cut = trainer.up_to_last_region(full)
    assert cut.input_ids.shape[1] < full.input_ids.shape[1]
    with torch.no_grad():
        a, b = trainer.model(full), trainer.model(cut)
    assert a.span_tokens == b.span_tokens and all(a.span_tokens)
    assert torch.allclose(a.span_embeddings, b.span_embeddings, atol=1e-5)
    assert torch.allclose(a.mask_logits, b.mask_logits, atol=1e-4)


def test_with_referent_replaces_a_selector_the_base_already_has():
    """The shipped `mini` carries a selector: retraining one (other widths) starts fresh."""
    from pixsearch.train.referent import with_referent

    torch.manual_seed(0)
    base = build_model(get_preset("tiny", {"referent": {"enabled": True, "dim": 16,
                                                        "heads": 2}})).eval()
    model = with_referent(base, {"dim": 32, "heads": 2})
    assert model.referent.query.out_features == 32
    for name, p in base.state_dict().items():
        if not name.startswith("referent."):
            assert torch.equal(p, model.state_dict()[name]), name
    # a fresh selector that also counts entity centres keeps the centre head it reads them from
    counting = build_model(get_preset("tiny", {"referent": {
        "enabled": True, "dim": 16, "heads": 2, "instances": "points"}})).eval()
    wider = with_referent(counting, {"peak_features": True})
    for name, p in counting.state_dict().items():
        if name.startswith("proposer."):
            assert torch.equal(p, wider.state_dict()[name]), name


def test_with_referent_warm_start_keeps_the_selector_the_base_has():
    from pixsearch.train.referent import with_referent

    torch.manual_seed(0)
    base = build_model(get_preset("tiny", {"referent": {"enabled": True, "dim": 16,
                                                        "heads": 2}})).eval()
    model = with_referent(base, {"split_min_distance": 6}, warm_start=True)
    assert model.cfg.referent.split_min_distance == 6
    for name, p in base.state_dict().items():
        assert torch.equal(p, model.state_dict()[name]), name
    # a base with a trained centre head keeps it too: more expressions, same peaks
    counting = build_model(get_preset("tiny", {"referent": {
        "enabled": True, "dim": 16, "heads": 2, "instances": "points"}})).eval()
    kept = with_referent(counting, {"split_at_peaks": True}, warm_start=True)
    for name, p in counting.state_dict().items():
        assert torch.equal(p, kept.state_dict()[name]), name
    with pytest.raises(ValueError, match="warm_start"):
        with_referent(build_model(get_preset("tiny")), {}, warm_start=True)
    with pytest.raises(ValueError, match="cannot change"):
        with_referent(base, {"dim": 32}, warm_start=True)
    with pytest.raises(ValueError, match="cannot change"):
        with_referent(base, {"peak_features": True}, warm_start=True)


def test_a_larger_referent_run_recomputes_only_what_it_adds(small_world, tmp_path):
    """The samples of a seed are one permutation's prefix: 12 expressions reuse the cached 8."""
    from pixsearch.model.checkpoint import save_checkpoint
    from pixsearch.train.referent import ReferentTrainConfig, ReferentTrainer

    base_dir = save_checkpoint(build_model(get_preset("tiny")), tmp_path / "base")
    cfg = ReferentTrainConfig(model=str(base_dir), world=str(small_world), num_threads=1,
                              referent={"source": "components"}, cache=str(tmp_path / "cache"))
    trainer = ReferentTrainer(cfg, load_checkpoint(base_dir))
    small = trainer.expressions(trainer.train, 8, "train")
    calls = []
    trainer.model.register_forward_pre_hook(lambda _, args: calls.append(len(args[0])))
    large = trainer.expressions(trainer.train, 12, "train")
    assert len(large) == 12 and sum(calls) == 4  # one model pass over the 4 new samples
    assert all(torch.equal(a["span"], b["span"]) for a, b in zip(small, large[:8]))
    fresh = ReferentTrainer(ReferentTrainConfig(**{**cfg.__dict__, "cache": ""}),
                            load_checkpoint(base_dir))
    recomputed = fresh.expressions(fresh.train, 12, "train")
    assert [e["image"] for e in recomputed] == [e["image"] for e in large]
    assert all(torch.allclose(a["span"], b["span"], atol=1e-5) for a, b in zip(recomputed, large))
