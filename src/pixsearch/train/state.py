"""Resumable training state: `checkpoint-last` = model checkpoint + optimiser/sampler/RNG state.

The model part is an ordinary PixSearch checkpoint (`model/checkpoint.py`), so
`pixsearch ask --model OUT/checkpoint-last` works on a run in progress. `trainer_state.pt` adds
where the run is (stage, step), the optimiser of the current stage (the lr follows from the progress), the mixture
sampler and every RNG, so a killed run continues with the same batches. Folders are written
next to their target and swapped in, so a kill during a save leaves the previous one usable.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixsearch.model.checkpoint import load_checkpoint, save_checkpoint
from pixsearch.model.pixsearch_model import PixSearchModel

STATE_FILE = "trainer_state.pt"


@dataclass
class Progress:
    """Where a run is.

    Attributes:
        stage: index of the current stage.
        stage_step: optimiser steps done in the current stage.
        global_step: optimiser steps done in the whole run.
        best: best validation value of the current stage (None before the first evaluation).
        elapsed: training seconds so far (over all resumptions).
        stage_seconds: wall-clock seconds spent in the current stage (its time budget).
        history: validation metrics at the end of each stage.
    """

    stage: int = 0
    stage_step: int = 0
    global_step: int = 0
    best: float | None = None
    elapsed: float = 0.0
    stage_seconds: float = 0.0
    history: list[dict] = field(default_factory=list)


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_dir(target: Path, fill) -> Path:
    """Write a folder via `fill(tmp)` and swap it in place of `target` (kill-safe)."""
    target = Path(target)
    tmp, old = target.with_name(target.name + ".tmp"), target.with_name(target.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fill(tmp)
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def save_training_state(path: Path, model: PixSearchModel, progress: Progress,
                        optimizer: torch.optim.Optimizer,
                        sampler_state: dict[str, Any]) -> Path:
    """Write `path` (= OUT/checkpoint-last): model checkpoint + trainer state."""
    def fill(tmp: Path) -> None:
        save_checkpoint(model, tmp)
        torch.save({"progress": asdict(progress), "optimizer": optimizer.state_dict(),
                    "sampler": sampler_state,
                    "rng": rng_state()}, tmp / STATE_FILE)
    return write_dir(path, fill)


def find_resumable(path: Path) -> Path | None:
    """`path` if it holds a complete training state, else the backup of an interrupted swap."""
    for p in (Path(path), Path(path).with_name(Path(path).name + ".old")):
        if (p / STATE_FILE).exists():
            return p
    return None


def load_training_state(path: Path) -> tuple[PixSearchModel, dict[str, Any]]:
    """The model of a `checkpoint-last` folder and its raw trainer state (loaded on CPU)."""
    model = load_checkpoint(path)
    state = torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=False)
    return model, state
