"""`benchmarks/paper_scale_gpu.py` on a tiny twin, on the CPU: the script the lent GPU runs
builds the preset through the project's path, decodes with the KV cache and takes real
optimiser steps (the trainer's `micro_step`) that lower the loss of a fixed batch."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_gemma_builds_decodes_and_trains(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "paper_scale_gpu.py"), "--tiny",
           "--device", "cpu", "--models", "gemma-270m", "--batch-sizes", "2", "--steps", "3",
           "--warmup", "1", "--new-tokens", "4", "--threads", "1", "--out", str(tmp_path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    report = json.loads((tmp_path / "paper_scale_gpu.json").read_text())
    gemma = report["models"]["gemma-270m"]
    assert "error" not in gemma, gemma.get("error")
    assert gemma["decode"]["new_tokens"] == 4 and gemma["decode"]["decode_tokens_per_s"] > 0
    (row,) = gemma["train"]
    assert row["batch_size"] == 2 and row["tokens"] > 0 and row["step_s"] > 0
    losses = row["losses"]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    assert 0 < gemma["trainable_params"] < gemma["total_params"]
    assert "gemma-270m" in (tmp_path / "paper_scale_gpu.md").read_text()
