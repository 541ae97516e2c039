"""The Ray Data engine builds the same index as the single-process build, bit for bit, and
resumes from the checkpoints a local build left (slow: starting Ray takes ~20 s here)."""

from __future__ import annotations

import pytest
from index_kb import BUILD, CFG, assert_same_index, snapshot, write_kb

from pixsearch.retrieval.builder import IndexBuilder
from pixsearch.retrieval.config import BuildConfig

pytest.importorskip("ray.data", reason="the Ray engine needs pip install 'pixsearch[distributed]'")
pytestmark = pytest.mark.slow

RAY = BuildConfig(chunk_size=BUILD.chunk_size, progress=False, engine="ray", ray_workers=2,
                  ray_num_cpus=0.5)


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    """One local Ray for both builds (a build leaves a Ray it did not start running)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_build_equals_the_single_process_build(tmp_path):
    kb = write_kb(tmp_path / "kb", range(40), range(10))
    IndexBuilder(tmp_path / "local", CFG, BUILD).build(*kb)
    report = IndexBuilder(tmp_path / "ray", CFG, RAY).build(*kb)
    assert report.embedded == {"text": 40, "image": 10}
    assert_same_index(snapshot(tmp_path / "ray"), snapshot(tmp_path / "local"))

    # an update on Ray embeds only the new items, and again equals the local one
    extra = write_kb(tmp_path / "extra", range(40, 52), [])
    IndexBuilder(tmp_path / "local", build=BUILD).add(extra[0])
    report = IndexBuilder(tmp_path / "ray", build=RAY).add(extra[0])
    assert report.embedded == {"text": 12, "image": 0}
    assert_same_index(snapshot(tmp_path / "ray"), snapshot(tmp_path / "local"))
