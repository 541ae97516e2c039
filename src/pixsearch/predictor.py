"""The predictor facade: load a model and a search API by name or path, then ask questions.

This is what applications use (CLI `ask`, the server, evaluation):

    from pixsearch import Predictor
    p = Predictor.load("mini", index="~/.cache/pixsearch/world/index")
    answer = p.ask(question, image, max_searches=2)

A model spec is a preset name (its trained checkpoint if there is one, else random weights) or
a checkpoint directory; an index spec is a knowledge-index directory or the URL of a PixSearch
search server. Per-call overrides replace fields of the predictor's `DecodeConfig`
(`validate_overrides` checks them first); baselines hand in their own `forced_queries`.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from pixsearch import paths
from pixsearch.config import ConfigError, from_dict, merge, to_dict
from pixsearch.decode.config import DecodeConfig
from pixsearch.decode.engine import Engine, saved_evidence
from pixsearch.decode.events import Event
from pixsearch.model.interface import SearchLM
from pixsearch.retrieval.api import SearchAPI
from pixsearch.retrieval.evidence import EvidenceConfig
from pixsearch.types import Answer, Query

ImageLike = Image.Image | str | Path | None


def trained_checkpoint(preset: str) -> Path | None:
    """The trained checkpoint of a preset: one the user trained (`paths.model_dir`) wins over
    the one shipped inside the package (`paths.shipped_model_dir`)."""
    from pixsearch.model.checkpoint import CONFIG

    for d in (paths.model_dir(preset), paths.shipped_model_dir(preset)):
        if (d / CONFIG).exists():
            return d
    return None


def model_path(spec: str) -> Path:
    """The checkpoint folder a model spec names: the folder itself, or the trained checkpoint
    of a preset (the user's, else the shipped one)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    trained = trained_checkpoint(spec)
    if trained is None:
        raise FileNotFoundError(f"model {spec!r} is neither a checkpoint folder nor a preset "
                                "with a trained checkpoint")
    return trained


def load_model(spec: str) -> SearchLM:
    """A checkpoint directory, or a preset name: its trained checkpoint if there is one, else
    freshly built random weights (fine for `tiny` in tests; a warning for anything else)."""
    from pixsearch.model.build import build_model
    from pixsearch.model.checkpoint import load_checkpoint
    from pixsearch.model.presets import get_preset

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
        from pixsearch.retrieval.server import HTTPSearch

        return HTTPSearch(spec)
    from pixsearch.retrieval.index import KnowledgeIndex

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
        self._engine = Engine(model, search_api, cfg or DecodeConfig())

    @classmethod
    def load(cls, model: str = "mini", index: str | None = None,
             cfg: DecodeConfig | None = None) -> Predictor:
        """Load a model spec and an index spec (see the module docstring)."""
        return cls(load_model(model), load_search(index), cfg)

    @property
    def decode_config(self) -> DecodeConfig:
        """The `DecodeConfig` every call starts from (per-call overrides replace its fields)."""
        return self._engine.cfg

    @property
    def evidence(self) -> EvidenceConfig:
        """Hits per search and evidence word budget of a call without overrides: the model's
        saved budget (what it was trained with), with the decode config's `top_k` /
        `evidence_max_words` where they are set."""
        return self.decode_config.evidence(saved_evidence(self.model))

    def validate_overrides(self, **overrides: Any) -> DecodeConfig:
        """The decode config a call with `overrides` would use; a `ConfigError` (a ValueError)
        names unknown fields, mistyped values and values the config rejects."""
        try:
            return from_dict(DecodeConfig, merge(to_dict(self.decode_config), overrides),
                             "decode")
        except ConfigError:
            raise
        except (TypeError, ValueError) as e:  # DecodeConfig.__post_init__ rejects the value
            raise ConfigError(f"decode: {e}") from e

    def ask(self, question: str, image: ImageLike = None,
            forced_queries: list[Query] | None = None, **overrides: Any) -> Answer:
        """Answer `question` about `image` (None: text only). `forced_queries` are searched
        before decoding starts, exactly as if the model had asked them (the baselines of
        `pixsearch.eval.modes`); `overrides` replace `DecodeConfig` fields for this call."""
        return self._engine.answer(question, _image(image), forced_queries,
                                   **self._checked(overrides))

    def stream(self, question: str, image: ImageLike = None,
               forced_queries: list[Query] | None = None, **overrides: Any) -> Iterator[Event]:
        """Like `ask`, yielding token, search, mask, hits, evidence and done events."""
        return self._engine.stream(question, _image(image), forced_queries,
                                   **self._checked(overrides))

    def _checked(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """`overrides` validated and coerced to the config's types, as engine overrides."""
        if not overrides:
            return {}
        cfg = self.validate_overrides(**overrides)
        return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}


def _image(image: ImageLike) -> Image.Image | None:
    if image is None or isinstance(image, Image.Image):
        return image.convert("RGB") if image is not None else None
    path = Path(image).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    return Image.open(path).convert("RGB")
