"""Training referent selection on top of a trained model: instance proposals, then the selector.

The span-conditioned mask decoder of `mini` segments flags well but picks the wrong one about
two times in three (teacher-forced on `val`: right referent 0.33 with 2–5 flags per scene).
This recipe adds the two parts of `ReferentConfig` to a trained checkpoint and trains only
them, with everything else frozen:

1. **Proposals.** With `source: components` (the default) there is nothing to train: the
   candidates are the components of the frozen span-conditioned mask. With `source: points`,
   the proposer's centre head learns a heatmap of entity centres (each
   entity's innermost pixel, CenterNet's penalty-reduced focal loss), and its decoder, a copy
   of the trained mask decoder, learns to segment the entity under a point prompt (points
   inside each entity's gold mask, most near its centre, plus a few anywhere, whose target is
   the entity there or nothing), over the frozen image embeddings of the train scenes.
   Loss: focal loss of the heatmap, focal-Tversky + BCE of the masks, MSE of the IoU head.
   Targets, prompts and the heatmap's loss: `train/centres.py`.
   The centre head alone is trained when the heatmap only counts entities
   (`instances: points`) or cuts merged components at its peaks (`split_at_peaks`).
2. **Selector.** For every referring expression of the train split (Stage-1 referring
   samples and Stage-2 trajectories), the frozen model gives the span embedding and the
   span-conditioned mask; the proposals are the candidates; the target is the
   proposal that matches the gold mask (IoU ≥ 0.5; samples without one are left out).
   Loss: cross-entropy over the candidates.

`val` reports proposal recall, selector accuracy and the right-referent rate before/after.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pixsearch.images import load_image
from pixsearch.logs import progress_bar
from pixsearch.masks import rle_to_mask
from pixsearch.model.batch import IGNORE, Batch, mask_target
from pixsearch.model.build import build_model
from pixsearch.model.checkpoint import save_checkpoint
from pixsearch.model.config import ReferentConfig
from pixsearch.model.pixsearch_model import PixSearchModel
from pixsearch.model.proposals import Proposals, heatmap_peaks, mask_iou_matrix, span_components
from pixsearch.model.referent import candidate_features
from pixsearch.train.centres import (
    centre_focal_loss,
    centre_targets,
    interior_points,
    sample_points,
)
from pixsearch.train.data import build_pools, load_split, make_batch
from pixsearch.train.features import FeatureCache
from pixsearch.train.losses import focal_tversky_loss, mask_bce_loss
from pixsearch.train.selector import train_selector

log = logging.getLogger(__name__)

# the centre heatmap's peak settings the report measures entity counts at (val)
PEAK_THRESHOLDS = (0.2, 0.3, 0.4, 0.5)
PEAK_WINDOWS = (3, 5, 9)


@dataclass
class ReferentTrainConfig:
    """A referent-selection training run (YAML instance: configs/train/mini_referent.yaml).

    Attributes:
        model: trained checkpoint to extend (folder, or a preset with a trained checkpoint).
        world: world folder with train/val splits.
        out: folder the extended checkpoint is written to.
        referent: `ReferentConfig` overrides (enabled is forced on).
        proposal_steps: optimiser steps of the proposer.
        proposal_images: scenes per proposer step.
        proposal_points: point prompts per scene per step.
        proposal_lr: AdamW learning rate of the proposer.
        selector_samples: referring expressions of the train split the selector learns from.
        val_samples: referring expressions of the val split it is measured on.
        selector_epochs: passes over the selector's samples.
        selector_batch: expressions per selector step.
        selector_lr: AdamW learning rate of the selector.
        selector_weight_decay: AdamW weight decay of the selector.
        warm_start: start the selector from the base model's (it must have one) instead of
            fresh: to adapt a trained selector to other proposals (`referent.split_*`) on
            fewer expressions, or, with `selector_epochs: 0`, to measure it on them. A
            proposer the base model has is kept either way (its centre head is what counts
            entities and cuts components) and trains on for `proposal_steps` (0: it stays as
            it is).
        choose_peaks: after training the proposer, set the centre heatmap's peak threshold
            and window (`referent.peak_threshold`, `peak_window`) to those that count the
            entities of the val scenes right most often (the report's grid), instead of
            keeping the configured ones.
        cache: folder where the frozen model's outputs per referring expression (span mask
            logits, span embedding, span words, gold mask) are kept, keyed by the base
            weights, split, sample count and seed, so a rerun with other selector settings
            skips the model passes, a run with more samples computes only those it adds and
            one with fewer reads them from a larger run; empty: no cache.
        seed: seed of sampling and initialisation.
        num_threads: torch threads.
    """

    model: str = "mini"
    world: str = "$PIXSEARCH_HOME/world"
    out: str = "$PIXSEARCH_HOME/models/mini-referent"
    referent: dict = field(default_factory=dict)
    proposal_steps: int = 200
    proposal_images: int = 4
    proposal_points: int = 3
    proposal_lr: float = 5e-4
    selector_samples: int = 1200
    val_samples: int = 300
    selector_epochs: int = 40
    selector_batch: int = 64
    selector_lr: float = 1e-3
    selector_weight_decay: float = 0.01
    warm_start: bool = False
    choose_peaks: bool = True
    cache: str = ""
    seed: int = 0
    num_threads: int = 2


def with_referent(base: PixSearchModel, overrides: dict, warm_start: bool = False
                  ) -> PixSearchModel:
    """`base` rebuilt with referent selection enabled: its weights, plus a selector, fresh or
    (`warm_start`) `base`'s own (otherwise a selector `base` already has is left out: the
    shipped `mini` has one), and a proposer: `base`'s own where it has one, else fresh, its
    decoder starting from `base`'s mask decoder."""
    if warm_start and base.referent is None:
        raise ValueError(f"warm_start needs a base model with a selector; {base.cfg.name!r} "
                         "has none (train one first: warm_start=false)")
    shape = ("dim", "layers", "heads", "peak_features", "colour_words", "relation_words",
             "members")
    if warm_start and any(overrides.get(k, v) != v for k, v in asdict(base.cfg.referent).items()
                          if k in shape):
        raise ValueError("warm_start keeps the base model's selector, so referent.dim, "
                         "layers, heads, peak_features, colour_words, relation_words and "
                         "members cannot change (or set warm_start=false)")
    cfg = copy.deepcopy(base.cfg)
    cfg.referent = ReferentConfig(**{**asdict(cfg.referent), **overrides, "enabled": True})
    model = build_model(cfg, tokenizer=base.tokenizer)
    keep_proposer = base.proposer is not None and model.proposer is not None
    fresh = ("referent.",) if not warm_start else ()
    fresh += () if keep_proposer else ("proposer.",)
    state = {k: v for k, v in base.state_dict().items() if not k.startswith(fresh)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith(fresh) for k in missing)
    if model.proposer is None or keep_proposer:
        return model
    # the proposer shares the image grid's positional basis: never take the prompt encoder's
    state = {k: v for k, v in base.mask_decoder.state_dict().items()
             if not k.startswith("prompt_encoder.shared_embedding.")}
    model.proposer.decoder.load_state_dict(state, strict=False)
    return model


