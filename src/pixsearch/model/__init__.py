"""PixSearch model: the segmenting LMM (backbone, BIO span tagger, g(·), SAM-style mask
decoder), its presets, builder, decoding session and checkpoints.

Heavy imports (torch, transformers) happen on first attribute access, so `import
pixsearch.model.interface` stays cheap for code that only needs the protocol.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ModelConfig": ".config",
    "get_preset": ".presets",
    "preset_names": ".presets",
    "build_model": ".build",
    "PixSearchModel": ".pixsearch_model",
    "PixSearchOutput": ".pixsearch_model",
    "PixSearchSession": ".session",
    "Batch": ".batch",
    "collate": ".batch",
    "save_checkpoint": ".checkpoint",
    "load_checkpoint": ".checkpoint",
    "CheckpointError": ".checkpoint",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pixsearch.model' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name], __name__), name)
