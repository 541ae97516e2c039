"""Calibrating decode-time abstention on a validation run, and risk–coverage curves.

`pixsearch eval calibrate --run VAL_RUN` reads a finished run (its records, prediction lines and
CRAG-MM verdicts), computes each answer's confidence features (`pixsearch/abstention.py`), fits a
logistic regression of "answering beats abstaining" on them, and picks the threshold that
maximises CRAG-MM truthfulness on that run. The result is an `AbstentionConfig` that is saved
with the model. Fit it on `val`, never on `test`: the test figures then measure the policy.

What abstaining is worth depends on the gold answer: for an entity that is absent from the
knowledge base the gold is "I don't know", so abstaining is *right* there (+1), while on a
knowable question it is a miss (0). An answer is worth +1 right, −1 hallucinated, 0 missing.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pixsearch.abstention import (
    FEATURES,
    PERCEPTION_FEATURES,
    SEEN_READ,
    AbstentionConfig,
    Logistic,
    confidence_features,
)
from pixsearch.config import to_dict
from pixsearch.eval.crag import TurnResult, first_turns, is_missing
from pixsearch.types import Trace


@dataclass
class Outcome:
    """One answer as calibration sees it.

    Attributes:
        id: record id.
        features: confidence features of its trace.
        answer_score: +1 right, 0 missing, −1 hallucinated (the answer as the model wrote it).
        abstain_score: what saying "I don't know" would score (+1 when that is the gold).
        p_correct: the confidence the engine recorded, if a policy was active.
        run: which of the pooled runs it comes from (`pooled_outcomes`), 0 for a single run.
    """

    id: str
    features: dict[str, float]
    answer_score: int
    abstain_score: int
    p_correct: float | None = None
    run: int = 0


def outcomes(records: Sequence[Mapping[str, Any]], predictions: Mapping[str, Mapping[str, Any]],
             turns: Sequence[TurnResult]) -> list[Outcome]:
    """The outcome of the first turn of every record that has a prediction and a verdict."""
    first = first_turns(turns)
    out = []
    for rec in records:
        rid = str(rec["id"])
        if rid not in predictions or rid not in first:
            continue
        t = first[rid]
        trace = Trace.from_dict(predictions[rid]["trace"])
        # abstaining scores +1 where the gold is an abstention (`crag._score_turn`), else 0
        out.append(Outcome(rid, confidence_features(trace), t.score, int(is_missing(t.gold)),
                           trace.p_correct))
    return out


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 50
                 ) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton's method; returns (weights, bias).
    Features are expected standardised; the intercept is not regularised."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -60, 60)))
        grad = xb.T @ (p - y) + reg * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(reg) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


def risk_coverage(conf: Sequence[float], outcomes_: Sequence[Outcome]) -> list[dict[str, float]]:
    """For each threshold (every distinct confidence, and 0 = never abstain): coverage (share
    of questions answered), risk (hallucinations among answered), accuracy, truthfulness."""
    n = len(outcomes_)
    assert n == len(conf) and n > 0, "one confidence per outcome, at least one"
    points = []
    for t in [0.0, *sorted(set(conf)), 1.0 + 1e-9]:
        scores = [o.answer_score if c >= t else o.abstain_score for c, o in zip(conf, outcomes_)]
        answered = [c >= t and o.answer_score != 0 for c, o in zip(conf, outcomes_)]
        halluc = sum(1 for s in scores if s < 0)
        right = sum(1 for s in scores if s > 0)
        n_ans = sum(answered)
        points.append({"threshold": float(t), "coverage": n_ans / n,
                       "risk": (sum(1 for a, s in zip(answered, scores) if a and s < 0) / n_ans
                                if n_ans else 0.0),
                       "accuracy": right / n, "hallucination": halluc / n,
                       "truthfulness": (right - halluc) / n})
    return points


MIN_OUTCOMES = 20  # fewer answers than this are too few to fit a regression on


def fit_policy(outcomes_: Sequence[Outcome], features: Sequence[str], l2: float = 1.0
               ) -> Logistic:
    """The logistic regression of "answering beats abstaining" on `features` of `outcomes_`."""
    if len(outcomes_) < MIN_OUTCOMES:
        raise ValueError(f"calibration needs at least {MIN_OUTCOMES} answered records, got "
                         f"{len(outcomes_)}")
    x = np.array([[o.features[f] for f in features] for o in outcomes_], dtype=float)
    y = np.array([o.answer_score > o.abstain_score for o in outcomes_], dtype=float)
    if y.min() == y.max():
        raise ValueError("calibration needs both answers worth keeping and answers worth "
                         "abstaining on; this run has only one kind")
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-8] = 1.0
    w, b = fit_logistic((x - mean) / scale, y, l2)
    return Logistic({f: float(v) for f, v in zip(features, w)}, b,
                    {f: float(v) for f, v in zip(features, mean)},
                    {f: float(v) for f, v in zip(features, scale)})


def calibrate(outcomes_: Sequence[Outcome], fitted_on: str = "", l2: float = 1.0,
              features: Sequence[str] = FEATURES
              ) -> tuple[AbstentionConfig, list[dict[str, float]]]:
    """Fit the policy on `outcomes_` (with `features`, a subset of `FEATURES`) and choose the
    threshold of best truthfulness (the highest coverage among ties). Answers read off a
    perception line get a regression of their own (`AbstentionConfig.perception`) when there
    are enough of them, of both kinds, to fit one. Returns the enabled config and its
    risk–coverage curve."""
    seen = [o for o in outcomes_ if o.features.get(SEEN_READ, 0.0) >= 1.0]
    try:
        perception = fit_policy(seen, PERCEPTION_FEATURES, l2)
    except ValueError:  # too few, or all of one kind: the main regression takes them
        perception = None
    routed = {id(o) for o in seen} if perception is not None else set()
    rest = [o for o in outcomes_ if id(o) not in routed]
    main = fit_policy(rest, features, l2)
    cfg = AbstentionConfig(enabled=True, threshold=0.0, bias=main.bias, weights=main.weights,
                           mean=main.mean, scale=main.scale, fitted_on=fitted_on,
                           perception=perception)
    conf = [cfg.p_correct(o.features) for o in outcomes_]
    curve = risk_coverage(conf, outcomes_)
    best = max(curve, key=lambda p: (round(p["truthfulness"], 9), p["coverage"]))
    cfg.threshold = min(1.0, best["threshold"])
    return cfg, curve


def cross_validate(outcomes_: Sequence[Outcome], folds: int = 5, l2: float = 1.0,
                   features: Sequence[str] = FEATURES, seed: int = 0,
                   fit_runs: Collection[int] | None = None) -> dict[tuple[int, str], int]:
    """Held-out scores of the policy: records are split into `folds` folds, and each fold's
    answers (in every pooled run at once: a record's answers are not independent) are decided
    by the policy fitted on the other folds' answers (of the runs in `fit_runs`; None: all).
    Returns the score (+1 / 0 / −1) of every answer by (run, record id). The in-sample curve
    of `calibrate` flatters its threshold; this is what to compare policies by."""
    ids = sorted({o.id for o in outcomes_})
    order = np.random.default_rng(seed).permutation(len(ids))
    fold = {ids[j]: i % folds for i, j in enumerate(order)}
    held: dict[tuple[int, str], int] = {}
    for k in range(folds):
        train = [o for o in outcomes_ if fold[o.id] != k
                 and (fit_runs is None or o.run in fit_runs)]
        policy, _ = calibrate(train, l2=l2, features=features)
        for o in outcomes_:
            if fold[o.id] == k:
                keep = policy.p_correct(o.features) >= policy.threshold
                held[(o.run, o.id)] = o.answer_score if keep else o.abstain_score
    return held


def run_curve(records: Sequence[Mapping[str, Any]], predictions: Mapping[str, Mapping[str, Any]],
              turns: Sequence[TurnResult], judge: Any) -> dict[str, Any] | None:
    """The risk–coverage curve of a finished run from the confidences its traces recorded
    (None when the model had no calibrated policy). Answers the policy replaced are scored as
    the model wrote them (`trace.raw_answer`), so the curve covers every threshold."""
    from pixsearch.eval.crag import score_crag

    outs = outcomes(records, predictions, turns)
    if not outs or any(o.p_correct is None for o in outs):
        return None
    raw = {rid: p["trace"].get("raw_answer") for rid, p in predictions.items()
           if p["trace"].get("abstained")}
    if raw:
        again = score_crag([r for r in records if str(r["id"]) in raw], raw, judge, ("all",))
        rescored = {t.record_id: t.score for t in again.turns if t.turn_index == 0}
        for o in outs:
            o.answer_score = rescored.get(o.id, o.answer_score)
    used = {p["trace"].get("abstain_threshold") for p in predictions.values()} - {None}
    return {"curve": risk_coverage([o.p_correct for o in outs], outs),
            "threshold": used.pop() if len(used) == 1 else None,
            "abstained": len(raw), "n": len(outs)}


def run_outcomes(run_dir: str | Path) -> tuple[list[Outcome], Any]:
    """The outcomes of a finished run on a validation split, and its `EvalConfig`. Refuses a
    run on a test split: the threshold must be chosen where it is not measured."""
    from pixsearch.eval.crag import score_crag
    from pixsearch.eval.runner import load_config, load_eval_records, make_judges, read_predictions

    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    split = cfg.split or Path(cfg.data).stem
    if "test" in split.lower():
        raise ValueError(f"{run_dir} is a run on split {split!r}: calibrate on a validation "
                         "run (e.g. --split val), so the test figures measure the policy")
    predictions = read_predictions(run_dir / "predictions.jsonl")
    records = [r for r in load_eval_records(cfg) if str(r["id"]) in predictions]
    judge, _ = make_judges(cfg)
    answers = {k: p["answer"] for k, p in predictions.items()}
    turns = score_crag(records, answers, judge, ("all",)).turns
    return outcomes(records, predictions, turns), cfg


def pooled_outcomes(run_dirs: str | Path | Sequence[str | Path]
                    ) -> tuple[list[Outcome], str, list[Any]]:
    """The outcomes of one or more finished validation runs of one model (`Outcome.run`: the
    run's position), a description of them, and their `EvalConfig`s."""
    dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    if not dirs:
        raise ValueError("calibration needs at least one run folder")
    pooled: list[Outcome] = []
    parts, configs = [], []
    for i, d in enumerate(dirs):
        outs, cfg = run_outcomes(d)
        pooled += [replace(o, run=i) for o in outs]
        parts.append(f"{d} (split {cfg.split}, mode {cfg.mode}, {len(outs)} records)")
        configs.append(cfg)
    models = {c.model for c in configs}
    if len(models) > 1:
        raise ValueError(f"the runs were answered by different models ({sorted(models)}); "
                         "a policy is fitted for one model's answers")
    return pooled, "; ".join(parts), configs


def calibrate_run(run_dirs: str | Path | Sequence[str | Path], l2: float = 1.0
                  ) -> tuple[AbstentionConfig, list[dict[str, float]], dict[str, Any]]:
    """Calibrate on one or more finished runs (`pixsearch eval run` on a validation split).

    Several runs pool their answers into one fit and one threshold: runs of the same model
    in other modes (`--mode whole_image`) show the policy routes that its own full-mode answers
    rarely take, and the policy is applied in every mode. Returns the policy, its in-sample
    risk–coverage curve, and the first run's config."""
    pooled, where, configs = pooled_outcomes(run_dirs)
    policy, curve = calibrate(pooled, fitted_on=where, l2=l2)
    return policy, curve, to_dict(configs[0])


def write_policy(checkpoint: str | Path, policy: AbstentionConfig) -> Path:
    """Store `policy` in a checkpoint's `config.json` (checked against `ModelConfig`)."""
    from pixsearch.model.checkpoint import CONFIG
    from pixsearch.model.config import ModelConfig

    path = Path(checkpoint) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{checkpoint} is not a checkpoint folder (no {CONFIG})")
    data = json.loads(path.read_text())
    data["abstention"] = to_dict(policy)
    ModelConfig.from_dict(data)  # refuse to write a config the model could not load
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
