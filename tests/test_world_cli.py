"""`pixsearch world build`: argument parsing and the config it builds (no build here: the
small world is built once by tests/test_world.py)."""

from __future__ import annotations

import pytest

from pixsearch.cli import build_parser
from pixsearch.cli.world import world_config


def test_world_build_options():
    args = build_parser().parse_args(
        ["world", "build", "--out", "/tmp/x", "--scale", "small", "--seed", "7",
         "scenes.train=5", "scene.max_flags=3", "index_config.image_embedder=thumbnail-16x12"])
    cfg = world_config(args)
    assert cfg.scale == "small" and cfg.seed == 7 and cfg.n_countries == 48
    assert cfg.scenes.train == 5 and cfg.scenes.val == 6 and cfg.scene.max_flags == 3
    assert cfg.index_config.image_embedder == "thumbnail-16x12"
    assert isinstance(cfg.scene.ego_size, tuple)


def test_world_build_rejects_unknown_fields():
    args = build_parser().parse_args(["world", "build", "--scale", "full", "nope=1"])
    with pytest.raises(ValueError, match="nope"):
        world_config(args)


def test_index_config_is_typed():
    """`index_config` is the retrieval `IndexConfig`: the small preset sets its embedder, the
    full one averages three learned networks trained on region examples too, fields are
    type-checked, and loading it needs neither torch nor faiss."""
    import subprocess
    import sys

    from pixsearch.retrieval.config import LearnedConfig
    from pixsearch.retrieval.index import IndexConfig
    from pixsearch.world.config import WorldConfig

    small = WorldConfig.preset("small").index_config
    assert isinstance(small, IndexConfig) and small.image_embedder == "thumbnail-16x12"
    full = WorldConfig.preset("full")
    assert full.index_config == IndexConfig(learned=LearnedConfig(members=3))
    assert full.index_regions
    args = build_parser().parse_args(["world", "build", "index_config.learned.steps=oops"])
    with pytest.raises(ValueError, match="index_config.learned.steps: expected int"):
        world_config(args)
    code = ("import sys; from pixsearch.world.config import WorldConfig; WorldConfig.preset('small');"
            "print(sorted({'torch', 'faiss'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
