"""CRAG-MM scoring: truthfulness, accuracy, missing and hallucination rates, multi-turn score.

Follows the official evaluator (read for this module, not copied: facebookresearch/CRAG-MM
`evaluation/evaluator.py`, `evaluation/dataset_utils.py`, `evaluation/config.py` and the KDD
Cup 2025 starter kit's `local_evaluation.py` `calculate_scores`):

1. Truncate every response to 75 tokens (`pixsearch.eval.truncation`; whitespace tokens by
   default, the official Llama-3.2 tokenizer when passed as `tokenizer=`).
2. A response is *missing* when, lower-cased with everything but [a-z0-9 whitespace] removed,
   it contains "i dont know" or "i do not know".
3. A response is an *exact match* when `response.strip().lower() == gold.strip().lower()`
   (also tried against the record's aliases); exact matches are correct without a judge.
4. Otherwise, unless missing, the judge decides. Without a judge only exact matches count.
5. Every turn is then correct, missing or hallucinated (= neither). Counts give accuracy,
   missing rate, hallucination rate and truthfulness = (2·correct + missing)/total − 1.
6. Multi-turn: within a conversation, once two consecutive turns are not correct (wrong *or*
   missing — the code's rule; the README says "wrong"), every later turn is scored as missing.
   This also changes the overall counts. Each conversation scores mean(correct) −
   mean(hallucinated) over its turns; the reported multi-turn score is the mean over
   conversations.

Known deviations: the starter kit reports truthfulness 0.0 when total ≤ 1 (we compute it for
any total > 0); a response that is both an exact match and an "i don't know" is counted once,
as correct (the official counts it as both, making hallucinations negative). Groups: "all",
"ego" (records with `ego` true; official: `image_url is None`), "non_ego", or any record/turn
field name, which yields one group per value ("domain=food").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pixsearch.eval.datasets import as_record_dict, record_turns
from pixsearch.eval.judges import Agreement, Judge, judge_agreement
from pixsearch.eval.truncation import MAX_RESPONSE_TOKENS, truncate_response
from pixsearch.logs import progress_bar


def is_missing(response: str) -> bool:
    """CRAG-MM's "I don't know" detection (apostrophes and punctuation ignored)."""
    cleaned = re.sub(r"[^a-z0-9\s]", "", response.lower())
    return "i dont know" in cleaned or "i do not know" in cleaned


def crag_exact_match(response: str, gold: str, aliases: Sequence[str] = ()) -> bool:
    """CRAG-MM exact match: equality after strip() and lower(), against the gold or an alias."""
    pred = response.strip().lower()
    return any(pred == a.strip().lower() for a in (gold, *aliases))


@dataclass
class TurnResult:
    """One scored turn. `correct`/`missing` are final (after the multi-turn early stop)."""

    record_id: str
    turn_id: str
    turn_index: int
    question: str
    gold: str
    response: str
    exact_match: bool
    missing: bool
    correct: bool
    judged: bool = False
    explanation: str = ""
    early_stopped: bool = False
    verdict: bool | None = None
    second_verdict: bool | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def hallucinated(self) -> bool:
        return not self.correct and not self.missing

    @property
    def score(self) -> int:
        """1 correct, 0 missing, −1 hallucinated."""
        return 1 if self.correct else 0 if self.missing else -1


@dataclass
class CragScore:
    """CRAG-MM counts and rates for one group of turns."""

    total: int
    correct: int
    exact: int
    missing: int
    conversations: int
    conversation_score: float

    @property
    def hallucinated(self) -> int:
        return self.total - self.correct - self.missing

    def _rate(self, count: int) -> float:
        return count / self.total if self.total else 0.0

    @property
    def accuracy(self) -> float:
        return self._rate(self.correct)

    @property
    def exact_match(self) -> float:
        return self._rate(self.exact)

    @property
    def missing_rate(self) -> float:
        return self._rate(self.missing)

    @property
    def hallucination_rate(self) -> float:
        return self._rate(self.hallucinated)

    @property
    def truthfulness(self) -> float:
        """(2·correct + missing)/total − 1 = accuracy − hallucination rate."""
        return (2 * self.correct + self.missing) / self.total - 1 if self.total else 0.0

    def as_dict(self) -> dict[str, float]:
        keys = (
            "total",
            "correct",
            "exact",
            "missing",
            "hallucinated",
            "accuracy",
            "exact_match",
            "missing_rate",
            "hallucination_rate",
            "truthfulness",
            "conversations",
            "conversation_score",
        )
        return {k: float(getattr(self, k)) for k in keys}


@dataclass
class CragReport:
    """Per-group scores, the scored turns, and judge agreement when a second judge ran."""

    groups: dict[str, CragScore]
    turns: list[TurnResult]
    agreement: Agreement | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: s.as_dict() for name, s in self.groups.items()}
        if self.agreement is not None:
            out["judge_agreement"] = self.agreement.as_dict()
        return out


def first_turns(turns: Sequence[TurnResult]) -> dict[str, TurnResult]:
    """The first scored turn of each record, by record id."""
    first: dict[str, TurnResult] = {}
    for t in turns:
        first.setdefault(t.record_id, t)
    return first


def apply_early_stop(turns: Sequence[TurnResult]) -> list[TurnResult]:
    """Score as missing every turn after the first two consecutive non-correct turns of one
    conversation (turns in conversation order)."""
    out = list(turns)
    for i in range(1, len(out)):
        if not out[i - 1].correct and not out[i].correct:
            for j in range(i + 1, len(out)):
                out[j] = replace(
                    out[j], correct=False, exact_match=False, missing=True, early_stopped=True
                )
            break
    return out


