"""The one renderer: conversation / gold trajectory → token ids, loss mask, span tags, region slots.

Decoding and training both go through `Renderer`, so the ids the model is trained on are the
ids it sees at inference: the prompt is rendered by `prompt()`, evidence by `information()`,
and a gold trajectory by `trajectory()` from the same pieces. Every piece of text is tokenised
on its own (never across a control token) and untrusted text is escaped first, so control
tokens only ever come from this file's explicit id insertion.

The loss mask is computed from tokenizer offset mappings: every token whose characters lie
inside an `<information>…</information>` block of the display string (tags included) gets
mask 0 — the model learns to use evidence, not to memorise it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .tokens import TokenTable, escape

# Control tags of the display format, in the order they may appear in a trajectory.
_DISPLAY_TAG_RE = re.compile(r"</?search>|</?information>|<region>|<image>")
_TAG_ROLE = {
    "<search>": "search_open",
    "</search>": "search_close",
    "<information>": "info_open",
    "</information>": "info_close",
    "<region>": "region",
    "<image>": "image_query",
}


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
    """Renders prompts, evidence blocks and gold trajectories for one tokenizer + token table."""

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

    def _append_control(self, r: Rendered, role: str, loss: int, display: str) -> None:
        start = len(r.text)
        r.text += display
        r.input_ids.append(self.tokens.id(role))
        r.offsets.append((start, len(r.text)))
        r.loss_mask.append(loss)

    def text_ids(self, text: str, *, untrusted: bool = True) -> list[int]:
        """Ids of a plain text piece (escaped first when it comes from outside)."""
        return self._encode(escape(text) if untrusted else text)[0]

    def information(self, evidence_text: str) -> list[int]:
        """Ids of `<information> evidence </information>`, the forced tokens after a search."""
        return ([self.tokens.id("info_open")] + self.text_ids(evidence_text)
                + [self.tokens.id("info_close")])

    def search_call(self, modality: str, text: str = "") -> list[int]:
        """Ids of `<search>payload</search>` for a query the caller decided on (baselines)."""
        t = self.tokens
        payload = {"region": [t.id("region")], "image": [t.id("image_query")]}.get(modality)
        if payload is None:
            payload = self.text_ids(text)
        return [t.id("search_open"), *payload, t.id("search_close")]

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

    def trajectory(self, question: str, display: str, has_image: bool = True,
                   spans: list[tuple[int, int]] | None = None, add_eos: bool = True) -> Rendered:
        """Prompt + gold assistant turn in display format, with loss mask and BIO span tags.

        `display` is trusted (built by this project: evidence inside it is already escaped).
        `spans` are character ranges in `display` of the entity each `<region>` search is about.
        """
        r = self.prompt(question, has_image)
        assistant_start = len(r.text)
        info_spans: list[tuple[int, int]] = []
        pos, info_open_at = 0, None
        for m in _DISPLAY_TAG_RE.finditer(display):
            self._append_text(r, display[pos:m.start()], 1)
            tag = m.group(0)
            if tag == "<information>":
                info_open_at = len(r.text)
            self._append_control(r, _TAG_ROLE[tag], 1, tag)
            if tag == "</information>":
                if info_open_at is None:
                    raise ValueError(f"unpaired </information> in trajectory: {display!r}")
                info_spans.append((info_open_at, len(r.text)))
                info_open_at = None
            if tag == "<region>":
                r.region_positions.append(len(r.input_ids) - 1)
            pos = m.end()
        if info_open_at is not None:
            raise ValueError(f"unclosed <information> in trajectory: {display!r}")
        self._append_text(r, display[pos:], 1)
        eos = getattr(self.tokenizer, "eos_token_id", None)
        if add_eos and eos is not None:
            r.input_ids.append(eos)
            r.offsets.append((len(r.text), len(r.text)))
            r.loss_mask.append(1)
        r.loss_mask = _mask_spans(r.loss_mask, r.offsets, info_spans, r.prompt_len)
        r.span_labels = _bio_labels(r.offsets, [(assistant_start + a, assistant_start + b)
                                                for a, b in (spans or [])], r.prompt_len)
        return r


def _inside(off: tuple[int, int], span: tuple[int, int]) -> bool:
    a, b = off
    # zero-width tokens (bytes of a split character, trimmed spaces) count by their position
    return a >= span[0] and b <= span[1] and (b > a or a < span[1])


def _mask_spans(mask: list[int], offsets: list[tuple[int, int]],
                spans: list[tuple[int, int]], start: int) -> list[int]:
    out = list(mask)
    for i in range(start, len(out)):
        if any(_inside(offsets[i], s) for s in spans):
            out[i] = 0
    return out


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
