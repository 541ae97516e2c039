"""Images through the checkpoints' own processors, masks back in the image's coordinates (#14.6).

SAM sees the longest side resized and the rest padded; LLaVA's CLIP tower a short-side resize
and centre crop (or pad-to-square when its processor config says so); Qwen a padded square.
The decoder's mask frame is SAM's padded one, so a mask must be mapped back by cropping the
padding: on a non-square image, a plain resize of the square mask would put it elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pixsearch.model.batch import collate
from pixsearch.model.build import build_model
from pixsearch.model.presets import get_preset
from pixsearch.model.processors import sam_frame, sam_pixels, sam_processor, stretch_frame
from pixsearch.train.losses import focal_tversky_loss, mask_bce_loss, span_loss

W, H = 200, 100  # a wide image: SAM's frame holds it in its top half
BOX = (120, 10, 180, 40)  # x0, y0, x1, y1 of the object


def _gold() -> np.ndarray:
    mask = np.zeros((H, W), bool)
    x0, y0, x1, y1 = BOX
    mask[y0:y1, x0:x1] = True
    return mask


def _scene() -> Image.Image:
    """Grey noise with a white object at `BOX`."""
    rng = np.random.default_rng(0)
    arr = rng.integers(60, 120, (H, W, 3), dtype=np.uint8)
    arr[_gold()] = 255
    return Image.fromarray(arr)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.mark.parametrize("size", [(200, 100), (100, 200), (333, 77), (64, 64)])
def test_sam_frame_is_the_sam_processors_geometry(size):
    w, h = size
    out = sam_processor(128)(images=[Image.new("RGB", size)], return_tensors="pt")
    frame = sam_frame(w, h, 128)
    assert out["reshaped_input_sizes"][0].tolist() == [frame.content_h, frame.content_w]
    assert tuple(out["pixel_values"].shape[-2:]) == (128, 128)


def test_sam_pixels_put_the_image_top_left_and_pad_the_rest():
    px = sam_pixels(_scene(), 128)  # 200×100 → 128×64 content, rows 64.. are padding
    assert px.shape == (3, 128, 128)
    assert torch.count_nonzero(px[:, 64:]) == 0
    bright = (px.mean(0) > 1.5).nonzero()  # the white object, normalised
    scale = 128 / W
    x0, y0, x1, y1 = BOX
    assert bright[:, 1].min().item() == pytest.approx(x0 * scale, abs=2)
    assert bright[:, 1].max().item() == pytest.approx(x1 * scale, abs=2)
    assert bright[:, 0].min().item() == pytest.approx(y0 * scale, abs=2)
    assert bright[:, 0].max().item() == pytest.approx(y1 * scale, abs=2)


def test_mask_frame_round_trip_and_placement():
    frame, m = sam_frame(W, H, 256), 64  # SAM-H: 1024-px input, 256-px masks
    target = frame.target(_gold(), m)
    rows, cols = target.nonzero()[:, 0], target.nonzero()[:, 1]
    s = m / W  # the longest side fills the frame
    assert cols.min().item() == pytest.approx(BOX[0] * s, abs=1)
    assert cols.max().item() == pytest.approx(BOX[2] * s - 1, abs=1)  # end is exclusive
    assert rows.min().item() == pytest.approx(BOX[1] * s, abs=1)
    assert rows.max().item() == pytest.approx(BOX[3] * s - 1, abs=1)
    assert target[m // 2:].sum() == 0  # the padding holds nothing
    logits = (target * 2 - 1) * 10
    back = frame.to_original(logits[None, None])[0, 0] > 0
    assert back.shape == (H, W) and _iou(back.numpy(), _gold()) > 0.85
    # the stretch a square-resizing pipeline does would put it elsewhere
    wrong = stretch_frame(W, H).to_original(logits[None, None])[0, 0] > 0
    assert _iou(wrong.numpy(), _gold()) < 0.4
    # native backbones' stretch frame is the identity's square resize both ways
    st = stretch_frame(W, H)
    back = st.to_original(((st.target(_gold(), m) * 2 - 1) * 10)[None, None])[0, 0] > 0
    assert _iou(back.numpy(), _gold()) > 0.85


def test_frame_points_map_back_to_image_pixels_and_padding_is_dropped():
    """Entity centres found in the frame (the proposer's heatmap peaks) land on the same
    pixels of the original image as the masks do."""
    frame, m = sam_frame(W, H, 256), 64
    target = frame.target(_gold(), m)
    rows, cols = target.nonzero()[:, 0].float(), target.nonzero()[:, 1].float()
    centre = torch.tensor([[(cols.mean() + 0.5) / m, (rows.mean() + 0.5) / m],
                           [0.5, 0.9]])  # the second lies in the padding below the image
    xy = frame.points_to_original(centre)
    x0, y0, x1, y1 = BOX
    assert xy.shape == (1, 2)
    assert xy[0, 0] == pytest.approx((x0 + x1) / 2, abs=2)
    assert xy[0, 1] == pytest.approx((y0 + y1) / 2, abs=2)
    st = stretch_frame(W, H)  # a stretch frame has no padding
    assert st.points_to_original(torch.tensor([[0.5, 0.9]]))[0] == pytest.approx([W * 0.5, H * 0.9])


def test_llava_uses_clip_resize_and_centre_crop():
    model = build_model(get_preset("llava-tiny"))
    assert model.cfg.lm.image_processor["image_processor_type"] == "CLIPImageProcessor"
    # red | green | blue columns: the centre crop of a 4:1 image is all green
    arr = np.zeros((50, 200, 3), np.uint8)
    arr[:, :50, 0] = 255
    arr[:, 50:150, 1] = 255
    arr[:, 150:, 2] = 255
    px = model.backbone.preprocess(Image.fromarray(arr))["pixel_values"]
    assert px.shape == (3, 28, 28)
    assert (px[1] > px[0]).all() and (px[1] > px[2]).all()


def test_llava_follows_a_pad_to_square_processor_config(tmp_path):
    """A checkpoint whose processor config pads to square (LLaVA-1.5's `expand2square`) is
    preprocessed so, and the model's saved config keeps it."""
    from transformers import LlavaImageProcessorPil

    from pixsearch.model.checkpoint import load_checkpoint, save_checkpoint

    src = build_model(get_preset("llava-tiny", {"trainable": ["projector"]}))
    src.backbone.model.save_pretrained(tmp_path / "llava")
    src.tokenizer.save_pretrained(tmp_path / "llava")
    LlavaImageProcessorPil(do_pad=True, size={"shortest_edge": 28},
                           crop_size={"height": 28, "width": 28}).save_pretrained(tmp_path / "llava")
    model = build_model(get_preset("llava-tiny", {"lm": {"pretrained": str(tmp_path / "llava")}}))
    assert model.cfg.lm.image_processor["do_pad"] is True
    white = Image.new("RGB", (200, 50), "white")
    px = model.backbone.preprocess(white)["pixel_values"]
    # the bands above and below are the mean colour (0 after normalisation), the middle white
    assert px[:, 0].abs().max() < 0.05 and px[:, 27].abs().max() < 0.05
    assert (px[:, 14] > 1.0).all()
    save_checkpoint(model, tmp_path / "ckpt")
    again = load_checkpoint(tmp_path / "ckpt")
    assert torch.equal(again.backbone.preprocess(white)["pixel_values"], px)


def test_qwen_pads_to_a_square_instead_of_stretching():
    model = build_model(get_preset("qwen2.5-vl-tiny"))
    white = Image.new("RGB", (200, 50), "white")
    out = model.backbone.preprocess(white)
    assert out["image_grid_thw"].tolist() == [1, 4, 4]  # 56 px / 14: always the same slots
    # patches of the first and last rows are the mean colour, the middle row is white
    patches = out["pixel_values"].reshape(4, 4, -1)  # merged-patch order is row-major per 2×2
    assert patches.abs().amax(dim=-1).min() < 0.05 and patches.amax() > 1.0


def test_a_trained_mask_lands_on_the_object_of_a_non_square_image():
    """Full path of a SAM preset: targets go into SAM's padded frame (`collate`), and the
    decoded mask comes back out of it (`region_mask`). The mask decoder is fitted to one
    object on a 2:1 image; the mask the decoding session returns must cover that object.
    With a frame mismatch (stretched targets, padded predictions) it would cover about a
    third of it."""
    torch.manual_seed(0)
    model = build_model(get_preset("llava-tiny"))
    display = "The white box <search><region></search><information>a box</information> Box."
    r = model.renderer.trajectory("Where is the box?", display, spans=[(4, 13)])
    batch = collate(model, [r], [_scene()], [[_gold()]])
    md = model.mask_decoder
    params = [p for m in (md.vision_encoder, md.mask_decoder, md.prompt_encoder, model.g,
                          model.span_tagger) for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=3e-3)
    model.train()
    for _ in range(60):
        out = model(batch)
        loss = (2 * mask_bce_loss(out.mask_logits, batch.region_targets)
                + 8 * focal_tversky_loss(out.mask_logits, batch.region_targets)
                + span_loss(out.span_logits, out.span_targets))  # decoding tags the span
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    session, _ = model.start(model.renderer.prompt("Where is the box?"), _scene())
    session.extend(r.input_ids[r.prompt_len:r.region_positions[0] + 1])
    mask = session.region_mask()
    assert mask.shape == (H, W)
    assert _iou(mask, _gold()) > 0.6
