"""GroundingDINO + SAM (the paper's detector and segmenter) as a segmentation back-end.

GroundingDINO finds boxes for the referring expression (open-vocabulary detection from text),
SAM turns each box into a mask; candidates come best box first. Both run through
`transformers` classes (`GroundingDinoForObjectDetection` / `GroundingDinoProcessor`,
`SamModel` / `SamProcessor`), so real checkpoints load by local folder or hub id
(e.g. "IDEA-Research/grounding-dino-tiny", "facebook/sam-vit-base") on a machine that has
them; the tests build both from tiny random configs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pixsearch.construct.segmentation import RegionMask, SegRequest


@dataclass
class GroundedSamConfig:
    """Detection settings.

    Attributes:
        box_threshold: minimum box score kept.
        text_threshold: minimum score of the text tokens a box is matched to.
        max_boxes: boxes turned into masks (best first).
    """

    box_threshold: float = 0.3
    text_threshold: float = 0.25
    max_boxes: int = 3


class GroundedSamSegmenter:
    """Text → boxes (GroundingDINO) → masks (SAM); see the module docstring."""

    name = "grounded-sam"

    def __init__(self, dino: Any, dino_processor: Any, sam: Any, sam_processor: Any,
                 cfg: GroundedSamConfig | None = None) -> None:
        self.dino, self.dino_processor = dino.eval(), dino_processor
        self.sam, self.sam_processor = sam.eval(), sam_processor
        self.cfg = cfg or GroundedSamConfig()

    @classmethod
    def load(cls, dino: str, sam: str, cfg: GroundedSamConfig | None = None
             ) -> GroundedSamSegmenter:
        """Load both checkpoints (local folders or hub ids)."""
        from transformers import (
            AutoProcessor,
            GroundingDinoForObjectDetection,
            SamModel,
            SamProcessor,
        )

        try:
            return cls(GroundingDinoForObjectDetection.from_pretrained(dino),
                       AutoProcessor.from_pretrained(dino), SamModel.from_pretrained(sam),
                       SamProcessor.from_pretrained(sam), cfg)
        except OSError as e:
            raise OSError(f"cannot load GroundingDINO {dino!r} / SAM {sam!r}: give local "
                          f"folders saved with save_pretrained, or hub ids on a machine with "
                          f"hub access ({e})") from e

    def boxes(self, image: Any, text: str) -> list[tuple[list[float], float]]:
        """(box [x0, y0, x1, y1], score) of `text` in `image`, best first."""
        import torch

        # GroundingDINO expects lower-case phrases ending with a period
        prompt = text.lower().strip().rstrip(".") + "."
        inputs = self.dino_processor(images=image, text=prompt, return_tensors="pt")
        with torch.no_grad():
            out = self.dino(**inputs)
        res = self.dino_processor.post_process_grounded_object_detection(
            out, inputs["input_ids"], threshold=self.cfg.box_threshold,
            text_threshold=self.cfg.text_threshold, target_sizes=[(image.height, image.width)])[0]
        pairs = [(b.tolist(), float(s)) for b, s in zip(res["boxes"], res["scores"])]
        return sorted(pairs, key=lambda p: -p[1])[: self.cfg.max_boxes]

    def mask(self, image: Any, box: list[float]) -> np.ndarray:
        """SAM's mask of `box` in `image` (boolean, image size)."""
        import torch

        inputs = self.sam_processor(image, input_boxes=[[box]], return_tensors="pt")
        with torch.no_grad():
            out = self.sam(**inputs, multimask_output=False)
        masks = self.sam_processor.image_processor.post_process_masks(
            out.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"])
        return np.asarray(masks[0][0, 0], dtype=bool)

    def masks(self, req: SegRequest) -> list[RegionMask]:
        image = req.image()
        out = []
        for box, score in self.boxes(image, req.refexp):
            m = self.mask(image, box)
            if m.any():
                out.append(RegionMask(m, score=score))
        return out
