"""A request of the batched engine: its inputs, its settings, and where its events go.

`BatchedEngine.submit` returns a `BatchRequest` at once; the scheduler thread decodes it with
the others. Its events (the same `Event`s the single-answer `Engine.stream` yields, in the same
order) go either to a `sink` the caller gives — a callable that must be safe to call from the
engine's threads, e.g. one that hands them to an asyncio loop — or to a queue that
`BatchRequest.events()` reads. `cancel()` may be called from any thread at any time: a waiting
request is never computed, a decoding one leaves the batch before its next token, one that is
searching leaves when its search returns; its slot goes to the next request.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from PIL import Image

from pixsearch.decode.config import DecodeConfig
from pixsearch.decode.events import DoneEvent, Event
from pixsearch.types import Answer, Query


@dataclass
class BatchConfig:
    """How the batched engine schedules sequences.

    Attributes:
        max_batch: sequences decoding together (slots of the batched KV cache); more requests
            wait for a slot in arrival order.
        search_workers: threads that decode region masks and run the retrievals of sequences
            stepped aside, while the rest of the batch keeps decoding.
        admit_per_step: prompts prefilled between two decode steps, so a burst of arrivals
            stalls the sequences already decoding by at most this many prefills.
        encode_group: images of waiting requests encoded together in one call of the frozen
            image encoder (`decode/image_batcher.py`); a larger group shares more per image
            but makes the first request of a burst wait for the whole group.
    """

    max_batch: int = 16
    search_workers: int = 4
    admit_per_step: int = 2
    encode_group: int = 4

    def __post_init__(self) -> None:
        if min(self.max_batch, self.search_workers, self.admit_per_step, self.encode_group) < 1:
            raise ValueError("max_batch, search_workers, admit_per_step and encode_group must "
                             "be >= 1")


_END = object()  # closes the event queue of a request that failed


class RequestCancelled(RuntimeError):
    """The request was cancelled before its answer was done."""


@dataclass(eq=False)
class BatchRequest:
    """One question in the batched engine (see module doc).

    Attributes:
        question, image, forced_queries: what to answer, as for `Engine.stream`.
        cfg: the request's decode settings (the engine's, with the request's overrides).
        sink: where events go (None: a queue read by `events()`).
        on_finish: called once (from an engine thread) when the request is answered, failed
            or dropped after a cancel; `answer` / `error` say which.
    """

    question: str
    image: Image.Image | None
    forced_queries: list[Query]
    cfg: DecodeConfig
    sink: Callable[[Event], None] | None = None
    on_finish: Callable[[BatchRequest], None] | None = None
    answer: Answer | None = None
    error: BaseException | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    _queue: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    _on_cancel: Callable[[BatchRequest], None] | None = None

    def emit(self, event: Event) -> None:
        """Deliver one event (called from the engine's threads)."""
        if self.cancelled.is_set():
            return
        if self.sink is not None:
            self.sink(event)
        else:
            self._queue.put(event)

    def done(self, answer: Answer) -> None:
        self.answer = answer
        self.emit(DoneEvent(answer))
        self._end()

    def fail(self, error: BaseException) -> None:
        """End the request with `error` (re-raised by `events()` and `result()`)."""
        self.error = error
        self._queue.put(_END)
        self._end()

    def _end(self) -> None:
        self.finished.set()
        if self.on_finish is not None:
            self.on_finish(self)

    def cancel(self) -> None:
        """The caller does not want the answer any more (see module doc)."""
        if self.finished.is_set() or self.cancelled.is_set():
            return
        self.cancelled.set()
        if self._on_cancel is not None:
            self._on_cancel(self)

    def events(self) -> Iterator[Event]:
        """The request's events until its `DoneEvent`; a failure is raised here. Only for
        requests without a sink."""
        assert self.sink is None, "this request hands its events to a sink"
        while True:
            item = self._queue.get()
            if item is _END:
                assert self.error is not None
                raise self.error
            yield item
            if isinstance(item, DoneEvent):
                return

    def result(self, timeout: float | None = None) -> Answer:
        """Wait for the answer (a failure is raised here)."""
        if not self.finished.wait(timeout):
            raise TimeoutError(f"no answer within {timeout} s")
        if self.error is not None:
            raise self.error
        assert self.answer is not None
        return self.answer
