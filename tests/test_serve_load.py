"""A short run of `benchmarks/load_bench.py` (slow: about a minute): the real server in its own
process, 8 clients of which some drop their streams, a queue of 2 so that some are refused —
no error but 429, nothing hung, memory flat."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from eval_fixture import build_eval_set

BENCH = Path(__file__).parent.parent / "benchmarks" / "load_bench.py"


@pytest.mark.slow
def test_short_load_run_has_no_errors_and_no_hangs(tmp_path):
    spec = importlib.util.spec_from_file_location("load_bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    sys.modules["load_bench"] = bench  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    records, index = build_eval_set(tmp_path / "world")
    records.rename(records.parent / "test.jsonl")
    rows = bench.main(["--model", "tiny", "--world", str(tmp_path / "world"), "--clients", "8",
                       "--seconds", "20", "--max-queue", "2", "--drop", "0.3", "--hang", "60",
                       "max_new_tokens=24"])
    (row,) = rows
    assert row["non_429_errors"] == 0 and row["hung"] == 0, row
    assert row["answers"] > 0 and row["dropped"] > 0 and row["codes"].get(429, 0) > 0
    assert row["rss_mb_max"] - row["rss_mb_start"] < 300  # uploads are not kept
    assert row["health_max_s"] < 2.0  # health never waits on the model
