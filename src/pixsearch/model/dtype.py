"""The one precision switch of a model: `ModelConfig.dtype` = "fp32" | "bf16" | "fp16".

Hub checkpoints are published in half precision (llava-hf in float16, Qwen2.5-VL in
bfloat16) while the parts this project adds (span tagger, g(·), SAM decoder, hi-res branch)
are built in float32; `transformers` would load each in its own dtype, and the first image
would meet a float16 tensor in a float32 convolution. So every part is cast to the configured
dtype when the model is built (hub weights are loaded straight into it), and every module
casts its floating inputs to the dtype of its own parameters (`cast_input`), so that a
model whose parts differ (a user keeping SAM in float32) still runs.

Only parameters are cast: buffers stay as their modules made them. Rotary inverse frequencies
(Llama, Qwen's vision tower) are float32 buffers that `transformers` computes in float32 and
upcasts at use; `nn.Module.to(torch.bfloat16)` would round them and shift long-context
positions.
"""

from __future__ import annotations

import torch
from torch import nn

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype named by a config value ("fp32", "bf16", "fp16")."""
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown model dtype {name!r}; use one of {list(DTYPES)} "
                         f"(e.g. model.dtype=bf16)") from None


def dtype_name(dtype: torch.dtype) -> str:
    """The config name of a torch dtype (inverse of `torch_dtype`)."""
    for name, dt in DTYPES.items():
        if dt == dtype:
            return name
    raise ValueError(f"{dtype} is not a model dtype; use one of {list(DTYPES.values())}")


def module_dtype(module: nn.Module) -> torch.dtype:
    """The dtype of `module`'s first floating-point parameter (float32 if it has none)."""
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def cast_input(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`x` in `module`'s parameter dtype (integer tensors, e.g. ids, pass through)."""
    if not x.is_floating_point():
        return x
    dt = module_dtype(module)
    return x if x.dtype == dt else x.to(dt)


def cast_parameters(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Cast every floating-point parameter of `module` to `dtype` in place, leaving buffers
    as they are (see the module docstring). Parameters keep their identity, so tied weights
    stay tied. Returns `module`."""
    with torch.no_grad():
        for p in module.parameters():
            if p.is_floating_point() and p.dtype != dtype:
                p.data = p.data.to(dtype)
    return module


def parameter_dtypes(module: nn.Module) -> set[torch.dtype]:
    """The set of floating-point parameter dtypes in `module` (one element when uniform)."""
    return {p.dtype for p in module.parameters() if p.is_floating_point()}
