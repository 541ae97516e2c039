"""5-fold cross-validated truthfulness of the abstention policy on a val run, with the features
of the first shipped policy (the first 13 of `FEATURES`) and with the region route's own three.

    python docs/results/gemma-270m/policy_cv.py RUN_DIR [L2]
"""
import sys
from pathlib import Path

import numpy as np

from pixsearch.abstention import FEATURES
from pixsearch.eval import abstention as E
from pixsearch.eval.crag import score_crag
from pixsearch.eval.runner import load_config, load_eval_records, make_judges, read_predictions


def outcomes(run: str) -> list:
    cfg = load_config(Path(run))
    preds = read_predictions(Path(run) / "predictions.jsonl")
    records = [r for r in load_eval_records(cfg) if str(r["id"]) in preds]
    judge, _ = make_judges(cfg)
    turns = score_crag(records, {k: p["answer"] for k, p in preds.items()}, judge,
                       ("all",)).turns
    return E.outcomes(records, preds, turns)


def cv_truthfulness(outs: list, names: tuple, l2: float, folds: int = 5) -> float:
    """Mean score of held-out answers, each fold's policy fitted on the other folds."""
    keep = [E.Outcome(o.id, {f: o.features[f] for f in names}, o.answer_score, o.abstain_score)
            for o in outs]
    idx = np.random.default_rng(0).permutation(len(keep))
    scores = []
    for part in np.array_split(idx, folds):
        held = set(part.tolist())
        E.FEATURES = names  # the fit reads the module's feature list
        policy, _ = E.calibrate([keep[i] for i in idx if i not in held], l2=l2)
        scores += [o.answer_score if policy.p_correct(o.features) >= policy.threshold
                   else o.abstain_score for o in (keep[i] for i in part)]
    E.FEATURES = FEATURES
    return 100 * float(np.mean(scores))


if __name__ == "__main__":
    outs = outcomes(sys.argv[1])
    l2 = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    for label, names in (("first policy's 13 features", FEATURES[:13]),
                         ("+ region route", FEATURES)):
        print(f"{label}: CV truthfulness {cv_truthfulness(outs, names, l2):.1f} "
              f"({len(outs)} answers)")
