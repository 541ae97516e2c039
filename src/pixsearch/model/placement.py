"""Where a model runs: one device by name, or `auto` (accelerate's `device_map="auto"`).

The model code follows its parameters: the engine, the sessions and the KV cache create
every tensor on the device of the module that reads it, so placing the model is all a device
option has to do. `auto` picks the accelerator there is (CUDA, else Apple's MPS, else the
CPU). With several GPUs it keeps the vision tower, projector, LM head, SAM and the new heads on
the first one and lets accelerate spread the language model's decoder (the module LoRA goes
into) over all of them by free memory, each layer whole as `transformers`' own
`device_map="auto"` does; accelerate's hooks move activations between layers and return the
decoder's outputs to the first GPU, so the code around it sees one device.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)


def resolve_device(spec: str) -> str:
    """The torch device a `--device` value names: "auto" → the accelerator there is, else
    the CPU; anything else is checked (an unknown name, or CUDA on a machine
    without it, raises a ValueError that says what to pass instead)."""
    if spec == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    try:
        dev = torch.device(spec)
    except RuntimeError as e:
        raise ValueError(f"unknown device {spec!r}: use cpu, cuda, cuda:N, mps or auto") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r}: this torch ({torch.__version__}) sees no CUDA GPU; "
                         "use --device cpu (or auto)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s)")
    return str(dev)


def place_model(model: nn.Module, device: str | None) -> nn.Module:
    """Move `model` (a `PixSearchModel`) to `device` ("cpu", "cuda:1", ...); "auto" picks
    the accelerator and, with several GPUs, spreads the LM over them. None leaves the model
    where it is. Returns `model`."""
    if device is None:
        return model
    if device == "auto" and torch.cuda.device_count() > 1:
        return _spread_lm(model)
    return model.to(resolve_device(device))


def _spread_lm(model: nn.Module) -> nn.Module:
    """Everything on cuda:0, then the LM's decoder dispatched over every GPU by free memory."""
    from accelerate import dispatch_model, infer_auto_device_map
    from accelerate.utils import get_balanced_memory

    lm = model.backbone.language_model()
    model.to("cuda:0")
    # transformers lists the blocks that must stay whole (decoder layers, vision blocks)
    no_split = list(getattr(lm, "_no_split_modules", None) or [])
    # leave cuda:0 room for what is not the LM (SAM, heads, activations)
    memory = get_balanced_memory(lm, no_split_module_classes=no_split, low_zero=True)
    device_map = infer_auto_device_map(lm, max_memory=memory, no_split_module_classes=no_split)
    log.info("LM spread over GPUs: %s", sorted({str(d) for d in device_map.values()}))
    dispatch_model(lm, device_map=device_map, main_device=0)
    return model
