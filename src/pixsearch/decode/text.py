"""Text bookkeeping while decoding: the display string and the user-facing answer.

The display string is the whole assistant turn in the paper's format (control tags, payloads,
evidence). The answer is only the tokens the state machine classified as answer text — never
recovered by pattern-matching the display string, since a model can spell `<search>` out of
ordinary sub-word tokens. Byte-level tokens are decoded per run so multi-byte characters come
out whole.
"""

from __future__ import annotations

from typing import Any

from pixsearch.decode.state import TransitionKind
from pixsearch.tokens import TokenTable
from pixsearch.turns import Information, to_display


class _Detokenizer:
    """Ids of ordinary tokens since the last control token, decoded incrementally."""

    def __init__(self, tokenizer: Any) -> None:
        self.tok = tokenizer
        self.ids: list[int] = []
        self.text = ""

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        new = self.tok.decode(self.ids)
        delta, self.text = new[len(self.text):], new
        return delta

    def close(self) -> str:
        text, self.ids, self.text = self.text, [], ""
        return text


class DisplayText:
    """Accumulates the display string and the answer text token by token."""

    def __init__(self, tokenizer: Any, tokens: TokenTable) -> None:
        self.tokens = tokens
        self._display: list[str] = []
        self._answer: list[str] = []
        self._run = _Detokenizer(tokenizer)
        self._answer_run = _Detokenizer(tokenizer)

    def add(self, token_id: int, kind: TransitionKind) -> str:
        """Record a generated token; `kind` is the state machine's classification. Returns the
        token's display text."""
        control = self.tokens.display(token_id)
        if control is not None:
            self._flush()
            self._display.append(control)
            return control
        if kind == "text":
            self._answer_run.push(token_id)
        return self._run.push(token_id)

    def add_information(self, evidence: str) -> None:
        """Record an injected evidence block (written as the `Information` part it is)."""
        self._flush()
        self._display.append(to_display([Information(evidence)]))

    def _flush(self) -> None:
        self._display.append(self._run.close())
        self._answer.append(self._answer_run.close())

    @property
    def display(self) -> str:
        return "".join(self._display) + self._run.text

    @property
    def answer(self) -> str:
        text = "".join(self._answer) + self._answer_run.text
        return " ".join(text.split())
