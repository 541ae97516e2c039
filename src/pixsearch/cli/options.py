"""Options shared by the verbs that answer questions (`ask`, `serve`, `eval`, `demo`): decode
flags, the model's device and `model.key=value` overrides, and the default knowledge index.

The flags `--max-new-tokens`, `--max-searches`, `--modalities`, `--top-k` and `--temperature`
are shorthands for fields of `DecodeConfig`: `decode_flags` maps the ones given to those fields,
and each verb writes them where its config keeps decode settings (`ask` and `serve` build a
`DecodeConfig`; `eval` writes them into `EvalConfig.decode`). Any other field is set with a
`key=value` override (`decode.temperature=0.7` for `eval`).

`--device` places the model (`cpu`, `cuda`, `cuda:N`, `mps`, or `auto`: the accelerator there
is, the LM spread over several GPUs). Overrides that start with `model.` are `ModelConfig`
fields of the preset being built, on every verb (`train` too): `model.lm.pretrained=DIR`
(the hub backbone's checkpoint), `model.mask_decoder.sam_pretrained=DIR` (also spelled
`model.sam_pretrained=DIR`), `model.dtype=bf16`; `split_model_overrides` takes them out of
the verb's own overrides.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pixsearch import paths
from pixsearch.config import (
    ConfigError,
    apply_overrides,
    from_dict,
    load,
    merge,
    parse_overrides,
    to_dict,
)
from pixsearch.decode.config import DecodeConfig


def search_budget(text: str) -> int | None:
    """A search budget B: a number, or "unbounded" (also "none", "inf", "∞") for no cap."""
    if text.lower() in ("none", "null", "unbounded", "inf", "∞"):
        return None
    return int(text)


# flag → (DecodeConfig field, argparse type, help)
DECODE_FLAGS: dict[str, tuple[str, Any, str]] = {
    "--max-new-tokens": ("max_new_tokens", int, "generated tokens per answer"),
    "--max-searches": ("max_searches", search_budget, "search budget B (or 'unbounded')"),
    "--modalities": ("modalities", str, "allowed query types, e.g. region,text"),
    "--top-k": ("top_k", int, "hits per search"),
    "--temperature": ("temperature", float, "0 = greedy decoding; > 0 samples"),
}


def add_decode_flags(p: argparse.ArgumentParser, flags: tuple[str, ...] = tuple(DECODE_FLAGS),
                     config_file: bool = False) -> None:
    """Add the decode shorthands `flags` (all by default) and, with `config_file`, a
    `--decode-config` YAML option. Flags not given stay out of the namespace, so a given
    "unbounded" budget (None) differs from an absent flag."""
    for flag in flags:
        field, tp, help_ = DECODE_FLAGS[flag]
        p.add_argument(flag, dest=f"decode_{field}", type=tp, default=argparse.SUPPRESS,
                       metavar=field.upper(), help=f"{help_} (decode.{field})")
    if config_file:
        p.add_argument("--decode-config", type=Path, default=None, help="DecodeConfig YAML")


def decode_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The `DecodeConfig` fields set by decode flags on the command line."""
    given = vars(args)
    return {field: given[f"decode_{field}"] for field, _, _ in DECODE_FLAGS.values()
            if f"decode_{field}" in given}


def decode_config(args: argparse.Namespace, overrides: list[str]) -> DecodeConfig:
    """DecodeConfig: defaults ← `--decode-config` YAML ← decode flags ← key=value overrides."""
    path = getattr(args, "decode_config", None)
    base = to_dict(load(DecodeConfig, path)) if path else {}
    data = apply_overrides(DecodeConfig, merge(base, decode_flags(args)), overrides)
    return from_dict(DecodeConfig, data, "decode")


MODEL_PREFIX = "model."
# short spellings of model overrides → their `ModelConfig` path
MODEL_ALIASES = {"sam_pretrained": "mask_decoder.sam_pretrained"}
DEVICE_HELP = ("torch device of the model: cpu, cuda, cuda:N, mps, or auto (the accelerator "
               "there is; with several GPUs the LM is spread over them). Default: the CPU")


def add_device_flag(p: argparse.ArgumentParser) -> None:
    """`--device` (None when not given: the model stays on the CPU)."""
    p.add_argument("--device", default=None, help=DEVICE_HELP)


def split_model_overrides(items: list[str]) -> tuple[dict[str, Any], list[str]]:
    """(`model.key=value` items as nested `ModelConfig` overrides, the other items).

    `model.lm.pretrained=/ckpt/llava` → `{"lm": {"pretrained": "/ckpt/llava"}}`;
    `model.sam_pretrained=` is `model.mask_decoder.sam_pretrained=`."""
    model, rest = [], []
    for item in items:
        if not item.startswith(MODEL_PREFIX):
            rest.append(item)
            continue
        key, sep, value = item[len(MODEL_PREFIX):].partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form model.key=value")
        model.append(f"{MODEL_ALIASES.get(key, key)}={value}")
    return parse_overrides(model), rest


def check_model_overrides(spec: str, overrides: dict[str, Any]) -> None:
    """Fail before anything loads on model overrides that `spec` does not take: a trained
    checkpoint (a folder, or a preset's) takes `model.dtype`, an adapter checkpoint also the
    locations of its pretrained base (`model.lm.pretrained`, `model.sam_pretrained`), a preset
    its own fields."""
    if not overrides:
        return
    from pixsearch.model.presets import get_preset, preset_names
    from pixsearch.predictor import check_checkpoint_overrides, trained_checkpoint

    path = Path(spec).expanduser()
    ckpt = path if path.is_dir() else trained_checkpoint(spec)
    if ckpt is not None:
        check_checkpoint_overrides(ckpt, overrides)
    elif spec in preset_names():
        try:
            get_preset(spec, overrides)
        except (TypeError, ValueError) as e:  # ConfigError, or a config's own check
            raise ConfigError(f"model overrides: {e}") from e


def default_index(spec: str | None) -> str | None:
    """`spec`, else the default world's index (`paths.world_dir()/index`) if it is built."""
    if spec is not None:
        return spec
    index = paths.world_dir() / "index"
    return str(index) if index.is_dir() else None
