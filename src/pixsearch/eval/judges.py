"""Answer judges: the `Judge` protocol, an offline rule-based judge, and judge agreement.

A judge decides whether a prediction answers a question correctly given the gold answer — the
step CRAG-MM delegates to an LLM ("Result: CORRECT" / "Result: WRONG"). `RuleJudge` applies the
same judging rules with string and number heuristics so that scoring runs offline and
deterministically; `pixsearch.eval.llm_judge.OpenAIJudge` asks an LLM. `judge_agreement`
compares two judges' verdicts (raw agreement and Cohen's kappa), so the rule judge can be
calibrated against an LLM judge where one is available.

RuleJudge decisions, in order (numbers refer to CRAG-MM's judging instructions):
1. a refusal or expression of uncertainty is WRONG (rule 1);
2. normalised equality with the gold answer or an alias is CORRECT (rule 2);
3. if both the gold answer and the prediction contain numbers, every gold number must be
   matched by a predicted number within `numeric_tolerance` (relative), else WRONG (rules
   3.1/3.2); a prediction without numbers goes on to the word rules (names like "Maroon 5");
4. CORRECT (rule 7, "grounded by the ground truth", extra information allowed) when, with the
   gold's *core* = its content words minus those the question already states:
   a. a gold alias occurs as a token span of the prediction, or
   b. every core word occurs in the prediction ("lana clarkson, born 1962"), or
   c. the prediction's own words (beyond the question's) all occur in the gold answer and cover
      at least `min_coverage` of the core ("Santiago" for "The capital of Chile is Santiago");
      a one-letter word matches a gold word with that initial ("w shakespeare");
5. otherwise WRONG (rule 8). Self-contradiction (rule 4) and negation are not detected.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pixsearch.eval.text_metrics import normalize_answer, relaxed_exact_match

_REFUSALS = (
    "i dont know",
    "i do not know",
    "not sure",
    "cannot determine",
    "can not determine",
    "cannot answer",
    "unable to",
    "i cannot help",
    "i cant help",
    "hard to predict",
    "no information",
    "not enough information",
)
_STOPWORDS = frozenset(
    "is are was were be been this that these those it its of in on at to for by with and or "
    "as from there here what which who whom whose how called named i you he she we they them "
    "their his her our also".split()
)
_SMALL_NUMBERS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
_NUMBER = re.compile(
    r"(?<![\w.])(\d+(?:,\d{3})*(?:\.\d+)?|\.\d+)(?:\s*(thousand|million|billion|trillion))?"
)


@dataclass
class Verdict:
    """A judge's decision. `correct` is None when the judge gave no usable verdict."""

    correct: bool | None
    explanation: str = ""


@runtime_checkable
class Judge(Protocol):
    """Decides whether `prediction` answers `question` given the gold answer and its aliases."""

    name: str

    def judge(
        self, question: str, gold: str, prediction: str, aliases: Sequence[str] = ()
    ) -> Verdict: ...


def extract_numbers(text: str) -> list[float]:
    """Numbers in `text`: digits with thousands separators/decimals, scale words
    ("3.3 million"), and the number words zero–twenty."""
    lowered = text.lower()
    numbers = [
        float(m.group(1).replace(",", "")) * _SCALES.get(m.group(2) or "", 1.0)
        for m in _NUMBER.finditer(lowered)
    ]
    numbers += [
        float(_SMALL_NUMBERS[w]) for w in re.findall(r"[a-z]+", lowered) if w in _SMALL_NUMBERS
    ]
    return numbers


def is_refusal(prediction: str) -> bool:
    """True when the prediction declines to answer or says it is unsure (CRAG-MM rule 1)."""
    cleaned = " ".join(re.sub(r"[^a-z0-9\s]", "", prediction.lower()).split())
    return any(phrase in cleaned for phrase in _REFUSALS)


def _content(text: str) -> set[str]:
    return {t for t in normalize_answer(text).split() if t not in _STOPWORDS}


