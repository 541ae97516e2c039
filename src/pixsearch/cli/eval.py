"""`pixsearch eval`: run an evaluation, combine runs into the paper's tables, or sweep.

    pixsearch eval run --data WORLD_DIR|FILE.jsonl --split test --model tiny --mode full \\
        [--max-searches B] [--modalities region,text] [--top-k K] [--limit N] \\
        [--workers N | --batch N] \\
        [--judge rule|openai|none --judge-url URL --judge-model NAME] --out RUN_DIR \\
        [decode.temperature=0.7 decode.evidence_max_words=60 ...]
    pixsearch eval run --format infoseek|oven|textvqa|hotpotqa|nq-open|popqa|musique|refcoco|
        refcoco+|refcocog|ade20k|coco-stuff --data FILE|DIR [--images DIR] ...  (docs/benchmarks.md)
    pixsearch eval report RUN_DIR... --out DIR
    pixsearch eval sweep --data ... --model ... --out DIR   (modes, budgets, query types)
    pixsearch eval calibrate --run VAL_RUN_DIR [--run VAL_RUN_DIR ...] [--model CHECKPOINT_DIR | --dry-run]
    pixsearch eval apply-policy --run RUN_DIR|SWEEP_DIR --model CHECKPOINT_DIR --out DIR
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from pixsearch.cli.options import (
    add_decode_flags,
    add_device_flag,
    decode_flags,
    search_budget,
    split_model_overrides,
)
from pixsearch.config import apply_overrides, from_dict, load, merge, to_dict
from pixsearch.data.formats import FORMATS
from pixsearch.defaults import DEFAULT_MODEL
from pixsearch.eval.modes import MODES
from pixsearch.eval.runner import EvalConfig, load_config, run_eval
from pixsearch.types import MODALITIES

SWEEP_BUDGETS = (0, 1, 2, 3, 4, None)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, help="EvalConfig YAML")
    p.add_argument("--data", help="records JSONL, or a world folder with <split>.jsonl")
    p.add_argument("--split", help="split of a world folder (default test)")
    p.add_argument("--format", choices=("auto", "pixsearch", "crag-mm", *FORMATS),
                   help="records format, or a published benchmark (docs/benchmarks.md)")
    p.add_argument("--images", help="image folder of a benchmark that names images by id "
                                    "(InfoSeek, OVEN, TextVQA, RefCOCO*)")
    p.add_argument("--model", help=f"model preset or checkpoint folder (default {DEFAULT_MODEL})")
    p.add_argument("--index", help="knowledge-index folder or search-server URL "
                                   "(default: <world>/index)")
    add_decode_flags(p, ("--max-new-tokens", "--top-k", "--temperature"))
    p.add_argument("--limit", type=int, help="evaluate the first N records only")
    add_device_flag(p)
    p.add_argument("--workers", type=int, help="parallel workers (processes)")
    p.add_argument("--batch", type=int, help="records decoded together in this process "
                                             "(continuous batching; default 1)")
    p.add_argument("--ray", action="store_true", default=None,
                   help="run workers as Ray actors (pip install 'pixsearch[distributed]')")
    p.add_argument("--judge", choices=("rule", "openai", "none"))
    p.add_argument("--judge-url", help="OpenAI-compatible endpoint of the LLM judge")
    p.add_argument("--judge-model", help="model name of the LLM judge")
    p.add_argument("--pipeline-select", choices=("saliency", "retrieval"))
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("overrides", nargs="*", help="EvalConfig key=value overrides, e.g. "
                                                "decode.temperature=0.7 limit=20; model.key=value "
                                                "ones are the model's (model.lm.pretrained=DIR)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a model: baselines, ablations, reports, plots")
    esub = p.add_subparsers(dest="eval_cmd", required=True, metavar="CMD")
    r = esub.add_parser("run", help="answer, score and report one evaluation run")
    _common(r)
    r.add_argument("--mode", choices=MODES)
    add_decode_flags(r, ("--max-searches", "--modalities"))
    r.set_defaults(func=run)
    rep = esub.add_parser("report", help="combine run folders into the paper's tables")
    rep.add_argument("runs", nargs="+", type=Path, help="run folders (with scores.json)")
    rep.add_argument("--out", required=True, type=Path)
    rep.set_defaults(func=report)
    s = esub.add_parser("sweep", help="run the 5 modes, budgets 0-4 and unbounded, query-type "
                                      "restrictions into sub-folders, then the report")
    _common(s)
    s.add_argument("--budgets", default=",".join(
        "unbounded" if b is None else str(b) for b in SWEEP_BUDGETS))
    s.set_defaults(func=sweep)
    c = esub.add_parser("calibrate", help="fit the abstention policy on a validation run and "
                                          "save it with the model")
    c.add_argument("--run", required=True, type=Path, action="append",
                   help="run folder of `eval run` on val; repeat it to pool runs of the same "
                        "model in several modes into one fit (calibration.json goes to the first)")
    c.add_argument("--model", type=Path, default=None,
                   help="checkpoint folder to write the policy into (default: the checkpoint "
                        "the run used)")
    c.add_argument("--l2", type=float, default=1.0, help="L2 strength of the logistic fit")
    c.add_argument("--folds", type=int, default=5,
                   help="also print the held-out truthfulness of k-fold cross-validation over "
                        "records (0: skip)")
    c.add_argument("--dry-run", action="store_true", help="fit and report; write no model")
    c.set_defaults(func=calibrate)
    a = esub.add_parser("apply-policy", help="re-decide a finished run's (or sweep's) "
                                             "abstentions with a checkpoint's policy, no decoding")
    a.add_argument("--run", required=True, type=Path, help="run folder or sweep folder")
    a.add_argument("--model", required=True, type=Path,
                   help="checkpoint folder whose abstention policy decides (same weights)")
    a.add_argument("--out", required=True, type=Path, help="folder of the replayed run(s)")
    a.set_defaults(func=apply_policy)


_FLAGS = ("data", "split", "format", "images", "model", "index", "limit", "workers", "batch",
          "ray", "judge", "judge_url", "judge_model", "pipeline_select", "progress", "mode",
          "device")


def eval_config(args: argparse.Namespace) -> EvalConfig:
    """EvalConfig: YAML ← flags (decode flags write into `decode`) ← key=value overrides."""
    flags = {k: getattr(args, k) for k in _FLAGS if getattr(args, k, None) is not None}
    flags["decode"] = decode_flags(args)
    model_overrides, overrides = split_model_overrides(list(args.overrides))
    if model_overrides:
        flags["model_overrides"] = model_overrides
    base = to_dict(load(EvalConfig, args.config)) if args.config else {}
    data = apply_overrides(EvalConfig, merge(base, flags), overrides)
    data["out"] = str(args.out)
    cfg = from_dict(EvalConfig, data)
    if not cfg.data:
        raise SystemExit("pixsearch eval: --data is required (a JSONL file or a world folder)")
    return cfg


def _summary(cfg: EvalConfig, scores: dict) -> str:
    if "segmentation" in scores:  # a refseg / semseg run has masks, no answers
        from pixsearch.eval.paper_tables import segmentation_summary

        return f"{cfg.out}: {segmentation_summary(scores)}"
    g = scores["groups"]["all"]
    c = g["crag"]
    return (f"{cfg.out}: {scores['n_records']} records, accuracy {100 * c['accuracy']:.1f}%, "
            f"hallucination {100 * c['hallucination_rate']:.1f}%, truthfulness "
            f"{100 * c['truthfulness']:.1f}%, {g['searches']['per_sample']:.2f} searches/sample")


def run(args: argparse.Namespace) -> int:
    cfg = eval_config(args)
    scores = run_eval(cfg)
    print(_summary(cfg, scores))
    print(f"report: {Path(cfg.out) / 'report.md'}")
    return 0


def report(args: argparse.Namespace) -> int:
    from pixsearch.eval.report import combine_runs

    combine_runs(args.runs, args.out)
    print(f"report: {args.out / 'report.md'}")
    return 0


def sweep_configs(cfg: EvalConfig, budgets: tuple[int | None, ...]) -> dict[str, EvalConfig]:
    """The runs of a sweep by sub-folder name: every mode, every budget of the full mode, and
    the full mode without each query type."""
    root = Path(cfg.out)
    full = replace(cfg, mode="full",
                   decode=replace(cfg.decode, max_searches=None, modalities=MODALITIES))

    def with_decode(**changes) -> EvalConfig:
        return replace(full, decode=replace(full.decode, **changes))

    runs = {f"mode_{m}": replace(full, mode=m) for m in MODES}
    for b in budgets:
        if b is not None:  # the unbounded budget is mode_full itself
            runs[f"budget_{b}"] = with_decode(max_searches=b)
    for m in MODALITIES:
        runs[f"no_{m}"] = with_decode(modalities=tuple(x for x in MODALITIES if x != m))
    return {name: replace(c, out=str(root / name)) for name, c in runs.items()}


def sweep(args: argparse.Namespace) -> int:
    from pixsearch.eval.report import combine_runs

    cfg = eval_config(args)
    budgets = tuple(search_budget(b) for b in args.budgets.split(",") if b)
    runs = sweep_configs(cfg, budgets)
    for name, sub in runs.items():
        print(f"[sweep] {name}")
        print(_summary(sub, run_eval(sub)))
    combine_runs([c.out for c in runs.values()], Path(cfg.out) / "report")
    print(f"report: {Path(cfg.out) / 'report' / 'report.md'}")
    return 0


def calibrate(args: argparse.Namespace) -> int:
    from pixsearch.eval import abstention as A
    from pixsearch.eval.plots import plot_risk_coverage, run_caption
    from pixsearch.predictor import model_path

    outs, where, configs = A.pooled_outcomes(args.run)
    policy, curve = A.calibrate(outs, fitted_on=where, l2=args.l2)
    cfg = to_dict(configs[0])
    at = min(curve, key=lambda p: abs(p["threshold"] - policy.threshold))
    never = next(p for p in curve if p["threshold"] == 0.0)
    first = args.run[0]
    (first / "calibration.json").write_text(json.dumps(
        {"policy": to_dict(policy), "curve": curve}, indent=2))
    names = " + ".join(r.name for r in args.run)
    plot_risk_coverage(curve, first / "risk_coverage_calibration.png", policy.threshold,
                       run_caption(cfg, names) + " (in-sample calibration)")
    print(f"threshold {policy.threshold:.3f} on {policy.fitted_on}: truthfulness "
          f"{100 * never['truthfulness']:.1f}% → {100 * at['truthfulness']:.1f}%, coverage "
          f"{100 * at['coverage']:.1f}% (in-sample; measure it on test)")
    read = sum(o.features.get(A.SEEN_READ, 0.0) >= 1.0 for o in outs)
    print(f"answers read off a perception line: {read} of {len(outs)}, decided by "
          + ("a regression of their own" if policy.perception else "the same regression"))
    if args.folds > 1:
        _print_held_out(outs, args)
    if args.dry_run:
        return 0
    target = args.model or model_path(cfg["model"])
    print(f"policy written to {A.write_policy(target, policy)}")
    return 0


def _print_held_out(outs: list, args: argparse.Namespace) -> None:
    from pixsearch.eval.abstention import cross_validate

    try:
        held = cross_validate(outs, folds=args.folds, l2=args.l2)
    except ValueError as e:  # a fold too small to fit: the policy itself is still written
        print(f"held out: not measured ({e})")
        return
    per_run = [[v for (r, _), v in held.items() if r == i] for i in range(len(args.run))]
    print(f"held out ({args.folds}-fold over records), truthfulness: " + ", ".join(
        f"{d.name} {100 * sum(v) / len(v):+.1f}%" for d, v in zip(args.run, per_run)))


def apply_policy(args: argparse.Namespace) -> int:
    from pixsearch.eval.policy_replay import replay

    for out in replay(args.run, args.model, args.out):
        scores = json.loads((out / "scores.json").read_text())
        print(_summary(load_config(out), scores))
    return 0
