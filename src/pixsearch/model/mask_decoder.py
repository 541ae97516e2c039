"""The SAM-style mask decoder with the PLUM feedback loop, built from `transformers`' SAM parts.

Parts (named as in `transformers.SamModel`, so a SAM checkpoint's weights load by name):
`prompt_encoder` (`SamPromptEncoder`: its mask embedding turns the previous mask into the
dense prompt), `mask_decoder` (`SamMaskDecoder`: two-way transformer + upsampling +
hypernetwork heads), `shared_image_embedding` (the random-Fourier positional encoding of the
image grid) and, for hub presets, `vision_encoder` (SAM's ViT, whose 64 × 64 features are the
image embeddings). Sparse prompts are not points or boxes but the mask queries of g(·).

Feedback loop (PLUM): pass 1 decodes with the "no mask" dense prompt; each further pass feeds
the previous pass's mask logits back through the mask embedding as the dense prompt.

Images and masks: with SAM's image encoder the decoder works in SAM's frame (longest side
resized, padded; `preprocess`), otherwise in the square view of the whole image that the
native backbone's grid covers; `frame` says which, and maps masks back to the image.

`transformers` exports `SamModel` but not its parts; they are imported from its `sam`
modeling module, which the version pin in pyproject.toml covers.
"""

from __future__ import annotations

import torch
from PIL import Image
from torch import nn
from transformers import (
    SamConfig,
    SamMaskDecoderConfig,
    SamModel,
    SamPromptEncoderConfig,
    SamVisionConfig,
)
from transformers.models.sam.modeling_sam import (
    SamMaskDecoder,
    SamPositionalEmbedding,
    SamPromptEncoder,
    SamVisionEncoder,
)

from pixsearch.model.config import MaskDecoderConfig
from pixsearch.model.dtype import cast_input
from pixsearch.model.processors import MaskFrame, sam_frame, sam_pixels, stretch_frame

SAM_PATCH = 16  # SAM's image size / embedding grid ratio


def sam_config(cfg: MaskDecoderConfig) -> SamConfig:
    """A `SamConfig` of the decoder shape in `cfg` (used when no SAM checkpoint is loaded)."""
    vision = dict(output_channels=cfg.hidden, num_pos_feats=cfg.hidden // 2,
                  image_size=cfg.grid * SAM_PATCH, patch_size=SAM_PATCH)
    vision.update(cfg.sam_vision_config)
    return SamConfig(
        vision_config=SamVisionConfig(**vision).to_dict(),
        prompt_encoder_config=SamPromptEncoderConfig(
            hidden_size=cfg.hidden, image_size=cfg.grid * SAM_PATCH, patch_size=SAM_PATCH).to_dict(),
        mask_decoder_config=SamMaskDecoderConfig(
            hidden_size=cfg.hidden, mlp_dim=cfg.mlp_dim, num_hidden_layers=cfg.layers,
            num_attention_heads=cfg.heads, iou_head_hidden_dim=cfg.hidden).to_dict(),
    )


class MaskDecoder(nn.Module):
    """Mask queries + image embeddings [B, C, g, g] → mask logits [B, 1, 4g, 4g] (+ IoU)."""

    def __init__(self, cfg: MaskDecoderConfig, sam: SamModel | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        config = sam.config if sam is not None else sam_config(cfg)
        config.mask_decoder_config._attn_implementation = "eager"
        self.sam_config = config
        self.hidden = config.mask_decoder_config.hidden_size
        self.grid = config.prompt_encoder_config.image_size // config.prompt_encoder_config.patch_size
        if sam is not None:
            self.shared_image_embedding = sam.shared_image_embedding
            self.prompt_encoder = sam.prompt_encoder
            self.mask_decoder = sam.mask_decoder
            self.vision_encoder = sam.vision_encoder if cfg.sam_vision else None
        else:
            self.shared_image_embedding = SamPositionalEmbedding(config.vision_config)
            self.prompt_encoder = SamPromptEncoder(config)
            self.mask_decoder = SamMaskDecoder(config.mask_decoder_config)
            self.vision_encoder = SamVisionEncoder(config.vision_config) if cfg.sam_vision else None
        self.sam_image_size = config.vision_config.image_size

    @property
    def mask_size(self) -> int:
        return 4 * self.grid

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """SAM's input of `image`, [3, S, S] (longest side S, padded; needs `sam_vision`)."""
        assert self.vision_encoder is not None, "this decoder has no SAM vision encoder"
        return sam_pixels(image, self.sam_image_size)

    def frame(self, width: int, height: int) -> MaskFrame:
        """Where a `width` × `height` image lies in this decoder's mask frame: SAM's padded
        frame with SAM's image encoder, else the whole image stretched to the square grid."""
        if self.vision_encoder is not None:
            return sam_frame(width, height, self.sam_image_size)
        return stretch_frame(width, height)

    def image_positional(self, like: torch.Tensor) -> torch.Tensor:
        """Positional encoding of the g × g grid, [1, C, g, g] (as `SamModel` computes it)."""
        g = self.grid
        pe = self.shared_image_embedding.positional_embedding
        grid = torch.ones((g, g), device=pe.device, dtype=pe.dtype)
        y = (grid.cumsum(0) - 0.5) / g
        x = (grid.cumsum(1) - 0.5) / g
        out = self.shared_image_embedding(torch.stack([x, y], dim=-1))
        return out.permute(2, 0, 1).unsqueeze(0).to(like.dtype)

    def sam_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """SAM ViT image embeddings [B, C, g, g] of pixels [B, 3, S, S] (hub presets)."""
        assert self.vision_encoder is not None, "this decoder has no SAM vision encoder"
        return self.vision_encoder(cast_input(self.vision_encoder, pixels)).last_hidden_state

    def dense_prompt(self, prev_logits: torch.Tensor | None, batch: int) -> torch.Tensor:
        if prev_logits is None:
            w = self.prompt_encoder.no_mask_embed.weight
            return w.reshape(1, -1, 1, 1).expand(batch, -1, self.grid, self.grid)
        return self.prompt_encoder.mask_embed(cast_input(self.prompt_encoder, prev_logits))

    def decode_once(self, image_embeddings: torch.Tensor, queries: torch.Tensor,
                    prev_logits: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        b = image_embeddings.shape[0]
        assert image_embeddings.shape[1:] == (self.hidden, self.grid, self.grid), \
            f"image embeddings {tuple(image_embeddings.shape)} != (B, {self.hidden}, {self.grid}, {self.grid})"
        pos = self.image_positional(image_embeddings).expand(b, -1, -1, -1)
        masks, iou = self.mask_decoder(
            image_embeddings=image_embeddings, image_positional_embeddings=pos,
            sparse_prompt_embeddings=queries[:, None],
            dense_prompt_embeddings=cast_input(self.mask_decoder, self.dense_prompt(prev_logits, b)),
            multimask_output=False)
        return masks[:, 0], iou[:, 0]

    def forward(self, image_embeddings: torch.Tensor, queries: torch.Tensor,
                iters: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`image_embeddings` [B, C, g, g], `queries` [B, Q, C] → (logits [B, 1, 4g, 4g],
        iou [B, 1]) after `iters` feedback passes (default `cfg.feedback_iters`), in the
        decoder's dtype whatever the inputs' dtype."""
        image_embeddings = cast_input(self.mask_decoder, image_embeddings)
        queries = cast_input(self.mask_decoder, queries)
        prev = None
        for _ in range(max(1, iters or self.cfg.feedback_iters)):
            prev, iou = self.decode_once(image_embeddings, queries, prev)
        return prev, iou
