"""Test-wide setup: deterministic seeds, one torch thread, `tests/` importable for helpers."""

from __future__ import annotations

import contextlib
import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    try:
        import torch

        torch.manual_seed(0)
        torch.set_num_threads(1)
    except ImportError:
        pass


COLOURS = {"red": (220, 30, 30), "green": (30, 160, 60), "blue": (30, 60, 200)}


@pytest.fixture(scope="session")
def colour_index(tmp_path_factory):
    """A real knowledge index (MiniLM text index, thumbnail image index) of three plain-colour
    'countries', one card and one flag image each."""
    from PIL import Image

    from pixsearch.retrieval.index import IndexConfig, KnowledgeIndex
    from pixsearch.types import Document, KBImage

    root = tmp_path_factory.mktemp("kb")
    docs, images = [], []
    for name, rgb in COLOURS.items():
        docs.append(Document(id=name, title=f"{name.title()}land",
                             text=f"{name.title()}land has a plain {name} flag. Its capital is "
                                  f"{name.title()}ville.", entity=name, kind="card"))
        Image.new("RGB", (64, 48), rgb).save(root / f"{name}.png")
        images.append(KBImage(id=f"img-{name}", path=f"{name}.png", doc_id=name))
    cfg = IndexConfig(image_embedder="thumbnail-16x12")
    return KnowledgeIndex.build(docs, images, root, root / "index", cfg)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory) -> Path:
    """The `small` benchmark world, built once per test session (about a minute)."""
    from pixsearch.world.build import build_world
    from pixsearch.world.config import WorldConfig

    out = tmp_path_factory.mktemp("small_world")
    build_world(out, WorldConfig.preset("small"), progress=False)
    return out


@pytest.fixture
def live_server():
    """Start ASGI apps on real uvicorn servers: `url = live_server(app)`; all stop at teardown
    (see `tests/servers.py`)."""
    from servers import serve_in_thread

    with contextlib.ExitStack() as stack:
        yield lambda app, **kw: stack.enter_context(serve_in_thread(app, **kw))
