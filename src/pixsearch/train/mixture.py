"""Weighted sampling of the Stage-1 and Stage-2 pools (the paper's mixture ratio, Table 9).

Each micro-batch element picks a pool with probability proportional to the stage's weight
(e.g. Stage-1:Stage-2 = 7:9), then the next sample of that pool's shuffled order (a new
shuffle each pass, so every sample is seen once per pass). The generator state and the
positions are part of the trainer state, so a resumed run draws the same batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pixsearch.train.data import TrainSample


class MixtureSampler:
    """Draws micro-batches from named pools with fixed weights.

    Args:
        pools: pool name → samples.
        weights: pool name → non-negative weight (missing = 0).
        seed: seed of the pool choice and the shuffles.
    """

    def __init__(self, pools: dict[str, list[TrainSample]], weights: dict[str, float],
                 seed: int = 0) -> None:
        self.names = [n for n in sorted(pools) if float(weights.get(n, 0)) > 0]
        empty = [n for n in self.names if not pools[n]]
        if empty:
            raise ValueError(f"pool(s) {empty} have weight but no samples; check the world's "
                             "train split")
        if not self.names:
            raise ValueError(f"no pool of {sorted(pools)} has a positive weight in {weights}")
        self.pools = pools
        w = np.array([float(weights[n]) for n in self.names])
        self.probs = w / w.sum()
        self.rng = np.random.default_rng(seed)
        self.order = {n: self.rng.permutation(len(pools[n])) for n in self.names}
        self.pos = dict.fromkeys(self.names, 0)
        self.drawn = dict.fromkeys(self.names, 0)

    def _next(self, name: str) -> TrainSample:
        if self.pos[name] >= len(self.order[name]):
            self.order[name] = self.rng.permutation(len(self.pools[name]))
            self.pos[name] = 0
        sample = self.pools[name][int(self.order[name][self.pos[name]])]
        self.pos[name] += 1
        self.drawn[name] += 1
        return sample

    def batch(self, n: int) -> list[TrainSample]:
        """`n` samples, each from a pool drawn by weight."""
        picks = self.rng.choice(len(self.names), size=n, p=self.probs)
        return [self._next(self.names[int(i)]) for i in picks]

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state,
                "order": {n: o.tolist() for n, o in self.order.items()},
                "pos": dict(self.pos), "drawn": dict(self.drawn)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state["order"]) != set(self.names):
            raise ValueError(f"sampler state has pools {sorted(state['order'])}, "
                             f"this stage uses {self.names}")
        for n, o in state["order"].items():
            if len(o) != len(self.pools[n]):
                raise ValueError(f"pool {n} has {len(self.pools[n])} samples, the saved state "
                                 f"{len(o)}: the training data changed since the checkpoint")
        self.rng.bit_generator.state = state["rng"]
        self.order = {n: np.asarray(o) for n, o in state["order"].items()}
        self.pos = dict(state["pos"])
        self.drawn = dict(state["drawn"])
