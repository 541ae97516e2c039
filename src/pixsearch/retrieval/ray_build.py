"""The Ray engine of index builds: embedding and shard writing as Ray Data `map_batches`.

The corpus file is cut into the build's chunks (byte ranges, `JsonlSource.ranges`), and a
Ray Dataset of those ranges is mapped by a pool of embedding actors (`ChunkWorker`: each
loads the embedders once, then reads its chunk from the shared file, embeds it with the same
code as the local engine and writes the same checkpoint shard). Each actor reserves a
fraction of a CPU (`BuildConfig.ray_num_cpus`), so the pool also runs on a 2-core machine.
Rows are chunks rather than single documents so that every chunk is embedded in exactly the
batches of the single-process build: the index is the same, bit for bit.

On a cluster (`BuildConfig.ray_address`, or `RAY_ADDRESS`), the same command runs
unchanged when the corpus, the image folder and the index folder are on storage every node
mounts at the same path, and pixsearch is installed on the nodes.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from pixsearch.config import from_dict, to_dict
from pixsearch.logs import progress_bar
from pixsearch.retrieval.chunks import ChunkEmbedder, input_digest
from pixsearch.retrieval.config import BuildConfig, IndexConfig
from pixsearch.retrieval.shards import Staging
from pixsearch.retrieval.sources import ChunkRange, JsonlSource

INSTALL_HINT = "pip install 'pixsearch[distributed]'"


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise ImportError(f"the Ray build engine needs ray[data]: {INSTALL_HINT}") from e
    return ray


@contextmanager
def ray_session(settings: BuildConfig) -> Iterator[None]:
    """Connect to the cluster (or start a local Ray) unless Ray is already up; a Ray this
    started is shut down at the end."""
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        address = settings.ray_address or os.environ.get("RAY_ADDRESS")
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


class ChunkWorker:
    """A Ray actor embedding chunks of one source into the staging folder."""

    def __init__(self, config: dict[str, Any], modality: str, source: str, kind: str,
                 root: str | None, staging: str, plan: dict[str, Any],
                 embedder_dir: str | None, prototypes: dict[str, int]) -> None:
        self.modality = modality
        self.source = JsonlSource(source, kind)
        self.root = Path(root) if root else None
        self.staging = Staging(Path(staging), plan)
        self.embedder = ChunkEmbedder(from_dict(IndexConfig, config),
                                      embedder_dir=Path(embedder_dir) if embedder_dir else None,
                                      prototypes=prototypes)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        chunks, counts, seconds = [], [], []
        for i in range(len(batch["chunk"])):
            t0 = time.perf_counter()
            r = ChunkRange(**{f: int(batch[f][i]) for f in ("chunk", "start", "end", "line",
                                                             "count")})
            items = self.source.read(r)
            out = (self.embedder.documents(items) if self.modality == "text"
                   else self.embedder.images(items, self.root))
            self.staging.write_chunk(self.modality, r.chunk, input_digest(items, self.root),
                                     *out)
            chunks.append(r.chunk)
            counts.append(len(items))
            seconds.append(time.perf_counter() - t0)
        return {"chunk": np.asarray(chunks), "count": np.asarray(counts),
                "seconds": np.asarray(seconds)}


def embed_on_ray(settings: BuildConfig, config: IndexConfig, staging: Staging, modality: str,
                 source: JsonlSource, todo: list[ChunkRange], root: Path | None,
                 embedder: ChunkEmbedder, progress: bool = True) -> int:
    """Embed and checkpoint the chunks `todo` on Ray; returns the items embedded."""
    if not todo:
        return 0
    ray = _ray()
    ray.data.DataContext.get_current().enable_progress_bars = False  # ours counts items
    ds = ray.data.from_items([asdict(r) for r in todo])
    kwargs = {"config": to_dict(config), "modality": modality, "source": str(source.path),
              "kind": source.kind, "root": str(root) if root else None,
              "staging": str(staging.root), "plan": staging.plan,
              "embedder_dir": str(embedder.embedder_dir) if embedder.embedder_dir else None,
              "prototypes": embedder.prototypes}
    ds = ds.map_batches(ChunkWorker, batch_size=1, fn_constructor_kwargs=kwargs,
                        num_cpus=settings.ray_num_cpus,
                        compute=ray.data.ActorPoolStrategy(size=settings.ray_workers))
    what = "documents" if modality == "text" else "images"
    bar = progress_bar(total=sum(r.count for r in todo), desc=f"embed {what} (ray)",
                       unit="doc" if modality == "text" else "img", disable=not progress)
    done = 0
    for row in ds.iter_rows():
        done += int(row["count"])
        bar.update(int(row["count"]))
    bar.close()
    return done
