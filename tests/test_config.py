"""Typed configs: YAML instances, dotted key=value overrides, type and name checks."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from pixsearch import config
from pixsearch.decode.config import DecodeConfig


@dataclass
class Inner:
    lr: float = 1e-3
    names: list[str] = field(default_factory=list)


@dataclass
class Outer:
    steps: int = 10
    inner: Inner = field(default_factory=Inner)
    mode: str | None = None


def test_yaml_then_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("steps: 5\ninner:\n  lr: 0.1\n")
    cfg = config.load(Outer, p, ["inner.lr=0.5", "inner.names=a,b", "mode=x"])
    assert cfg == Outer(steps=5, inner=Inner(lr=0.5, names=["a", "b"]), mode="x")
    config.save(cfg, tmp_path / "back.yaml")
    assert config.load(Outer, tmp_path / "back.yaml") == cfg


def test_unknown_and_mistyped_fields_are_named():
    with pytest.raises(config.ConfigError, match="unknown field.*stepz"):
        config.load(Outer, overrides=["stepz=3"])
    with pytest.raises(config.ConfigError, match="steps: expected int"):
        config.load(Outer, overrides=["steps=abc"])


def test_decode_config_from_overrides():
    cfg = config.load(DecodeConfig, overrides=["max_searches=2", "modalities=region,text"])
    assert cfg.max_searches == 2 and cfg.modalities == ("region", "text")
    assert config.load(DecodeConfig, overrides=["max_searches=null"]).max_searches is None
    with pytest.raises(ValueError, match="unknown modalities"):
        config.load(DecodeConfig, overrides=["modalities=audio"])
