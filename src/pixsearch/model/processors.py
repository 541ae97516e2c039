"""Images as the checkpoints expect them, and masks mapped back to the image they came from.

Real weights only see what they were trained on: llava-hf's CLIP tower a short-side resize
and centre crop (or LLaVA-1.5's pad-to-square, when the processor config says `do_pad`), SAM's
image encoder the longest side resized to 1024 and the rest padded at the bottom and right.
Stretching every image to a square distorts it silently. Here the backbone's images go
through the `transformers` image processor named by the checkpoint's `preprocessor_config.json`
(kept in `LMConfig.image_processor`, so a saved model keeps its checkpoint's preprocessing), and
SAM's through `SamImageProcessorPil`.

The mask decoder predicts in its own square frame. `MaskFrame` says where the image lies in
that frame and maps between the two: predicted logits back to the original H × W (SAM's
`post_process_masks` geometry: upsample to the padded input, crop the padding, resize), gold
masks and RGB into the frame (training targets, referent colours). Native backbones (`tiny`,
`mini`) see the whole image stretched to a square, so their frame is a stretch and the mapping
is the plain resize they were trained with.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class MaskFrame:
    """Where a `width` × `height` image lies in the mask decoder's square frame.

    Attributes:
        width, height: the original image size (pixels).
        side: side of the square model input the frame covers (SAM: 1024; 0 for a stretch).
        content_w, content_h: size of the resized image inside that input, at its top-left
            corner (the rest is padding); equal to `side` for a stretch.
    """

    width: int
    height: int
    side: int = 0
    content_w: int = 0
    content_h: int = 0

    @property
    def is_stretch(self) -> bool:
        return self.side == 0

    def to_original(self, logits: torch.Tensor) -> torch.Tensor:
        """Mask logits [..., M, M] in the frame → float logits [..., height, width]."""
        x = logits.float()
        lead = x.shape[:-2]
        x = x.reshape(-1, 1, *x.shape[-2:])
        if not self.is_stretch:  # as SAM's post-processing: padded input size, crop, resize
            x = F.interpolate(x, size=(self.side, self.side), mode="bilinear", align_corners=False)
            x = x[..., : self.content_h, : self.content_w]
        x = F.interpolate(x, size=(self.height, self.width), mode="bilinear", align_corners=False)
        return x.reshape(*lead, self.height, self.width)

    def points_to_original(self, points: torch.Tensor) -> np.ndarray:
        """Points (x, y) in [0, 1] of the frame [n, 2] → (x, y) pixels of the original image
        [m, 2], those in the padding left out."""
        xy = points.detach().float().cpu().numpy().reshape(-1, 2)
        if self.is_stretch:
            scale = np.array([self.width, self.height], np.float64)
        else:
            scale = self.side * np.array([self.width / self.content_w,
                                          self.height / self.content_h])
        out = xy * scale
        inside = (out[:, 0] < self.width) & (out[:, 1] < self.height)
        return out[inside]

    def _content_at(self, size: int) -> tuple[int, int]:
        """(w, h) of the image content in a frame of `size` × `size` pixels."""
        if self.is_stretch:
            return size, size
        return (max(1, round(self.content_w * size / self.side)),
                max(1, round(self.content_h * size / self.side)))

    def target(self, mask: np.ndarray, size: int) -> torch.Tensor:
        """Boolean H × W mask of the original image → float [size, size] in the frame (nearest
        resize of the content, zeros in the padding): the decoder's training target."""
        assert mask.shape[:2] == (self.height, self.width), (mask.shape, self.width, self.height)
        im = Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255)
        w, h = self._content_at(size)
        out = torch.zeros(size, size)
        small = np.asarray(im.resize((w, h), Image.NEAREST)) > 127
        out[:h, :w] = torch.from_numpy(small).float()
        return out

    def rgb(self, image: Image.Image, size: int) -> torch.Tensor:
        """The image in the frame at `size` × `size`, RGB in [0, 1]: [3, size, size] (black
        padding)."""
        w, h = self._content_at(size)
        arr = np.asarray(image.convert("RGB").resize((w, h), Image.BICUBIC), np.float32) / 255.0
        out = torch.zeros(3, size, size)
        out[:, :h, :w] = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
        return out


def stretch_frame(width: int, height: int) -> MaskFrame:
    """The frame of a model that sees the whole image stretched to a square."""
    return MaskFrame(width, height)


