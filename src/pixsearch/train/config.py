"""The training program as data: model, world, stages with their data mixtures, optimiser.

The paper trains in two stages (§4.3, Table 9): Stage 1 keeps segmentation and grounding
(referring segmentation + visual-instruction data), Stage 2 teaches when and how to search on
search-interleaved trajectories, mixed with Stage-1 data at a sampling ratio (7:9 best; 1:9
collapses segmentation). A `TrainConfig` lists those stages; `configs/train/*.yaml` are
instances, and `pixsearch train --config FILE key=value ...` overrides any field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pixsearch import paths
from pixsearch.config import from_dict, to_dict
from pixsearch.train.losses import LossWeights

Schedule = Literal["cosine", "linear", "constant"]
Precision = Literal["auto", "bf16", "no"]
ClipScope = Literal["group", "global"]
POOLS = ("text", "stage1", "stage2", "whole_image")  # the data pools a stage's mixture draws from


@dataclass
class StageConfig:
    """One stage of supervised fine-tuning.

    Attributes:
        name: stage name (checkpoint `stage-<name>` is written when it ends).
        steps: optimiser steps of the stage.
        lr: peak learning rate.
        warmup: linear warm-up steps (from 0 to `lr`).
        trainable: trainable groups of this stage (subset of the model's `trainable`; empty =
            the model's own list).
        mixture: sampling weight of each data pool, e.g. {stage1: 7, stage2: 9}; pools are
            "text" (knowledge-base reading, text only: `train/reading.py`; a stage drawing
            from it draws from nothing else), "stage1" (referring segmentation + visual
            questions without search), "stage2" (search-interleaved trajectories) and
            "whole_image" (answers after a forced whole-image search, `train/whole_image.py`).
        batch_size: samples per micro-batch (per process).
        grad_accum: micro-batches per optimiser step.
        kl_teacher: keep span embeddings near the previous stage's model, or for the first
            stage, the `init_from` checkpoint (the L_KL term); costs a second forward pass
            per step.
        max_minutes: wall-clock budget of the stage; it ends early (logged) when spent, so a
            run on a slow or shared machine still finishes in time (0 = no budget).
        control_roles: with "control_rows" trainable, only the rows of these control roles
            (`tokens.DISPLAY`, e.g. [image_query]) move; empty = every control row. A row
            enters the hidden states only after its token, so training `image_query` alone
            leaves everything before a whole-image search as it was (region masks included).
    """

    name: str = "stage1"
    steps: int = 100
    lr: float = 3e-4
    warmup: int = 10
    trainable: list[str] = field(default_factory=list)
    mixture: dict = field(default_factory=lambda: {"stage1": 1.0})
    batch_size: int = 4
    grad_accum: int = 1
    kl_teacher: bool = False
    max_minutes: float = 0.0
    control_roles: list[str] = field(default_factory=list)


@dataclass
class TrainConfig:
    """A complete, resumable training run.

    Attributes:
        model: model preset name (`pixsearch.model.presets`).
        model_overrides: nested overrides merged into the preset.
        init_from: checkpoint folder to start from instead of a freshly built model ("" = build).
        transplant_from: a trained checkpoint of *another* model whose `transplant` groups
            have the same shapes as this one's (e.g. `mini`'s mask decoder for `gemma-270m`,
            whose LM differs); their weights start the freshly built model (`train/transplant.py`;
            "" = none).
        transplant: the trainable groups copied from `transplant_from`.
        world: folder of the benchmark world (`pixsearch world build`); "" = $PIXSEARCH_HOME/world.
        train_split, val_split: record files of the world used for training / validation.
        max_train_records, max_val_records: cap on records read (0 = all), for quick runs.
        stages: the stages, run in order.
        betas: AdamW betas (LISA / PLUM: 0.9, 0.95).
        weight_decay: AdamW weight decay.
        schedule: learning-rate decay after warm-up.
        min_lr_ratio: final lr as a share of the peak (cosine / linear).
        clip_norm: gradient-norm clipping (0 = off).
        clip_scope: "group" clips each trainable group (lm, projector, mask_decoder, hires, …)
            to `clip_norm` on its own; "global" clips the norm of all gradients together. The
            mask branch's gradients run 5–25× the LM's (measured on `mini`), so a global clip
            rescales each LM step by whatever the mask loss did on that batch.
        loss: weights of the loss terms (paper defaults).
        eval_every: validate every N optimiser steps (0 = only at the end of each stage).
        eval_batches: validation micro-batches per evaluation (0 = the whole val set).
        save_every: write `checkpoint-last` every N steps (it is also written after evaluations).
        best_metric: validation metric that picks `checkpoint-best` ("mask_iou" higher is
            better, anything else ending in "loss" lower is better).
        seed: seed of initialisation, sampling and dropout.
        out: output folder (log.jsonl, checkpoint-last/, checkpoint-best/, stage-*/, final).
        final_dir: where the final model checkpoint is copied ("" = `out`/final).
        feature_cache: folder of cached frozen image features ("" = `world`/cache).
        precision: "auto" (bf16 on a GPU that supports it, else fp32), "bf16" or "no". A
            model built in half precision (`model.dtype=bf16|fp16`) trains its trainable
            parameters in float32 under autocast to its dtype ("auto" picks it;
            `train/precision.py`).
        num_threads: torch CPU threads (0 = library default).
        max_seq_len: longer samples are skipped with a warning (0 = no limit).
        whole_image_counts: what the count lines of the `whole_image` pool say: "gold" (the
            scene's entities) or "model" (the entity centres this model's proposer finds,
            what its whole-image evidence carries when it decodes, `train/whole_image.py`).
        whole_image_idk: the `whole_image` pool answers an egocentric scene's questions about
            one of its entities with "I don't know." (one per scene); False leaves them out,
            so the pool teaches counts and photos only and the calibrated policy abstains on
            the rest (an "I don't know." after a whole-image search of a scene was also
            written about photos of one flag).
        rename: share of the search trajectories (the "text" and "stage2" pools) whose
            country and capital names are replaced, consistently within the sample, by
            invented ones, so the answer can only be copied from the evidence
            (`train/renaming.py`; 0 = none).
        num_workers: DataLoader worker processes that render and collate micro-batches and
            load and resize their images (`train/loader.py`; 0 = in the training process).
            The batches are the same for any number of workers.
        pin_memory: page-lock batches when the model trains on a CUDA device (faster copies).
        progress: show progress bars.
        tracker: experiment tracker, through accelerate (`train/tracking.py`): "tensorboard"
            (offline event files in `out`/tracking), "wandb", "mlflow", any other tracker
            accelerate supports whose package is installed, or "none".
        tracker_project: project name of the run in the tracker.
        log_samples: validation samples whose predicted masks and answers are drawn at each
            validation (`out`/samples/ and the tracker; 0 = none).
    """

    model: str = "tiny"
    model_overrides: dict = field(default_factory=dict)
    init_from: str = ""
    transplant_from: str = ""
    transplant: list[str] = field(default_factory=lambda: ["prompt_encoder", "mask_decoder",
                                                           "hires"])
    world: str = ""
    train_split: str = "train"
    val_split: str = "val"
    max_train_records: int = 0
    max_val_records: int = 0
    stages: list[StageConfig] = field(default_factory=lambda: [StageConfig()])
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    schedule: Schedule = "cosine"
    min_lr_ratio: float = 0.1
    clip_norm: float = 1.0
    clip_scope: ClipScope = "group"
    loss: LossWeights = field(default_factory=LossWeights)
    eval_every: int = 0
    eval_batches: int = 0
    save_every: int = 50
    best_metric: str = "mask_iou"
    seed: int = 0
    out: str = "runs/train"
    final_dir: str = ""
    feature_cache: str = ""
    precision: Precision = "auto"
    num_threads: int = 0
    max_seq_len: int = 0
    rename: float = 0.0
    whole_image_counts: str = "gold"
    whole_image_idk: bool = True
    num_workers: int = 0
    pin_memory: bool = True
    progress: bool = True
    tracker: str = "tensorboard"
    tracker_project: str = "pixsearch"
    log_samples: int = 4

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("a training run needs at least one stage")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be distinct, got {names}")
        if not 0.0 <= self.rename <= 1.0:
            raise ValueError(f"rename is a share within [0, 1], got {self.rename}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be 0 or more, got {self.num_workers}")
        if self.whole_image_counts not in ("gold", "model"):
            raise ValueError(f"whole_image_counts must be 'gold' or 'model', got "
                             f"{self.whole_image_counts!r}")
        for s in self.stages:
            bad = set(s.mixture) - set(POOLS)
            used = {k for k, w in s.mixture.items() if float(w) > 0}
            if bad or not used:
                raise ValueError(f"stage {s.name}: mixture {s.mixture} needs positive weights "
                                 f"over the pools {POOLS}")
            if s.control_roles and "control_rows" not in s.trainable:
                raise ValueError(f"stage {s.name}: control_roles {s.control_roles} narrow the "
                                 "'control_rows' group; list it in the stage's trainable")
            if "text" in used and len(used) > 1:
                raise ValueError(f"stage {s.name}: the 'text' pool has no images and cannot be "
                                 "mixed with image pools in one stage; give it its own stage")

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        return from_dict(cls, data)


def resolve_path(path: str) -> Path:
    """A config path with `~`, environment variables and `$PIXSEARCH_HOME` (default
    ~/.cache/pixsearch even when unset) expanded (`pixsearch.paths.expand`)."""
    return paths.expand(path)


def world_dir(cfg: TrainConfig) -> Path:
    """The world a run trains on: `cfg.world`, else the default world (`paths.world_dir`)."""
    return resolve_path(cfg.world) if cfg.world else paths.world_dir()
