"""Cold starts of `pixsearch ask`: the DINOv2 ONNX session is built in a background thread
while torch and transformers import, from a cached cut of the graph (tokens only) that ONNX
Runtime optimized once (same tokens as the full graph); the garbage collector, paused while the
command runs, and torch's threads, one while the model loads, are as they were after it. (That checking
inputs and `--help` import nothing heavy: tests/test_cli_errors.py; the timings themselves:
benchmarks/cold_start.py.)"""

from __future__ import annotations

import gc
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pixsearch.cli import main

ort = pytest.importorskip("onnxruntime")


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (96 + 32 * i, 128, 3), dtype=np.uint8))
            for i in range(2)]


def test_cached_optimized_graph_gives_bit_identical_tokens(tmp_path, monkeypatch):
    """The tokens come from the cut graph (saliency head removed) and its cached optimized
    form: bit-identical to the full edited graph's tokens output. The full graph's session
    is built only when a heatmap is asked for, and cached the same way."""
    from pixsearch.encoders import dinov2

    edited = dinov2.tokens_model_path()  # the machine's edited graph (made once, by any test)
    monkeypatch.setenv("PIXSEARCH_HOME", str(tmp_path))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / edited.name).symlink_to(edited)
    cached = dinov2.optimized_model_path(ort.__version__)
    cached_full = dinov2.optimized_model_path(ort.__version__, "full")
    assert not cached.exists() and cached != cached_full

    online = dinov2.DinoV2Encoder(num_threads=1)  # cuts and optimizes the graph now, saves it
    assert cached.is_file() and not cached_full.exists()
    offline = dinov2.DinoV2Encoder(num_threads=1)  # loads the saved graph, optimizations off
    level = offline.session.get_session_options().graph_optimization_level
    assert level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert online.session.get_session_options().graph_optimization_level != level

    images = _images()
    full = ort.InferenceSession(str(edited), providers=["CPUExecutionProvider"])
    (want,) = full.run([dinov2.TOKENS_NODE], {dinov2.INPUT_NAME: dinov2.preprocess(images)})
    assert np.array_equal(online.tokens(images), want)
    assert np.array_equal(offline.tokens(images), want)
    assert np.array_equal(online.heatmap(images[1]), offline.heatmap(images[1]))
    assert cached_full.is_file()
    names = [edited.name, dinov2.tokens_only_model_path().name, cached.name, cached_full.name]
    assert sorted(p.name for p in cached.parent.iterdir()) == sorted(names)


def test_a_dinov2_model_preloads_the_one_shared_encoder():
    """In a fresh process (no encoder yet): loading `mini` starts the session in the
    background, and the tower's later `dinov2_encoder()` call gets that same session instead
    of building a second one; `tiny` (patch tower) starts nothing."""
    code = (
        "from pixsearch.predictor import _preload_vision\n"
        "from pixsearch.encoders.dinov2 import dinov2_encoder\n"
        "assert _preload_vision('tiny') is None\n"
        "future = _preload_vision('mini')\n"
        "encoder = dinov2_encoder()\n"
        "print(future.result(timeout=120) is encoder, type(encoder).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "DinoV2Encoder"]


def test_ask_gives_the_collector_and_the_threads_back_on_success_and_on_error(tmp_path, capsys):
    """`ask` pauses cyclic garbage collection while the model loads and answers, and loads
    the model with one torch thread; an in-process caller (a notebook, these tests) has both
    back afterwards, also when the command fails."""
    import torch

    image = tmp_path / "scene.png"
    _images()[0].save(image)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert gc.isenabled()
        assert main(["ask", "--image", str(image), "-q", "Which flag is this?", "--model",
                     "tiny", "--max-new-tokens", "4", "--max-searches", "0", "--json"]) == 0
        assert '"trace"' in capsys.readouterr().out
        assert gc.isenabled() and torch.get_num_threads() == 2
        # fails inside the pause: the index folder is checked as the predictor loads
        rc = main(["ask", "--image", str(image), "-q", "x", "--model", "tiny",
                   "--index", str(tmp_path / "no-index")])
        assert rc == 2 and "no knowledge index" in capsys.readouterr().err
        assert gc.isenabled() and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
