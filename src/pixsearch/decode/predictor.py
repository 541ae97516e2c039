"""The predictor facade: load a model and a search API by name or path, then ask questions.

This is what applications use (CLI `ask`, the server, evaluation): `Predictor.load("mini",
index="~/.cache/pixsearch/world/index").ask(question, image)`. A model spec is a preset name
(random weights unless a trained checkpoint is found for it) or a checkpoint directory; an
index spec is a knowledge-index directory or the URL of a PixSearch search server.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from ..model.interface import SearchLM
from ..retrieval.api import SearchAPI
from ..types import Answer
from .config import DecodeConfig
from .engine import Engine
from .events import Event


def pixsearch_home() -> Path:
    """Where worlds, indexes and trained models live (`$PIXSEARCH_HOME`, default ~/.cache)."""
    return Path(os.environ.get("PIXSEARCH_HOME", Path.home() / ".cache" / "pixsearch"))


def default_model_dir(preset: str) -> Path:
    """Where `pixsearch train` writes the trained checkpoint of a preset."""
    return pixsearch_home() / "models" / preset


def trained_checkpoint(preset: str) -> Path | None:
    """The trained checkpoint of a preset: one the user trained (`$PIXSEARCH_HOME/models/`)
    wins over the one shipped inside the package (`pixsearch/weights/`)."""
    from ..model.checkpoint import CONFIG

    shipped = Path(__file__).resolve().parent.parent / "weights" / preset
    for d in (default_model_dir(preset), shipped):
        if (d / CONFIG).exists():
            return d
    return None


def load_model(spec: str) -> SearchLM:
    """A checkpoint directory, or a preset name: its trained checkpoint if there is one, else
    freshly built random weights (fine for `tiny` in tests; a warning for anything else)."""
    from ..model.build import build_model
    from ..model.checkpoint import load_checkpoint
    from ..model.presets import get_preset

    path = Path(spec).expanduser()
    if path.is_dir():
        return load_checkpoint(path).eval()
    trained = trained_checkpoint(spec)
    if trained is not None:
        return load_checkpoint(trained).eval()
    if spec != "tiny":
        warnings.warn(f"no trained checkpoint for preset {spec!r}: using random weights "
                      f"(train one with `pixsearch train --config configs/train/{spec}.yaml`)",
                      stacklevel=2)
    return build_model(get_preset(spec)).eval()


def load_search(spec: str | None) -> SearchAPI | None:
    """A knowledge-index directory or an http(s) URL of a search server (None: no search)."""
    if spec is None:
        return None
    if spec.startswith(("http://", "https://")):
        from ..retrieval.server import HTTPSearch

        return HTTPSearch(spec)
    from ..retrieval.index import KnowledgeIndex

    path = Path(spec).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"no knowledge index at {path}; build one with "
                                "`pixsearch index build` or `pixsearch world build`")
    return KnowledgeIndex.open(path)


class Predictor:
    """A model + a search API + decode settings; answers questions about images."""

    def __init__(self, model: SearchLM, search_api: SearchAPI | None,
                 cfg: DecodeConfig | None = None) -> None:
        self.model = model
        self.search_api = search_api
        self.engine = Engine(model, search_api, cfg or DecodeConfig())

    @classmethod
    def load(cls, model: str = "mini", index: str | None = None,
             cfg: DecodeConfig | None = None) -> Predictor:
        return cls(load_model(model), load_search(index), cfg)

    def ask(self, question: str, image: Image.Image | str | Path | None = None,
            **overrides) -> Answer:
        return self.engine.answer(question, _image(image), **overrides)

    def stream(self, question: str, image: Image.Image | str | Path | None = None,
               **overrides) -> Iterator[Event]:
        return self.engine.stream(question, _image(image), **overrides)


def _image(image: Image.Image | str | Path | None) -> Image.Image | None:
    if image is None or isinstance(image, Image.Image):
        return image.convert("RGB") if image is not None else None
    path = Path(image).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"image {path} does not exist")
    return Image.open(path).convert("RGB")
