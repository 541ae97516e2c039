"""Answer-string metrics for open-ended VQA and text QA: exact match, relaxed EM and token F1.

The paper reports relaxed exact match and F1 on InfoSeek, OVEN, TextVQA and the text-only QA
sets (HotpotQA, NQ, PopQA, MuSiQue). Normalisation follows the SQuAD convention used by all of
them: lower-case, drop punctuation, drop the articles "a/an/the", collapse whitespace.

- `exact_match`: the normalised prediction equals a normalised gold answer (or alias).
- `relaxed_exact_match`: a normalised gold answer occurs in the normalised prediction as a
  whole-token span. This is the "relaxed" variant used for generative LMMs whose answers are
  sentences rather than short spans ("The flag is the flag of Peru." contains "peru").
- `token_f1`: bag-of-tokens F1 against the best-matching gold answer.

Every function takes one gold string or a sequence of aliases and scores against the best alias.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation + "‘’“”–—"})


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation: lower-case, punctuation → space, no articles, single spaces."""
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _aliases(gold: str | Sequence[str]) -> list[str]:
    aliases = [gold] if isinstance(gold, str) else list(gold)
    if not aliases:
        raise ValueError("a gold answer needs at least one string")
    return aliases


def exact_match(prediction: str, gold: str | Sequence[str]) -> bool:
    """True when the normalised prediction equals one normalised gold alias."""
    pred = normalize_answer(prediction)
    return any(pred == normalize_answer(g) for g in _aliases(gold))


def _contains_span(tokens: list[str], span: list[str]) -> bool:
    if not span:
        return False
    n = len(span)
    return any(tokens[i : i + n] == span for i in range(len(tokens) - n + 1))


def relaxed_exact_match(prediction: str, gold: str | Sequence[str]) -> bool:
    """True when a normalised gold alias appears as a whole-token span of the prediction."""
    tokens = normalize_answer(prediction).split()
    return any(_contains_span(tokens, normalize_answer(g).split()) for g in _aliases(gold))


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    if not pred_tokens or not gold_tokens:
        # Both empty counts as agreement; one empty scores 0 (SQuAD convention).
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, gold: str | Sequence[str]) -> float:
    """Token-level F1 between the normalised prediction and the best normalised gold alias."""
    pred_tokens = normalize_answer(prediction).split()
    return max(_f1(pred_tokens, normalize_answer(g).split()) for g in _aliases(gold))


@dataclass
class TextScores:
    """Mean answer-string metrics over a set of predictions (all in [0, 1])."""

    n: int
    exact_match: float
    relaxed_exact_match: float
    f1: float

    def as_dict(self) -> dict[str, float]:
        return {
            "n": float(self.n),
            "exact_match": self.exact_match,
            "relaxed_exact_match": self.relaxed_exact_match,
            "f1": self.f1,
        }


def score_text(predictions: Iterable[str], golds: Iterable[str | Sequence[str]]) -> TextScores:
    """Average EM, relaxed EM and token F1 over aligned predictions and gold answers/aliases."""
    preds, refs = list(predictions), list(golds)
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions for {len(refs)} gold answers")
    n = len(preds)
    if n == 0:
        return TextScores(0, 0.0, 0.0, 0.0)
    em = sum(exact_match(p, g) for p, g in zip(preds, refs)) / n
    rem = sum(relaxed_exact_match(p, g) for p, g in zip(preds, refs)) / n
    f1 = sum(token_f1(p, g) for p, g in zip(preds, refs)) / n
    return TextScores(n, em, rem, f1)
