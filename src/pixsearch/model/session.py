"""The decoding session: one answer in progress behind a KV cache (`model/interface.py`).

`open` prefills the rendered prompt (image tokens spliced into their slots) into a KV cache
(`kv_cache.py`); `extend` runs only the new ids through the cache and returns the
next-token logits. The session keeps the final-layer hidden states of every position, so that
when the model writes `<search><region>` the span tagger can read the assistant tokens so far
and `region_mask` can decode the entity's mask over the image embeddings computed at prefill.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from pixsearch.model.kv_cache import new_decode_cache
from pixsearch.model.proposals import Proposals, span_components
from pixsearch.model.span_tagger import pool_span
from pixsearch.perception import instance_masks
from pixsearch.render import Rendered

if TYPE_CHECKING:
    from pixsearch.model.pixsearch_model import PixSearchModel


def mask_confidence(logits: torch.Tensor) -> float:
    """Mean probability inside the mask of logits [M, M] (0 for an empty mask): a mask the
    decoder is unsure of is grey, not black and white."""
    prob = torch.sigmoid(logits.float())
    inside = prob > 0.5
    return float(prob[inside].mean()) if bool(inside.any()) else 0.0


class PixSearchSession:
    """Implements `DecodeSession`: `ids`, `extend(ids) -> logits`, `region_mask() -> mask`."""

    def __init__(self, model: PixSearchModel, ids: list[int], prompt_len: int, cache: Any,
                 state: dict[str, Any], hidden: torch.Tensor, mask_emb: torch.Tensor | None,
                 image_size: tuple[int, int] | None) -> None:
        self.model = model
        self.ids = ids
        self.prompt_len = prompt_len
        self.cache = cache
        self.state = state
        self.hidden = [hidden]  # chunks of [T_i, d_lm], concatenated on demand
        self.mask_emb = mask_emb
        self.image_size = image_size  # (width, height) of the original image
        self.image: Image.Image | None = None  # the photograph, for the refiner's zoom
        self.span_emb: torch.Tensor | None = None  # [1, d_lm] of the last region search
        self.rgb: torch.Tensor | None = None  # image at mask resolution (referent selection)
        self.proposals: Proposals | None = None
        self.entity_points: torch.Tensor | None = None  # centre-heatmap peaks, in the frame
        # confidence in the last region mask: the selector's probability of its referent, or
        # without referent selection the mean probability inside the mask
        self.mask_score: float | None = None
        self.span_logits: torch.Tensor | None = None  # [M, M] of the last region search

    @classmethod
    def open(cls, model: PixSearchModel, prompt: Rendered, image: Image.Image | None,
             cache: Any = None, features: dict[str, torch.Tensor] | None = None
             ) -> tuple[PixSearchSession, torch.Tensor]:
        """Prefill `prompt` into `cache` (default: a fresh `new_decode_cache`; the batched
        engine passes one slot of its shared cache, `model/batched_cache.py`). `features`:
        `model.preprocess(image)` computed beforehand (the batched engine does it off its
        decoding thread)."""
        dev = model._device()
        ids = torch.tensor([prompt.input_ids], dtype=torch.long, device=dev)
        vis = img_tokens = mask_emb = None
        if image is not None:
            feats = features if features is not None else model.preprocess(image)
            vis = {k: v.to(dev) for k, v in model.stack_images([feats]).items()}
            img_tokens, mask_emb = model.encode_images(vis)
        elif prompt.image_slice is not None:
            raise ValueError("the prompt has image slots but no image was given")
        state: dict[str, Any] = {}
        if cache is None:
            cache = new_decode_cache(model.backbone.model.config)
        pos = model.backbone.position_ids(ids, vis, 0, state)
        logits, hidden = model.backbone.run(model.embed(ids, img_tokens), None, pos, cache, 1)
        session = cls(model, list(prompt.input_ids), prompt.prompt_len, cache, state, hidden[0],
                      mask_emb, image.size if image is not None else None)
        if image is not None and model.referent is not None:
            session.rgb = model.mask_rgb(image).to(dev)
        if image is not None and model.refiner is not None:
            session.image = image
        return session, logits[0, -1]

    @torch.no_grad()
    def extend(self, ids: list[int]) -> torch.Tensor:
        """Run `ids` through the cache; return logits [V] of the token after the last one."""
        if not ids:
            raise ValueError("extend needs at least one id")
        m = self.model
        t = torch.tensor([ids], dtype=torch.long, device=m._device())
        pos = m.backbone.position_ids(t, None, len(self.ids), self.state)
        logits, hidden = m.backbone.run(m.embed(t, None), None, pos, self.cache, 1)
        self.ids += list(ids)
        self.hidden.append(hidden[0])
        return logits[0, -1]

    def _hidden(self) -> torch.Tensor:
        if len(self.hidden) > 1:
            self.hidden = [torch.cat(self.hidden, dim=0)]
        return self.hidden[0]

    @torch.no_grad()
    def region_mask_logits(self) -> torch.Tensor:
        """Mask logits [1, 1, M, M] of the entity before the last `<search>`."""
        if self.mask_emb is None:
            raise RuntimeError("region_mask needs an image; this session was started without one")
        s_open = self.model.tokens.id("search_open")
        hidden = self._hidden()
        search = max((i for i in range(self.prompt_len, len(self.ids)) if self.ids[i] == s_open),
                     default=None)
        if search is None:
            raise RuntimeError("region_mask is called after the model wrote <search><region>; "
                               "found no <search> in the answer")
        start, end = self.model.span_window(self.ids, self.prompt_len, search)
        window = hidden[start:end]
        span = self.model.region_span(window)
        span_emb = pool_span(window, span)[None]
        self.span_emb = span_emb
        logits, _ = self.model.decode_masks(self.mask_emb, span_emb)
        self.span_logits = logits[0, 0]
        chosen, prob = logits, None
        if self.model.referent is not None:
            peaks = self._peaks() if self.model.cfg.referent.peak_features else None
            text = self.model.tokenizer.decode(self.ids[start + span[0]: start + span[1]])
            chosen, prob = self.model.select_region(self.mask_emb, span_emb, logits, self.rgb,
                                                    self._proposals(logits), peaks, text)
        self.mask_score = prob if prob is not None else mask_confidence(chosen[0, 0])
        return chosen

    def _proposals(self, span_logits: torch.Tensor) -> Proposals:
        ref = self.model.cfg.referent
        if ref.source == "components":
            return span_components(span_logits[0, 0], ref,
                                   self._peaks() if ref.split_at_peaks else None)
        if self.proposals is None:  # once per image: every region search shares them
            self.proposals = self.model.proposer.propose(self.mask_emb)
        return self.proposals

    @torch.no_grad()
    def instances(self) -> list[np.ndarray] | None:
        """Boolean HxW masks (original image size) of the entities of the kind the last
        region search was about: the instances of its span-conditioned mask
        (`pixsearch.perception.instance_masks`); None before any region search, or when the
        model counts the proposer's centres instead (`centres`)."""
        if self.span_logits is None or self._counts_points():
            return None
        pieces = instance_masks(torch.sigmoid(self.span_logits.float()).cpu().numpy())
        if not pieces:
            return []
        stack = torch.from_numpy(np.stack(pieces)).float() * 2 - 1  # inside > 0 > outside
        up = self.model.mask_decoder.frame(*self.image_size).to_original(stack)
        return list((up > 0).numpy())

    def _counts_points(self) -> bool:
        ref = self.model.cfg.referent
        return ref.enabled and ref.instances == "points"

    @torch.no_grad()
    def centres(self) -> np.ndarray | None:
        """(x, y) pixels of the original image [n, 2] of every entity the proposer's centre
        heatmap finds (`ReferentConfig.instances: points`); None when the model counts the
        span mask's instances instead, or the session has no image."""
        if self.mask_emb is None or not self._counts_points():
            return None
        return self.model.mask_decoder.frame(*self.image_size).points_to_original(
            self._peaks())

    def _peaks(self) -> torch.Tensor:
        """The proposer's entity centres in the mask frame [n, 2], once per image."""
        if self.entity_points is None:
            self.entity_points = self.model.proposer.points(self.mask_emb)
        return self.entity_points

    @torch.no_grad()
    def region_mask(self) -> np.ndarray:
        """Boolean HxW mask (original image size) of the entity being talked about: the
        selected mask, zoomed into and decoded again when the model has a refiner."""
        logits = self.region_mask_logits()
        # the decoder's frame (SAM: longest side + padding) mapped back to the image
        up = self.model.mask_decoder.frame(*self.image_size).to_original(logits)[0, 0]
        if self.image is not None:
            return self.model.refine_region(self.image, up, self.span_emb)
        return (up > self.model.cfg.mask_decoder.threshold).cpu().numpy()
