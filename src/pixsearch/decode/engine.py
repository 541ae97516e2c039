"""Search-interleaved decoding (the paper's Algorithm 1) over any `SearchLM`.

The model decodes; on `</search>` the payload becomes a query (`<region>` → the model's mask of
the entity being talked about, `<image>` → the whole image, text → the text), the search API
returns hits, the hits become an `<information>` block of forced tokens, and decoding resumes
from the KV cache — only the new evidence tokens are prefilled. `Engine.stream` yields events
as this happens; `Engine.answer` returns the final `Answer` with its `Trace`.

Baselines that decide the query themselves (text question, whole image, a modular segmenter)
pass `forced_queries`: each is written as `<search>…</search>` + evidence before free decoding,
so the model sees them exactly as if it had asked.

Hits per search and the evidence word budget are the model's own (the `EvidenceConfig` saved
in its config, i.e. what it was trained with) unless the `DecodeConfig` sets `top_k` /
`evidence_max_words`; `_AnswerRun` resolves them once per answer. The same holds for the abstention
policy (`pixsearch/abstention.py`): the engine records the log-probabilities of the answer
tokens, scores the finished trace, and replaces an answer below the model's calibrated
threshold by "I don't know." (the model's words are kept in the trace).

Faults degrade to the same honest answer. A search that raises (dead server, HTTP 500, garbage
or wrongly shaped hits), outlives `search_timeout_s`, or returns no hits is recorded on its
step (`error`), decoding stops, and the answer is "I don't know." with the reason in
`trace.failure` (stop reason "search_failed"). The answer's deadlines (`deadline_s`,
`first_token_s`; `pixsearch/decode/deadline.py`) are checked before every token and before
each search, and bound each search: past them the answer stops the same way (stop reason
"deadline"). The model's words so far are kept in `trace.raw_answer`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import torch
from PIL import Image

from pixsearch.abstention import AbstentionConfig, decide
from pixsearch.decode.config import DecodeConfig
from pixsearch.decode.deadline import CallTimeout, Deadline, call_with_timeout
from pixsearch.decode.events import (
    DoneEvent,
    Event,
    EvidenceEvent,
    HitsEvent,
    MaskEvent,
    SearchFailed,
    SearchSkipped,
    SearchStarted,
    TokenEvent,
)
from pixsearch.decode.sampling import Sampler
from pixsearch.decode.state import Payload, SearchStateMachine, TransitionKind
from pixsearch.decode.text import DisplayText
from pixsearch.masks import largest_component, mask_box, mask_to_rle
from pixsearch.model.interface import DecodeSession, SearchLM
from pixsearch.perception import image_view, region_view
from pixsearch.retrieval.api import SearchAPI, SearchError, check_hits
from pixsearch.retrieval.evidence import EvidenceConfig
from pixsearch.types import Answer, Hit, Query, SearchStep, Trace

log = logging.getLogger(__name__)


class Engine:
    """Runs a `SearchLM` with a search API under a `DecodeConfig`.

    `constrained=True` masks tokens that would make a malformed search sequence; with False the
    state machine repairs malformed sequences instead (used to test that path).
    """

    def __init__(self, model: SearchLM, search_api: SearchAPI | None,
                 cfg: DecodeConfig | None = None, constrained: bool = True) -> None:
        self.model = model
        self.search_api = search_api
        self.cfg = cfg or DecodeConfig()
        self.constrained = constrained

    def answer(self, question: str, image: Image.Image | None = None,
               forced_queries: list[Query] | None = None, **overrides) -> Answer:
        """Decode a whole answer; `overrides` replace fields of the engine's `DecodeConfig`."""
        for event in self.stream(question, image, forced_queries, **overrides):
            if isinstance(event, DoneEvent):
                return event.answer
        raise AssertionError("stream ended without a DoneEvent")

    def stream(self, question: str, image: Image.Image | None = None,
               forced_queries: list[Query] | None = None, **overrides) -> Iterator[Event]:
        """Decode while yielding token, search, mask, hits, evidence and done events."""
        cfg = replace(self.cfg, **overrides) if overrides else self.cfg
        tok = self.model.renderer.tokenizer
        clock = Deadline(cfg.deadline_s, cfg.first_token_s)
        prompt = self.model.renderer.prompt(question, image is not None)
        session, logits = self.model.start(prompt, image)
        run = _AnswerRun(self.model, cfg, self.constrained, session, image, clock)
        run.trace.timings["prompt_prefill"] = clock.elapsed()
        for query in forced_queries or []:
            if run.stopped:
                break
            logits = yield from run.forced_search(query, self._search)
        while not run.stopped and run.trace.n_generated < cfg.max_new_tokens:
            if run.out_of_time():
                break
            token = run.sm.forced()
            if token is None:
                token = run.sample(logits, *run.sm.constraint())
            run.count_token()
            if token == tok.eos_token_id:
                run.trace.stop_reason = "eos"
                break
            logprob = _logprob(logits, token)
            logits = session.extend([token])
            transition = run.sm.feed(token)
            yield run.token_event(token, transition.kind, logprob)
            if transition.payload is not None:
                logits = yield from run.payload_search(transition.payload, self._search, logits)
        yield from run.finish()
        text = run.final_text(run.text.answer)
        run.trace.timings["total"] = clock.elapsed()
        yield DoneEvent(Answer(text=text, trace=run.trace, masks=run.masks))

    def _search(self, run: _AnswerRun, payload: Payload, step: SearchStep,
                query: Query | None = None) -> Iterator[Event]:
        """Make the query (unless given), retrieve, and set `step.evidence` — or record on
        `step` why there is no evidence (and stop the answer if the search failed)."""
        yield SearchStarted(step.index, step.modality, step.query_text)
        query = query or self._query(run, payload, step)
        if isinstance(query, str):  # the query could not be made: say so as the evidence
            step.skipped, step.evidence = query, "No search was run: " + query + "."
            yield SearchSkipped(step)
            return
        if query.modality == "region":
            run.record_mask(step, query.mask)
            yield MaskEvent(step.index, query.mask, step.box)
        budget = run.clock.budget(run.cfg.search_timeout_s)
        late = run.clock.expired()
        if late is not None or (budget is not None and budget <= 0):
            # a search that would start past the deadline is not started
            late = late or "no time was left before the deadline"
            step.skipped, step.evidence = f"not started: {late}", f"No search was run: {late}."
            run.stop("deadline", f"search {step.index + 1} ({step.modality}) not started: {late}")
            yield SearchSkipped(step)
            return
        t0 = time.perf_counter()
        hits, error = self._retrieve(query, run.evidence.top_k, budget)
        step.timings["retrieve"] = time.perf_counter() - t0
        if error is not None:
            step.error = error
            step.evidence = f"No evidence: the search failed ({error})."
            reason = "deadline" if run.clock.expired() else "search_failed"
            run.stop(reason, f"search {step.index + 1} ({step.modality}) failed: {error}")
            yield SearchFailed(step)
            return
        step.hits = hits
        yield HitsEvent(step.index, step.hits)
        evidence = run.evidence.format(step.hits, run.seen(query))
        step.evidence = evidence.text
        yield EvidenceEvent(step.index, evidence)

    def _retrieve(self, query: Query, k: int, timeout_s: float | None
                  ) -> tuple[list[Hit], str | None]:
        """(hits, None), or ([], why the search brought nothing usable). The call runs in a
        worker thread bounded by `timeout_s`; any exception of the back-end is a failure of
        this search, not of the answer."""
        if self.search_api is None:
            return [], ("no search API is configured (pass an index, e.g. --index DIR, or "
                        "set max_searches=0)")
        api = self.search_api
        try:
            hits = call_with_timeout(lambda: api.search(query, k), timeout_s,
                                     "pixsearch-search")
            hits = check_hits(hits)
        except CallTimeout:
            return [], f"the search API gave no answer within {timeout_s:.3g} s"
        except SearchError as e:  # an expected fault of the back-end: the trace says it
            log.info("search failed: %s", e)
            return [], str(e)
        except Exception as e:  # noqa: BLE001 - any back-end fault is this search's failure
            # one line for operators; the traceback only at debug level (a CLI user sees the
            # failure in the answer, not a traceback)
            log.info("search failed: %s: %s", type(e).__name__, e)
            log.debug("search failure", exc_info=True)
            return [], f"{type(e).__name__}: {str(e)[:300]}"
        if not hits:
            return [], "the search API returned no hits"
        return hits, None

    def _query(self, run: _AnswerRun, payload: Payload, step: SearchStep) -> Query | str:
        """The retrieval query of a payload, or a reason why there is none."""
        if payload.modality == "text":
            return Query("text", text=payload.text)
        if run.image is None:
            return f"a {payload.modality} query needs an image and none was given"
        if payload.modality == "image":
            return Query("image", image=run.image)
        t0 = time.perf_counter()
        mask = np.asarray(run.session.region_mask(), dtype=bool)
        step.mask_score = getattr(run.session, "mask_score", None)
        if run.cfg.region_components == "largest":
            mask = largest_component(mask)
        step.timings["mask"] = time.perf_counter() - t0
        if not mask.any():
            run.record_mask(step, mask)
            return "the predicted region mask is empty"
        return Query("region", image=run.image, mask=mask)


