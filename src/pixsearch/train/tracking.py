"""Experiment tracking of a training run through `accelerate`'s trackers.

`TrainConfig.tracker` picks the tracker: "tensorboard" (the default; offline, event files
under `out/tracking/`), "wandb", "mlflow" or any other tracker accelerate supports when its
package is installed ("comet_ml", "aim", "clearml", "dvclive", "swanlab", "trackio"), or
"none". The `Accelerator` is made with it (`accelerator_kwargs`), and the trainer reports
through one `RunTracker`:

- every optimiser step: `loss/<term>` (total, lm, span, seg, bce, kl), `lr`,
  `throughput/samples_per_s`, `throughput/tokens_per_s`;
- every validation: `val/<metric>` (mask IoU, token accuracy and loss terms per pool), and
  sample predictions: for a fixed set of validation samples with a `<region>` search, the
  image with the predicted mask (red) over the gold mask (green), zoomed, with its IoU, and
  the teacher-forced next-token predictions of the answer next to the gold answer. Images
  go to trackers that take images (TensorBoard, W&B, …) and always to
  `out/samples/step-<N>.png`; the text to trackers that take text.

The hyper-parameters (the flattened `TrainConfig`) are stored at the start. W&B follows its
own settings (`WANDB_MODE=offline` keeps it offline); MLflow writes to `out/tracking/mlruns`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pixsearch.config import ConfigError

if TYPE_CHECKING:
    from accelerate import Accelerator

    from pixsearch.model.pixsearch_model import PixSearchModel
    from pixsearch.train.data import TrainSample
    from pixsearch.train.features import FeatureCache

log = logging.getLogger(__name__)

TRACKERS = ("tensorboard", "wandb", "mlflow", "comet_ml", "aim", "clearml", "dvclive",
            "swanlab", "trackio", "none")
_INSTALL = {"tensorboard": "pip install 'pixsearch[train]'", "comet_ml": "pip install comet-ml"}
_TAKES_TEXT = ("tensorboard", "wandb", "trackio", "swanlab", "aim")
TRACKING_DIR, SAMPLES_DIR = "tracking", "samples"


def check_tracker(name: str) -> None:
    """Raise a specific error for a tracker that is unknown or whose package is missing."""
    if name not in TRACKERS:
        raise ConfigError(f"tracker {name!r} is not one of {', '.join(TRACKERS)}")
    if name == "none":
        return
    from accelerate.tracking import get_available_trackers

    if name not in {str(t.value) for t in get_available_trackers()}:
        raise ImportError(f"experiment tracking with {name} needs its package: "
                          f"{_INSTALL.get(name, f'pip install {name}')} "
                          "(or train with tracker=none)")


def flat_config(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys with values trackers store as hyper-parameters (bool,
    int, float, str; lists and dicts written as JSON)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flat_config(v, key + "."))
        elif isinstance(v, (bool, int, float, str)):
            out[key] = v
        else:
            out[key] = json.dumps(v)
    return out


def row_metrics(row: dict[str, Any]) -> dict[str, float]:
    """The tracker scalars of one `log.jsonl` row (a step row or a validation row)."""
    if "eval" in row:
        return {f"val/{k}": float(v) for k, v in row["eval"].items()
                if isinstance(v, (int, float))}
    out = {k: float(v) for k, v in row.items() if k.startswith("loss/")}
    for key, tag in (("lr", "lr"), ("samples_per_s", "throughput/samples_per_s"),
                     ("tokens_per_s", "throughput/tokens_per_s")):
        if key in row:
            out[tag] = float(row[key])
    return out


class RunTracker:
    """The experiment tracker of one training run (the main process logs; see module doc)."""

    def __init__(self, tracker: str, out: Path, project: str = "pixsearch",
                 samples: int = 4) -> None:
        check_tracker(tracker)
        self.name, self.out, self.project, self.n_samples = tracker, Path(out), project, samples
        self.acc: Accelerator | None = None

    def accelerator_kwargs(self) -> dict[str, Any]:
        """What the `Accelerator` needs to host the tracker (nothing for "none")."""
        if self.name == "none":
            return {}
        from accelerate.utils import ProjectConfiguration

        return {"log_with": self.name, "project_config": ProjectConfiguration(
            project_dir=str(self.out), logging_dir=str(self.out / TRACKING_DIR))}

    def start(self, acc: Accelerator, config: dict[str, Any]) -> None:
        """Start the run's trackers and store the hyper-parameters."""
        self.acc = acc
        if self.name == "none":
            return
        init = {"wandb": {"dir": str(self.out / TRACKING_DIR), "name": self.out.name},
                "mlflow": {"logging_dir": str(self.out / TRACKING_DIR / "mlruns"),
                           "run_name": self.out.name}}
        acc.init_trackers(self.project, flat_config(config), {self.name: init.get(self.name, {})})
        log.info("tracking with %s in %s", self.name, self.out / TRACKING_DIR)

    def log_row(self, row: dict[str, Any]) -> None:
        """Send one `log.jsonl` row (losses, lr, throughput; or validation metrics)."""
        values = row_metrics(row)
        if self.acc is not None and self.name != "none" and values:
            self.acc.log(values, step=row["step"])

    def log_predictions(self, model: PixSearchModel, pools: dict[str, list[TrainSample]],
                        features: FeatureCache, world: Path, step: int) -> Path | None:
        """Draw the sample predictions of this validation (see module doc) into
        `out/samples/step-<step>.png` and send them to the trackers; returns the PNG."""
        samples = pick_samples(pools, self.n_samples)
        if not samples or (self.acc is not None and not self.acc.is_main_process):
            return None
        shown = [predict_sample(model, s, features, world) for s in samples]
        path = draw_predictions(shown, self.out / SAMPLES_DIR / f"step-{step:06d}.png",
                                f"run {self.out.name} · step {step}")
        if self.acc is None or self.name == "none":
            return path
        from PIL import Image

        grid = np.asarray(Image.open(path).convert("RGB"))
        text = "\n\n".join(f"**{p['id']}** (IoU {p['iou']:.2f})  \nQ: {p['question']}  \n"
                           f"gold: `{p['gold']}`  \npredicted (teacher-forced): "
                           f"`{p['predicted']}`" for p in shown)
        for tracker in self.acc.trackers:
            if tracker.name == "tensorboard":
                tracker.log_images({"val/predictions": grid[None]}, step, dataformats="NHWC")
            elif hasattr(tracker, "log_images"):
                tracker.log_images({"val/predictions": [grid]}, step)
            if tracker.name in _TAKES_TEXT:
                tracker.log({"val/predictions_text": text}, step)
        return path

    def finish(self) -> None:
        """Close the trackers (flushes event files)."""
        if self.acc is not None and self.name != "none":
            self.acc.end_training()


