"""The training data pipeline: micro-batches rendered and collated in DataLoader workers.

The mixture sampler (`train/mixture.py`) decides *which* samples make each micro-batch; it
runs in the training process, so its state stays the one thing a resumed run restores.
*Making* the batch — rendering the token ids, opening the image, resizing it for the
high-resolution branch or SAM, resizing the gold masks, collating — happens in
`torch.utils.data.DataLoader` workers (`num_workers`), so a GPU does not wait on PIL. Batches
come back in the order they were drawn, whatever the number of workers, and pinned when the
model trains on CUDA.

Workers prefetch, so the sampler runs a few batches ahead of training. `BatchLoader`
remembers the sampler's state after each batch it handed over; `state_dict` is the state
after the last batch *trained on*, so a resumed run draws exactly the batches that come next.
"""

from __future__ import annotations

import multiprocessing
import os
import random
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pixsearch.model.batch import Batch
from pixsearch.train.data import TrainSample, make_batch
from pixsearch.train.mixture import MixtureSampler

if TYPE_CHECKING:
    from pixsearch.model.pixsearch_model import PixSearchModel
    from pixsearch.train.features import FeatureCache


class _Batches(Dataset):
    """A "dataset" whose keys are the sample lists the sampler drew: key → collated `Batch`."""

    def __init__(self, model: PixSearchModel, features: FeatureCache) -> None:
        self.model, self.features = model, features

    def __getitem__(self, samples: list[TrainSample]) -> Batch:
        return make_batch(self.model, samples, self.features)


class _Draws(Sampler):
    """Draws micro-batches from the mixture sampler as the DataLoader asks for them and
    records the sampler's state after each draw (`BatchLoader` pops them as batches arrive)."""

    def __init__(self, sampler: MixtureSampler, batch_size: int, states: deque) -> None:
        self.sampler, self.batch_size, self.states = sampler, batch_size, states

    def __iter__(self) -> Iterator[list[TrainSample]]:
        while True:
            samples = self.sampler.batch(self.batch_size)
            self.states.append(self.sampler.state_dict())
            yield samples


def seed_worker(worker_id: int) -> None:
    """Seed Python's and NumPy's generators in a worker from the seed torch gave it (torch's
    own is seeded by the DataLoader), so anything random in batch making is reproducible."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def fork_context() -> str | None:
    """Workers are forked where the platform can (they share the feature cache and the model's
    tokenizer without copying; they never touch an accelerator), else the default start."""
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else None


class BatchLoader:
    """Micro-batches of `sampler` (each `batch_size` samples), made by `num_workers` workers.

    Args:
        model: the model whose renderer and image preprocessing make the batches.
        sampler: the stage's mixture sampler (its state is restored before this is made).
        batch_size: samples per micro-batch.
        features: the frozen-feature cache of the world's images.
        num_workers: worker processes (0 = in this process).
        pin_memory: page-lock batches for fast copies to a CUDA device.
        seed: base seed of the workers' generators.
        prefetch: batches each worker prepares ahead.
    """

    def __init__(self, model: PixSearchModel, sampler: MixtureSampler, batch_size: int,
                 features: FeatureCache, num_workers: int = 0, pin_memory: bool = False,
                 seed: int = 0, prefetch: int = 2) -> None:
        self.sampler = sampler
        self._states: deque = deque()
        self._trained: dict[str, Any] | None = None
        if num_workers:
            # forked workers tokenize too: the Rust thread pool must not be inherited mid-use
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.loader = DataLoader(
            _Batches(model, features), batch_size=None,
            sampler=_Draws(sampler, batch_size, self._states), num_workers=num_workers,
            pin_memory=pin_memory, worker_init_fn=seed_worker if num_workers else None,
            generator=torch.Generator().manual_seed(seed),
            prefetch_factor=prefetch if num_workers else None,
            persistent_workers=False,
            multiprocessing_context=fork_context() if num_workers else None)
        self._it: Iterator[Batch] | None = None

    def next(self) -> Batch:
        """The next micro-batch, in draw order."""
        if self._it is None:
            self._it = iter(self.loader)
        batch = next(self._it)
        self._trained = self._states.popleft()
        return batch

    def state_dict(self) -> dict[str, Any]:
        """The sampler's state after the last batch returned by `next` (what a resumed run
        loads into a fresh sampler)."""
        return self._trained if self._trained is not None else self.sampler.state_dict()

    def close(self) -> None:
        """Stop the workers."""
        self._it = None
