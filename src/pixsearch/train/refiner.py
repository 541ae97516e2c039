"""Training the coarse-to-fine zoom refiner (`model/refiner.py`) on top of a trained model.

Everything but the refiner is frozen. For every referring expression of the train split the
frozen model gives, as at decoding time, the span embedding, the span-conditioned mask, its
proposals and the selector's pick; the pick (or, when the selector chose another entity, the
proposal that overlaps the gold mask most) is the coarse mask. Its window, with the centre
and side jittered, is cropped from the photograph; the refiner, started from the model's own
mask decoder and feature map, learns to segment the gold entity in the window, prompted by
the coarse mask's logits (focal-Tversky + BCE against the gold mask, cut to the window at the
photograph's resolution). Expressions whose coarse mask overlaps the gold one by less than
`min_iou` are left out: they are on another entity, which refinement should not move to.

The frozen model's outputs per expression come from the referent recipe's cache
(`ReferentTrainConfig.cache`), so a run on the shipped model computes none of them again.
`val` reports, on the selector's picks as decoding makes them, how often the mask overlaps
the gold mask with IoU ≥ 0.5 and the mean IoU, before and after refinement.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixsearch.eval.seg_metrics import mask_iou
from pixsearch.images import load_image
from pixsearch.logs import progress_bar
from pixsearch.masks import rle_to_mask
from pixsearch.model.batch import mask_target
from pixsearch.model.build import build_model
from pixsearch.model.checkpoint import save_checkpoint
from pixsearch.model.config import RefinerConfig
from pixsearch.model.pixsearch_model import PixSearchModel
from pixsearch.model.proposals import mask_iou_matrix
from pixsearch.model.refiner import zoom_box
from pixsearch.train.losses import focal_tversky_loss, mask_bce_loss
from pixsearch.train.referent import ReferentTrainConfig, ReferentTrainer

log = logging.getLogger(__name__)


@dataclass
class RefinerTrainConfig:
    """A refiner training run (YAML instance: configs/train/gemma_zoom.yaml).

    Attributes:
        model: trained checkpoint to extend (folder, or a preset with a trained checkpoint).
        world: world folder with train/val splits.
        out: folder the extended checkpoint is written to.
        refiner: `RefinerConfig` overrides (enabled is forced on).
        samples: referring expressions of the train split (the referent recipe's sample).
        val_samples: referring expressions of the val split it is measured on.
        epochs: passes over the samples.
        batch: windows per optimiser step.
        lr: AdamW learning rate (cosine decay).
        jitter: largest shift of the window's centre and change of its sides, as a fraction
            of its side, so the refiner does not learn that the entity sits in the middle.
        min_iou: expressions whose coarse mask overlaps the gold one less are left out.
        tversky_alpha, tversky_beta: the focal-Tversky loss's weights of missed and of extra
            pixels (alpha > beta favours covering the whole flag, beta > alpha a mask with no
            rim of background, which the knowledge base's image search is sensitive to).
        cache: the referent recipe's cache folder of the frozen model's outputs.
        seed: seed of sampling and jitter.
        num_threads: torch threads.
    """

    model: str = "gemma-270m"
    world: str = "$PIXSEARCH_HOME/world"
    out: str = "$PIXSEARCH_HOME/models/gemma-270m-zoom"
    refiner: dict = field(default_factory=dict)
    samples: int = 5000
    val_samples: int = 300
    epochs: int = 2
    batch: int = 8
    lr: float = 3e-4
    jitter: float = 0.15
    min_iou: float = 0.2
    tversky_alpha: float = 0.7
    tversky_beta: float = 0.3
    cache: str = ""
    seed: int = 0
    num_threads: int = 2


def with_refiner(base: PixSearchModel, overrides: dict) -> PixSearchModel:
    """`base` rebuilt with a refiner whose decoder and feature map start as `base`'s own."""
    cfg = copy.deepcopy(base.cfg)
    cfg.refiner = RefinerConfig(**{**asdict(cfg.refiner), **overrides, "enabled": True})
    model = build_model(cfg, tokenizer=base.tokenizer)
    state = {k: v for k, v in base.state_dict().items() if not k.startswith("refiner.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("refiner.") for k in missing), (missing, unexpected)
    decoder = {k: v for k, v in base.mask_decoder.state_dict().items()
               if not k.startswith("vision_encoder.")}
    model.refiner.decoder.load_state_dict(decoder)
    if model.refiner.features is not None:
        model.refiner.features.load_state_dict(base.mask_features.state_dict())
    return model


class RefinerTrainer:
    """Runs `RefinerTrainConfig` (see module doc)."""

    def __init__(self, cfg: RefinerTrainConfig, base: PixSearchModel) -> None:
        if base.referent is None:
            raise ValueError("the refiner zooms into the selected referent: train the referent "
                             "recipe first (`pixsearch train --recipe referent`)")
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)
        torch.manual_seed(cfg.seed)
        # the referent recipe's trainer, measuring only: its cached frozen outputs per
        # expression, proposals and selector picks are the refiner's inputs
        ref = ReferentTrainConfig(model=cfg.model, world=cfg.world, out="", warm_start=True,
                                  proposal_steps=0, choose_peaks=False, selector_epochs=0,
                                  selector_samples=cfg.samples, val_samples=cfg.val_samples,
                                  cache=cfg.cache, seed=cfg.seed, num_threads=cfg.num_threads)
        self.ref = ReferentTrainer(ref, with_refiner(base, cfg.refiner))
        self.model = self.ref.model
        self.golds: dict[str, list[tuple[np.ndarray, torch.Tensor]]] = {}
        for r in self.ref.train + self.ref.val:
            if r.image and r.masks and r.image not in self.golds:
                full = [rle_to_mask(m).astype(bool) for m in r.masks]
                self.golds[r.image] = [(m, mask_target(m, self.model.mask_size) > 0.5)
                                       for m in full]

    def gold_mask(self, image: str, gold: torch.Tensor) -> np.ndarray:
        """The photograph-resolution mask of the record entity whose frame mask is `gold`."""
        ious = mask_iou_matrix(torch.stack([g for _, g in self.golds[image]]), gold[None])
        return self.golds[image][int(ious[:, 0].argmax())][0]

    @torch.no_grad()
    def coarse(self, expr: dict, pick: str) -> tuple[torch.Tensor, float] | None:
        """The coarse mask logits [M, M] of an expression and its IoU with the gold mask:
        the selector's pick, or (`pick="best"`) the proposal nearest the gold mask where the
        selector's is off it; None when no proposal overlaps it by `min_iou`."""
        d = self.ref.candidates(expr)
        if not len(d["ious"]):
            return None
        k = int(self.model.referent(d["span"][None], [d["feats"]])[0].argmax())
        if pick == "best" and d["ious"][k] < self.cfg.min_iou:
            k = int(d["ious"].argmax())
        if pick == "best" and d["ious"][k] < self.cfg.min_iou:
            return None
        props = self.ref.proposals(expr["image"], expr["span_logits"].float())
        return props.logits[k].float(), float(d["ious"][k])

    def samples(self, exprs: list[dict]) -> list[dict]:
        """The training samples of `exprs`: those with a coarse mask near the gold one that
        is still a mask at the photograph's resolution (a speck of a smaller photograph is
        not)."""
        out = []
        for e in progress_bar(exprs, desc="coarse masks"):
            c = self.coarse(e, "best")
            if c is None:
                continue
            with Image.open(Path(self.cfg.world) / e["image"]) as im:  # reads the header only
                frame = self.model.mask_decoder.frame(*im.size)
            if bool((frame.to_original(c[0][None]) > 0).any()):
                out.append(dict(image=e["image"], coarse=c[0].half(), span=e["span"],
                                gold=self.gold_mask(e["image"], e["gold"].bool())))
        return out

    def window(self, s: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(window embeddings [1, C, g, g], prompt [1, 1, M, M], target [1, M, M]) of one
        sample, its window jittered."""
        m = self.model
        image = load_image(Path(self.cfg.world) / s["image"])
        coarse = m.mask_decoder.frame(*image.size).to_original(s["coarse"].float()[None])[0]
        box = zoom_box((coarse > 0).numpy(), m.refiner.cfg, self.cfg.jitter, self.rng)
        x0, y0, x1, y1 = box
        embeddings, prompt = m.zoom_inputs(image, coarse, box)
        frame = m.mask_decoder.frame(x1 - x0, y1 - y0)
        target = frame.target(s["gold"][y0:y1, x0:x1], m.mask_size)[None]
        return embeddings, prompt, target

    def train(self, data: list[dict]) -> list[float]:
        cfg, ref = self.cfg, self.model.refiner
        if not data:
            log.warning("no referring expression has a coarse mask near its gold mask: the "
                        "refiner is left as the model's own decoder (train the referent "
                        "recipe first)")
            return []
        for p in ref.parameters():
            p.requires_grad_(True)
        ref.train()
        opt = torch.optim.AdamW(ref.parameters(), lr=cfg.lr, weight_decay=0.01)
        steps = cfg.epochs * max(1, len(data) // cfg.batch)
        losses: list[float] = []
        bar = progress_bar(range(steps), desc="refiner")
        for step in bar:
            for g in opt.param_groups:
                g["lr"] = cfg.lr * 0.5 * (1 + np.cos(np.pi * step / steps))
            pick = self.rng.choice(len(data), min(cfg.batch, len(data)), replace=False)
            emb, prompt, target = map(torch.cat, zip(*(self.window(data[i]) for i in pick)))
            with torch.no_grad():
                queries = self.model.g(torch.stack([data[i]["span"] for i in pick]))
            logits, _ = ref(emb, queries, prompt)
            loss = (focal_tversky_loss(logits, target, cfg.tversky_alpha, cfg.tversky_beta)
                    + mask_bce_loss(logits, target))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        ref.eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        return losses

    @torch.no_grad()
    def measure(self, exprs: list[dict]) -> dict[str, float]:
        """IoU ≥ 0.5 rate and mean IoU with the gold mask of the selector's picks at the
        photograph's resolution, as selected and as refined (`refine_region`)."""
        m = self.model
        before, after = [], []
        for e in progress_bar(exprs, desc="val refinement"):
            c = self.coarse(e, "selector")
            if c is None:
                continue
            image = load_image(Path(self.cfg.world) / e["image"])
            gold = self.gold_mask(e["image"], e["gold"].bool())
            up = m.mask_decoder.frame(*image.size).to_original(c[0][None])[0]
            refined = m.refine_region(image, up, e["span"][None])
            before.append(mask_iou((up > 0).numpy(), gold))
            after.append(mask_iou(refined, gold))
        b, a = np.array(before), np.array(after)
        return {"n": len(b), "right_before": float((b >= 0.5).mean()),
                "right_after": float((a >= 0.5).mean()), "mean_iou_before": float(b.mean()),
                "mean_iou_after": float(a.mean()),
                "improved": float((a > b + 0.05).mean()), "worsened": float((a < b - 0.05).mean())}

    def run(self) -> Path:
        t0 = time.perf_counter()
        ref = self.ref
        train = self.samples(ref.expressions(ref.train, self.cfg.samples, "train"))
        val = ref.expressions(ref.val, self.cfg.val_samples, "val")
        before = self.measure(val)
        losses = self.train(train)
        report = {"val_untrained": before, "val": self.measure(val), "train_samples": len(train),
                  "loss_last50": float(np.mean(losses[-50:])) if losses else None,
                  "minutes": (time.perf_counter() - t0) / 60, "config": asdict(self.cfg)}
        out = save_checkpoint(self.model, self.cfg.out)
        (out / "refiner_report.json").write_text(json.dumps(report, indent=2))
        return out
