"""Cold starts of `pixsearch ask`: the DINOv2 ONNX session is built in a background thread
while torch and transformers import, ONNX Runtime's optimized graph is cached (same tokens),
and the garbage collector, paused while the command runs, is on again after it. (That checking
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
    from pixsearch.encoders import dinov2

    edited = dinov2.tokens_model_path()  # the machine's edited graph (made once, by any test)
    monkeypatch.setenv("PIXSEARCH_HOME", str(tmp_path))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / edited.name).symlink_to(edited)
    cached = dinov2.optimized_model_path(ort.__version__)
    assert not cached.exists()

    online = dinov2.DinoV2Encoder(num_threads=1)  # optimizes the graph now, and saves it
    assert cached.is_file()
    offline = dinov2.DinoV2Encoder(num_threads=1)  # loads the saved graph, optimizations off
    level = offline.session.get_session_options().graph_optimization_level
    assert level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert online.session.get_session_options().graph_optimization_level != level

    images = _images()
    assert np.array_equal(online.tokens(images), offline.tokens(images))
    assert np.array_equal(online.heatmap(images[1]), offline.heatmap(images[1]))
    assert sorted(p.name for p in cached.parent.iterdir()) == sorted([edited.name, cached.name])


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


def test_ask_gives_the_collector_back_on_success_and_on_error(tmp_path, capsys):
    """`ask` pauses cyclic garbage collection while the model loads and answers; an in-process
    caller (a notebook, these tests) has it back afterwards, also when the command fails."""
    image = tmp_path / "scene.png"
    _images()[0].save(image)
    assert gc.isenabled()
    assert main(["ask", "--image", str(image), "-q", "Which flag is this?", "--model", "tiny",
                 "--max-new-tokens", "4", "--max-searches", "0", "--json"]) == 0
    assert '"trace"' in capsys.readouterr().out
    assert gc.isenabled()
    # fails inside the pause: the index folder is checked as the predictor loads
    rc = main(["ask", "--image", str(image), "-q", "x", "--model", "tiny",
               "--index", str(tmp_path / "no-index")])
    assert rc == 2 and "no knowledge index" in capsys.readouterr().err
    assert gc.isenabled()