def pick_samples(pools: dict[str, list[TrainSample]], n: int) -> list[TrainSample]:
    """`n` validation samples with a `<region>` search, spread evenly over the pools (the
    same ones at every validation, so their masks can be compared across steps)."""
    if n <= 0:
        return []
    with_mask = [[s for s in pool if s.masks and s.image] for pool in pools.values()]
    with_mask = [p for p in with_mask if p]
    out: list[TrainSample] = []
    for i, pool in enumerate(with_mask):
        take = min(len(pool), n // len(with_mask) + (i < n % len(with_mask)))
        out += [pool[j * len(pool) // take] for j in range(take)]  # distinct: step ≥ 1
    return out


@torch.no_grad()
def predict_sample(model: PixSearchModel, sample: TrainSample, features: FeatureCache,
                   world: Path) -> dict[str, Any]:
    """The model's first region mask and next-token predictions of one sample
    (teacher-forced, as validation measures them), with the overlay drawn on its image."""
    from pixsearch.images import load_image
    from pixsearch.overlay import mask_iou, overlay, resize_mask, zoom_box
    from pixsearch.train.data import make_batch

    was_training = model.training
    model.eval()
    batch = make_batch(model, [sample], features)
    res = model(batch)
    model.train(was_training)
    threshold = model.cfg.mask_decoder.threshold
    pred = (res.mask_logits[0, 0].float() > threshold).cpu().numpy()
    gold = (batch.region_targets[0] > 0.5).cpu().numpy()
    ids = res.logits[0, :-1].argmax(-1).cpu()
    targets = batch.loss_mask[0, 1:].bool()
    predicted = model.tokenizer.decode(ids[targets].tolist(), skip_special_tokens=False)
    image = load_image(Path(world) / sample.image)
    full_pred = resize_mask(pred, image.height, image.width)
    full_gold = resize_mask(gold, image.height, image.width)
    y0, y1, x0, x1 = zoom_box(full_pred | full_gold)
    return {"id": sample.record_id, "question": sample.question, "gold": sample.display[:300],
            "predicted": predicted[:300], "iou": mask_iou(pred, gold),
            "image": overlay(image, full_pred, full_gold)[y0:y1, x0:x1]}


def draw_predictions(shown: list[dict[str, Any]], path: Path, caption: str) -> Path:
    """One panel per sample prediction, titled with its record and IoU, as a PNG."""
    from pixsearch.eval.plots import pyplot, save_figure, set_title

    plt = pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(shown), figsize=(3.0 * len(shown), 3.6), squeeze=False)
    for ax, p in zip(axes[0], shown):
        ax.imshow(p["image"])
        ax.set_title(f"{p['id']}\nIoU {p['iou']:.2f}", fontsize=8)
        ax.axis("off")
    set_title(fig, "validation samples: predicted (red) vs gold (green) mask", caption)
    return save_figure(plt, fig, path)
