"""Evidence: hits formatted as the text injected between `<information>` and `</information>`.

Compact numbered lines `[1] Title: text`, one per distinct document (duplicates by document id
or by identical text are dropped), escaped with `pixsearch.tokens.escape` so retrieved text can
never produce a control token, and cut to a token budget (`truncated` says when it was).

`EvidenceConfig` is the one evidence budget: the world build writes gold trajectories with it,
training samples are made with it, it is saved in the model's config, and decoding uses the
saved one unless told otherwise — so a model is served the evidence layout it was trained on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pixsearch.tokens import escape
from pixsearch.types import Evidence, Hit

CountTokens = Callable[[str], int]
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class EvidenceConfig:
    """How much evidence one search brings back.

    Attributes:
        top_k: hits retrieved per search.
        max_words: word budget of one `<information>` block (whitespace words of the
            formatted evidence, numbering included; the last line is cut to fit).
        perception: a region search's evidence opens with a line of what its mask shows
            (`pixsearch/perception.py`: colours, instances in the image and left of it),
            outside the word budget of the hits. Gold trajectories and decoding write it
            with the same function, so a model trained with it is served it.
        image_count: with `perception`, a whole-image search's evidence opens with how many
            entities the image shows (`perception.image_view`: the gold entities in the
            world's trajectories, the model's entity centres when it decodes).
    """

    top_k: int = 3
    max_words: int = 70
    perception: bool = False
    image_count: bool = False

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.max_words < 1:
            raise ValueError(f"top_k and max_words must be >= 1, got {self}")

    def format(self, hits: Sequence[Hit], seen: str | None = None) -> Evidence:
        """`hits` formatted under this budget (`format_evidence`), after the perception line
        `seen` of a search when this budget has `perception` on."""
        evidence = format_evidence(hits, self.max_words)
        if not (self.perception and seen):
            return evidence
        return Evidence(text=f"{seen}\n{evidence.text}" if evidence.text else seen,
                        hits=evidence.hits, n_tokens=evidence.n_tokens + len(seen.split()),
                        truncated=evidence.truncated)


def whitespace_tokens(text: str) -> int:
    """Default token count: whitespace-separated words (a tokenizer-free approximation)."""
    return len(text.split())


def dedupe(hits: Sequence[Hit]) -> list[Hit]:
    """Keep the first (best) hit of each document id and of each identical text."""
    seen_ids: set[str] = set()
    seen_texts: set[str] = set()
    out = []
    for h in hits:
        norm = _WS.sub(" ", h.text).strip().lower()
        if h.doc_id in seen_ids or norm in seen_texts:
            continue
        seen_ids.add(h.doc_id)
        seen_texts.add(norm)
        out.append(h)
    return out


def _line(number: int, hit: Hit) -> str:
    text = _WS.sub(" ", hit.text).strip()
    title = _WS.sub(" ", hit.title).strip()
    return escape(f"[{number}] {title}: {text}" if title else f"[{number}] {text}")


def _cut(line: str, fits: Callable[[str], bool]) -> str | None:
    """Longest word prefix of `line` (plus an ellipsis) that `fits`, if any."""
    words = line.split(" ")
    lo, hi = 0, len(words)  # binary search on the number of words kept
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(" ".join(words[:mid]) + " …"):
            lo = mid
        else:
            hi = mid - 1
    # keep at least the number and one word of content, else the line is useless
    return " ".join(words[:lo]) + " …" if lo >= 2 else None


def format_evidence(hits: Sequence[Hit], max_tokens: int,
                    count_tokens: CountTokens | None = None) -> Evidence:
    """Format `hits` into evidence text of at most `max_tokens` tokens.

    Args:
        hits: retrieved hits, best first.
        max_tokens: token budget of the whole evidence text.
        count_tokens: token counter (e.g. `lambda s: len(tok.encode(s, add_special_tokens=False))`);
            defaults to whitespace words.
    """
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    count = count_tokens or whitespace_tokens
    kept: list[Hit] = []
    lines: list[str] = []
    truncated = False
    for hit in dedupe(hits):
        line = _line(len(lines) + 1, hit)
        candidate = "\n".join([*lines, line])
        if count(candidate) <= max_tokens:
            lines.append(line)
            kept.append(hit)
            continue
        truncated = True
        prefix = "\n".join(lines) + "\n" if lines else ""
        part = _cut(line, lambda s, p=prefix: count(p + s) <= max_tokens)
        if part is not None:
            lines.append(part)
            kept.append(hit)
        break
    text = "\n".join(lines)
    n = count(text) if text else 0
    assert n <= max_tokens, (n, max_tokens)
    return Evidence(text=text, hits=kept, n_tokens=n, truncated=truncated)
