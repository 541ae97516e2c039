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

`device` places the model ("cpu", "cuda:1", or "auto": the accelerator there is, the LM
spread over several GPUs; `model/placement.py`). `model_overrides` are nested `ModelConfig`
fields (the CLI's `model.key=value`): a preset is built with them (`lm.pretrained` and
`mask_decoder.sam_pretrained` point a hub preset at local checkpoints, `dtype` picks the
precision). A trained checkpoint takes `dtype`; an adapter checkpoint (a hub preset's, which
stores only what training changed, `model/checkpoint.py`) also takes `lm.pretrained` /
`mask_decoder.sam_pretrained` for the pretrained base it applies to, when that base lives
somewhere else on this machine than where it was trained.
"""

from __future__ import annotations

import dataclasses
import gc
import warnings
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from pixsearch import paths
from pixsearch.config import ConfigError, from_dict, merge, to_dict
from pixsearch.decode.config import DecodeConfig
from pixsearch.defaults import DEFAULT_MODEL
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


# the model overrides a trained checkpoint takes (the others change what was trained)
CHECKPOINT_OVERRIDES = ("dtype",)
# and those an adapter checkpoint also takes: where its pretrained base parts are
BASE_OVERRIDES = (("lm", "pretrained"), ("mask_decoder", "sam_pretrained"))


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block. Loading a model imports ~3,400 modules
    and allocates about a million objects that live as long as the process; with the
    collector on, each of its passes during the load walks them all again (about 1 s of a cold
    start on 2 CPU cores). Objects are still freed by reference counting meanwhile; the
    collector resumes after the block as it was."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def load_model(spec: str, device: str | None = None,
               overrides: dict[str, Any] | None = None) -> SearchLM:
    """A checkpoint directory, or a preset name: its trained checkpoint if there is one, else
    the preset built with `overrides` (random for `tiny`, as tests want; for other presets a
    warning names each part's source: loaded from where, or random). Placed on `device`
    (None: left on the CPU); see the module docstring."""
    with gc_paused():
        return _load_model(spec, device, overrides)


def _load_model(spec: str, device: str | None, overrides: dict[str, Any] | None) -> SearchLM:
    check_model(spec)
    _preload_vision(spec)
    from pixsearch.model.build import build_model
    from pixsearch.model.checkpoint import load_checkpoint
    from pixsearch.model.placement import place_model
    from pixsearch.model.presets import get_preset
    from pixsearch.model.weight_sources import untrained_warning

    overrides = dict(overrides or {})
    path = Path(spec).expanduser()
    ckpt = path if path.is_dir() else trained_checkpoint(spec)
    if ckpt is not None:
        check_checkpoint_overrides(ckpt, overrides)  # before the weights load
        # an adapter's base is built in the asked dtype; a full checkpoint's saved tensors
        # may be adopted as they are (`assign`), so the cast after loading stays
        model = _with_dtype(load_checkpoint(ckpt, overrides=overrides or None), overrides)
    else:
        cfg = get_preset(spec, overrides)
        warning = None if spec == "tiny" else untrained_warning(spec, cfg)
        if warning:
            warnings.warn(warning, stacklevel=2)
        model = build_model(cfg)
    return place_model(model.eval(), device)


def _flat(overrides: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested overrides as dotted keys: `{"lm": {"pretrained": p}}` → `{"lm.pretrained": p}`."""
    out: dict[str, Any] = {}
    for k, v in overrides.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def checkpoint_bases(ckpt: Path) -> dict[str, str]:
    """The pretrained base parts of an adapter checkpoint, as the dotted overrides that move
    them → where they were when it was saved (empty for a full checkpoint, e.g. `mini`).
    Read from the weights' header and config.json, without torch."""
    import json

    from safetensors import safe_open

    with safe_open(str(ckpt / "model.safetensors"), framework="numpy") as f:
        meta = f.metadata() or {}
    if meta.get("format") != "adapter":
        return {}
    cfg = json.loads((ckpt / CHECKPOINT_CONFIG).read_text())
    out = {}
    for section, key in BASE_OVERRIDES:
        where = cfg.get(section, {}).get(key, "")
        if where:
            out[f"{section}.{key}"] = where
    assert out, f"adapter checkpoint {ckpt} names no pretrained base"
    return out


def check_checkpoint_overrides(ckpt: Path, overrides: dict[str, Any]) -> None:
    """Refuse model overrides a trained checkpoint does not take, and an unknown dtype, with
    a `ConfigError` that says why: every checkpoint takes `dtype`, an adapter checkpoint also
    the location of each pretrained base it applies to (`checkpoint_bases`)."""
    from typing import get_args

    from pixsearch.model.config import ModelDType

    bases = checkpoint_bases(ckpt)
    flat = _flat(overrides)
    allowed = [*CHECKPOINT_OVERRIDES, *bases]
    other = sorted(set(flat) - set(allowed))
    if other:
        if bases:
            what = (f"{ckpt} is an adapter checkpoint: it stores what training changed and "
                    f"applies it to its pretrained base ({', '.join(bases.values())})")
        else:
            what = f"{ckpt} is a trained checkpoint holding all its weights"
        raise ConfigError(f"model override(s) {['model.' + k for k in other]} apply to a preset "
                          f"built from its parts; {what}, so it takes only "
                          f"{', '.join('model.' + k for k in allowed)}")
    if "dtype" in flat and flat["dtype"] not in get_args(ModelDType):
        raise ConfigError(f"model.dtype={flat['dtype']!r} is not one of "
                          f"{get_args(ModelDType)}")
    for key in bases:
        if key in flat and not (isinstance(flat[key], str) and flat[key]):
            raise ConfigError(f"model.{key}={flat[key]!r}: give the folder (or hub id) of "
                              "the pretrained checkpoint this adapter applies to")


def _with_dtype(model: Any, overrides: dict[str, Any]) -> Any:
    """A loaded checkpoint cast to `overrides["dtype"]` (checked by
    `check_checkpoint_overrides` before it loaded)."""
    if "dtype" in overrides:
        from pixsearch.model.dtype import cast_parameters, torch_dtype

        cast_parameters(model, torch_dtype(str(overrides["dtype"])))
        model.cfg.dtype = str(overrides["dtype"])
    return model


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
    def load(cls, model: str = DEFAULT_MODEL, index: str | None = None,
             cfg: DecodeConfig | None = None, device: str | None = None,
             model_overrides: dict[str, Any] | None = None) -> Predictor:
        """Load a model spec and an index spec (see the module docstring): both are checked,
        and the index opened, before the model loads; the model is placed on `device` and
        built with `model_overrides` (nested `ModelConfig` fields)."""
        check_model(model)
        if device is not None:
            from pixsearch.model.placement import resolve_device

            resolve_device(device)  # a bad device fails before the model loads
        search = load_search(index)
        return cls(load_model(model, device, model_overrides), search, cfg)

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
