"""Search-interleaved decoding (the paper's Algorithm 1) over any `SearchLM`.

The model decodes; on `</search>` the payload becomes a query (`<region>` → the model's mask of
the entity being talked about, `<image>` → the whole image, text → the text), the search API
returns hits, the hits become an `<information>` block of forced tokens, and decoding resumes
from the KV cache — only the new evidence tokens are prefilled. `Engine.stream` yields events
as this happens; `Engine.answer` returns the final `Answer` with its `Trace`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
from PIL import Image

from ..masks import mask_box, mask_to_rle
from ..model.interface import DecodeSession, SearchLM
from ..retrieval.api import SearchAPI
from ..retrieval.evidence import format_evidence
from ..types import Answer, Query, SearchStep, Trace
from .config import DecodeConfig
from .events import (DoneEvent, Event, EvidenceEvent, HitsEvent, MaskEvent, SearchSkipped,
                     SearchStarted, TokenEvent)
from .sampling import Sampler
from .state import Payload, SearchStateMachine
from .text import DisplayText


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

    def answer(self, question: str, image: Image.Image | None = None, **overrides) -> Answer:
        """Decode a whole answer; `overrides` replace fields of the engine's `DecodeConfig`."""
        for event in self.stream(question, image, **overrides):
            if isinstance(event, DoneEvent):
                return event.answer
        raise AssertionError("stream ended without a DoneEvent")

    def stream(self, question: str, image: Image.Image | None = None,
               **overrides) -> Iterator[Event]:
        """Decode while yielding token, search, mask, hits, evidence and done events."""
        cfg = replace(self.cfg, **overrides) if overrides else self.cfg
        tokens, tok = self.model.tokens, self.model.renderer.tokenizer
        eos = tok.eos_token_id
        t_start = time.perf_counter()
        session, logits = self.model.start(self.model.renderer.prompt(question, image is not None),
                                           image)
        t_prefill = time.perf_counter() - t_start
        sm = SearchStateMachine(tokens, cfg, self.constrained, lambda ids: tok.decode(ids))
        sample = Sampler(cfg)
        trace, text = Trace(), DisplayText(tok, tokens)
        masks: list[np.ndarray] = []
        trace.stop_reason = "max_new_tokens"
        while trace.n_generated < cfg.max_new_tokens:
            token = sm.forced()
            if token is None:
                token = sample(logits, *sm.constraint())
            trace.n_generated += 1
            if token == eos:
                trace.stop_reason = "eos"
                break
            logits = session.extend([token])
            transition = sm.feed(token)
            yield TokenEvent(token, text.add(token, transition.kind), tokens.display(token) is not None)
            payload = transition.payload
            if payload is None:
                continue
            step = SearchStep(index=len(trace.steps), modality=payload.modality or "text",
                              query_text=payload.text or None)
            trace.steps.append(step)
            if payload.problem is not None or transition.kind == "abandoned":
                step.skipped = payload.problem
                yield SearchSkipped(step)
                continue
            yield from self._search(session, image, payload, step, cfg, masks)
            forced = self.model.renderer.information(step.evidence)
            t0 = time.perf_counter()
            logits = session.extend(forced)
            step.timings["prefill"] = time.perf_counter() - t0
            trace.n_forced += len(forced)
            text.add_information(step.evidence)
        unclosed = sm.finish()
        if unclosed is not None:
            trace.steps.append(SearchStep(index=len(trace.steps),
                                          modality=unclosed.modality or "text",
                                          query_text=unclosed.text or None,
                                          skipped=unclosed.problem))
            yield SearchSkipped(trace.steps[-1])
        trace.display = text.display
        trace.timings = {"prompt_prefill": t_prefill, "total": time.perf_counter() - t_start}
        yield DoneEvent(Answer(text=text.answer, trace=trace, masks=masks))

    def _search(self, session: DecodeSession, image: Image.Image | None, payload: Payload,
                step: SearchStep, cfg: DecodeConfig, masks: list[np.ndarray]) -> Iterator[Event]:
        yield SearchStarted(step.index, step.modality, step.query_text)
        query = self._query(session, image, payload, step, masks)
        if isinstance(query, str):  # the query could not be made: explain it as the evidence
            step.skipped, step.evidence = query, "No search was run: " + query + "."
            yield SearchSkipped(step)
            return
        if step.modality == "region":
            yield MaskEvent(step.index, masks[-1], step.box)
        if self.search_api is None:
            raise RuntimeError("the model asked for a search but the engine has no search API; "
                               "pass an index (e.g. --index DIR) or set max_searches=0")
        t0 = time.perf_counter()
        step.hits = self.search_api.search(query, cfg.top_k)
        step.timings["retrieve"] = time.perf_counter() - t0
        yield HitsEvent(step.index, step.hits)
        evidence = format_evidence(step.hits, cfg.evidence_max_words)
        step.evidence = evidence.text
        yield EvidenceEvent(step.index, evidence)

    def _query(self, session: DecodeSession, image: Image.Image | None, payload: Payload,
               step: SearchStep, masks: list[np.ndarray]) -> Query | str:
        """The retrieval query of a payload, or a reason why there is none."""
        if payload.modality == "text":
            return Query("text", text=payload.text)
        if image is None:
            return f"a {payload.modality} query needs an image and none was given"
        if payload.modality == "image":
            return Query("image", image=image)
        t0 = time.perf_counter()
        mask = np.asarray(session.region_mask(), dtype=bool)
        step.timings["mask"] = time.perf_counter() - t0
        masks.append(mask)
        step.mask_rle = mask_to_rle(mask)
        if not mask.any():
            return "the predicted region mask is empty"
        step.box = mask_box(mask)
        return Query("region", image=image, mask=mask)
