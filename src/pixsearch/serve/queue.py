"""The decode worker: one thread owns the model; requests wait in a bounded queue for it.

With a model that has a batched KV cache (`PixSearchModel`) and `batch > 1`, the worker hands
up to `batch` jobs at once to a `BatchedEngine` (`pixsearch.decode.batched`), which decodes
them together with continuous batching: a job takes a slot as soon as one is free, a finished
or cancelled job frees its slot at once, and the queue below is where the others wait. Other
models (external `SearchLM`s) are decoded one job at a time, as described next.

Why a worker thread and not a lock: the old server held a lock inside the SSE generator across
yields, so a client that disconnected mid-answer left the generator suspended with the lock
held and every later request waited forever. Here the model is only ever touched by this
thread, and a request talks to it through a `Job`: the HTTP side reads the job's events from an
asyncio queue and, when its client goes (disconnect, cancelled task, server shutdown), calls
`cancel`. The worker checks the flag between events — one generated token apart — and drops
the answer at once; a job cancelled while it waits is removed from the queue and never
computed.

Admission is bounded: at most `ServeLimits.max_queue` jobs wait; more are refused with 429 and
a Retry-After estimated from recent answer times (and the number of slots). Only the jobs
being decoded hold a decoded image (`pixsearch.images.load_image` runs here, in the worker),
so memory does not grow with the queue beyond the encoded uploads it holds.

A job reports `(kind, payload)` items: "rejected" (an `ApiError`: the image or options were
bad, nothing started), "started", "event" (a streamed event as a dict), "done" (the DoneEvent
dict), "error" (an `ApiError`: decoding failed or ran past the deadline), and always "end".
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pixsearch.serve.errors import ApiError
from pixsearch.serve.limits import AskParams, ServeLimits, decode_b64

log = logging.getLogger("pixsearch.serve")
_TICK_S = 0.25  # how often the batch dispatcher checks the running jobs' wall clocks


@dataclass(eq=False)
class Job:
    """One request's work and the channel its results come back on."""

    params: AskParams
    stream: bool
    loop: asyncio.AbstractEventLoop
    channel: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    request: Any = None  # its `BatchRequest` once a batched engine decodes it
    started_at: float = 0.0
    timed_out: bool = False

    def put(self, kind: str, payload: Any = None) -> None:
        """Hand an item to the request's event loop (from the worker thread)."""
        try:
            self.loop.call_soon_threadsafe(self.channel.put_nowait, (kind, payload))
        except RuntimeError:  # the loop is closed: the server has stopped
            self.cancelled.set()


