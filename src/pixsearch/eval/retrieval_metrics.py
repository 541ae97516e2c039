"""Retrieval and search-decision metrics.

- `recall_at_k`: share of queries whose gold entity (any of several accepted ids) is among the
  top-k hits. A hit may be a plain id string or a `pixsearch.types.Hit`, matched on its
  `entity` and `doc_id`. This measures the region/image/text query types of the paper's
  search-pattern analysis independently of the answer.
- `search_decision_scores`: precision/recall/F1 of "the model searched" against the record's
  `needs_search` flag (the paper's "when to search" decision), plus the search rate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


def _hit_keys(hit: Any) -> set[str]:
    """The identifiers a hit can match a gold entity by."""
    if isinstance(hit, str):
        return {hit}
    keys = {getattr(hit, "doc_id", None), getattr(hit, "entity", None)}
    if isinstance(hit, dict):
        keys |= {hit.get("doc_id"), hit.get("entity"), hit.get("id")}
    keys.discard(None)
    if not keys:
        raise TypeError(f"cannot read an id from a hit of type {type(hit).__name__}")
    return {str(k) for k in keys}


def hit_rank(hits: Sequence[Any], gold: str | Iterable[str]) -> int | None:
    """1-based rank of the first hit matching a gold id, or None when none matches."""
    golds = {gold} if isinstance(gold, str) else set(gold)
    for rank, hit in enumerate(hits, start=1):
        if _hit_keys(hit) & golds:
            return rank
    return None


def _ranks(ranked: Sequence[Sequence[Any]], golds: Sequence[str | Iterable[str]]
           ) -> list[int | None]:
    """1-based rank of the first gold hit of each query (None when not retrieved)."""
    if len(ranked) != len(golds):
        raise ValueError(f"{len(ranked)} hit lists for {len(golds)} gold entities")
    return [hit_rank(hits, gold) for hits, gold in zip(ranked, golds)]


def recall_at_k(
    ranked: Sequence[Sequence[Any]], golds: Sequence[str | Iterable[str]], k: int
) -> float:
    """Share of queries with a gold entity among their first `k` hits."""
    if k < 1:
        raise ValueError("k must be at least 1")
    ranks = _ranks(ranked, golds)
    return sum(r is not None and r <= k for r in ranks) / len(ranks) if ranks else 0.0


def mean_reciprocal_rank(
    ranked: Sequence[Sequence[Any]], golds: Sequence[str | Iterable[str]]
) -> float:
    """Mean of 1/rank of the first gold hit (0 when it is not retrieved)."""
    ranks = _ranks(ranked, golds)
    return sum(0.0 if r is None else 1.0 / r for r in ranks) / len(ranks) if ranks else 0.0


@dataclass
class DecisionScores:
    """How well "searched or not" matches "needed search or not"."""

    n: int
    true_positive: int
    false_positive: int
    false_negative: int
    true_negative: int

    @property
    def precision(self) -> float:
        """Of the samples where the model searched, the share that needed it."""
        searched = self.true_positive + self.false_positive
        return self.true_positive / searched if searched else 0.0

    @property
    def recall(self) -> float:
        """Of the samples that needed a search, the share where the model searched."""
        needed = self.true_positive + self.false_negative
        return self.true_positive / needed if needed else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def search_rate(self) -> float:
        return (self.true_positive + self.false_positive) / self.n if self.n else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "n": float(self.n),
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "search_rate": self.search_rate,
        }


def search_decision_scores(
    searched: Sequence[bool], needs_search: Sequence[bool]
) -> DecisionScores:
    """Confusion counts of the model's search decision against the gold `needs_search` flags."""
    if len(searched) != len(needs_search):
        raise ValueError(f"{len(searched)} decisions for {len(needs_search)} gold flags")
    tp = fp = fn = tn = 0
    for did, needed in zip(searched, needs_search):
        did, needed = bool(did), bool(needed)
        tp += did and needed
        fp += did and not needed
        fn += needed and not did
        tn += not did and not needed
    return DecisionScores(len(searched), tp, fp, fn, tn)
