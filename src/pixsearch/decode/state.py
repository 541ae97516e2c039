"""The search state machine: which token ids may come next, and what a token id means.

Two modes: ANSWER (writing the answer) and PAYLOAD (between `<search>` and `</search>`).
Control flow is decided from token ids only. `constraint()` tells the sampler which ids are
banned (evidence tags always; payload tokens outside a search; `<search>` once the budget B is
spent; forbidden query types) and `forced()` which id must come next (`</search>` right after
`<region>` / `<image>`, or when a text query runs too long). `feed()` classifies each token and
returns a finished `Payload` on `</search>`. With `constrained=False` the structural masks are
off and malformed sequences (stray, nested, empty or unclosed tags) are handled here instead:
every `</search>` pairs with the most recent open `<search>`; an abandoned one is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from pixsearch.decode.config import DecodeConfig
from pixsearch.tokens import TokenTable
from pixsearch.types import Modality


class Mode(Enum):
    ANSWER = "answer"
    PAYLOAD = "payload"


@dataclass
class Payload:
    """A closed (or abandoned) search payload."""

    modality: Modality | None
    ids: list[int] = field(default_factory=list)
    text: str = ""
    problem: str | None = None  # set when the search cannot run


# what one generated token did to the search state
TransitionKind = Literal["text", "open", "payload", "close", "stray", "abandoned"]


@dataclass
class Transition:
    """What one token did: answer text, opening a search, part of its payload, closing it, a
    stray closing tag, or a search abandoned (see `SearchStateMachine.feed`)."""

    kind: TransitionKind
    payload: Payload | None = None


class SearchStateMachine:
    """Tracks search tags over generated ids and constrains the next token."""

    def __init__(self, tokens: TokenTable, cfg: DecodeConfig, constrained: bool,
                 decode: Callable[[list[int]], str]) -> None:
        self.t = tokens
        self.cfg = cfg
        self.constrained = constrained
        self.decode = decode
        self.mode = Mode.ANSWER
        self.payload: list[int] = []
        self.searches_run = 0
        self._payload_roles = {tokens.id("region"): "region", tokens.id("image_query"): "image"}

    # ---- what may come next -----------------------------------------------------------------
    def budget_left(self) -> bool:
        return self.cfg.max_searches is None or self.searches_run < self.cfg.max_searches

    def constraint(self) -> tuple[set[int], set[int] | None]:
        """(banned ids, allowed-only ids or None) for the next token."""
        t = self.t
        banned = {t.id("info_open"), t.id("info_close"), t.id("image_placeholder")}
        allowed = set(self.cfg.modalities)
        if self.mode is Mode.ANSWER:
            if not self.budget_left() or not allowed:
                banned.add(t.id("search_open"))
            if self.constrained:
                banned |= {t.id("search_close"), *self._payload_roles}
            return banned, None
        banned |= {i for i, m in self._payload_roles.items() if m not in allowed}
        if self.constrained:
            banned.add(t.id("search_open"))
            if not self.payload:
                banned.add(t.id("search_close"))  # no empty payloads
            if "text" not in allowed and not self.payload:
                keep = {i for i, m in self._payload_roles.items() if m in allowed}
                return banned, keep
            if self.payload:  # a text query has started: no payload tokens inside it
                banned |= set(self._payload_roles)
        return banned, None

    def forced(self) -> int | None:
        """A token that must come next regardless of the logits, if any."""
        if self.mode is not Mode.PAYLOAD or not self.payload:
            return None
        if self.constrained and self.payload[-1] in self._payload_roles:
            return self.t.id("search_close")
        if len(self.payload) >= self.cfg.max_payload_tokens:
            return self.t.id("search_close")
        return None

    # ---- what a token means --------------------------------------------------------------
    def feed(self, token_id: int) -> Transition:
        t = self.t
        if self.mode is Mode.ANSWER:
            if token_id == t.id("search_open"):
                self.mode, self.payload = Mode.PAYLOAD, []
                return Transition("open")
            if token_id == t.id("search_close") or token_id in self._payload_roles:
                return Transition("stray")
            return Transition("text")
        if token_id == t.id("search_open"):  # nested: the open search is abandoned
            abandoned = self._close(problem="nested <search> before </search>")
            self.mode, self.payload = Mode.PAYLOAD, []
            return Transition("abandoned", abandoned)
        if token_id == t.id("search_close"):
            payload = self._close()
            if payload.problem is None:
                self.searches_run += 1
            return Transition("close", payload)
        self.payload.append(token_id)
        return Transition("payload")

    def finish(self) -> Payload | None:
        """At end of generation: an unclosed search is reported, not run."""
        if self.mode is Mode.PAYLOAD:
            return self._close(problem="unclosed <search> at end of generation")
        return None

    def _close(self, problem: str | None = None) -> Payload:
        ids, self.payload, self.mode = self.payload, [], Mode.ANSWER
        roles = [self._payload_roles[i] for i in ids if i in self._payload_roles]
        text = self.decode([i for i in ids if i not in self._payload_roles]).strip()
        modality: Modality | None = roles[0] if roles else ("text" if text else None)  # type: ignore[assignment]
        if problem is None and modality is None:
            problem = "empty search payload"
        if problem is None and modality not in self.cfg.modalities:
            problem = f"{modality} queries are forbidden by the decode config"
        if problem is None and not self.budget_left():
            problem = "search budget spent"
        return Payload(modality, ids, text if modality == "text" else "", problem)
