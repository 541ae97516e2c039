"""Continuous batching of search-interleaved answers: many requests, one model, one batch.

`BatchedEngine` answers many questions at once with the single-answer engine's parts: the
same `_AnswerRun` per request (state machine, sampler, display text, trace, abstention), the
same renderer, the same search code (`Engine._search`: mask, deadline, retrieval, evidence),
the same events and `Answer`/`Trace`. One scheduler thread owns the model and loops:

1. sequences whose search finished rejoin: their evidence is prefilled into their slot (batch
   1, `decode/engine.py`'s `_AnswerRun.inject`) and they decode again;
2. waiting requests take free slots (their prompt prefilled at batch 1), at most
   `BatchConfig.admit_per_step` per loop so that arrivals do not starve the running batch;
   their images were encoded beforehand, those of requests waiting together in one call
   (`decode/image_batcher.py`: the frozen image encoder is the largest cost of a `mini`
   answer and runs outside the model's thread, beside decoding);
3. every decoding sequence picks its next token from its own logits (forced token, or the
   sampler under the state machine's constraints), exactly as `Engine.stream` does, and the
   picked tokens go through the model in one forward pass (`model/batched_decoder.py`);
4. a token that closes `</search>` sends its sequence aside: the mask decoding and the
   retrieval run in a worker pool while the rest of the batch keeps decoding; a finished or
   cancelled sequence leaves and frees its slot at once.

At temperature 0 a request's tokens are those of the single-answer engine unless float rounding
of the batched matrix products and of padded attention flips a near-tie (the KV layout and its
trade-offs are in `model/batched_cache.py`). Forced queries (the evaluation's baselines) are
written and searched before free decoding, as in `Engine.stream`.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from PIL import Image

from pixsearch.decode.batched_request import BatchConfig, BatchRequest, RequestCancelled
from pixsearch.decode.config import DecodeConfig
from pixsearch.decode.deadline import Deadline
from pixsearch.decode.engine import Engine, _AnswerRun, _logprob
from pixsearch.decode.events import SearchSkipped
from pixsearch.decode.image_batcher import ImageBatcher
from pixsearch.decode.state import Payload
from pixsearch.model.batched_decoder import BatchDecoder
from pixsearch.model.pixsearch_model import PixSearchModel
from pixsearch.retrieval.api import SearchAPI
from pixsearch.types import Answer, Query, SearchStep

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Pending:
    """A request waiting for a slot; `prep` gives its image's features (None without an
    image) and `clock` starts when its encoding does."""

    req: BatchRequest
    prep: Future | None = None
    clock: Deadline | None = None


@dataclass(eq=False)
class _Sequence:
    """A request holding a slot: its answer run, next-token logits and search in flight."""

    req: BatchRequest
    run: _AnswerRun
    logits: torch.Tensor
    forced: list[Query] = field(default_factory=list)
    aside: SearchStep | None = None  # the step being searched while out of the batch
    logprob: float = 0.0


class BatchedEngine:
    """Answers many requests at once over a `PixSearchModel` (see module doc).

    `constrained` is as for `Engine`. The engine starts its scheduler thread on the first
    `submit` and stops it on `close` (or when used as a context manager).
    """

    def __init__(self, model: PixSearchModel, search_api: SearchAPI | None,
                 cfg: DecodeConfig | None = None, batch: BatchConfig | None = None,
                 constrained: bool = True) -> None:
        if not isinstance(model, PixSearchModel):
            raise TypeError(f"batched decoding needs a PixSearchModel (its batched KV cache); "
                            f"got {type(model).__name__} — use the single-answer Engine")
        self.single = Engine(model, search_api, cfg, constrained)
        self.batch = batch or BatchConfig()
        self.decoder = BatchDecoder(model, self.batch.max_batch)
        self.stats = {"steps": 0, "rows": 0, "sequences": 0, "max_rows": 0}
        self._pool = ThreadPoolExecutor(self.batch.search_workers, "pixsearch-search")
        self.images = ImageBatcher(model, self.batch.encode_group)
        self._cond = threading.Condition()
        self._waiting: deque[_Pending] = deque()
        self._rejoining: deque[_Sequence] = deque()
        self._active: list[_Sequence] = []
        self._thread: threading.Thread | None = None
        self._closed = False
        self._crashed: BaseException | None = None

    @property
    def model(self) -> PixSearchModel:
        return self.single.model

    @property
    def cfg(self) -> DecodeConfig:
        return self.single.cfg

    # ---- the caller's side -----------------------------------------------------------------
    def submit(self, question: str, image: Image.Image | None = None,
               forced_queries: list[Query] | None = None, sink=None, on_finish=None,
               decode: DecodeConfig | None = None, **overrides: Any) -> BatchRequest:
        """Queue a question. Its settings are `decode` (default: the engine's `DecodeConfig`)
        with `overrides` replacing fields; `sink` and `on_finish` as in `BatchRequest`."""
        cfg = decode or self.cfg
        cfg = replace(cfg, **overrides) if overrides else cfg
        req = BatchRequest(question, image, list(forced_queries or []), cfg, sink, on_finish)
        req._on_cancel = self._cancelled
        with self._cond:
            if self._closed:
                raise RuntimeError(f"the batched engine is closed"
                                   f"{f' (it failed: {self._crashed!r})' if self._crashed else ''}")
            self._waiting.append(_Pending(req))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="pixsearch-batch",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()
        return req

    def stream(self, question: str, image: Image.Image | None = None,
               forced_queries: list[Query] | None = None, **overrides: Any):
        """Like `Engine.stream`; closing the iterator early cancels the request."""
        req = self.submit(question, image, forced_queries, **overrides)
        try:
            yield from req.events()
        finally:
            req.cancel()

    def answer(self, question: str, image: Image.Image | None = None,
               forced_queries: list[Query] | None = None, **overrides: Any) -> Answer:
        """Like `Engine.answer` (other requests are decoded in the same batch meanwhile)."""
        return self.submit(question, image, forced_queries, **overrides).result()

    def depth(self) -> dict[str, int]:
        """Requests decoding, searching and waiting for a slot now."""
        with self._cond:
            aside = sum(s.aside is not None for s in self._active)
            return {"decoding": len(self._active) - aside, "searching": aside,
                    "waiting": len(self._waiting), "slots": self.batch.max_batch}

    def close(self) -> None:
        """Cancel every request and stop the scheduler and the search workers."""
        with self._cond:
            self._closed = True
            reqs = [p.req for p in self._waiting] + [s.req for s in self._active]
            self._cond.notify()
        for req in reqs:
            req.cancel()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.images.close()

    def __enter__(self) -> BatchedEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _cancelled(self, req: BatchRequest) -> None:
        with self._cond:
            pending = next((p for p in self._waiting if p.req is req), None)
            if pending is not None:  # never computed
                self._waiting.remove(pending)
                if pending.prep is not None:
                    pending.prep.cancel()
            self._cond.notify()  # one in the batch: the scheduler frees its slot
        if pending is not None:
            req.fail(RequestCancelled("cancelled while waiting for a slot"))

    # ---- the scheduler thread ---------------------------------------------------------------
    def _loop(self) -> None:
        try:
            self._schedule()
        except BaseException as e:  # a bug here must not leave requests waiting forever
            log.exception("the batched engine's scheduler failed")
            with self._cond:
                self._closed, self._crashed = True, e
                waiting, self._waiting = list(self._waiting), deque()
            for req in [p.req for p in waiting] + [s.req for s in list(self._active)]:
                if not req.finished.is_set():
                    req.fail(RuntimeError(f"the batched engine failed: {e!r}"))
            raise

    def _schedule(self) -> None:
        while True:
            with self._cond:
                while not (self._closed or self._rejoining or self._decoding()
                           or self._dropped() or self._admissible() or self._unprepared()):
                    self._cond.wait()
                if self._closed:
                    break
                rejoin = list(self._rejoining)
                self._rejoining.clear()
                admit = []
                while len(admit) < self.batch.admit_per_step and self._admissible(len(admit)):
                    admit.append(self._waiting.popleft())
                for pending in self._unprepared():
                    self._prepare(pending)
            for seq in rejoin:
                self._guard(seq, self._rejoin)
            for pending in admit:
                self._admit(pending)
            for seq in self._dropped():
                self._leave(seq, RequestCancelled("cancelled while decoding"))
            ready = self._decoding()
            if ready:
                self._step(ready)
        for seq in list(self._active):  # a search still running finds its slot gone
            self._leave(seq, RequestCancelled("the engine closed"))

    def _decoding(self) -> list[_Sequence]:
        return [s for s in self._active if s.aside is None and not s.req.cancelled.is_set()]

    def _dropped(self) -> list[_Sequence]:
        """Cancelled sequences holding a slot (one that is searching leaves at once too: its
        search thread reads only the session's own hidden states, never the cache)."""
        return [s for s in self._active if s.req.cancelled.is_set()]

    def _admissible(self, taken: int = 0) -> bool:
        """Whether the first waiting request is prepared and a slot is free for it."""
        return (len(self._waiting) > 0 and self.decoder.free_slots > taken
                and self._waiting[0].prep is not None and self._waiting[0].prep.done())

    def _unprepared(self) -> list[_Pending]:
        """Requests near the head of the queue whose image encoding has not started: as
        many as could be admitted soon, so that encoding overlaps decoding but no request's
        clock starts long before it can get a slot."""
        ahead = self.decoder.free_slots + self.batch.admit_per_step
        return [p for p in list(self._waiting)[:ahead] if p.prep is None]

    def _wake(self, _future: Future) -> None:
        with self._cond:
            self._cond.notify()

    def _prepare(self, pending: _Pending) -> None:
        """Start encoding the request's image with the images of the other requests that wait
        (`ImageBatcher`); its clock starts when its group does. Without an image: no thread
        hand-off, the clock starts now."""
        req = pending.req

        def start() -> None:
            pending.clock = Deadline(req.cfg.deadline_s, req.cfg.first_token_s)

        if req.image is None:
            start()
            pending.prep = Future()
            pending.prep.set_result(None)
            return
        pending.prep = self.images.submit(req.image, start, req.cancelled.is_set)
        pending.prep.add_done_callback(self._wake)

    def _guard(self, seq: _Sequence, fn, *args: Any) -> None:
        """Run `fn(seq, *args)`; a fault fails this request only."""
        try:
            fn(seq, *args)
        except Exception as e:  # noqa: BLE001 - one request's fault must not stop the batch
            log.exception("batched request failed")
            self._leave(seq, e)

    def _admit(self, pending: _Pending) -> None:
        req, model = pending.req, self.model
        if req.cancelled.is_set():
            req.fail(RequestCancelled("cancelled while waiting for a slot"))
            return
        try:
            features = pending.prep.result()  # an image the encoder refused fails here
            prompt = model.renderer.prompt(req.question, req.image is not None)
            session, logits = self.decoder.open(prompt, req.image, features)
        except Exception as e:  # noqa: BLE001 - a bad request fails alone
            req.fail(e)
            return
        clock = pending.clock
        run = _AnswerRun(model, req.cfg, self.single.constrained, session, req.image, clock)
        run.trace.timings["prompt_prefill"] = clock.elapsed()
        seq = _Sequence(req, run, logits, forced=list(req.forced_queries))
        with self._cond:  # `depth` reads the batch from other threads
            self._active.append(seq)
        self.stats["sequences"] += 1
        self._guard(seq, self._next_forced)

    def _next_forced(self, seq: _Sequence) -> None:
        """Write and search the next forced query, if any is left."""
        if seq.forced and not seq.run.stopped:
            query = seq.forced.pop(0)
            payload, step = seq.run.write_call(query)
            self._step_aside(seq, payload, step, query)

    def _step_aside(self, seq: _Sequence, payload: Payload, step: SearchStep,
                    query: Query | None = None) -> None:
        seq.aside = step
        self._pool.submit(self._search, seq, payload, step, query)

    def _search(self, seq: _Sequence, payload: Payload, step: SearchStep,
                query: Query | None) -> None:
        """(worker thread) Mask, retrieval and their events; then back to the scheduler."""
        try:
            for event in self.single._search(seq.run, payload, step, query):
                seq.req.emit(event)
        except Exception as e:  # noqa: BLE001 - reported when the sequence rejoins
            log.exception("search of a batched request failed")
            seq.run.stop("search_failed", f"{type(e).__name__}: {e}")
        finally:
            with self._cond:
                self._rejoining.append(seq)
                self._cond.notify()

    def _rejoin(self, seq: _Sequence) -> None:
        step, seq.aside = seq.aside, None
        if seq not in self._active:
            return  # cancelled while searching: it has left already
        if not seq.run.stopped:
            seq.logits = seq.run.inject(step)
            self._next_forced(seq)

    def _step(self, ready: list[_Sequence]) -> None:
        """One token for every decoding sequence, through one forward pass."""
        going, tokens = [], []
        for seq in ready:
            token = self._pick(seq)
            if token is None:
                self._guard(seq, self._finish)
            else:
                going.append(seq)
                tokens.append(token)
        if not going:
            return
        try:
            logits = self.decoder.step([s.run.session for s in going], tokens)
        except Exception as e:  # noqa: BLE001 - the step failed for every row in it
            log.exception("batched decode step failed")
            for seq in going:
                self._leave(seq, e)
            return
        self.stats["steps"] += 1
        self.stats["rows"] += len(going)
        self.stats["max_rows"] = max(self.stats["max_rows"], len(going))
        for seq, token, row in zip(going, tokens, logits):
            self._guard(seq, self._advance, token, row)

    def _pick(self, seq: _Sequence) -> int | None:
        """The sequence's next token, or None when its answer is over (`Engine.stream`)."""
        run = seq.run
        if run.stopped or run.trace.n_generated >= run.cfg.max_new_tokens or run.out_of_time():
            return None
        token = run.sm.forced()
        if token is None:
            token = run.sample(seq.logits, *run.sm.constraint())
        run.count_token()
        if token == self.model.renderer.tokenizer.eos_token_id:
            run.trace.stop_reason = "eos"
            return None
        seq.logprob = _logprob(seq.logits, token)
        return token

    def _advance(self, seq: _Sequence, token: int, logits: torch.Tensor) -> None:
        """Feed the decoded token to the state machine; a closed payload steps aside."""
        run = seq.run
        seq.logits = logits
        transition = run.sm.feed(token)
        seq.req.emit(run.token_event(token, transition.kind, seq.logprob))
        payload = transition.payload
        if payload is None:
            return
        step = run.new_step(payload)
        if payload.problem is not None:
            step.skipped = payload.problem
            seq.req.emit(SearchSkipped(step))
        else:
            self._step_aside(seq, payload, step)

    def _finish(self, seq: _Sequence) -> None:
        run = seq.run
        for event in run.finish():
            seq.req.emit(event)
        text = run.final_text(run.text.answer)
        run.trace.timings["total"] = run.clock.elapsed()
        self._leave(seq)
        seq.req.done(Answer(text=text, trace=run.trace, masks=run.masks))

    def _leave(self, seq: _Sequence, error: BaseException | None = None) -> None:
        """Free the sequence's slot; fail its request with `error` if given."""
        if seq in self._active:
            with self._cond:
                self._active.remove(seq)
            self.decoder.release(seq.run.session)
        if error is not None and not seq.req.finished.is_set():
            seq.req.fail(error)
