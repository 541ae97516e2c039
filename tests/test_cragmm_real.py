"""The CRAG-MM adapter against the real `cragmm-search-pipeline` package (0.5.1): its
`UnifiedSearchPipeline` over a small local collection built here (`cragmm_local.py`: a tiny
random CLIP, the real MiniLM text model, ChromaDB collections in the package's format in a
Hugging Face cache folder; no download). Image, region and text (web) queries go through
`pixsearch.retrieval.cragmm.CragMMSearch`.

The package calls `CLIPModel.get_image_features()` and uses the result as a tensor, which
transformers 5 no longer returns, so it runs in a virtualenv with transformers < 5
(`scripts/cragmm_venv.sh`; or set PIXSEARCH_CRAGMM_PYTHON to such an interpreter). Slow: a
fresh process loads torch, transformers and ChromaDB (~20 s)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
VENV_PYTHON = Path.home() / ".cache/pixsearch/venvs/cragmm-search/bin/python"


def _interpreter() -> str | None:
    """A Python where `cragmm_search` imports next to transformers < 5 (None: none here)."""
    probe = ("import cragmm_search.search, transformers, sys; "
             "sys.exit(int(transformers.__version__.split('.')[0]) >= 5)")
    for python in (os.environ.get("PIXSEARCH_CRAGMM_PYTHON"), str(VENV_PYTHON), sys.executable):
        if python and Path(python).exists() and subprocess.run(
                [python, "-c", probe], capture_output=True, timeout=300).returncode == 0:
            return python
    return None


def test_adapter_against_the_real_unified_search_pipeline(tmp_path):
    python = _interpreter()
    if python is None:
        pytest.skip("cragmm-search-pipeline 0.5.1 needs transformers < 5 (it treats "
                    "get_image_features() as a tensor); run scripts/cragmm_venv.sh")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hf"),
           "ANONYMIZED_TELEMETRY": "False", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([python, str(Path(__file__).parent / "cragmm_local.py"),
                           str(tmp_path)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    hits = json.loads(proc.stdout.strip().splitlines()[-1])  # the package prints on stdout too

    image = hits["image"]  # the picture of an entity of the collection
    assert image[0]["entity"] == "Greenia flag" and image[0]["score"] == pytest.approx(1.0, 1e-5)
    assert image[0]["text"] == "country: Greenia; capital: Emerald City"
    assert image[0]["via"] == "https://example.org/1.png" and len(image) == 2
    region = hits["region"]  # cropped to the mask by the adapter, then an image search
    assert region[0]["entity"] == "Blueland flag"
    assert region[0]["score"] == pytest.approx(1.0, abs=1e-4)
    text = hits["text"]  # web search with the real MiniLM
    assert text[0]["title"] == "Emerald City" and text[0]["via"] == "text"
    assert text[0]["doc_id"] == "https://example.org/Emerald City"
    assert text[0]["score"] > text[1]["score"]
