"""5-fold cross-validated abstention policies on val runs: which features, and which runs to fit on.

    python docs/results/gemma-270m/policy_cv.py RUN_DIR [RUN_DIR ...] [--l2 1.0]

The first run is the model's own (full mode); the others are the same model's answers to the
same records in other modes (`--mode whole_image`). Folds are drawn over record ids, so a
record's answers in every mode are held out together. Each fold's policy is fitted either on
the first run's answers alone (as `eval calibrate --run FIRST` does) or on all runs pooled
(`eval calibrate --run FIRST --run OTHER ...`), with the features of the first policy (the
first 13 of `FEATURES`) or with the region route's three as well (all of `FEATURES`).
Printed per run and held-out answers: truthfulness, accuracy, hallucination and the share of
"I don't know" where the gold is "I don't know" (entities missing from the KB), and for ego
records the same.
"""
import argparse
from pathlib import Path

import numpy as np

from pixsearch.abstention import FEATURES
from pixsearch.eval import abstention as E
from pixsearch.eval.crag import score_crag
from pixsearch.eval.runner import load_config, load_eval_records, make_judges, read_predictions

FEATURE_SETS = {"first 13": FEATURES[:13], "+ region route": FEATURES}


def outcomes(run: Path) -> tuple[list, set[str]]:
    """The run's outcomes and the ids of its ego records."""
    cfg = load_config(run)
    preds = read_predictions(run / "predictions.jsonl")
    records = [r for r in load_eval_records(cfg) if str(r["id"]) in preds]
    judge, _ = make_judges(cfg)
    turns = score_crag(records, {k: p["answer"] for k, p in preds.items()}, judge,
                       ("all",)).turns
    return E.outcomes(records, preds, turns), {str(r["id"]) for r in records if r.get("ego")}


def held_out_scores(runs: list[list], names: tuple, pooled: bool, l2: float, folds: int = 5
                    ) -> list[dict[str, int]]:
    """Per run, id → held-out score (+1 / 0 / −1) and id → abstained."""
    keep = [[E.Outcome(o.id, {f: o.features[f] for f in names}, o.answer_score, o.abstain_score)
             for o in outs] for outs in runs]
    ids = sorted({o.id for o in keep[0]})
    perm = np.random.default_rng(0).permutation(len(ids))
    scores: list[dict[str, int]] = [{} for _ in runs]
    abst: list[dict[str, bool]] = [{} for _ in runs]
    E.FEATURES = names  # the fit reads the module's feature list
    try:
        for part in np.array_split(perm, folds):
            held = {ids[i] for i in part}
            fit_on = keep if pooled else keep[:1]
            train = [o for outs in fit_on for o in outs if o.id not in held]
            policy, _ = E.calibrate(train, l2=l2)
            for r, outs in enumerate(keep):
                for o in outs:
                    if o.id in held:
                        ok = policy.p_correct(o.features) >= policy.threshold
                        scores[r][o.id] = o.answer_score if ok else o.abstain_score
                        abst[r][o.id] = not ok
    finally:
        E.FEATURES = FEATURES
    return [{"score": s, "abstained": a} for s, a in zip(scores, abst)]


def summary(res: dict, outs: list, ids: set[str] | None) -> str:
    sel = [o for o in outs if ids is None or o.id in ids]
    sc = [res["score"][o.id] for o in sel]
    missing = [o for o in sel if o.abstain_score > 0]
    idk = sum(res["abstained"][o.id] or o.answer_score > 0 for o in missing)
    return (f"truth {100 * np.mean(sc):+5.1f} acc {100 * np.mean([s > 0 for s in sc]):4.1f} "
            f"halluc {100 * np.mean([s < 0 for s in sc]):4.1f} "
            f"IDK {idk}/{len(missing)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--l2", type=float, default=1.0)
    args = ap.parse_args()
    loaded = [outcomes(r) for r in args.runs]
    runs, ego = [o for o, _ in loaded], loaded[0][1]
    fits = [False, True] if len(runs) > 1 else [False]
    for pooled in fits:
        for label, names in FEATURE_SETS.items():
            res = held_out_scores(runs, names, pooled, args.l2)
            print(f"fit on {'all runs' if pooled else 'first run'}, {label}:")
            for run, r, outs in zip(args.runs, res, runs):
                print(f"  {run.name:24s} all: {summary(r, outs, None)} | "
                      f"ego: {summary(r, outs, ego)}")


if __name__ == "__main__":
    main()
