"""Resumable training state: `checkpoint-last` = model checkpoint + optimiser/sampler/RNG state.

The model part is an ordinary PixSearch checkpoint (`model/checkpoint.py`; adapter-only for hub
presets), so `pixsearch ask --model OUT/checkpoint-last` works on a run in progress.
`trainer_state.pt` adds where the run is (stage, step) and how many processes ran it.

- One process: `trainer_state.pt` also holds the optimiser of the current stage (the lr follows
  from the progress), the mixture sampler and every RNG, so a killed run continues with the
  same batches.
- Several processes (`accelerate launch`: DDP, FSDP, DeepSpeed ZeRO-3): the optimiser (sharded
  under FSDP / ZeRO-3), the model's shards and each process's RNG go through
  `Accelerator.save_state` into `accelerate/`, and each process writes its own sampler
  (`sampler-<rank>.json`: every process draws its own batches). The model checkpoint is
  written by the main process from the state dict `Accelerator.get_state_dict` gathers.

Folders are written next to their target and swapped in, so a kill during a save leaves the
previous one usable.
"""

from __future__ import annotations

import json
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
ACCELERATE_DIR = "accelerate"  # Accelerator.save_state of a run over several processes
SAMPLER_FILE = "sampler-{rank}.json"


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


def begin_dir(target: Path) -> Path:
    """The empty staging folder next to `target` that `commit_dir` swaps in."""
    target = Path(target)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def commit_dir(target: Path, tmp: Path) -> Path:
    """Swap the filled staging folder `tmp` in place of `target` (kill-safe)."""
    target = Path(target)
    old = target.with_name(target.name + ".old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def write_dir(target: Path, fill) -> Path:
    """Write a folder via `fill(tmp)` and swap it in place of `target` (kill-safe)."""
    tmp = begin_dir(target)
    fill(tmp)
    return commit_dir(target, tmp)


def save_training_state(path: Path, model: PixSearchModel, progress: Progress,
                        optimizer: torch.optim.Optimizer, sampler_state: dict[str, Any],
                        state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write `path` (= OUT/checkpoint-last) of a one-process run: model checkpoint (from
    `state` when given) + trainer state."""
    def fill(tmp: Path) -> None:
        save_checkpoint(model, tmp, state)
        torch.save({"progress": asdict(progress), "num_processes": 1,
                    "optimizer": optimizer.state_dict(), "sampler": sampler_state,
                    "rng": rng_state()}, tmp / STATE_FILE)
    return write_dir(path, fill)


def save_distributed_state(acc, path: Path, model: PixSearchModel, progress: Progress,
                           sampler_state: dict[str, Any], state: dict[str, torch.Tensor]
                           ) -> Path:
    """Write `path` (= OUT/checkpoint-last) of a run over several processes; every process
    calls this (`Accelerator.save_state` is collective under FSDP / ZeRO-3)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if acc.is_main_process:
        begin_dir(path)
    acc.wait_for_everyone()
    acc.save_state(str(tmp / ACCELERATE_DIR))
    (tmp / SAMPLER_FILE.format(rank=acc.process_index)).write_text(json.dumps(sampler_state))
    if acc.is_main_process:
        save_checkpoint(model, tmp, state)
        torch.save({"progress": asdict(progress), "num_processes": acc.num_processes},
                   tmp / STATE_FILE)
    acc.wait_for_everyone()
    if acc.is_main_process:
        commit_dir(path, tmp)
    acc.wait_for_everyone()
    return path


def load_distributed_state(acc, path: Path) -> dict[str, Any]:
    """Restore what `save_distributed_state` wrote into the prepared model and optimiser (and
    every RNG); returns this process's sampler state."""
    acc.load_state(str(Path(path) / ACCELERATE_DIR))
    file = Path(path) / SAMPLER_FILE.format(rank=acc.process_index)
    return json.loads(file.read_text())


def check_processes(state: dict[str, Any], num_processes: int, path: Path) -> None:
    """A run resumes with the number of processes it was saved with (each draws its own
    batches; sharded optimiser states split by process)."""
    saved = state.get("num_processes", 1)
    if saved != num_processes:
        raise ValueError(f"{path} was saved by a run over {saved} process(es); resume it with "
                         f"the same number (this run has {num_processes}), or start over with "
                         "`pixsearch train --restart`")


def find_resumable(path: Path) -> Path | None:
    """`path` if it holds a complete training state, else the backup of an interrupted swap."""
    for p in (Path(path), Path(path).with_name(Path(path).name + ".old")):
        if (p / STATE_FILE).exists():
            return p
    return None


def load_training_state(path: Path) -> tuple[PixSearchModel, dict[str, Any]]:
    """The model of a `checkpoint-last` folder and its raw trainer state (loaded on CPU;
    `dir` is the folder it came from)."""
    model = load_checkpoint(path)
    state = torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=False)
    return model, {**state, "dir": str(path)}