def aggregate(turns: Sequence[TurnResult]) -> CragScore:
    """CRAG-MM counts and per-conversation scores of already early-stopped turns."""
    by_conv: dict[str, list[TurnResult]] = {}
    for t in turns:
        by_conv.setdefault(t.record_id, []).append(t)
    conv_scores = [
        sum(t.correct for t in ts) / len(ts) - sum(t.hallucinated for t in ts) / len(ts)
        for ts in by_conv.values()
    ]
    return CragScore(
        total=len(turns),
        correct=sum(t.correct for t in turns),
        exact=sum(t.exact_match for t in turns),
        missing=sum(t.missing and not t.correct for t in turns),
        conversations=len(by_conv),
        conversation_score=sum(conv_scores) / len(conv_scores) if conv_scores else 0.0,
    )


def _prediction(
    predictions: Mapping[str, Any] | Sequence[Any], index: int, rid: str, turn: dict, k: int
) -> str:
    if not isinstance(predictions, Mapping):
        value = predictions[index]
    elif turn.get("id") is not None and turn["id"] in predictions and turn["id"] != rid:
        return str(predictions[turn["id"]])
    elif rid in predictions:
        value = predictions[rid]
    else:
        raise KeyError(f"no prediction for record {rid!r} (turn {k})")
    return str(value) if isinstance(value, str) else str(value[k])


def _score_turn(
    rid: str,
    k: int,
    turn: dict,
    response: str,
    judge: Judge | None,
    second: Judge | None,
    truncate: Callable[[str], str],
) -> TurnResult:
    response = truncate(response)
    aliases = [a for a in turn.get("answers") or () if a != turn["answer"]]
    # an abstention is the right answer where the gold itself is one (an entity the knowledge
    # base lacks): "I don't know." matches gold "I don't know" whatever its punctuation
    em = crag_exact_match(response, turn["answer"], aliases) or (
        is_missing(response) and is_missing(turn["answer"]))
    missing = is_missing(response) and not em
    result = TurnResult(
        rid,
        str(turn.get("id") or f"{rid}#{k}"),
        k,
        turn["question"],
        turn["answer"],
        response,
        em,
        missing,
        correct=em,
        meta=turn.get("meta", {}),
    )
    if em or missing:
        return result
    if judge is not None:
        verdict = judge.judge(turn["question"], turn["answer"], response, aliases)
        # An unusable verdict (None) scores as wrong, as in the official evaluator.
        result.verdict, result.correct = verdict.correct, bool(verdict.correct)
        result.judged, result.explanation = True, verdict.explanation
    if second is not None:
        result.second_verdict = second.judge(
            turn["question"], turn["answer"], response, aliases
        ).correct
    return result


def _group_names(turn: TurnResult, group_by: Sequence[str]) -> list[str]:
    names = []
    for key in group_by:
        ego = turn.meta.get("ego")
        if key == "all":
            names.append("all")
        elif key in ("ego", "non_ego"):
            if ego is not None and bool(ego) == (key == "ego"):
                names.append(key)
        elif turn.meta.get(key) is not None:
            names.append(f"{key}={turn.meta[key]}")
    return names


def score_crag(
    records: Iterable[Any],
    predictions: Mapping[str, Any] | Sequence[Any],
    judge: Judge | None = None,
    group_by: Sequence[str] = ("all", "ego", "non_ego"),
    *,
    tokenizer: Any = None,
    max_tokens: int = MAX_RESPONSE_TOKENS,
    second_judge: Judge | None = None,
    progress: bool = False,
) -> CragReport:
    """Score predictions on CRAG-MM-style records.

    Args:
        records: project records (dicts or Record dataclasses); multi-turn records carry a
            `conversation` list of turns with `question`, `answer` (and optional `id`, `answers`).
        predictions: by record id (a string, or a list of strings for a conversation), by turn
            id, or a sequence aligned with `records`.
        judge: decides non-exact, non-missing answers; None scores only exact matches correct.
        group_by: "all", "ego", "non_ego" and/or record/turn field names.
        tokenizer, max_tokens: response truncation (see `truncate_response`).
        second_judge: also judged on the same turns; its agreement with `judge` is reported.
        progress: show a tqdm bar over records.
    """

    def truncate(text: str) -> str:
        return truncate_response(text, max_tokens, tokenizer)

    turns: list[TurnResult] = []
    bar = progress_bar(list(records), desc="CRAG-MM scoring", disable=not progress)
    for index, obj in enumerate(bar):
        record = as_record_dict(obj)
        rid = str(record["id"])
        conversation = [
            _score_turn(
                rid,
                k,
                turn,
                _prediction(predictions, index, rid, turn, k),
                judge,
                second_judge,
                truncate,
            )
            for k, turn in enumerate(record_turns(record))
        ]
        turns.extend(apply_early_stop(conversation))
    groups: dict[str, list[TurnResult]] = {
        key: [] for key in group_by if key in ("all", "ego", "non_ego")
    }
    for t in turns:
        for name in _group_names(t, group_by):
            groups.setdefault(name, []).append(t)
    agreement = None
    if judge is not None and second_judge is not None:
        judged = [t for t in turns if t.judged]
        agreement = judge_agreement([t.verdict for t in judged], [t.second_verdict for t in judged])
    return CragReport({name: aggregate(ts) for name, ts in groups.items()}, turns, agreement)
