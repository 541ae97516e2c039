"""Typed parts of an assistant turn, and the display grammar that writes and reads them.

A turn is a list of parts: `Text` the model writes, a `SearchCall` (`<search>payload</search>`
with payload `<region>`, `<image>` or a text query) and an `Information` block
(`<information>evidence</information>`, the evidence injected after a search). Gold plans and
training samples are built as parts; the renderer (`pixsearch.render`) turns parts into token
ids, loss mask and BIO span tags; the decoding engine renders its search calls and evidence
blocks as the same parts.

The paper's display string is written by `to_display` only and read back by `parse_display`
only (when a record's `trajectory` is loaded from JSONL). Tag strings come from the token
table's `pixsearch.tokens.DISPLAY`. All text inside parts (answer text, queries, evidence) is
passed through `pixsearch.tokens.escape` when written — it is idempotent, so already escaped
evidence is unchanged — and untrusted text can never become a tag.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pixsearch.tokens import DISPLAY, escape
from pixsearch.types import MODALITIES, Modality

# payload modality -> token-table role of its payload token (a text query has none)
PAYLOAD_ROLES: dict[str, str] = {"region": "region", "image": "image_query"}


@dataclass(frozen=True)
class Text:
    """Text of the answer.

    Attributes:
        text: the text (escaped when written).
        refers: this text is the referring expression of the next region search; its
            characters are that search's BIO span (what the span tagger learns to mark).
    """

    text: str
    refers: bool = False


@dataclass(frozen=True)
class SearchCall:
    """`<search>payload</search>`: a region, whole-image or text query.

    Attributes:
        modality: "region" (`<region>` payload), "image" (`<image>`) or "text".
        query: the text query (text searches only).
        forced: the caller chose this search, not the model (a baseline's forced query,
            `eval/modes.py`): its tokens are written for the model, so the renderer gives them
            loss mask 0, as it gives evidence.
    """

    modality: Modality
    query: str = ""
    forced: bool = False

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"unknown search modality {self.modality!r}")
        if self.query and self.modality != "text":
            raise ValueError(f"a {self.modality} search has no query text")


@dataclass(frozen=True)
class Information:
    """`<information>evidence</information>`: what a search returned, as injected text.

    Attributes:
        evidence: formatted evidence (`pixsearch.retrieval.evidence.format_evidence`).
    """

    evidence: str


Part = Text | SearchCall | Information
Turn = list[Part]


def _write(parts: Sequence[Part], tags: Mapping[str, str]) -> tuple[str, list[tuple[int, int]]]:
    """The display string of `parts` and the character span of each referring expression."""
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    n = 0

    def put(s: str) -> None:
        nonlocal n
        out.append(s)
        n += len(s)

    for p in parts:
        if isinstance(p, Text):
            start = n
            put(escape(p.text))  # escaping keeps lengths: `<`/`>` become `‹`/`›`
            if p.refers:
                spans.append((start, n))
        elif isinstance(p, SearchCall):
            role = PAYLOAD_ROLES.get(p.modality)
            put(tags["search_open"] + (tags[role] if role else escape(p.query))
                + tags["search_close"])
        elif isinstance(p, Information):
            put(tags["info_open"] + escape(p.evidence) + tags["info_close"])
        else:
            raise TypeError(f"not a part of a turn: {p!r}")
    text = "".join(out)
    for run in _text_runs(parts):  # each part is escaped alone: a tag split across parts
        joined = "".join(escape(t.text) for t in run)
        if escape(joined) != joined:
            raise ValueError(f"adjacent text parts join into a control tag: {joined!r}")
    return text, spans


def _text_runs(parts: Sequence[Part]) -> list[list[Text]]:
    """Maximal runs of consecutive `Text` parts (with more than one part)."""
    runs: list[list[Text]] = [[]]
    for p in parts:
        if isinstance(p, Text):
            runs[-1].append(p)
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if len(r) > 1]


def to_display(parts: Sequence[Part], tags: Mapping[str, str] = DISPLAY) -> str:
    """The paper's display string of a turn. `tags` may replace the tag strings (e.g. every
    tag by a space, for text without control tokens)."""
    return _write(parts, tags)[0]


def region_spans(parts: Sequence[Part]) -> list[tuple[int, int]]:
    """Character spans, in `to_display(parts)`, of the referring expressions (in order)."""
    return _write(parts, DISPLAY)[1]


# any tag of the display format (the abstention features strip them from answer text too)
DISPLAY_TAG_RE = re.compile("|".join(re.escape(DISPLAY[r]) for r in (
    "search_open", "search_close", "info_open", "info_close", "region", "image_query")))
_ROLE_OF = {DISPLAY[r]: r for r in DISPLAY}
_MODALITY_OF = {role: m for m, role in PAYLOAD_ROLES.items()}


def _text_parts(text: str, base: int, spans: list[tuple[int, int]]) -> list[Part]:
    """`text` (starting at character `base` of the display) split at the referring spans."""
    out: list[Part] = []
    pos = base
    for a, b in spans:
        if a < base or b > base + len(text):
            continue
        if a > pos:
            out.append(Text(text[pos - base:a - base]))
        out.append(Text(text[a - base:b - base], refers=True))
        pos = b
    if pos < base + len(text):
        out.append(Text(text[pos - base:]))
    return out


def parse_display(text: str, spans: Sequence[Sequence[int]] = ()) -> Turn:
    """Read a display string (a record's `trajectory`) back into parts.

    `spans` are the character spans of the referring expressions (the record's
    `region_spans`); each must lie inside one stretch of answer text. Raises ValueError on a
    malformed display (unpaired, nested or stray tags; a mixed payload; overlapping spans).
    """
    refs = sorted((int(a), int(b)) for a, b in spans)
    for (_, b), (a2, _) in zip(refs, refs[1:]):
        if a2 < b:
            raise ValueError(f"overlapping referring spans {refs} in {text!r}")
    parts: Turn = []
    used: list[tuple[int, int]] = []

    def answer_text(a: int, b: int) -> None:
        if b > a:
            parts.extend(_text_parts(text[a:b], a, refs))
            used.extend(s for s in refs if a <= s[0] and s[1] <= b)

    pos, opened, opened_at, payload = 0, None, 0, []
    for m in DISPLAY_TAG_RE.finditer(text):
        role = _ROLE_OF[m.group(0)]
        if opened is None:
            if role not in ("search_open", "info_open"):
                raise ValueError(f"stray {m.group(0)} at {m.start()} in {text!r}")
            answer_text(pos, m.start())
            opened, opened_at, payload = role, m.end(), []
        elif opened == "search_open" and role in _MODALITY_OF:
            payload.append(role)
        elif opened == "search_open" and role == "search_close":
            parts.append(_search(payload, text[opened_at:m.start()], text))
            opened = None
        elif opened == "info_open" and role == "info_close":
            parts.append(Information(text[opened_at:m.start()]))
            opened = None
        else:
            raise ValueError(f"unexpected {m.group(0)} at {m.start()} inside "
                             f"{DISPLAY[opened]} in {text!r}")
        pos = m.end()
    if opened is not None:
        raise ValueError(f"unclosed {DISPLAY[opened]} in {text!r}")
    answer_text(pos, len(text))
    if len(used) != len(refs):
        raise ValueError(f"referring spans {sorted(set(refs) - set(used))} are not inside "
                         f"answer text of {text!r}")
    return parts


def _search(payload: list[str], inside: str, text: str) -> SearchCall:
    """The search call of a closed payload (`inside` is everything between the search tags):
    one payload tag alone, or text."""
    if not payload:
        return SearchCall("text", inside)
    if len(payload) == 1 and inside == DISPLAY[payload[0]]:
        return SearchCall(_MODALITY_OF[payload[0]])  # type: ignore[arg-type]
    raise ValueError(f"a search payload is one <region>, one <image> or text, in {text!r}")
