"""Training a half-precision model: float32 master weights under autocast.

`model.dtype=bf16` (or fp16) builds every part in half precision, which is what inference and
the frozen base want (a 13B LLaVA in bfloat16 is half the memory). Training the trainable
parameters in half precision too would lose the optimiser's small updates to rounding: an
update below a parameter's bfloat16 spacing (2^-8 of its value) vanishes. So the trainer keeps
what it trains in float32 (the master weights AdamW updates) and leaves the frozen base in
the model's dtype, and the forward runs under autocast in the model's dtype (accelerate's
`mixed_precision`), so matrix products see one dtype whatever their parameters hold.

Checkpoints store the float32 masters as they are; `load_checkpoint` builds the model in its
configured dtype, and a resumed run takes the float32 values back from the file
(`restore_master_weights`) so that resuming does not round them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from pixsearch.model.pixsearch_model import PixSearchModel
    from pixsearch.train.config import TrainConfig

MASTER_DTYPE = torch.float32


def run_model_dtype(cfg: TrainConfig, resume: Path | None) -> str:
    """The `ModelConfig.dtype` of the model a run trains, known before it is built: the
    resumed checkpoint's, the `init_from` checkpoint's, else the preset's with the run's
    `model_overrides`."""
    from pixsearch.model.presets import get_preset
    from pixsearch.train.config import resolve_path

    saved = resume or (resolve_path(cfg.init_from) if cfg.init_from else None)
    if saved is not None:
        return json.loads((saved / "config.json").read_text()).get("dtype", "fp32")
    return get_preset(cfg.model, cfg.model_overrides).dtype


def mixed_precision(precision: str, model_dtype: str, device_bf16: bool) -> str:
    """accelerate's `mixed_precision` for a run: `precision` ("auto": bf16 where the device
    supports it) for a float32 model; the model's own dtype for a half-precision one, whose
    float32 masters need autocast to meet the frozen half-precision parts."""
    if model_dtype == "fp32":
        if precision == "auto":
            return "bf16" if device_bf16 else "no"
        return precision
    if precision in ("auto", model_dtype):
        return model_dtype
    raise ValueError(
        f"precision={precision} with model.dtype={model_dtype}: a {model_dtype} model trains "
        f"float32 master weights under {model_dtype} autocast. Leave precision=auto (it "
        f"follows the model), or train a float32 model (model.dtype=fp32) with "
        f"precision={precision}")


def keep_master_weights(params: list[torch.nn.Parameter]) -> int:
    """Cast the trainable `params` to float32 in place (their identity, and so any tying, is
    kept); returns how many were cast. Call before the optimiser is made."""
    n = 0
    with torch.no_grad():
        for p in params:
            if p.is_floating_point() and p.dtype != MASTER_DTYPE:
                p.data = p.data.to(MASTER_DTYPE)
                n += 1
    return n


def restore_master_weights(model: PixSearchModel, path: str | Path) -> int:
    """Give the parameters of `model` that checkpoint `path` stores in float32 while the
    model holds them in less (the masters of a half-precision run, rounded when the model
    was built in its dtype) their stored float32 values; returns how many."""
    from safetensors import safe_open

    from pixsearch.model.checkpoint import WEIGHTS

    params = dict(model.named_parameters())
    n = 0
    with safe_open(str(Path(path) / WEIGHTS), framework="pt") as f, torch.no_grad():
        for name in f.keys():
            p = params.get(name)
            if p is None or p.dtype == MASTER_DTYPE or f.get_slice(name).get_dtype() != "F32":
                continue
            p.data = f.get_tensor(name).to(p.device)
            n += 1
    return n
