"""PixSearch: pixel-grounded retrieval for knowledgeable large multimodal models.

    from pixsearch import Predictor
    answer = Predictor.load("mini", index="~/.cache/pixsearch/world/index").ask(question, image)

The library: contracts (`types`, `tokens`, `render`, `config`, `paths`), the segmenting LMM
(`model`), search-interleaved decoding (`decode`) behind the `predictor` facade, retrieval
(`retrieval`), data (`data`), training (`train`), evaluation (`eval`) and serving (`serve`).
Applications (the `pixsearch` CLI, benchmarks) import the library; the library never imports
them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# light (no tqdm, no torch); imported here so worker processes take the parent's verbosity
from pixsearch import logs  # noqa: F401

if TYPE_CHECKING:
    from pixsearch.predictor import Predictor

__version__ = "0.1.0"
__all__ = ["Predictor", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy: the predictor pulls in torch and the model; `import pixsearch` (configs, paths,
    # the CLI's argument parsing) stays light.
    if name == "Predictor":
        from pixsearch.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'pixsearch' has no attribute {name!r}")
