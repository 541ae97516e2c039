"""Options shared by the verbs that answer questions (`ask`, `serve`, `eval`): decode flags
and the default knowledge index.

The flags `--max-new-tokens`, `--max-searches`, `--modalities`, `--top-k` and `--temperature`
are shorthands for fields of `DecodeConfig`: `decode_flags` maps the ones given to those fields,
and each verb writes them where its config keeps decode settings (`ask` and `serve` build a
`DecodeConfig`; `eval` writes them into `EvalConfig.decode`). Any other field is set with a
`key=value` override (`decode.temperature=0.7` for `eval`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pixsearch import paths
from pixsearch.config import apply_overrides, from_dict, load, merge, to_dict
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


def default_index(spec: str | None) -> str | None:
    """`spec`, else the default world's index (`paths.world_dir()/index`) if it is built."""
    if spec is not None:
        return spec
    index = paths.world_dir() / "index"
    return str(index) if index.is_dir() else None
