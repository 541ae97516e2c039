"""Typed configs: YAML instances, dotted (and list-index) key=value overrides, type and name
checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

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


@dataclass
class Step:
    name: str = "a"
    steps: int = 1


@dataclass
class Program:
    stages: list[Step] = field(default_factory=lambda: [Step("a"), Step("b")])
    betas: tuple[float, float] = (0.9, 0.95)
    inner: Inner = field(default_factory=Inner)


def test_list_index_overrides_edit_one_item(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("stages:\n  - {name: x, steps: 3}\n  - {name: y, steps: 4}\n  - {name: z}\n")
    cfg = config.load(Program, p, ["stages.2.steps=9", "stages.0.name=first", "betas.1=0.5"])
    assert [(s.name, s.steps) for s in cfg.stages] == [("first", 3), ("y", 4), ("z", 9)]
    assert cfg.betas == (0.9, 0.5)
    # a list the YAML does not set is indexed in the dataclass default
    cfg = config.load(Program, overrides=["stages.1.steps=7"])
    assert [(s.name, s.steps) for s in cfg.stages] == [("a", 1), ("b", 7)]


def test_list_index_overrides_are_checked(tmp_path):
    with pytest.raises(config.ConfigError, match=r"stages\.5: no such item \(the list has 2\)"):
        config.load(Program, overrides=["stages.5.steps=1"])
    with pytest.raises(config.ConfigError, match=r"stages\[1\]\.steps: expected int"):
        config.load(Program, overrides=["stages.1.steps=many"])
    with pytest.raises(config.ConfigError, match="unknown field.*stepz"):
        config.load(Program, overrides=["stages.0.stepz=1"])
    # nested: the default of inner.names (an empty list) is what gets indexed
    with pytest.raises(config.ConfigError, match=r"inner\.names\.0: no such item"):
        config.load(Program, overrides=["inner.names.0=q"])


def test_train_config_list_overrides_without_the_cli(tmp_path):
    """`stages.<i>.<field>=v` is handled by `pixsearch.config` (the mixture study uses it)."""
    from pixsearch.train.config import TrainConfig

    mini = Path(__file__).parents[1] / "configs" / "train" / "mini.yaml"
    base = config.load(TrainConfig, mini)
    cfg = config.load(TrainConfig, mini, ["stages.2.steps=11", "stages.0.lr=0.01"])
    assert cfg.stages[2].steps == 11 and cfg.stages[0].lr == 0.01
    assert cfg.stages[1] == base.stages[1] and cfg.stages[2].mixture == base.stages[2].mixture


@dataclass
class Words:
    precision: Literal["auto", "bf16", "no"] = "auto"
    tracker: str = "tensorboard"
    label: str | None = None
    flag: bool = True
    count: int = 0
    extra: dict = field(default_factory=dict)


def test_yaml11_boolean_words_follow_the_field_type(tmp_path):
    """YAML 1.1 reads yes/no/on/off as booleans: a string field keeps the word as written, a
    bool field (and an untyped mapping) gets the boolean."""
    from pixsearch.train.config import TrainConfig

    cfg = config.load(Words, overrides=["precision=no", "tracker=off", "label=No",
                                        "flag=off", "extra.x=yes"])
    assert cfg == Words(precision="no", tracker="off", label="No", flag=False,
                        extra={"x": True})
    assert type(cfg.tracker) is str and type(cfg.extra["x"]) is bool
    p = tmp_path / "w.yaml"
    p.write_text("precision: no\ntracker: ON\nflag: yes\nextra: {deep: [off]}\n")
    cfg = config.load(Words, p)
    assert cfg == Words(precision="no", tracker="ON", flag=True, extra={"deep": [False]})
    config.save(cfg, tmp_path / "back.yaml")  # written quoted: reads back the same
    assert config.load(Words, tmp_path / "back.yaml") == cfg
    # true/false stay booleans, a word is no number, and the real config takes "no"
    assert config.parse_overrides(["a=true", "b=False"]) == {"a": True, "b": False}
    with pytest.raises(config.ConfigError, match="precision: False is not one of"):
        config.load(Words, overrides=["precision=false"])
    with pytest.raises(config.ConfigError, match="count: expected int"):
        config.load(Words, overrides=["count=no"])
    assert config.load(TrainConfig, overrides=["precision=no"]).precision == "no"