class DecodeWorker:
    """The thread that loads the model (if given a loader) and decodes jobs: up to `batch` at
    once through a batched engine when the model has one, else one at a time."""

    def __init__(self, predictor: Any, limits: ServeLimits, batch: int = 16) -> None:
        """`predictor`: a `Predictor`, or a callable that loads one (health answers while it
        loads; requests queue behind the load). `batch`: jobs decoded together (1: one at
        a time)."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.limits = limits
        self.batch = batch
        self.engine: Any = None  # the `BatchedEngine`, once the model is loaded and batchable
        is_loader = not hasattr(predictor, "stream")
        self.predictor = None if is_loader else predictor
        self._loader: Callable[[], Any] | None = predictor if is_loader else None
        self.load_error: str | None = None
        self.closing: ApiError | None = None
        self._cond = threading.Condition()
        self._pending: deque[Job] = deque()
        self.running: list[Job] = []
        self.stats = {"answered": 0, "cancelled": 0, "failed": 0, "rejected": 0}
        self._avg_answer_s = 5.0  # moving average, for Retry-After
        self._thread = threading.Thread(target=self._run, name="pixsearch-decode", daemon=True)
        self._thread.start()

    # -- the HTTP side --------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self.predictor is not None

    def depth(self) -> dict[str, int]:
        with self._cond:
            depth = {"running": len(self.running), "waiting": len(self._pending),
                     "max_waiting": self.limits.max_queue}
            if self.engine is not None:
                depth["slots"] = self.batch
            return depth

    def counters(self) -> dict[str, Any]:
        """Answers, cancels, failures, rejections; with a batched engine also its decode
        steps, the sequences they carried, and the most rows one step decoded."""
        out: dict[str, Any] = dict(self.stats)
        if self.engine is not None:
            e = dict(self.engine.stats)
            out.update(batch_steps=e["steps"], batch_rows=e["rows"],
                       batch_max_rows=e["max_rows"],
                       batch_mean_rows=round(e["rows"] / e["steps"], 2) if e["steps"] else 0.0)
        return out

    def check_admission(self) -> None:
        """Raise the 429/503 a new job would get now (called before reading a body)."""
        with self._cond:
            self._admission()

    def submit(self, params: AskParams, stream: bool) -> Job:
        """Queue a job (`ApiError` 429 when the queue is full, 503 if the model failed)."""
        job = Job(params, stream, asyncio.get_running_loop())
        with self._cond:
            self._admission()
            self._pending.append(job)
            self._cond.notify()
        return job

    def cancel(self, job: Job) -> None:
        """The job's client is gone: drop it from the queue, or stop its decoding."""
        job.cancelled.set()
        with self._cond:
            try:
                self._pending.remove(job)
                self.stats["cancelled"] += 1
            except ValueError:
                pass  # running (the worker stops it) or finished
            request = job.request
        if request is not None:  # in the batch: its slot is freed before the next step
            request.cancel()

    def cancel_all(self, why: ApiError | None = None) -> None:
        """Cancel every waiting and running job; with `why`, their clients are told (a waiting
        request gets it as its answer, a running stream as an error event)."""
        with self._cond:
            waiting, running = list(self._pending), list(self.running)
        for job in waiting + running:
            self.cancel(job)
            if why is not None:
                job.put("rejected" if job not in running else "error", why)
            job.put("end")

    def shutdown(self) -> None:
        """The server is stopping: refuse new jobs (503) and end the current ones now, so
        that no connection holds the shutdown up."""
        err = ApiError(503, "shutting_down", "the server is shutting down; retry shortly",
                       {"Retry-After": "5"})
        with self._cond:
            self.closing = err
        self.cancel_all(err)

    def _admission(self) -> None:
        if self.closing is not None:
            raise self.closing
        if self.load_error is not None:
            raise ApiError(503, "model_unavailable", f"the model failed to load: "
                                                     f"{self.load_error}")
        if len(self._pending) >= self.limits.max_queue:
            slots = self.batch if self.engine is not None else 1
            wait = math.ceil(self._avg_answer_s * (len(self._pending) + 1) / slots)
            wait = min(max(wait, 1), 600)
            raise ApiError(429, "queue_full",
                           f"{len(self._pending)} requests are waiting for the model (the "
                           f"limit is {self.limits.max_queue}); retry in about {wait} s",
                           {"Retry-After": str(wait)})

    # -- the worker thread ---------------------------------------------------------------
    def _run(self) -> None:
        if self._loader is not None:
            try:
                self.predictor = self._loader()
            except Exception as e:  # noqa: BLE001 — reported by health and every request
                log.exception("model load failed")
                with self._cond:
                    self.load_error = f"{type(e).__name__}: {e}"
                    failed = list(self._pending)
                    self._pending.clear()
                for job in failed:
                    job.put("rejected", ApiError(503, "model_unavailable", self.load_error))
                    job.put("end")
                return
        engine = self._batched_engine()
        with self._cond:
            self.engine = engine
        if engine is not None:
            return self._dispatch()
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                job = self._pending.popleft()
                self.running = [job]
            try:
                self._decode(job)
            except Exception:  # noqa: BLE001 — the worker must outlive any one job
                log.exception("decode worker error")
            finally:
                with self._cond:
                    self.running = []
                job.put("end")

    def _open(self, job: Job, start: Callable[[Any], Any]) -> Any:
        """`start(image)` with the job's decoded image, or None when the upload or the options
        are bad (the job is then rejected with the 4xx that says why)."""
        from pixsearch.config import ConfigError
        from pixsearch.images import ImageError, load_image

        p = job.params
        try:
            image = (load_image(decode_b64(p.image_b64), self.limits.image)
                     if p.image_b64 else None)
            p.image_b64 = None  # the upload is decoded: free it now, not when the stream ends
            return start(image)
        except ApiError as e:
            self._reject(job, e)
        except ImageError as e:
            self._reject(job, ApiError(400, "bad_image", f"image: {e}"))
        except ConfigError as e:
            self._reject(job, ApiError(400, "bad_request", str(e)))
        except Exception as e:  # noqa: BLE001
            log.exception("could not start an answer")
            self._reject(job, ApiError(500, "internal", f"{type(e).__name__}: {e}"))
        return None

    def _decode(self, job: Job) -> None:
        from pixsearch.decode.events import DoneEvent, event_to_dict

        if job.cancelled.is_set():  # its client left between dequeue and here
            self.stats["cancelled"] += 1
            return
        t0 = time.monotonic()
        p = job.params
        events = self._open(job, lambda image: self.predictor.stream(p.question, image,
                                                                     **p.overrides))
        if events is None:
            return
        job.put("started")
        deadline = t0 + self.limits.request_timeout_s
        done = False
        try:
            for event in events:
                if job.cancelled.is_set():
                    self.stats["cancelled"] += 1
                    return
                if time.monotonic() > deadline:
                    self.stats["failed"] += 1
                    job.put("error", ApiError(504, "timeout", "the answer took longer than "
                                              f"{self.limits.request_timeout_s:.0f} s"))
                    return
                if isinstance(event, DoneEvent):
                    done = True
                    # counted before the client gets its answer, so /api/health never lags it
                    self.stats["answered"] += 1
                    elapsed = time.monotonic() - t0
                    self._avg_answer_s = 0.8 * self._avg_answer_s + 0.2 * elapsed
                    job.put("done", event_to_dict(event))
                elif job.stream:
                    job.put("event", event_to_dict(event))
            if not done:
                raise RuntimeError("the answer ended without a done event")
        except Exception as e:  # noqa: BLE001 — any fault ends the stream with an error event
            log.exception("answer failed")
            self.stats["failed"] += 1
            job.put("error", ApiError(500, "answer_failed", f"{type(e).__name__}: {e}"))
        finally:
            events.close()  # runs the engine's cleanup now, not at garbage collection

    def _reject(self, job: Job, err: ApiError) -> None:
        self.stats["rejected"] += 1
        job.put("rejected", err)

    # -- batched decoding ------------------------------------------------------------------
    def _batched_engine(self) -> Any:
        """A `BatchedEngine` over the loaded predictor, or None (batch 1, or a model without
        a batched KV cache: those are decoded one job at a time)."""
        if self.batch < 2:
            return None
        from pixsearch.decode.batched import BatchConfig, BatchedEngine
        from pixsearch.model.batched_cache import slot_cache_supports
        from pixsearch.model.pixsearch_model import PixSearchModel

        pred = self.predictor
        if not isinstance(getattr(pred, "model", None), PixSearchModel):
            log.info("the model has no batched KV cache: requests are decoded one at a time")
            return None
        if not slot_cache_supports(pred.model.backbone.model.config):
            log.info("the model's LM has attention layers the batched KV cache does not hold "
                     "(neither full nor sliding-window): requests are decoded one at a time")
            return None
        return BatchedEngine(pred.model, pred.search_api, pred.decode_config,
                             BatchConfig(max_batch=self.batch))

    def _dispatch(self) -> None:
        """Move jobs from the queue into the batch whenever it has a free slot; cut answers
        that outlive `request_timeout_s`."""
        while True:
            with self._cond:
                while not (self._pending and len(self.running) < self.batch):
                    self._cond.wait(_TICK_S)
                    self._expire()
                job = self._pending.popleft()
                self.running.append(job)
            try:
                self._submit(job)
            except Exception as e:  # noqa: BLE001 — the dispatcher must outlive any one job
                log.exception("could not hand a job to the batch")
                job.put("error", ApiError(500, "internal", f"{type(e).__name__}: {e}"))
                self._release(job)

    def _submit(self, job: Job) -> None:
        if job.cancelled.is_set():  # its client left between dequeue and here
            self.stats["cancelled"] += 1
            return self._release(job)
        p = job.params
        decode = self._open(job, lambda image: (image, self.predictor.validate_overrides(
            **p.overrides)))
        if decode is None:
            return self._release(job)
        image, cfg = decode
        job.started_at = time.monotonic()
        job.put("started")
        request = self.engine.submit(p.question, image, sink=partial(self._event, job),
                                     on_finish=partial(self._finished, job), decode=cfg)
        with self._cond:
            job.request = request
        if job.cancelled.is_set():  # cancelled while it was being submitted
            request.cancel()

    def _event(self, job: Job, event: Any) -> None:
        """(engine threads) One event of a batched job to its client."""
        from pixsearch.decode.events import DoneEvent, event_to_dict

        if isinstance(event, DoneEvent):
            job.put("done", event_to_dict(event))
        elif job.stream:
            job.put("event", event_to_dict(event))

    def _finished(self, job: Job, request: Any) -> None:
        """(engine threads) A batched job is answered, failed or dropped after a cancel."""
        from pixsearch.decode.batched_request import RequestCancelled

        err = request.error
        with self._cond:  # several engine threads finish jobs
            if request.answer is not None:
                self.stats["answered"] += 1
                elapsed = time.monotonic() - job.started_at
                self._avg_answer_s = 0.8 * self._avg_answer_s + 0.2 * elapsed
            elif isinstance(err, RequestCancelled):
                if not job.timed_out:  # a timed-out job was counted as failed already
                    self.stats["cancelled"] += 1
            else:
                self.stats["failed"] += 1
        if err is not None and not isinstance(err, RequestCancelled):
            job.put("error", ApiError(500, "answer_failed", f"{type(err).__name__}: {err}"))
        self._release(job)

    def _release(self, job: Job) -> None:
        with self._cond:
            if job in self.running:
                self.running.remove(job)
            self._cond.notify()
        job.put("end")

    def _expire(self) -> None:
        """(under the lock) Cancel batched jobs past `request_timeout_s` with a 504 event."""
        now = time.monotonic()
        for job in self.running:
            if (job.request is not None and not job.timed_out
                    and now > job.started_at + self.limits.request_timeout_s):
                job.timed_out = True
                self.stats["failed"] += 1
                job.put("error", ApiError(504, "timeout", "the answer took longer than "
                                          f"{self.limits.request_timeout_s:.0f} s"))
                job.request.cancel()
