"""Typed configs: dataclasses are the schema, YAML files are instances, `a.b=value` overrides.

Every subsystem declares its own config dataclass next to its code (`DecodeConfig`,
`ModelConfig`, `TrainConfig`, ...). This module turns YAML and command-line overrides into
those dataclasses with type checks, and back into plain dicts for saving next to checkpoints.

YAML 1.1 reads the words yes/no/on/off as booleans, which would turn `precision=no` into
False. Values are read with `YAML11Word` kept for those words, and the field's type decides:
a string field (or a Literal of strings) keeps the word as written, a bool field, an untyped
one or a value inside a plain mapping gets the boolean YAML 1.1 meant.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override does not match the config's schema."""


class YAML11Word(str):
    """A YAML 1.1 boolean word (yes/no/on/off in any case) as written; `as_bool` is what
    YAML 1.1 meant. Only `from_dict` sees it: it becomes a str or a bool by the field's type."""

    def as_bool(self) -> bool:
        return self.lower() in ("yes", "on")


class _Loader(yaml.SafeLoader):
    """`yaml.SafeLoader` that keeps YAML 1.1 boolean words (not true/false) as `YAML11Word`."""


def _construct_bool(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool | YAML11Word:
    text = loader.construct_scalar(node)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return YAML11Word(text)


_Loader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)


def read_yaml(text: str) -> Any:
    """Parse YAML `text` for `from_dict` (booleans-as-words kept, see the module docstring)."""
    return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader: no arbitrary objects


def _untyped(value: Any) -> Any:
    """`value` with every `YAML11Word` inside it turned into its YAML 1.1 boolean (no field
    type says it is a string)."""
    if isinstance(value, YAML11Word):
        return value.as_bool()
    if isinstance(value, dict):
        return {k: _untyped(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_untyped(v) for v in value)
    return value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any or value is None and (type(None) in args):
        return _untyped(value)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for a in (a for a in args if a is not type(None)):
            try:
                return _coerce(a, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {value!r} fits none of {args}: {errors}")
    if origin is typing.Literal:
        if isinstance(value, YAML11Word):  # the word itself if it is a choice, else its bool
            value = str(value) if value in args or value.as_bool() not in args \
                else value.as_bool()
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {args}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _untyped(dict(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        words = ("true", "1", "yes", "on", "false", "0", "no", "off")
        if isinstance(value, str) and value.lower() in words:
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"{where}: expected a bool, got {value!r}")
    if tp in (int, float):
        if isinstance(value, (bool, YAML11Word)):
            raise ConfigError(f"{where}: expected {tp.__name__}, got a bool")
        try:
            out = tp(value)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from e
        if tp is int and isinstance(value, float) and value != out:
            raise ConfigError(f"{where}: expected an int, got {value!r}")
        return out
    if tp is str:
        if not isinstance(value, (str, int, float)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return _untyped(value)


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass `cls` from a mapping, checking names and types (nested dataclasses too)."""
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown field(s) {sorted(unknown)}; "
                          f"known: {sorted(names)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}".lstrip(".")) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-dict view of a config dataclass (tuples become lists, for YAML)."""
    def fix(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [fix(x) for x in v]
        return v
    return fix(dataclasses.asdict(cfg))


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["a.b=3", "c=x,y"]` → `{"a": {"b": 3}, "c": "x,y"}` (values parsed as YAML scalars).

    A numeric part indexes a list: `stages.1.steps=5` → `{"stages": {"1": {"steps": 5}}}`,
    which `merge` applies to item 1 of the list `stages`."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        value = read_yaml(raw) if raw != "" else ""
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with an earlier override")
        node[parts[-1]] = value
    return out


def _is_index_map(v: Any) -> bool:
    """An override addressing list items by position (`{"2": {...}}` from `a.2.b=...`)."""
    return isinstance(v, dict) and bool(v) and all(str(k).isdigit() for k in v)


def _merge_list(items: list | tuple, upd: dict[str, Any], where: str) -> list:
    out = list(items)
    for key, v in upd.items():
        i = int(key)
        if i >= len(out):
            raise ConfigError(f"{where}.{i}: no such item (the list has {len(out)})")
        out[i] = merge(out[i], v, f"{where}.{i}") if isinstance(v, dict) and isinstance(
            out[i], dict) else v
    return out


def merge(base: dict[str, Any], upd: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Deep-merge `upd` into a copy of `base`; numeric keys of `upd` edit items of a list of
    `base` (`{"stages": {"2": {"steps": 5}}}` sets `steps` of the third stage)."""
    out = dict(base)
    for k, v in upd.items():
        cur, at = out.get(k), f"{where}.{k}".lstrip(".")
        if isinstance(v, dict) and isinstance(cur, dict):
            out[k] = merge(cur, v, at)
        elif _is_index_map(v) and isinstance(cur, (list, tuple)):
            out[k] = _merge_list(cur, v, at)
        else:
            out[k] = v
    return out


def _plain(value: Any) -> Any:
    """A default value as plain data (dataclasses → dicts, tuples → lists), like `to_dict`."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _fill_indexed_defaults(cls: type, data: dict[str, Any], upd: dict[str, Any]) -> dict[str, Any]:
    """`data` with the dataclass default of every list field that `upd` indexes into but
    `data` does not set (so `stages.0.steps=5` works when the YAML keeps the default stages)."""
    if not dataclasses.is_dataclass(cls):
        return data
    out, hints = dict(data), _hints(cls)
    for f in dataclasses.fields(cls):
        v = upd.get(f.name)
        if not isinstance(v, dict):
            continue
        if _is_index_map(v) and f.name not in out:
            if f.default_factory is not dataclasses.MISSING:
                out[f.name] = _plain(f.default_factory())
            elif f.default is not dataclasses.MISSING:
                out[f.name] = _plain(f.default)
        elif dataclasses.is_dataclass(hints[f.name]) and isinstance(out.get(f.name, {}), dict):
            sub = _fill_indexed_defaults(hints[f.name], out.get(f.name, {}), v)
            if sub or f.name in out:
                out[f.name] = sub
    return out


def apply_overrides(cls: type[T], data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`data` (a partial mapping for `cls`) with `key=value` overrides merged in; list items
    are addressed by position (`stages.1.steps=5`), against `cls`'s defaults if `data` has
    no such list."""
    upd = parse_overrides(overrides)
    return merge(_fill_indexed_defaults(cls, data, upd), upd)


def load(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None,
         base: dict[str, Any] | None = None) -> T:
    """Load a config: dataclass defaults ← `base` ← YAML file ← `key=value` overrides
    (`a.b=v` for nested fields, `a.2.b=v` for item 2 of a list)."""
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist")
        loaded = read_yaml(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        data = merge(data, loaded)
    return from_dict(cls, apply_overrides(cls, data, overrides or []))


def save(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
