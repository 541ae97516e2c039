"""5-fold cross-validated abstention policies on val runs: which features, and which runs to fit on.

    python docs/results/gemma-270m/policy_cv.py RUN_DIR [RUN_DIR ...] [--l2 1.0]

The first run is the model's own (full mode); the others are the same model's answers to the
same records in other modes (`--mode whole_image`). Folds are drawn over records, so a
record's answers in every mode are held out together (`pixsearch.eval.abstention.
cross_validate`, what `pixsearch eval calibrate` prints). Each fold's policy is fitted either on
the first run's answers alone (as `eval calibrate --run FIRST` does) or on all runs pooled
(`eval calibrate --run FIRST --run OTHER ...`), with the features of the first policy (the
first 13 of `FEATURES`) or with the region route's three as well (all of `FEATURES`).
Printed per run, over its held-out answers: truthfulness, accuracy, hallucination and "I don't
know" where the gold is "I don't know" (entities missing from the KB); then the same for ego
records. Each figure is the mean over `--draws` random fold assignments (truthfulness ± its
standard deviation across them): one draw moves truthfulness by about a point.
"""
import argparse
from pathlib import Path

import numpy as np

from pixsearch.abstention import FEATURES
from pixsearch.eval.abstention import cross_validate, pooled_outcomes
from pixsearch.eval.runner import load_eval_records

FEATURE_SETS = {"first 13": FEATURES[:13], "+ region route": FEATURES}


def metrics(pairs: list[tuple[int, int]]) -> np.ndarray:
    """(held-out score, what abstaining scores) of some answers → truthfulness, accuracy,
    hallucination (%) and how many answers with gold "I don't know" were right (abstained)."""
    sc = np.array([s for s, _ in pairs])
    idk = sum(s > 0 for s, a in pairs if a > 0)
    return np.array([100 * sc.mean(), 100 * (sc > 0).mean(), 100 * (sc < 0).mean(), idk])


def summary(draws: list[np.ndarray], n_idk: int) -> str:
    m, sd = np.mean(draws, 0), np.std(draws, 0)
    return (f"truth {m[0]:+5.1f}±{sd[0]:.1f} acc {m[1]:4.1f} halluc {m[2]:4.1f} "
            f"IDK {m[3]:.1f}/{n_idk}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--l2", type=float, default=1.0)
    ap.add_argument("--draws", type=int, default=10, help="random fold assignments averaged")
    args = ap.parse_args()
    outs, _, configs = pooled_outcomes(args.runs)
    ego = {str(r["id"]) for r in load_eval_records(configs[0]) if r.get("ego")}
    for pooled in ([False, True] if len(args.runs) > 1 else [False]):
        for label, names in FEATURE_SETS.items():
            # a policy fitted on the first run only still decides every run's answers
            helds = [cross_validate(outs, l2=args.l2, features=names, seed=seed,
                                    fit_runs=None if pooled else {0})
                     for seed in range(args.draws)]
            print(f"fit on {'all runs' if pooled else 'first run'}, {label}:")
            for i, run in enumerate(args.runs):
                line = []
                for ids in (None, ego):
                    mine = [o for o in outs if o.run == i and (ids is None or o.id in ids)]
                    draws = [metrics([(h[(i, o.id)], o.abstain_score) for o in mine])
                             for h in helds]
                    line.append(summary(draws, sum(o.abstain_score > 0 for o in mine)))
                print(f"  {run.name:20s} all: {line[0]} | ego: {line[1]}")


if __name__ == "__main__":
    main()
