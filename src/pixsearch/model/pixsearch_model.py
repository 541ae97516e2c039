"""PixSearchModel: the segmenting LMM of the paper (§4.2), composed from its parts.

backbone (vision tower → projector → causal LM) → final hidden states →
  (a) next-token logits (decoding, L_LM);
  (b) BIO span tagger over the assistant tokens before each `<search><region>` (L_span);
  (c) span embedding (mean of the span's hidden states) → g(·) → mask queries → SAM-style
      mask decoder over the image embeddings (backbone grid + hi-res branch, or SAM's ViT),
      with the PLUM feedback loop (L_focal-Tversky, L_BCE; L_KL against a frozen teacher).

`forward(batch)` is the training pass (losses live in `pixsearch.train.losses`); `start`
returns a KV-cached `PixSearchSession` for the decoding engine (`model/interface.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from pixsearch.model.backbone import Backbone
from pixsearch.model.batch import Batch
from pixsearch.model.colours import ExpressionColours, expression_colours
from pixsearch.model.config import ModelConfig
from pixsearch.model.hires import MaskFeatureMap
from pixsearch.model.mask_decoder import MaskDecoder
from pixsearch.model.proposals import InstanceProposer, Proposals
from pixsearch.model.referent import ReferentSelector, candidate_features
from pixsearch.model.refiner import (
    OUTSIDE,
    ZoomRefiner,
    keep_touching,
    paste,
    to_frame,
    zoom_box,
)
from pixsearch.model.span_query import SpanToQueries
from pixsearch.model.span_tagger import SpanTagger, pool_span, select_span
from pixsearch.render import Rendered, Renderer
from pixsearch.tokens import TokenTable

IGNORE = -100


@dataclass
class PixSearchOutput:
    """Training-pass outputs.

    Attributes:
        logits: next-token logits [B, T, V].
        hidden: final-layer hidden states [B, T, d_lm].
        span_logits: BIO logits [W, L, 3] over W tagger windows (assistant tokens before each
            region search; the whole assistant turn for samples without one).
        span_targets: BIO targets [W, L] (IGNORE at padding / where no labels were given).
        span_embeddings: pooled span embedding of each region search [R, d_lm].
        mask_logits: mask logits [R, 1, M, M] (M = 4 × decoder grid).
        mask_iou: predicted mask IoU [R, 1].
        region_batch: sample index of each region search [R].
        span_tokens: the token ids of each region search's span (R lists): what the
            referent selector reads the expression's words from (`referent.colour_words`).
    """

    logits: torch.Tensor
    hidden: torch.Tensor
    span_logits: torch.Tensor
    span_targets: torch.Tensor
    span_embeddings: torch.Tensor
    mask_logits: torch.Tensor
    mask_iou: torch.Tensor
    region_batch: torch.Tensor
    span_tokens: list[list[int]]


class PixSearchModel(nn.Module):
    """Backbone + span tagger + g(·) + mask decoder (+ mask feature map); see module doc."""

    def __init__(self, cfg: ModelConfig, backbone: Backbone, span_tagger: SpanTagger,
                 g: SpanToQueries, mask_decoder: MaskDecoder, mask_features: MaskFeatureMap | None,
                 tokenizer: Any, tokens: TokenTable, proposer: InstanceProposer | None = None,
                 referent: ReferentSelector | None = None,
                 refiner: ZoomRefiner | None = None) -> None:
        super().__init__()
        assert tokens.ids, "PixSearchModel needs a resolved TokenTable"
        assert tokens.id("image_placeholder") != tokens.id("image_query")
        self.cfg = cfg
        self.backbone = backbone
        self.span_tagger = span_tagger
        self.g = g
        self.mask_decoder = mask_decoder
        self.mask_features = mask_features
        self.proposer = proposer
        self.referent = referent
        self.refiner = refiner
        self.tokenizer = tokenizer
        self.tokens = tokens
        self.renderer = Renderer(tokenizer, tokens, backbone.chat, backbone.n_image_tokens)

    # ---- images ---------------------------------------------------------------------------
    @property
    def mask_size(self) -> int:
        return self.mask_decoder.mask_size

    def preprocess(self, image: Image.Image) -> dict[str, torch.Tensor]:
        """Every tensor this model needs from one image (no batch dim); frozen-encoder outputs
        (DINOv2 tokens) are included, so a dataset can cache the result."""
        return {**self.backbone.preprocess(image), **self._mask_inputs(image)}

    def preprocess_many(self, images: list[Image.Image]) -> list[dict[str, torch.Tensor]]:
        """`preprocess` for many images, running a frozen encoder (DINOv2) in batches; the
        result is what a dataset caches."""
        vision = getattr(self.backbone, "vision", None)
        if not hasattr(vision, "encode"):
            return [self.preprocess(im) for im in images]
        tokens = vision.encode(images)
        return [{"vision": tok, **self._mask_inputs(im)} for im, tok in zip(images, tokens)]

    def _mask_inputs(self, image: Image.Image) -> dict[str, torch.Tensor]:
        out = {}
        if self.mask_decoder.vision_encoder is not None:
            out["sam"] = self.mask_decoder.preprocess(image)  # SAM's longest side + pad
        if self.mask_features is not None and self.mask_features.hires is not None:
            out["hires"] = self.mask_features.hires.preprocess(image)
        return out

    @staticmethod
    def stack_images(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Batch per-image tensors from `preprocess`."""
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def encode_images(self, vis: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """→ (LM image tokens [B, N, d_lm], mask-decoder image embeddings [B, C, g, g])."""
        dev = self._device()
        vis = {k: v.to(dev) for k, v in vis.items()}
        img_tokens, grid = self.backbone.encode(vis)
        if self.mask_decoder.vision_encoder is not None:
            mask_emb = self.mask_decoder.sam_features(vis["sam"])
        else:
            assert self.mask_features is not None and grid is not None
            mask_emb = self.mask_features(grid, vis.get("hires"))
        return img_tokens, mask_emb

    def embed(self, input_ids: torch.Tensor, img_tokens: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings with image tokens spliced in at the image-placeholder positions."""
        embeds = self.backbone.input_embeddings()(input_ids)
        slots = input_ids == self.tokens.id("image_placeholder")
        if not slots.any():
            return embeds
        if img_tokens is None:
            raise ValueError("the prompt has image slots but no image was given")
        rows = slots.any(dim=1)
        n = slots.sum(dim=1)[rows]
        if not bool((n == img_tokens.shape[1]).all()):
            raise ValueError(f"each prompt needs {img_tokens.shape[1]} image slots, got {n.tolist()}")
        src = img_tokens[rows].to(embeds.device, embeds.dtype)
        return embeds.masked_scatter(slots[..., None], src)

    # ---- span → mask ----------------------------------------------------------------------
    def tag(self, window: torch.Tensor) -> torch.Tensor:
        """BIO logits [L, 3] of one window of hidden states [L, d_lm]."""
        return self.span_tagger(window[None])[0]

    def region_span(self, window: torch.Tensor, gold: list[int] | None = None) -> tuple[int, int]:
        """Span (in window positions) of the entity before `<search>`: gold tags if they mark
        one, else the tagger's argmax, else the last `fallback_tokens` tokens."""
        fb = self.cfg.span_tagger.fallback_tokens
        if gold is not None and any(t > 0 for t in gold):
            return select_span(gold, len(gold), fb)
        tags = self.tag(window).argmax(-1).tolist()
        return select_span(tags, len(tags), fb)

    def decode_masks(self, mask_emb: torch.Tensor, span_emb: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Image embeddings [R, C, g, g] + span embeddings [R, d_lm] → (logits [R,1,M,M], iou)."""
        return self.mask_decoder(mask_emb, self.g(span_emb))

    def mask_rgb(self, image: Image.Image) -> torch.Tensor:
        """The image in the mask frame at mask resolution, RGB in [0, 1]: [3, M, M]
        (candidate colours)."""
        return self.mask_decoder.frame(*image.size).rgb(image, self.mask_size)

    def select_region(self, mask_emb: torch.Tensor, span_emb: torch.Tensor,
                      span_logits: torch.Tensor, rgb: torch.Tensor, proposals: Proposals,
                      peaks: torch.Tensor | None = None, span_text: str = ""
                      ) -> tuple[torch.Tensor, float | None]:
        """The referent among `proposals` of the span `span_emb` [1, d_lm]: its mask logits
        [1, 1, M, M] and the selector's probability that it is the one; the span-conditioned
        logits `span_logits` (and None) when there is no proposal. `peaks`: the image's entity
        centres [n, 2], which `referent.peak_features` needs; `span_text`: the span's words,
        whose colour words `referent.colour_words` reads."""
        assert self.referent is not None, "select_region needs a model built with a referent"
        assert (peaks is not None) == self.cfg.referent.peak_features, \
            "entity centres go to the selector exactly when it was built to count them"
        if not len(proposals):
            return span_logits, None
        feats = candidate_features(proposals.masks, proposals.scores, mask_emb[0],
                                   torch.sigmoid(span_logits[0, 0].float()), rgb, peaks,
                                   self.span_colours(span_text))
        probs = self.referent(span_emb, [feats])[0].float().softmax(-1)
        k = int(probs.argmax())
        return proposals.logits[k][None, None].to(span_logits.dtype), float(probs[k])

    def span_colours(self, span_text: str) -> ExpressionColours | None:
        """The colours of a span's words as this model's selector reads them (split from a
        related flag's with `referent.relation_words`); None when it reads no words."""
        ref = self.cfg.referent
        return expression_colours(span_text, ref.relation_words) if ref.colour_words else None

    def zoom_embeddings(self, window: Image.Image) -> torch.Tensor:
        """The refiner's image embeddings [1, C, g, g] of a zoomed window of a photograph."""
        assert self.refiner is not None, "zoom_embeddings needs a model built with a refiner"
        vis = {k: v[None].to(self._device()) for k, v in self.preprocess(window).items()}
        if self.mask_decoder.vision_encoder is not None:
            return self.mask_decoder.sam_features(vis["sam"])
        with torch.no_grad():  # the vision tower is frozen; the refiner's feature map trains
            grid = self.backbone.encode(vis)[1]
        assert self.refiner.features is not None and grid is not None
        return self.refiner.features(grid, vis.get("hires"))

    def zoom_inputs(self, image: Image.Image, coarse: torch.Tensor,
                    box: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The refiner's inputs for the window `box` of `image`: its image embeddings
        [1, C, g, g] and, as the dense prompt, the coarse logits `coarse` [H, W] (image
        resolution) cut to the window, in its frame [1, 1, M, M]."""
        x0, y0, x1, y1 = box
        window = image.crop(box)
        frame = self.mask_decoder.frame(*window.size)
        prompt = to_frame(frame, coarse[y0:y1, x0:x1].clamp(OUTSIDE, -OUTSIDE),
                          self.mask_size)
        return self.zoom_embeddings(window), prompt

    def zoom_logits(self, image: Image.Image, coarse: torch.Tensor, span_emb: torch.Tensor,
                    box: tuple[int, int, int, int]) -> torch.Tensor:
        """The refiner's logits [1, 1, M, M] over the window `box` of `image`, prompted by the
        coarse logits `coarse` [H, W] (image resolution) and the span `span_emb` [1, d_lm]."""
        assert self.refiner is not None, "zoom_logits needs a model built with a refiner"
        embeddings, prompt = self.zoom_inputs(image, coarse, box)
        logits, _ = self.refiner(embeddings, self.g(span_emb), prompt)
        return logits

    def refine_region(self, image: Image.Image, coarse: torch.Tensor, span_emb: torch.Tensor
                      ) -> np.ndarray:
        """Coarse-to-fine zoom (`refiner.py`): the coarse mask logits [H, W] of `image` →
        the refined boolean mask [H, W]."""
        threshold = self.cfg.mask_decoder.threshold
        coarse_mask = (coarse > threshold).cpu().numpy()
        if not coarse_mask.any():
            return coarse_mask
        box = zoom_box(coarse_mask, self.refiner.cfg)
        logits = self.zoom_logits(image, coarse, span_emb, box)
        x0, y0, x1, y1 = box
        back = self.mask_decoder.frame(x1 - x0, y1 - y0).to_original(logits)[0, 0]
        full = paste(back, box, image.width, image.height)
        return keep_touching((full > threshold).cpu().numpy(), coarse_mask)

    def span_window(self, ids: list[int], prompt_len: int, search: int) -> tuple[int, int]:
        """Token range the span tagger reads for a region search at position `search`: the
        assistant text before it or, when the answer opens with the search, the question
        (the tokens after the image slots), which then names the entity."""
        if search > prompt_len:
            return prompt_len, search
        ph = self.tokens.id("image_placeholder")
        start = max((i for i in range(prompt_len) if ids[i] == ph), default=0) + 1
        assert start < prompt_len, "a prompt always holds the question after its image slots"
        return start, prompt_len

    # ---- training pass --------------------------------------------------------------------
    def _windows(self, ids: torch.Tensor, lengths: list[int], prompt_len: list[int]
                 ) -> list[tuple[int, int, int, bool]]:
        """(sample, start, end, is_region) tagger windows: assistant tokens before each
        `<search><region>`, or the whole assistant turn of a sample without one."""
        s_open, region = self.tokens.id("search_open"), self.tokens.id("region")
        out = []
        for b in range(ids.shape[0]):
            row = ids[b, : lengths[b]].tolist()
            regs = [p for p in range(prompt_len[b] + 1, len(row))
                    if row[p] == region and row[p - 1] == s_open]
            out += [(b, *self.span_window(row, prompt_len[b], p - 1), True) for p in regs]
            if not regs and lengths[b] > prompt_len[b]:
                out.append((b, prompt_len[b], lengths[b], False))
        return out

    def forward(self, batch: Batch) -> PixSearchOutput:
        """Training pass over a collated `Batch` (`model/batch.py`); its tensors may be on any
        device (they are moved to the model's)."""
        dev = self._device()
        ids, am = batch.input_ids.to(dev), batch.attention_mask.to(dev)
        vis = batch.images
        img_tokens = mask_emb = None
        if vis is not None:
            img_tokens, mask_emb = self.encode_images(vis)
            vis = {k: v.to(dev) for k, v in vis.items()}
        pos = self.backbone.position_ids(ids, vis, 0, {})
        logits, hidden = self.backbone.run(self.embed(ids, img_tokens), am, pos, None)

        lengths = am.sum(1).tolist()
        prompt_len = [int(x) for x in batch.prompt_len]
        labels = batch.span_labels
        windows = self._windows(ids, lengths, prompt_len)
        L = max([e - s for _, s, e, _ in windows] + [1])
        d = hidden.shape[-1]
        win_h = hidden.new_zeros(len(windows), L, d)
        pad = torch.ones(len(windows), L, dtype=torch.bool, device=dev)
        targets = torch.full((len(windows), L), IGNORE, dtype=torch.long, device=dev)
        span_embs, region_batch, span_tokens = [], [], []
        for w, (b, s, e, is_region) in enumerate(windows):
            win_h[w, : e - s] = hidden[b, s:e]
            pad[w, : e - s] = False
            # a question window (search opens the answer) has no span labels to learn from
            gold = labels[b, s:e].tolist() if s >= prompt_len[b] else None
            if gold is not None:
                targets[w, : e - s] = torch.as_tensor(gold, device=dev)
            if is_region:
                span = self.region_span(hidden[b, s:e], gold)
                span_embs.append(pool_span(hidden[b, s:e], span))
                region_batch.append(b)
                span_tokens.append(ids[b, s + span[0]: s + span[1]].tolist())
        span_logits = self.span_tagger(win_h, pad) if windows else hidden.new_zeros(0, L, 3)
        rb = torch.as_tensor(region_batch, dtype=torch.long, device=dev)
        if span_embs and mask_emb is not None:
            span_emb = torch.stack(span_embs)
            mask_logits, iou = self.decode_masks(mask_emb[rb], span_emb)
        else:
            span_emb = hidden.new_zeros(len(span_embs), d)
            m = self.mask_size
            mask_logits, iou = hidden.new_zeros(len(span_embs), 1, m, m), hidden.new_zeros(len(span_embs), 1)
        # no loss supervises the IoU head; detached, it is not reachable from the outputs, so
        # DDP (find_unused_parameters) counts it unused instead of waiting for its gradients
        return PixSearchOutput(logits, hidden, span_logits, targets, span_emb, mask_logits,
                               iou.detach(), rb, span_tokens)

    # ---- decoding -------------------------------------------------------------------------
    @torch.no_grad()
    def start(self, prompt: Rendered, image: Image.Image | None):
        """Prefill `prompt` (image in its placeholder slots) → (PixSearchSession, logits [V])."""
        from pixsearch.model.session import PixSearchSession

        return PixSearchSession.open(self, prompt, image)
