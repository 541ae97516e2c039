"""Whether a written answer says the gold answer, and whether the evidence backs it.

Stage-2 data construction keeps a trajectory only when what it finally says is the gold
answer *and* the information blocks retrieval really returned contain it (the paper's "drop or
repair trajectories whose evidence no longer supports the answer"). Matching is on normalised
text: case, punctuation and thousands separators are ignored, and an answer must occur as
whole words ("Lima" is not found in "Limassol").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

IDK = "I don't know"
_PUNCT = re.compile(r"[^\w\s+]")
_THOUSANDS = re.compile(r"(?<=\d)[,\u202f\u00a0](?=\d{3}\b)")
_WS = re.compile(r"\s+")
_NAME = re.compile(r"\b[A-Z][\w'’-]*(?:\s+(?:and|of|the|de|da|del|du|la|le)?\s*[A-Z][\w'’-]*)*")


def normalize(text: str) -> str:
    """Lower case, accents folded, thousands separators and punctuation removed, spaces
    collapsed."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _THOUSANDS.sub("", text.replace("’", "'").lower())
    text = text.replace("'", "")
    return _WS.sub(" ", _PUNCT.sub(" ", text)).strip()


def mentions(text: str, answer: str) -> bool:
    """Whether `answer` occurs in `text` as whole words (after `normalize`)."""
    a = normalize(answer)
    return bool(a) and f" {a} " in f" {normalize(text)} "


def mentions_any(text: str, answers: Iterable[str]) -> str | None:
    """The first of `answers` that `text` mentions, or None."""
    return next((a for a in answers if mentions(text, a)), None)


def is_abstention(answer: str) -> bool:
    """Whether a gold answer is the abstention "I don't know" (an entity missing from the KB)."""
    return normalize(answer) == normalize(IDK)


def is_yes_no(answer: str) -> bool:
    """Whether a gold answer is "yes" or "no"."""
    return normalize(answer) in ("yes", "no")


def names_in(text: str, skip_first: bool = True) -> list[str]:
    """Capitalised names in `text` ("Papua New Guinea"); a name joined by "and" gives its
    parts first, then the whole ("France", "Germany", "France and Germany": a list of two, or
    one name such as "Bosnia and Herzegovina"); the sentence-initial word alone is skipped
    when `skip_first` (it is capitalised anyway)."""
    out = []
    for m in _NAME.finditer(text):
        name = m.group(0).strip(" '’-")
        if skip_first and m.start() == 0 and " " not in name:
            continue
        out += [*(p.strip() for p in name.split(" and ")), name] if " and " in name else [name]
    return list(dict.fromkeys(n for n in out if n and n not in STOP_NAMES))


# capitalised words that name nothing (sentence starts and field labels of KB documents)
STOP_NAMES = frozenset({
    "The", "A", "An", "Is", "Are", "What", "Which", "Who", "How", "Where", "When", "This",
    "That", "It", "Its", "In", "Of", "And", "Country", "Capital", "Flag", "Flag colours",
    "People", "I", "Yes", "No",
})