def saved_evidence(model: SearchLM) -> EvidenceConfig:
    """The evidence budget `model` was trained with (its config's `evidence`); models without
    one (scripted test models, external `SearchLM`s) get the default."""
    evidence = getattr(getattr(model, "cfg", None), "evidence", None)
    return evidence if isinstance(evidence, EvidenceConfig) else EvidenceConfig()


def saved_abstention(model: SearchLM) -> AbstentionConfig:
    """The abstention policy calibrated for `model` (its config's `abstention`); models without
    one get a disabled, uncalibrated policy."""
    policy = getattr(getattr(model, "cfg", None), "abstention", None)
    return policy if isinstance(policy, AbstentionConfig) else AbstentionConfig()


def _logprob(logits: torch.Tensor, token: int) -> float:
    """Log-probability of `token` under the model's (unconstrained) next-token distribution."""
    return float(torch.log_softmax(logits.detach().float().reshape(-1), -1)[token])


class _AnswerRun:
    """State of one answer in progress: session, state machine, sampler, text and trace."""

    def __init__(self, model: SearchLM, cfg: DecodeConfig, constrained: bool,
                 session: DecodeSession, image: Image.Image | None, clock: Deadline) -> None:
        tok = model.renderer.tokenizer
        self.model, self.cfg, self.session, self.image = model, cfg, session, image
        self.clock = clock
        self.evidence = cfg.evidence(saved_evidence(model))
        self.abstention = cfg.abstention(saved_abstention(model))
        self.sm = SearchStateMachine(model.tokens, cfg, constrained, lambda ids: tok.decode(ids))
        self.sample = Sampler(cfg)
        self.trace = Trace(stop_reason="max_new_tokens")
        self.text = DisplayText(tok, model.tokens)
        self.masks: list[np.ndarray] = []

    @property
    def stopped(self) -> bool:
        """Whether the answer has failed (a search failed, or it ran out of time)."""
        return self.trace.failure is not None

    def stop(self, reason: str, failure: str) -> None:
        """End decoding: the answer will be "I don't know." because of `failure`."""
        self.trace.stop_reason, self.trace.failure = reason, failure

    def out_of_time(self) -> bool:
        """Stop the answer if a deadline has passed; whether it was stopped."""
        late = self.clock.expired()
        if late is not None:
            self.stop("deadline", late)
        return late is not None

    def count_token(self) -> None:
        self.trace.n_generated += 1
        if self.clock.first_token_at is None:
            self.clock.token()
            self.trace.timings["first_token"] = self.clock.first_token_at

    def token_event(self, token: int, kind: TransitionKind, logprob: float) -> TokenEvent:
        """Record a generated token (answer text keeps its log-probability for the
        abstention policy) and the event that shows it."""
        if kind == "text":
            self.trace.lm_logprobs.append(logprob)
        return TokenEvent(token, self.text.add(token, kind),
                          self.model.tokens.display(token) is not None)

    def new_step(self, payload: Payload) -> SearchStep:
        step = SearchStep(index=len(self.trace.steps), modality=payload.modality or "text",
                          query_text=payload.text or None)
        self.trace.steps.append(step)
        return step

    def record_mask(self, step: SearchStep, mask: np.ndarray) -> None:
        self.masks.append(mask)
        step.mask_rle = mask_to_rle(mask)
        step.box = mask_box(mask) if mask.any() else None

    def inject(self, step: SearchStep):
        """Prefill the evidence block as forced tokens; return the next logits."""
        forced = self.model.renderer.information(step.evidence)
        t0 = time.perf_counter()
        logits = self.session.extend(forced)
        step.timings["prefill"] = time.perf_counter() - t0
        self.trace.n_forced += len(forced)
        self.text.add_information(step.evidence)
        self.trace.lm_logprobs = []  # confidence is about what is written after the evidence
        return logits

    def seen(self, query: Query) -> str | None:
        """The perception line of a region query (`pixsearch/perception.py`) when the model
        was trained with one; the instances are the session's, if it can tell them. A
        whole-image query gets the count of the session's entity centres when the evidence
        budget has `image_count` on and the session found any."""
        if not self.evidence.perception or query.image is None:
            return None
        def ask(name: str):  # what the session can tell (`DecodeSession`), or None
            tell = getattr(self.session, name, None)
            return tell() if tell is not None else None

        if query.modality == "image":
            centres = ask("centres") if self.evidence.image_count else None
            return None if centres is None else image_view(len(centres))
        if query.modality != "region":
            return None
        rgb = np.asarray(query.image.convert("RGB"), dtype=np.float32) / 255.0
        return region_view(np.asarray(query.mask, dtype=bool), rgb, ask("instances"),
                           ask("centres")).text()

    def payload_search(self, payload: Payload, search, logits):
        """Run the search a closed payload asks for (or record why not)."""
        step = self.new_step(payload)
        if payload.problem is not None:
            step.skipped = payload.problem
            yield SearchSkipped(step)
            return logits
        yield from search(self, payload, step)
        return logits if self.stopped else self.inject(step)

    def forced_search(self, query: Query, search):
        """Write `<search>payload</search>` for a caller-chosen query, search, inject."""
        payload, step = self.write_call(query)
        yield from search(self, payload, step, query)
        return None if self.stopped else self.inject(step)

    def write_call(self, query: Query) -> tuple[Payload, SearchStep]:
        """Prefill `<search>payload</search>` of a caller-chosen query; its payload and step
        (the batched engine runs the search itself, `decode/batched.py`)."""
        ids = self.model.renderer.search_call(query.modality, query.text or "")
        self.session.extend(ids)
        self.trace.n_forced += len(ids)
        for i in ids:  # control ids are told apart by id in `DisplayText.add`
            self.text.add(i, "payload")
        payload = Payload(query.modality, ids, query.text or "")
        return payload, self.new_step(payload)

    def finish(self):
        unclosed = self.sm.finish()
        if unclosed is not None:
            step = self.new_step(unclosed)
            step.skipped = unclosed.problem
            yield SearchSkipped(step)
        self.trace.display = self.text.display

    def final_text(self, answer: str) -> str:
        """The text to return (`pixsearch.abstention.decide`)."""
        return decide(self.trace, answer, self.abstention)
