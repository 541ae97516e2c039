"""Image encoding for the batched engine: the images of requests that arrive together are
encoded together, on one thread beside decoding.

The frozen image encoder (DINOv2-S for `mini`, `model.preprocess_many`) is the largest cost of
an answer with an image, and it does not share the batched decode step. `ImageBatcher` puts
every image submitted while its thread is busy into the next group (at most `max_group`), and
encodes a group in one call with a batch dimension (one ONNX Runtime run for DINOv2, whose graph
takes a dynamic batch). The tokens of an image do not depend on the others in its group
(`tests/test_batched_images.py` checks them against one-at-a-time encoding), so answers stay
those of the single-answer engine. A group that fails (one unreadable image) is encoded again
one image at a time, so the failure stays with the request that caused it.

No cache: an image is encoded each time it is submitted, even if the same picture came before.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
from PIL import Image

from pixsearch.model.pixsearch_model import PixSearchModel

Features = dict[str, torch.Tensor]


@dataclass(eq=False)
class _Job:
    image: Image.Image
    on_start: Callable[[], None] | None
    skip: Callable[[], bool] | None
    future: Future = field(default_factory=Future)


class ImageBatcher:
    """Encodes submitted images in groups on one thread (see module doc).

    `stats`: groups run and images encoded, for benchmarks (mean group size)."""

    def __init__(self, model: PixSearchModel, max_group: int = 8) -> None:
        if max_group < 1:
            raise ValueError(f"max_group must be >= 1, got {max_group}")
        self.model = model
        self.max_group = max_group
        self.stats = {"groups": 0, "images": 0}
        self._queue: deque[_Job] = deque()
        self._lock = threading.Lock()
        self._thread = ThreadPoolExecutor(1, "pixsearch-encode")  # one encoder run at a time

    def submit(self, image: Image.Image, on_start: Callable[[], None] | None = None,
               skip: Callable[[], bool] | None = None) -> Future:
        """Queue `image`; the future gives `model.preprocess(image)`'s features. `on_start` is
        called when its group starts (on the encoding thread); `skip()` true then (e.g. the
        request was cancelled meanwhile) gives None instead of encoding it. Cancelling the
        future before its group starts drops the image."""
        job = _Job(image, on_start, skip)
        with self._lock:
            self._queue.append(job)
        self._thread.submit(self._drain)
        return job.future

    def close(self) -> None:
        """Stop the thread; images not yet started are dropped (their futures cancelled)."""
        self._thread.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            jobs, self._queue = list(self._queue), deque()
        for job in jobs:
            job.future.cancel()

    def _drain(self) -> None:
        """(encoding thread) Encode the images queued now, up to `max_group` of them; a later
        drain takes the rest (one drain is queued per submitted image)."""
        with self._lock:
            group = [self._queue.popleft() for _ in range(min(self.max_group, len(self._queue)))]
        group = [j for j in group if j.future.set_running_or_notify_cancel()]
        for job in group:
            if job.on_start is not None:
                job.on_start()
        live = []
        for job in group:
            if job.skip is not None and job.skip():
                job.future.set_result(None)
            else:
                live.append(job)
        if not live:
            return
        try:
            features = self.model.preprocess_many([j.image for j in live])
        except Exception:  # noqa: BLE001 - found again below, image by image
            features = None
        self.stats["groups"] += 1
        self.stats["images"] += len(live)
        for i, job in enumerate(live):
            if features is not None:
                job.future.set_result(features[i])
                continue
            try:
                job.future.set_result(self.model.preprocess(job.image))
            except Exception as e:  # noqa: BLE001 - this request's image fails alone
                job.future.set_exception(e)