def _word_in(word: str, words: set[str]) -> bool:
    """`word` is in `words`, or is a one-letter abbreviation of one of them."""
    return word in words or (len(word) == 1 and any(w.startswith(word) for w in words))


class RuleJudge:
    """Offline judge following CRAG-MM's judging rules with string and number heuristics.

    Args:
        numeric_tolerance: relative tolerance for numeric gold answers (0.05 accepts 618.23 for
            618 but rejects 3.3 million for 3,576,873).
        min_coverage: share of the gold answer's content words a short prediction must cover.
    """

    name = "rule"

    def __init__(self, numeric_tolerance: float = 0.05, min_coverage: float = 0.5) -> None:
        if numeric_tolerance < 0 or not 0 < min_coverage <= 1:
            raise ValueError("numeric_tolerance must be ≥ 0 and min_coverage in (0, 1]")
        self.numeric_tolerance = numeric_tolerance
        self.min_coverage = min_coverage

    def _numbers_match(self, gold: list[float], pred: list[float]) -> bool:
        return all(
            any(math.isclose(p, g, rel_tol=self.numeric_tolerance, abs_tol=1e-9) for p in pred)
            for g in gold
        )

    def judge(
        self, question: str, gold: str, prediction: str, aliases: Sequence[str] = ()
    ) -> Verdict:
        """Apply the rules in the module docstring; always returns a definite verdict."""
        answers = [gold, *aliases]
        if not prediction.strip() or is_refusal(prediction):
            return Verdict(False, "refusal or uncertainty (rule 1)")
        pred_norm = normalize_answer(prediction)
        if any(pred_norm == normalize_answer(a) for a in answers):
            return Verdict(True, "matches the ground truth (rule 2)")
        gold_numbers, pred_numbers = extract_numbers(gold), extract_numbers(prediction)
        if gold_numbers and pred_numbers:
            ok = self._numbers_match(gold_numbers, pred_numbers)
            return Verdict(ok, f"numbers {'match' if ok else 'differ'} (rule 3)")
        if relaxed_exact_match(prediction, answers):
            return Verdict(True, "contains the ground truth (rule 7)")
        asked = _content(question)
        pred_words = _content(prediction)
        own_words = (pred_words - asked) or pred_words
        for answer in answers:
            gold_words = _content(answer)
            # Words the question already states are not part of what must be answered.
            core = (gold_words - asked) or gold_words
            if core and core <= pred_words:
                return Verdict(True, "states the ground truth's key words (rule 7)")
            if own_words and core and all(_word_in(w, gold_words) for w in own_words):
                if len(own_words) >= self.min_coverage * len(core):
                    return Verdict(True, "grounded by the ground truth (rule 7)")
        return Verdict(False, "unrelated to or contradicts the ground truth (rule 8)")


@dataclass
class Agreement:
    """How often two judges agree: raw rate and Cohen's kappa (chance-corrected)."""

    n: int
    agreement: float
    kappa: float

    def as_dict(self) -> dict[str, float]:
        return {"n": float(self.n), "agreement": self.agreement, "kappa": self.kappa}


def judge_agreement(a: Sequence[bool | None], b: Sequence[bool | None]) -> Agreement:
    """Agreement and Cohen's kappa between two judges' verdicts on the same items.

    Items where either verdict is None (no usable answer) are left out. Kappa is 1.0 when both
    judges agree perfectly even if they use only one label (chance agreement of 1).
    """
    if len(a) != len(b):
        raise ValueError(f"{len(a)} verdicts against {len(b)}")
    pairs = [(bool(x), bool(y)) for x, y in zip(a, b) if x is not None and y is not None]
    n = len(pairs)
    if n == 0:
        return Agreement(0, 0.0, 0.0)
    observed = sum(x == y for x, y in pairs) / n
    pa = sum(x for x, _ in pairs) / n
    pb = sum(y for _, y in pairs) / n
    expected = pa * pb + (1 - pa) * (1 - pb)
    kappa = 1.0 if expected == 1.0 else (observed - expected) / (1 - expected)
    return Agreement(n, observed, kappa)
