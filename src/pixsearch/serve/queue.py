"""The decode worker: one thread owns the model; requests wait in a bounded queue for it.

Why a worker thread and not a lock: the old server held a lock inside the SSE generator across
yields, so a client that disconnected mid-answer left the generator suspended with the lock
held and every later request waited forever. Here the model is only ever touched by this
thread, and a request talks to it through a `Job`: the HTTP side reads the job's events from an
asyncio queue and, when its client goes (disconnect, cancelled task, server shutdown), calls
`cancel`. The worker checks the flag between events — one generated token apart — and drops
the answer at once; a job cancelled while it waits is removed from the queue and never
computed.

Admission is bounded: at most `ServeLimits.max_queue` jobs wait; more are refused with 429 and
a Retry-After estimated from recent answer times. Only the job being decoded holds a decoded
image (`pixsearch.images.load_image` runs here, in the worker), so memory does not grow with
the queue beyond the encoded uploads it holds.

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
from typing import Any

from pixsearch.serve.errors import ApiError
from pixsearch.serve.limits import AskParams, ServeLimits, decode_b64

log = logging.getLogger("pixsearch.serve")


@dataclass(eq=False)
class Job:
    """One request's work and the channel its results come back on."""

    params: AskParams
    stream: bool
    loop: asyncio.AbstractEventLoop
    channel: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def put(self, kind: str, payload: Any = None) -> None:
        """Hand an item to the request's event loop (from the worker thread)."""
        try:
            self.loop.call_soon_threadsafe(self.channel.put_nowait, (kind, payload))
        except RuntimeError:  # the loop is closed: the server has stopped
            self.cancelled.set()


class DecodeWorker:
    """The thread that loads the model (if given a loader) and decodes jobs one at a time."""

    def __init__(self, predictor: Any, limits: ServeLimits) -> None:
        """`predictor`: a `Predictor`, or a callable that loads one (health answers while it
        loads; requests queue behind the load)."""
        self.limits = limits
        is_loader = not hasattr(predictor, "stream")
        self.predictor = None if is_loader else predictor
        self._loader: Callable[[], Any] | None = predictor if is_loader else None
        self.load_error: str | None = None
        self.closing: ApiError | None = None
        self._cond = threading.Condition()
        self._pending: deque[Job] = deque()
        self.running: Job | None = None
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
            return {"running": int(self.running is not None), "waiting": len(self._pending),
                    "max_waiting": self.limits.max_queue}

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

    def cancel_all(self, why: ApiError | None = None) -> None:
        """Cancel every waiting and running job; with `why`, their clients are told (a waiting
        request gets it as its answer, a running stream as an error event)."""
        with self._cond:
            waiting, running = list(self._pending), self.running
        for job in waiting + ([running] if running else []):
            self.cancel(job)
            if why is not None:
                job.put("rejected" if job is not running else "error", why)
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
            wait = math.ceil(self._avg_answer_s * (len(self._pending) + 1))
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
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                job = self._pending.popleft()
                self.running = job
            try:
                self._decode(job)
            except Exception:  # noqa: BLE001 — the worker must outlive any one job
                log.exception("decode worker error")
            finally:
                with self._cond:
                    self.running = None
                job.put("end")

    def _decode(self, job: Job) -> None:
        from pixsearch.config import ConfigError
        from pixsearch.decode.events import DoneEvent, event_to_dict
        from pixsearch.images import ImageError, load_image

        if job.cancelled.is_set():  # its client left between dequeue and here
            self.stats["cancelled"] += 1
            return
        t0 = time.monotonic()
        p = job.params
        try:
            image = (load_image(decode_b64(p.image_b64), self.limits.image)
                     if p.image_b64 else None)
            p.image_b64 = None  # the upload is decoded: free it now, not when the stream ends
            events = self.predictor.stream(p.question, image, **p.overrides)
        except ApiError as e:
            return self._reject(job, e)
        except ImageError as e:
            return self._reject(job, ApiError(400, "bad_image", f"image: {e}"))
        except ConfigError as e:
            return self._reject(job, ApiError(400, "bad_request", str(e)))
        except Exception as e:  # noqa: BLE001
            log.exception("could not start an answer")
            return self._reject(job, ApiError(500, "internal", f"{type(e).__name__}: {e}"))
        del image  # the engine holds it while it needs it; nothing here keeps it after
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
                    job.put("done", event_to_dict(event))
                elif job.stream:
                    job.put("event", event_to_dict(event))
            if not done:
                raise RuntimeError("the answer ended without a done event")
            self.stats["answered"] += 1
            elapsed = time.monotonic() - t0
            self._avg_answer_s = 0.8 * self._avg_answer_s + 0.2 * elapsed
        except Exception as e:  # noqa: BLE001 — any fault ends the stream with an error event
            log.exception("answer failed")
            self.stats["failed"] += 1
            job.put("error", ApiError(500, "answer_failed", f"{type(e).__name__}: {e}"))
        finally:
            events.close()  # runs the engine's cleanup now, not at garbage collection

    def _reject(self, job: Job, err: ApiError) -> None:
        self.stats["rejected"] += 1
        job.put("rejected", err)
