"""The InfoSeek and OVEN scoring rules (github.com/edchengg/infoseek_eval, .../oven_eval).

InfoSeek, per question type:
- STRING and TIME: exact match of the normalised prediction with one of `answer_eval`
  (InfoSeek's normalisation: lower-case, punctuation deleted, articles dropped, spaces
  collapsed — punctuation is deleted, not turned into spaces, so "U.S." is "us");
- NUMERICAL: the prediction is parsed into a number or a range (the first two numbers it holds,
  "9-10" read as a range; "1,000" as 1000); a gold single value `v` becomes the range
  `[0.9 v, 1.1 v]`; a predicted number scores 1 inside the gold range, a predicted range scores
  1 inside it or with range IoU >= 0.5.
The score of a split is the share of questions right; the final score is the harmonic mean of
the `unseen_question` and `unseen_entity` splits (a split scoring 0 counts as 1e-12).
`infoseek_relaxed` is the same rule with a relaxed string match (a gold answer appears in the
prediction as whole words), for generative models that answer in sentences.

OVEN: accuracy per `_seen` / `_unseen` split and their harmonic mean. The official scorer
compares predicted Wikidata ids, mapped from free text by BM25 over the 6M titles; here an
answer is right when it names the gold entity (`entity_text`, relaxed match).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from typing import Any

from pixsearch.eval.text_metrics import relaxed_exact_match

_NUMBER = re.compile(r"[-+]?[.]?[\d]+(?:,\d\d\d)*[\.]?\d*(?:[eE][-+]?\d+)?")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def infoseek_normalize(text: str) -> str:
    """InfoSeek's answer normalisation (see the module docstring)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _spaced_ranges(text: str) -> str:
    """'9-10' → '9 - 10': a hyphen right after a digit separates a range."""
    return "".join(" - " if c == "-" and i >= 1 and text[i - 1].isdigit() else c
                   for i, c in enumerate(text))


def parse_number(text: str) -> float | list[float]:
    """The number or `[low, high]` range a numerical answer gives (`[0, 0]` when it holds
    none; two numbers in decreasing order give the first)."""
    found = []
    for raw in _NUMBER.findall(_spaced_ranges(text)):
        raw = raw.replace(",", "").strip(".")
        found.append(float(raw.split(".")[0] if raw.count(".") > 1 else raw))
    if len(found) >= 2:
        first, second = found[:2]
        return [first, second] if first <= second else first
    return found[0] if found else [0.0, 0.0]


def range_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ranges (1e-12 added to the lengths, as officially)."""
    lo1, hi1, lo2, hi2 = min(a), max(a), min(b), max(b)
    overlap = max(0.0, min(hi1, hi2) - max(lo1, lo2))
    union = (hi1 - lo1 + 1e-12) + (hi2 - lo2 + 1e-12) - overlap
    return overlap / union if union else 0.0


def numeric_score(pred: float | Sequence[float], answer: float | Sequence[float],
                  tolerance: float = 0.1) -> int:
    """1 if a predicted number / range matches the gold number / range (module docstring)."""
    gold = (list(answer) if isinstance(answer, (list, tuple))
            else [answer * (1 - tolerance), answer * (1 + tolerance)])
    if not isinstance(pred, (list, tuple)):
        return int(gold[0] <= pred <= gold[1])
    if gold[0] <= pred[0] <= gold[1] and gold[0] <= pred[1] <= gold[1]:
        return 1
    return int(range_iou(pred, gold) >= 0.5 - 1e-12)


def infoseek_score(prediction: str, answer_eval: Sequence[Any], question_type: str,
                   relaxed: bool = False) -> int:
    """The official 0/1 score of one InfoSeek answer (`relaxed`: whole-word containment
    instead of exact match for string and time questions)."""
    if question_type.upper() == "NUMERICAL":
        gold = [float(v) for v in answer_eval[:2]]
        return numeric_score(parse_number(prediction), gold if len(gold) == 2 else gold[0])
    golds = [str(a) for a in answer_eval]
    if relaxed:
        return int(relaxed_exact_match(prediction, golds))
    pred = infoseek_normalize(prediction)
    return int(any(pred == infoseek_normalize(g) for g in golds))


def harmonic_mean(values: Iterable[float]) -> float:
    """Harmonic mean, a zero counted as 1e-12 (the official scorers' guard)."""
    vals = [v if v != 0 else 1e-12 for v in values]
    return len(vals) / sum(1.0 / v for v in vals) if vals else 0.0


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def infoseek_summary(rows: Iterable[tuple[str, int, int]]) -> dict[str, Any]:
    """Official and relaxed InfoSeek scores from (data_split, score, relaxed score) rows:
    overall, per split (`unseen_question`, `unseen_entity`) and their harmonic mean (None
    unless both splits are present)."""
    by: dict[str, list[tuple[int, int]]] = {"unseen_question": [], "unseen_entity": []}
    everything = []
    for split, score, relaxed in rows:
        key = "unseen_question" if str(split).endswith("unseen_question") else "unseen_entity"
        by[key].append((score, relaxed))
        everything.append((score, relaxed))
    out: dict[str, Any] = {"n": len(everything)}
    for name, pairs in (("all", everything), *by.items()):
        out[name] = {"n": len(pairs), "accuracy": _mean([p[0] for p in pairs]),
                     "relaxed": _mean([p[1] for p in pairs])}
    both = by["unseen_question"] and by["unseen_entity"]
    out["final"] = (harmonic_mean([out["unseen_question"]["accuracy"],
                                   out["unseen_entity"]["accuracy"]]) if both else None)
    out["final_relaxed"] = (harmonic_mean([out["unseen_question"]["relaxed"],
                                           out["unseen_entity"]["relaxed"]]) if both else None)
    return out


def oven_summary(rows: Iterable[tuple[str, int]]) -> dict[str, Any]:
    """OVEN accuracy from (data_split, right) rows: seen, unseen, their harmonic mean."""
    by: dict[str, list[int]] = {"seen": [], "unseen": []}
    for split, right in rows:
        by["unseen" if "_unseen" in str(split) else "seen"].append(right)
    out: dict[str, Any] = {name: {"n": len(v), "accuracy": _mean(v)} for name, v in by.items()}
    out["all"] = {"n": len(by["seen"]) + len(by["unseen"]),
                  "accuracy": _mean(by["seen"] + by["unseen"])}
    out["final"] = (harmonic_mean([out["seen"]["accuracy"], out["unseen"]["accuracy"]])
                    if by["seen"] and by["unseen"] else None)
    return out
