"""The training DataLoader: batches made in worker processes are the batches made in the
training process, in the same order, and its sampler state resumes exactly after prefetching."""

import torch
from test_train import tiny, world  # noqa: F401  (module fixtures: a 4-scene world, `tiny`)

from pixsearch.data.records import read_records
from pixsearch.model.batch import Batch
from pixsearch.train.data import build_pools
from pixsearch.train.features import FeatureCache
from pixsearch.train.loader import BatchLoader
from pixsearch.train.mixture import MixtureSampler


def _fields(b: Batch) -> list[torch.Tensor]:
    return [b.input_ids, b.attention_mask, b.loss_mask, b.span_labels, b.prompt_len,
            *[b.images[k] for k in sorted(b.images)], b.region_targets]


def _setup(world, tiny, tmp_path):  # noqa: F811
    pools = build_pools(read_records(world / "train.jsonl"))
    features = FeatureCache(tiny, world, tmp_path / "cache", False)
    features.precompute([s.image for p in pools.values() for s in p])
    return pools, features


def test_workers_make_the_same_batches_in_the_same_order(world, tiny, tmp_path):  # noqa: F811
    pools, features = _setup(world, tiny, tmp_path)
    runs = {}
    for workers in (0, 2):
        sampler = MixtureSampler(pools, {"stage1": 7, "stage2": 9}, seed=5)
        loader = BatchLoader(tiny, sampler, 3, features, num_workers=workers, seed=5)
        runs[workers] = [loader.next() for _ in range(6)]
        loader.close()
    for a, b in zip(runs[0], runs[2]):
        assert a.kinds == b.kinds
        assert all(torch.equal(x, y) for x, y in zip(_fields(a), _fields(b)))
    # the batches hold images (hi-res pixels loaded from files by the workers) and masks
    assert runs[2][0].images["hires"].shape[0] == 3 and runs[2][0].region_targets is not None


def test_sampler_state_is_that_of_the_last_batch_trained_on(world, tiny, tmp_path):  # noqa: F811
    """Workers prefetch, so the sampler has drawn ahead; the saved state must not include the
    batches in flight, or a resumed run would skip them."""
    pools, features = _setup(world, tiny, tmp_path)
    sampler = MixtureSampler(pools, {"stage1": 1, "stage2": 1}, seed=2)
    loader = BatchLoader(tiny, sampler, 2, features, num_workers=2, seed=2, prefetch=3)
    for _ in range(3):
        loader.next()
    state = loader.state_dict()
    assert sum(state["drawn"].values()) == 3 * 2 < sum(sampler.drawn.values())
    following = [loader.next() for _ in range(2)]
    loader.close()
    resumed = MixtureSampler(pools, {"stage1": 1, "stage2": 1}, seed=99)
    resumed.load_state_dict(state)
    again = BatchLoader(tiny, resumed, 2, features, num_workers=0)
    for a in following:
        assert torch.equal(a.input_ids, again.next().input_ids)
