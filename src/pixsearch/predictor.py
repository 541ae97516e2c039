"""The predictor facade: load a model and a search API by name or path, then ask questions.

This is what applications use (CLI `ask`, the server, evaluation):

    from pixsearch import Predictor
    p = Predictor.load("mini", index="~/.cache/pixsearch/world/index")
    answer = p.ask(question, image, max_searches=2)

A model spec is a preset name (its trained checkpoint if there is one, else random weights) or
a checkpoint directory; an index spec is a knowledge-index directory or the URL of a PixSearch
search server. `Predictor.load` checks both before the model loads (an unknown preset, a
folder that is no checkpoint, a missing or corrupt index fail at once, not after the model's
load), and opens the index first. Per-call overrides replace fields of the predictor's
`DecodeConfig` (`validate_overrides` checks them first); baselines hand in their own
`forced_queries`. Images go through the one loader (`pixsearch.images.load_image`).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from pixsearch import paths
from pixsearch.config import ConfigError, from_dict, merge, to_dict
from pixsearch.decode.config import DecodeConfig
from pixsearch.images import load_image
from pixsearch.retrieval.api import SearchAPI
from pixsearch.retrieval.evidence import EvidenceConfig
from pixsearch.types import Answer, Query

if TYPE_CHECKING:  # the engine and the model pull in torch: imported when a Predictor is made,
    # so that checking a model spec or an index (`check_model`, `load_search`) stays quick
    from pixsearch.decode.events import Event
    from pixsearch.model.interface import SearchLM

ImageLike = Image.Image | str | Path | bytes | None


# `pixsearch.model.checkpoint.CONFIG`, spelled here: importing that module pulls in torch, and
# a model spec is checked before anything heavy loads
CHECKPOINT_CONFIG = "config.json"


def trained_checkpoint(preset: str) -> Path | None:
    """The trained checkpoint of a preset: one the user trained (`paths.model_dir`) wins over
    the one shipped inside the package (`paths.shipped_model_dir`)."""
    for d in (paths.model_dir(preset), paths.shipped_model_dir(preset)):
        if (d / CHECKPOINT_CONFIG).exists():
            return d
    return None


def check_model(spec: str) -> None:
    """Fail fast, without loading anything heavy, on a model spec that names no model: a
    folder without a checkpoint, or a name that is no preset (the error lists the presets)."""
    from pixsearch.model.presets import preset_names

    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / CHECKPOINT_CONFIG).is_file():
            raise FileNotFoundError(f"model folder {path} is not a checkpoint "
                                    f"({CHECKPOINT_CONFIG} missing)")
        return
    if trained_checkpoint(spec) is None and spec not in preset_names():
        raise ConfigError(f"unknown model {spec!r}: not a checkpoint folder and not a preset "
                          f"(presets: {', '.join(preset_names())})")


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
    freshly built weights (random for `tiny`, as tests want; a warning for a preset that has
    neither a trained checkpoint nor pretrained hub weights)."""
    check_model(spec)
    _preload_vision(spec)
    from pixsearch.model.build import build_model
    from pixsearch.model.checkpoint import load_checkpoint
    from pixsearch.model.presets import get_preset

    path = Path(spec).expanduser()
    if path.is_dir():
        return load_checkpoint(path).eval()
    trained = trained_checkpoint(spec)
    if trained is not None:
        return load_checkpoint(trained).eval()
    cfg = get_preset(spec)
    if spec != "tiny" and not cfg.lm.pretrained:
        warnings.warn(f"no trained checkpoint for preset {spec!r}: using random weights "
                      f"(train one with `pixsearch train --config configs/train/{spec}.yaml`)",
                      stacklevel=2)
    return build_model(cfg).eval()


def _preload_vision(spec: str) -> Future | None:
    """Start building the DINOv2 ONNX session of a model whose vision tower is DINOv2, in the
    background (`pixsearch.encoders.dinov2.preload_dinov2`; its future, None for other
    towers): it overlaps the torch and transformers imports that follow (seconds), and the
    tower's first image waits for it instead of building its own. The vision kind is read
    from the checkpoint's config.json (or the preset), without torch."""
    import json

    from pixsearch.model.config import ModelConfig
    from pixsearch.model.presets import get_preset

    path = Path(spec).expanduser()
    ckpt = path if path.is_dir() else trained_checkpoint(spec)
    cfg = (ModelConfig.from_dict(json.loads((ckpt / CHECKPOINT_CONFIG).read_text()))
           if ckpt is not None else get_preset(spec))
    if cfg.lm.backbone != "native" or cfg.vision.kind != "dinov2":
        return None
    from pixsearch.encoders.dinov2 import preload_dinov2

    return preload_dinov2()


def load_search(spec: str | None, http_timeout_s: float = 10.0) -> SearchAPI | None:
    """A knowledge-index directory (opened and checked: `KnowledgeIndex.open` refuses a
    corrupt one) or an http(s) URL of a search server, whose requests are bounded by
    `http_timeout_s` (None spec: no search)."""
    if spec is None:
        return None
    if spec.startswith(("http://", "https://")):
        from pixsearch.retrieval.server import HTTPSearch

        return HTTPSearch(spec, timeout=http_timeout_s)
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
        from pixsearch.decode.engine import Engine

        self.model = model
        self.search_api = search_api
        self._engine = Engine(model, search_api, cfg or DecodeConfig())

    @classmethod
    def load(cls, model: str = "mini", index: str | None = None,
             cfg: DecodeConfig | None = None) -> Predictor:
        """Load a model spec and an index spec (see the module docstring): both are checked,
        and the index opened, before the model loads."""
        check_model(model)
        search = load_search(index)
        return cls(load_model(model), search, cfg)

    @property
    def decode_config(self) -> DecodeConfig:
        """The `DecodeConfig` every call starts from (per-call overrides replace its fields)."""
        return self._engine.cfg

    @property
    def evidence(self) -> EvidenceConfig:
        """Hits per search and evidence word budget of a call without overrides: the model's
        saved budget (what it was trained with), with the decode config's `top_k` /
        `evidence_max_words` where they are set."""
        from pixsearch.decode.engine import saved_evidence

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
    """The image as upright RGB through the one loader (limits, EXIF, modes; `ImageError`)."""
    return None if image is None else load_image(image)
