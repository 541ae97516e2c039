"""The PixSearch model's own mask decoder as a segmentation back-end of data construction.

The referring expression is segmented along the very path a region search takes when the
model decodes: prompt "Segment <expression>.", answer forced to "<expression>
<search><region>", span tagger → g(·) → mask decoder (`pixsearch.eval.segmentation`). As the
engine does before cropping, only the mask's largest connected component is kept. With the
shipped `mini` this is weak on small flags among distractors (README: region R@1 0.30 with
its masks); a model trained on more Stage-1 data, or a hub checkpoint, does better.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pixsearch.construct.segmentation import RegionMask, SegRequest
from pixsearch.masks import largest_component


class ModelSegmenter:
    """Masks from a loaded PixSearch model (`load` takes a preset or checkpoint folder)."""

    name = "model"

    def __init__(self, model: Any) -> None:
        from pixsearch.eval.segmentation import SegmentationConfig

        self.model, self.cfg = model, SegmentationConfig()

    @classmethod
    def load(cls, spec: str = "mini") -> ModelSegmenter:
        """The model `spec` names (a preset with its trained checkpoint, or a folder)."""
        from pixsearch.predictor import load_model

        return cls(load_model(spec))

    def masks(self, req: SegRequest) -> list[RegionMask]:
        import torch

        from pixsearch.eval.segmentation import expression_mask

        with torch.no_grad():
            mask = expression_mask(self.model, req.image(), req.refexp, self.cfg)
        mask = largest_component(np.asarray(mask, bool))
        return [RegionMask(mask)] if mask.any() else []
