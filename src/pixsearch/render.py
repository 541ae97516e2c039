"""The one renderer: typed turns → token ids, loss mask, BIO span tags, region slots.

Decoding and training both go through `Renderer`, so the ids the model is trained on are the
ids it sees at inference: the prompt is rendered by `prompt()`, a gold assistant turn (a list
of `pixsearch.turns` parts) by `render()`, and the engine's search calls and evidence blocks by
`search_call()` / `information()` — the very code that renders a `SearchCall` / `Information`
part. Every stretch of text between control tokens is tokenised on its own, and the question
and all text of a turn are escaped first, so control tokens only ever come from this file's
explicit id insertion.

The loss mask is 0 on every token of an `Information` part, its tags included — the model
learns to use evidence, not to memorise it —, on the prompt, and on search calls the caller
forced (`SearchCall.forced`: a baseline chose them, not the model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pixsearch.tokens import DISPLAY, TokenTable, escape
from pixsearch.turns import PAYLOAD_ROLES, Information, Part, SearchCall, Text, parse_display


@dataclass
class ChatFormat:
    """How a backbone wants a single-image question laid out (plain text around the pieces).

    Attributes:
        system: text before everything (may be empty).
        user_prefix: text before the image and the question.
        image_suffix: text between the image placeholder run and the question.
        user_suffix: text after the question, ending the user turn.
        assistant_prefix: text that opens the assistant turn (decoding starts after it).
        add_bos: prepend the tokenizer's BOS id, if it has one.
    """

    system: str = ""
    user_prefix: str = "Question: "
    image_suffix: str = "\n"
    user_suffix: str = "\n"
    assistant_prefix: str = "Answer:"
    add_bos: bool = True


@dataclass
class Rendered:
    """Token-level view of a rendered sequence.

    Attributes:
        input_ids: token ids.
        loss_mask: 1 where the token is a training target, 0 elsewhere (prompt, evidence).
        offsets: (start, end) character span of each token in `text` ((0, 0) for image slots).
        text: the display string the offsets index into.
        image_slice: (start, end) token positions of the image placeholder run, if any.
        region_positions: token index of every `<region>` payload token, in order.
        span_labels: BIO tag per token (0=O, 1=B, 2=I) for the entity span of each region search.
        prompt_len: number of tokens before the assistant turn's first generated token.
    """

    input_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    offsets: list[tuple[int, int]] = field(default_factory=list)
    text: str = ""
    image_slice: tuple[int, int] | None = None
    region_positions: list[int] = field(default_factory=list)
    span_labels: list[int] = field(default_factory=list)
    prompt_len: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)


BIO_O, BIO_B, BIO_I = 0, 1, 2


class Renderer:
    """Renders prompts and typed turns (whole, or one part at a time for the engine) for one
    tokenizer + token table."""

    def __init__(self, tokenizer: Any, tokens: TokenTable, chat: ChatFormat | None = None,
                 n_image_tokens: int = 0) -> None:
        if not tokens.ids:
            tokens = tokens.resolve(tokenizer)
        self.tokenizer = tokenizer
        self.tokens = tokens
        self.chat = chat or ChatFormat()
        self.n_image_tokens = n_image_tokens

    # ---- pieces -------------------------------------------------------------------------
    def _encode(self, text: str, trusted: bool = False) -> tuple[list[int], list[tuple[int, int]]]:
        # untrusted text never maps to an added token, even one `escape` does not know;
        # trusted chat-format pieces (`<|im_start|>` …) must keep their special tokens
        if not text:
            return [], []
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                             split_special_tokens=not trusted)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]

    def _append_text(self, r: Rendered, text: str, loss: int, trusted: bool = False) -> None:
        base = len(r.text)
        ids, offs = self._encode(text, trusted)
        r.input_ids += ids
        r.offsets += [(base + a, base + b) for a, b in offs]
        r.loss_mask += [loss] * len(ids)
        r.text += text

    def _append_control(self, r: Rendered, role: str, loss: int) -> None:
        start = len(r.text)
        r.text += DISPLAY[role]
        r.input_ids.append(self.tokens.id(role))
        r.offsets.append((start, len(r.text)))
        r.loss_mask.append(loss)

    def _append_parts(self, r: Rendered, parts: Sequence[Part], loss: int = 1
                      ) -> list[tuple[int, int]]:
        """Append `parts` to `r`; returns the character spans (in `r.text`) of referring
        expressions. Consecutive `Text` parts are one stretch of text, tokenised together, so
        how a turn is cut into parts never changes its ids."""
        refs: list[tuple[int, int]] = []
        run: list[str] = []

        def flush() -> None:
            # escaped as one stretch, so a tag split across parts (`<sea` + `rch>`) is caught
            # too; escaping keeps lengths, so the spans below stay valid
            self._append_text(r, escape("".join(run)), loss)
            run.clear()

        for p in parts:
            if isinstance(p, Text):
                start = len(r.text) + sum(map(len, run))
                run.append(p.text)
                if p.refers:
                    refs.append((start, start + len(run[-1])))
                continue
            flush()
            if isinstance(p, SearchCall):
                call = 0 if p.forced else loss
                self._append_control(r, "search_open", call)
                role = PAYLOAD_ROLES.get(p.modality)
                if role is not None:
                    self._append_control(r, role, call)
                    if role == "region":
                        r.region_positions.append(len(r.input_ids) - 1)
                else:
                    self._append_text(r, escape(p.query), call)
                self._append_control(r, "search_close", call)
            elif isinstance(p, Information):  # evidence is never a training target
                self._append_control(r, "info_open", 0)
                self._append_text(r, escape(p.evidence), 0)
                self._append_control(r, "info_close", 0)
            else:
                raise TypeError(f"not a part of a turn: {p!r}")
        flush()
        return refs

    def part_ids(self, part: Part) -> list[int]:
        """Ids of one part on its own (what the engine forces into a decoding session)."""
        r = Rendered()
        self._append_parts(r, [part])
        return r.input_ids

    def text_ids(self, text: str, *, untrusted: bool = True) -> list[int]:
        """Ids of a plain text piece (escaped first when it comes from outside)."""
        return self._encode(escape(text) if untrusted else text)[0]

    def information(self, evidence_text: str) -> list[int]:
        """Ids of `<information> evidence </information>`, the forced tokens after a search."""
        return self.part_ids(Information(evidence_text))

    def search_call(self, modality: str, text: str = "") -> list[int]:
        """Ids of `<search>payload</search>` for a query the caller decided on (baselines)."""
        return self.part_ids(SearchCall(modality, "" if modality in PAYLOAD_ROLES else text))

    # ---- whole sequences -------------------------------------------------------------------
    def prompt(self, question: str, has_image: bool = True) -> Rendered:
        """The decoding prompt: system, image slots, the (escaped) question, assistant prefix."""
        r = Rendered()
        bos = getattr(self.tokenizer, "bos_token_id", None)
        if self.chat.add_bos and bos is not None:
            r.input_ids.append(bos)
            r.offsets.append((0, 0))
            r.loss_mask.append(0)
        self._append_text(r, self.chat.system + self.chat.user_prefix, 0, trusted=True)
        if has_image and self.n_image_tokens:
            start = len(r.input_ids)
            pid = self.tokens.id("image_placeholder")
            r.input_ids += [pid] * self.n_image_tokens
            r.offsets += [(len(r.text), len(r.text))] * self.n_image_tokens
            r.loss_mask += [0] * self.n_image_tokens
            r.image_slice = (start, len(r.input_ids))
            self._append_text(r, self.chat.image_suffix, 0, trusted=True)
        self._append_text(r, escape(question), 0)
        self._append_text(r, self.chat.user_suffix + self.chat.assistant_prefix, 0, trusted=True)
        r.prompt_len = len(r.input_ids)
        r.span_labels = [BIO_O] * len(r.input_ids)
        return r

    def render(self, question: str, parts: Sequence[Part], has_image: bool = True,
               add_eos: bool = True) -> Rendered:
        """Prompt + an assistant turn given as parts, with loss mask and BIO span tags (the
        tokens of each referring-expression `Text` part are tagged B, I, I, …)."""
        r = self.prompt(question, has_image)
        refs = self._append_parts(r, parts)
        eos = getattr(self.tokenizer, "eos_token_id", None)
        if add_eos and eos is not None:
            r.input_ids.append(eos)
            r.offsets.append((len(r.text), len(r.text)))
            r.loss_mask.append(1)
        r.span_labels = _bio_labels(r.offsets, refs, r.prompt_len)
        return r

    def trajectory(self, question: str, display: str, has_image: bool = True,
                   spans: Sequence[Sequence[int]] | None = None, add_eos: bool = True
                   ) -> Rendered:
        """`render` of a turn given as a display string (a record's `trajectory`) and the
        character spans of its referring expressions (the record's `region_spans`)."""
        return self.render(question, parse_display(display, spans or ()), has_image, add_eos)


def _bio_labels(offsets: list[tuple[int, int]], spans: list[tuple[int, int]],
                start: int) -> list[int]:
    labels = [BIO_O] * len(offsets)
    for span in spans:
        first = True
        for i in range(start, len(offsets)):
            a, b = offsets[i]
            if b > a and a < span[1] and b > span[0]:  # token overlaps the span
                labels[i] = BIO_B if first else BIO_I
                first = False
    return labels
