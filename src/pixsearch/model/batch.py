"""Collation: rendered samples (+ images, + gold region masks) → the batch `forward` takes.

The renderer gives ids, loss mask, BIO span labels and prompt length per sample; this pads
them (right padding), preprocesses or passes through cached image tensors, and resizes each
`<region>` search's gold mask to the decoder's mask resolution, in the order the model meets
the region searches (sample by sample, left to right).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from ..render import Rendered

if TYPE_CHECKING:
    from .pixsearch_model import PixSearchModel

IGNORE = -100


def mask_target(mask: np.ndarray, size: int) -> torch.Tensor:
    """Boolean HxW mask → float [size, size] (nearest resize, the decoder's square frame)."""
    im = Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255)
    return torch.from_numpy(np.asarray(im.resize((size, size), Image.NEAREST)) > 127).float()


def collate(model: PixSearchModel, samples: list[Rendered],
            images: list[Image.Image | dict[str, torch.Tensor]] | None = None,
            region_masks: list[list[np.ndarray]] | None = None) -> dict[str, Any]:
    """Pad `samples` into a batch. `images[i]` is a PIL image or `model.preprocess` output
    (cached); `region_masks[i]` lists the gold mask of each `<region>` search of sample i."""
    pad_id = getattr(model.tokenizer, "pad_token_id", None) or 0
    T = max(len(r) for r in samples)
    B = len(samples)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    attn = torch.zeros((B, T), dtype=torch.long)
    loss = torch.zeros((B, T), dtype=torch.long)
    spans = torch.full((B, T), IGNORE, dtype=torch.long)
    for i, r in enumerate(samples):
        n = len(r)
        ids[i, :n] = torch.tensor(r.input_ids)
        attn[i, :n] = 1
        loss[i, :n] = torch.tensor(r.loss_mask)
        if r.span_labels:
            spans[i, :n] = torch.tensor(r.span_labels)
    batch: dict[str, Any] = dict(input_ids=ids, attention_mask=attn, loss_mask=loss,
                                 span_labels=spans,
                                 prompt_len=torch.tensor([r.prompt_len for r in samples]))
    if images is not None:
        items = [im if isinstance(im, dict) else model.preprocess(im) for im in images]
        batch["images"] = model.stack_images(items)
    if region_masks is not None:
        for i, (r, ms) in enumerate(zip(samples, region_masks)):
            if len(ms) != len(r.region_positions):
                raise ValueError(f"sample {i} has {len(r.region_positions)} region searches "
                                 f"but {len(ms)} masks")
        flat = [mask_target(m, model.mask_size) for ms in region_masks for m in ms]
        batch["region_targets"] = (torch.stack(flat) if flat
                                   else torch.zeros(0, model.mask_size, model.mask_size))
    return batch