class ReferentTrainer:
    """Runs `ReferentTrainConfig` (see module doc)."""

    def __init__(self, cfg: ReferentTrainConfig, base: PixSearchModel) -> None:
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)
        torch.manual_seed(cfg.seed)
        torch.set_num_threads(cfg.num_threads)
        self.model = with_referent(base, cfg.referent, cfg.warm_start).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        world = Path(cfg.world)
        self.train = load_split(world, "train")
        self.val = load_split(world, "val")
        images = sorted({r.image for r in self.train + self.val if r.image})
        self.features = FeatureCache(self.model, world, world / "cache")
        self.features.precompute(images)
        self.emb: dict[str, torch.Tensor] = {}
        self.props: dict[str, Proposals] = {}
        self.peaks: dict[str, torch.Tensor] = {}
        self.rgb: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def embeddings(self, image: str) -> torch.Tensor:
        """Mask-decoder image embeddings [1, C, g, g] of a world image (kept in memory)."""
        if image not in self.emb:
            vis = self.model.stack_images([self.features.get(image)])
            self.emb[image] = self.model.encode_images(vis)[1].to(torch.bfloat16)
        return self.emb[image].float()

    def scenes(self, records) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        """(image, entity masks [E, M, M], entity centres [E, 2]) of each ego scene."""
        m = self.model.mask_size
        seen, out = set(), []
        for r in records:
            if r.image and r.masks and r.ego and r.image not in seen:
                seen.add(r.image)
                masks = torch.stack([mask_target(rle_to_mask(x), m) > 0.5 for x in r.masks])
                masks = masks[masks.flatten(1).any(1)]
                out.append((r.image, masks, interior_points(masks)))
        return out

    def train_proposer(self) -> list[float]:
        """The centre head and, when proposals come from points (`referent.source`), the
        point-prompted decoder; counting entities (`referent.instances`) needs the head only."""
        cfg, prop = self.cfg, self.model.proposer
        masks = self.model.cfg.referent.source == "points"
        scenes = self.scenes(self.train)
        for p in (prop if masks else prop.centres).parameters():
            p.requires_grad_(True)
        prop.train()
        opt = torch.optim.AdamW([p for p in prop.parameters() if p.requires_grad],
                                lr=cfg.proposal_lr, weight_decay=0.0)
        losses = []
        bar = progress_bar(range(cfg.proposal_steps), desc="proposals")
        for step in bar:
            lr = cfg.proposal_lr * 0.5 * (1 + np.cos(np.pi * step / cfg.proposal_steps))
            for g in opt.param_groups:
                g["lr"] = lr
            pick = self.rng.choice(len(scenes), cfg.proposal_images, replace=False)
            emb = torch.cat([self.embeddings(scenes[i][0]) for i in pick])
            heat = torch.stack([centre_targets(scenes[i][2], scenes[i][1], emb.shape[-1])
                                for i in pick])
            loss = centre_focal_loss(prop.centre_logits(emb), heat)
            if masks:
                loss = loss + self.point_mask_loss(emb, [scenes[i] for i in pick])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(prop.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        prop.eval()
        for p in prop.parameters():
            p.requires_grad_(False)
        self.props.clear()
        self.peaks.clear()
        return losses

    def choose_peaks(self, grid: dict[str, float]) -> None:
        """Set the model's peak threshold and window to the best of `grid` ("threshold/window"
        → val count accuracy; the first of equals)."""
        best = max(grid, key=grid.get)
        threshold, window = best.split("/")
        ref = self.model.cfg.referent  # the proposer reads the same config object
        ref.peak_threshold, ref.peak_window = float(threshold), int(window)
        assert self.model.proposer.cfg is ref
        self.peaks.clear()
        log.info("centre peaks: threshold %s, window %s (val count right %.3f)",
                 threshold, window, grid[best])

    def point_mask_loss(self, emb: torch.Tensor, scenes: list) -> torch.Tensor:
        """Loss of the point-prompted decoder on a few prompts per scene: focal-Tversky + BCE
        of the masks, MSE of the predicted IoU."""
        pts, tgt = zip(*[sample_points(masks, centres, self.cfg.proposal_points, self.rng)
                         for _, masks, centres in scenes])
        logits, iou = self.model.proposer.decode_points(emb, torch.stack(pts))
        tgt_t = torch.stack(tgt).flatten(0, 1)
        lg = logits.flatten(0, 1)
        with torch.no_grad():
            pred = lg > 0
            inter = (pred & (tgt_t > 0)).flatten(1).sum(1).float()
            union = (pred | (tgt_t > 0)).flatten(1).sum(1).float()
            true_iou = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
        return (8 * focal_tversky_loss(lg, tgt_t) + 2 * mask_bce_loss(lg, tgt_t)
                + F.mse_loss(iou.flatten().float(), true_iou))

    @torch.no_grad()
    def measure_proposer(self, records) -> dict:
        """On the ego scenes of `records`: how often the number of centre-heatmap peaks
        equals the number of entities (the count the perception line gives with
        `instances: points`) at the model's peak threshold and window and at a few others,
        and, when proposals come from points, entity recall (a proposal with IoU ≥ 0.5 with
        the entity's gold mask) and proposals per scene."""
        prop, ref = self.model.proposer, self.model.cfg.referent
        scenes = self.scenes(records)
        n = max(len(scenes), 1)
        heats = [torch.sigmoid(prop.centre_logits(self.embeddings(image))[0].float())
                 for image, _, _ in scenes]
        grid = {f"{th}/{w}": sum(len(heatmap_peaks(h, ref.max_points, th, w)) == len(masks)
                                 for h, (_, masks, _) in zip(heats, scenes)) / n
                for th in PEAK_THRESHOLDS for w in PEAK_WINDOWS}
        counted = sum(len(heatmap_peaks(h, ref.max_points, ref.peak_threshold,
                                        ref.peak_window)) == len(masks)
                      for h, (_, masks, _) in zip(heats, scenes))
        out = {"scenes": len(scenes), "count_right": counted / n,
               "count_right_by_peak_threshold_and_window": grid}
        if ref.source == "points":
            found = entities = proposed = 0
            for image, masks, _ in scenes:
                props = prop.propose(self.embeddings(image))
                if len(props):
                    ious = mask_iou_matrix(props.masks, masks)
                    found += int((ious.max(0).values >= 0.5).sum())
                entities += len(masks)
                proposed += len(props)
            out.update(entity_recall=found / max(entities, 1), proposals_per_scene=proposed / n)
        return out

    def centres(self, image: str) -> torch.Tensor:
        """The proposer's entity centres on a world image [n, 2] (kept in memory)."""
        if image not in self.peaks:
            self.peaks[image] = self.model.proposer.points(self.embeddings(image))
        return self.peaks[image]

    def proposals(self, image: str, span_logits: torch.Tensor) -> Proposals:
        """The candidates of a referring expression on `image` with span mask logits [M, M]."""
        ref = self.model.cfg.referent
        if ref.source == "components":
            return span_components(span_logits, ref,
                                   self.centres(image) if ref.split_at_peaks else None)
        if image not in self.props:
            self.props[image] = self.model.proposer.propose(self.embeddings(image))
        return self.props[image]

    def _cache_pattern(self, split: str) -> str | None:
        """The cache file name of `split` with `{n}` for the sample count (None: no cache)."""
        if not self.cfg.cache:
            return None
        digest = hashlib.sha1()
        for name, p in sorted(self.model.state_dict().items()):
            if not name.startswith(("proposer.", "referent.", "refiner.")):
                digest.update(p.detach().cpu().float().numpy().tobytes())
        return f"spans-{split}-{{n}}-{self.cfg.seed}-{digest.hexdigest()[:12]}.pt"

    def _cached_prefix(self, pattern: str, limit: int) -> list[dict]:
        """Cached outputs for the first `limit` expressions of the same split, seed and
        weights: with one seed the samples are a prefix of one permutation, so a cached
        larger run holds all of them (the refiner recipe reads 5,000 of the selector's
        12,000) and a cached smaller run the first of them (the caller computes the rest)."""
        folder = Path(self.cfg.cache)
        counts = sorted(int(n) for f in folder.glob(pattern.format(n="*"))
                        if (n := f.name.split("-")[2]).isdigit())
        larger = [n for n in counts if n > limit]
        smaller = [n for n in counts if n < limit]
        for n in larger[:1] + smaller[-1:]:
            prefix = torch.load(folder / pattern.format(n=n))
            # one output per sample is what makes the prefix line up with the samples
            if len(prefix) == n:
                return prefix[:limit]
        return []

    @torch.no_grad()
    def expressions(self, records, limit: int, split: str) -> list[dict]:
        """The frozen model's outputs per referring expression of `records` (at most `limit`,
        sampled): image, span mask logits [M, M] (fp16), span embedding, the span's words,
        gold mask [M, M]."""
        pattern = self._cache_pattern(split)
        path = Path(self.cfg.cache) / pattern.format(n=limit) if pattern else None
        if path is not None and path.exists():
            return torch.load(path)
        samples = [s for pool in build_pools(records).values() for s in pool if s.masks]
        # a generator of its own: the samples depend on the seed alone, not on what drew
        # from `self.rng` before (the proposer), so the cache key and its prefixes hold
        order = np.random.default_rng(self.cfg.seed).permutation(len(samples))
        samples = [samples[i] for i in order[:limit]]
        out = self._cached_prefix(pattern, limit) if pattern else []
        cached = len(out)
        decode = self.model.tokenizer.decode
        for i in progress_bar(range(len(out), len(samples), 8), desc=f"{split} expressions"):
            chunk = samples[i:i + 8]
            batch = self.up_to_last_region(make_batch(self.model, chunk, self.features))
            res = self.model(batch)
            for r in range(res.mask_logits.shape[0]):
                out.append(dict(image=chunk[int(res.region_batch[r])].image,
                                span_logits=res.mask_logits[r, 0].half(),
                                span=res.span_embeddings[r], words=decode(res.span_tokens[r]),
                                gold=batch.region_targets[r] > 0.5))
        if path is not None and len(out) > cached:  # a slice of a larger run is not saved
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(out, path)
        return out

    def up_to_last_region(self, batch: Batch) -> Batch:
        """`batch` cut after each sample's last `<search><region>`: the causal LM's hidden
        states up to there, and so the spans and their masks, are the same without the
        evidence and answer after it, which are most of a trajectory's tokens (the pass is
        twice as fast)."""
        s_open, region = self.model.tokens.id("search_open"), self.model.tokens.id("region")
        ids = batch.input_ids
        hit = (ids[:, 1:] == region) & (ids[:, :-1] == s_open)  # [B, T-1]: <region> at t+1
        assert bool(hit.any(1).all()), "every sample of the recipe has a region search"
        pos = torch.arange(1, ids.shape[1]) * hit
        ends = pos.amax(1) + 1  # one past each sample's last <region>
        keep = torch.arange(ids.shape[1])[None] < ends[:, None]
        cut = int(ends.max())
        return replace(batch, input_ids=ids[:, :cut],
                       attention_mask=(batch.attention_mask * keep)[:, :cut],
                       loss_mask=(batch.loss_mask * keep)[:, :cut],
                       span_labels=batch.span_labels.masked_fill(~keep, IGNORE)[:, :cut])

    @torch.no_grad()
    def candidates(self, expr: dict) -> dict:
        """One expression's candidate features, label (−1: no proposal matches), span
        embedding, and whether the span-conditioned mask alone is right."""
        image, gold, span = expr["image"], expr["gold"], expr["span_logits"].float()
        props = self.proposals(image, span)
        if image not in self.rgb:
            self.rgb[image] = self.model.mask_rgb(load_image(Path(self.cfg.world) / image))
        peaks = self.centres(image) if self.model.cfg.referent.peak_features else None
        feats = candidate_features(props.masks, props.scores, self.embeddings(image)[0],
                                   torch.sigmoid(span), self.rgb[image], peaks,
                                   self.model.span_colours(expr["words"]))
        ious = mask_iou_matrix(props.masks, gold[None])[:, 0] if len(props) else None
        label = int(ious.argmax()) if ious is not None and ious.max() >= 0.5 else -1
        span_iou = float(mask_iou_matrix((span > 0)[None], gold[None])[0, 0])
        return dict(feats=feats, label=label, span=expr["span"], span_right=span_iou >= 0.5,
                    ious=ious if ious is not None else torch.zeros(0))

    def selector_data(self, records, limit: int, split: str) -> list[dict]:
        """`candidates` of each of `expressions`."""
        exprs = self.expressions(records, limit, split)
        return [self.candidates(e) for e in progress_bar(exprs, desc=f"{split} candidates")]

    def train_selector(self, data: list[dict]) -> list[float]:
        """Trains the selector (each member of an ensemble) on the expressions with a
        matching proposal (`train/selector.py`); returns the losses."""
        cfg = self.cfg
        return train_selector(self.model.referent, data, cfg.seed, self.rng, cfg.selector_epochs,
                              cfg.selector_batch, cfg.selector_lr, cfg.selector_weight_decay)

    @torch.no_grad()
    def measure(self, data: list[dict]) -> dict[str, float]:
        """Proposal recall, selector accuracy where a proposal matches, right-referent rates
        (selected proposal IoU ≥ 0.5 with the gold mask) with and without selection."""
        right = hit = covered = 0
        for d in data:
            if not len(d["ious"]):
                continue
            k = int(self.model.referent(d["span"][None], [d["feats"]])[0].argmax())
            right += int(d["ious"][k] >= 0.5)
            covered += int(d["label"] >= 0)
            hit += int(d["label"] >= 0 and k == d["label"])
        n = max(len(data), 1)
        return {"n": len(data), "proposal_recall": covered / n,
                "selector_accuracy": hit / max(covered, 1), "right_referent": right / n,
                "right_referent_span_mask": sum(d["span_right"] for d in data) / n}

    def run(self) -> Path:
        t0 = time.perf_counter()
        prop_losses, peaks = [], None
        if self.model.proposer is not None:
            prop_losses = self.train_proposer()
            peaks = self.measure_proposer(self.val)
            if self.cfg.choose_peaks:
                self.choose_peaks(peaks["count_right_by_peak_threshold_and_window"])
        train = self.selector_data(self.train, self.cfg.selector_samples, "train")
        val = self.selector_data(self.val, self.cfg.val_samples, "val")
        before = self.measure(val)
        sel_losses = self.train_selector(train)
        report = {"val_before_selector_training": before, "val": self.measure(val),
                  "val_proposer_as_trained": peaks,
                  "val_proposer": (self.measure_proposer(self.val)
                                   if self.model.proposer is not None else None),
                  "train": self.measure(train[: self.cfg.val_samples]),
                  "proposal_loss_last50": (float(np.mean(prop_losses[-50:]))
                                           if prop_losses else None),
                  "selector_loss_last50": float(np.mean(sel_losses[-50:])) if sel_losses else None,
                  "minutes": (time.perf_counter() - t0) / 60, "config": asdict(self.cfg)}
        out = save_checkpoint(self.model, self.cfg.out)
        (out / "referent_report.json").write_text(json.dumps(report, indent=2))
        return out