def sam_frame(width: int, height: int, side: int) -> MaskFrame:
    """SAM's frame: the longest side resized to `side`, the other to `int(x * scale + 0.5)`
    (as `SamImageProcessor` resizes), padded at the bottom and right."""
    scale = side / max(width, height)
    return MaskFrame(width, height, side, int(width * scale + 0.5), int(height * scale + 0.5))


@functools.lru_cache(maxsize=4)
def sam_processor(side: int) -> Any:
    """`SamImageProcessorPil` for a SAM image encoder whose input side is `side` (1024 for
    the published SAM checkpoints): longest side → `side`, pad to `side` × `side`, ImageNet
    mean and std."""
    from transformers import SamImageProcessorPil

    return SamImageProcessorPil(size={"longest_edge": side},
                                pad_size={"height": side, "width": side})


def sam_pixels(image: Image.Image, side: int) -> torch.Tensor:
    """SAM's input of `image`: float [3, side, side] (resized longest side, zero padding
    after normalisation, as `SamProcessor` gives it)."""
    out = sam_processor(side)(images=[image.convert("RGB")], return_tensors="pt")
    return out["pixel_values"][0]


def default_image_processor(backbone: str, side: int, vision: Any) -> dict[str, Any]:
    """The published image-processor config of a hub backbone whose vision tower sees
    `side`-pixel images (used when the checkpoint carries none, e.g. tiny random configs).

    LLaVA-1.5 (llava-hf): `CLIPImageProcessor`, short side → `side`, centre crop, CLIP mean and
    std. Qwen2.5-VL: `Qwen2VLImageProcessor` with the tower's patch and merge sizes.
    """
    if backbone == "llava":
        return {"image_processor_type": "CLIPImageProcessor",
                "size": {"shortest_edge": side}, "crop_size": {"height": side, "width": side},
                "do_center_crop": True, "resample": int(Image.BICUBIC),
                "image_mean": list(CLIP_MEAN), "image_std": list(CLIP_STD)}
    if backbone == "qwen2_5_vl":
        return {"image_processor_type": "Qwen2VLImageProcessor",
                "patch_size": vision.patch_size, "merge_size": vision.spatial_merge_size,
                "temporal_patch_size": vision.temporal_patch_size,
                "image_mean": list(CLIP_MEAN), "image_std": list(CLIP_STD)}
    raise ValueError(f"backbone {backbone!r} has no hub image processor")


def pretrained_image_processor(pretrained: str) -> dict[str, Any] | None:
    """The image-processor config saved with a hub checkpoint (`preprocessor_config.json`),
    None when it has none (a folder saved by `save_pretrained` of the model alone)."""
    from transformers import AutoImageProcessor

    try:
        proc = AutoImageProcessor.from_pretrained(pretrained, backend="pil")
    except (OSError, ValueError):
        return None
    return json.loads(proc.to_json_string())


def build_image_processor(config: dict[str, Any], **overrides: Any) -> Any:
    """The PIL-backed `transformers` image processor of `config` (a `preprocessor_config.json`
    mapping naming its `image_processor_type`), with `overrides` of its fields."""
    import transformers

    name = str(config.get("image_processor_type", ""))
    base = name[:-4] if name.endswith("Fast") else name.removesuffix("Pil")
    cls = getattr(transformers, f"{base}Pil", None)
    if cls is None:
        raise ValueError(f"image processor {name!r} has no PIL implementation in transformers "
                         f"{transformers.__version__}; set model.lm.image_processor to a "
                         "CLIPImageProcessor, LlavaImageProcessor or Qwen2VLImageProcessor config")
    fields = {k: v for k, v in config.items() if k not in ("image_processor_type", "processor_class")}
    return cls.from_dict({**fields, **overrides})


def pad_to_square(image: Image.Image, fill: tuple[float, ...]) -> Image.Image:
    """`image` centred on a square canvas of its longest side, filled with colour `fill`
    (mean RGB in [0, 1]), as LLaVA-1.5's `expand2square`."""
    w, h = image.size
    if w == h:
        return image
    side = max(w, h)
    colour = tuple(int(round(255 * c)) for c in fill)
    canvas = Image.new("RGB", (side, side), colour)
    canvas.paste(image.convert("RGB"), ((side - w) // 2, (side - h) // 2))
    return canvas
