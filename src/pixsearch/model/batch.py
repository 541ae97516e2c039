"""The training batch: rendered samples (+ images, + gold region masks) → a typed `Batch`.

The renderer gives ids, loss mask, BIO span labels and prompt length per sample; `collate`
pads them (right padding), preprocesses or passes through cached image tensors, and resizes
each `<region>` search's gold mask to the decoder's mask resolution, in the order the model
meets the region searches (sample by sample, left to right). `PixSearchModel.forward` and the
losses read the `Batch`'s fields by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from pixsearch.render import Rendered

if TYPE_CHECKING:
    from pixsearch.model.pixsearch_model import PixSearchModel

IGNORE = -100


@dataclass
class Batch:
    """A padded batch of B rendered samples of length ≤ T (right padding).

    Attributes:
        input_ids: token ids [B, T] (pad id past each sample's end).
        attention_mask: 1 on real tokens, 0 on padding [B, T].
        loss_mask: 1 where the token is an L_LM target (assistant text, never the prompt or
            `<information>` evidence) [B, T].
        span_labels: BIO labels (0 O, 1 B, 2 I) of region-search entity spans, IGNORE (-100)
            where a sample has none or at padding [B, T].
        prompt_len: number of prompt tokens of each sample [B].
        images: per-image tensors of `PixSearchModel.preprocess`, stacked ({name: [B, ...]});
            None for a text-only batch.
        region_targets: gold mask of each `<region>` search, mapped into the decoder's square
            frame (`MaskDecoder.frame`), in the order the model meets them [R, M, M]; None when not given.
        kinds: each sample's kind ("refseg", "vqa", "trajectory"; empty when unknown).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    span_labels: torch.Tensor
    prompt_len: torch.Tensor
    images: dict[str, torch.Tensor] | None = None
    region_targets: torch.Tensor | None = None
    kinds: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: str | torch.device) -> Batch:
        """A copy with every tensor on `device` (the model moves what it reads itself; this is
        for callers that want the whole batch there at once)."""
        images = None if self.images is None else {k: v.to(device) for k, v in self.images.items()}
        targets = None if self.region_targets is None else self.region_targets.to(device)
        return replace(self, input_ids=self.input_ids.to(device),
                       attention_mask=self.attention_mask.to(device),
                       loss_mask=self.loss_mask.to(device), span_labels=self.span_labels.to(device),
                       prompt_len=self.prompt_len.to(device), images=images,
                       region_targets=targets, kinds=list(self.kinds))

    def pin_memory(self) -> Batch:
        """A copy in page-locked memory (a DataLoader with `pin_memory=True` calls this)."""
        return self.apply(lambda t: t.pin_memory())

    def apply(self, fn) -> Batch:
        """A copy with `fn` applied to every tensor."""
        images = None if self.images is None else {k: fn(v) for k, v in self.images.items()}
        targets = None if self.region_targets is None else fn(self.region_targets)
        return replace(self, input_ids=fn(self.input_ids), attention_mask=fn(self.attention_mask),
                       loss_mask=fn(self.loss_mask), span_labels=fn(self.span_labels),
                       prompt_len=fn(self.prompt_len), images=images, region_targets=targets,
                       kinds=list(self.kinds))


def mask_target(mask: np.ndarray, size: int) -> torch.Tensor:
    """Boolean HxW mask → float [size, size] (nearest resize, the decoder's square frame)."""
    im = Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255)
    return torch.from_numpy(np.asarray(im.resize((size, size), Image.NEAREST)) > 127).float()


def collate(model: PixSearchModel, samples: list[Rendered],
            images: list[Image.Image | dict[str, torch.Tensor]] | None = None,
            region_masks: list[list[np.ndarray]] | None = None,
            kinds: list[str] | None = None) -> Batch:
    """Pad `samples` into a `Batch`. `images[i]` is a PIL image or `model.preprocess` output
    (cached); `region_masks[i]` lists the gold mask of each `<region>` search of sample i;
    `kinds[i]` is sample i's kind (kept for the caller, unused by the model)."""
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
    stacked = None
    if images is not None:
        items = [im if isinstance(im, dict) else model.preprocess(im) for im in images]
        stacked = model.stack_images(items)
    targets = None
    if region_masks is not None:
        for i, (r, ms) in enumerate(zip(samples, region_masks)):
            if len(ms) != len(r.region_positions):
                raise ValueError(f"sample {i} has {len(r.region_positions)} region searches "
                                 f"but {len(ms)} masks")
        # into the decoder's frame (a stretch for native backbones, SAM's padded frame)
        frame = model.mask_decoder.frame
        flat = [frame(m.shape[1], m.shape[0]).target(np.asarray(m), model.mask_size)
                for ms in region_masks for m in ms]
        targets = (torch.stack(flat) if flat
                   else torch.zeros(0, model.mask_size, model.mask_size))
    if kinds is not None and len(kinds) != B:
        raise ValueError(f"{len(kinds)} kinds for {B} samples")
    return Batch(input_ids=ids, attention_mask=attn, loss_mask=loss, span_labels=spans,
                 prompt_len=torch.tensor([r.prompt_len for r in samples]), images=stacked,
                 region_targets=targets, kinds=list(kinds or []))
