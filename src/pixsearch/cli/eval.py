"""`pixsearch eval`: run an evaluation, combine runs into the paper's tables, or sweep.

    pixsearch eval run --data WORLD_DIR|FILE.jsonl --split test --model tiny --mode full \\
        [--max-searches B] [--modalities region,text] [--top-k K] [--limit N] [--workers N] \\
        [--judge rule|openai|none --judge-url URL --judge-model NAME] --out RUN_DIR
    pixsearch eval report RUN_DIR... --out DIR
    pixsearch eval sweep --data ... --model ... --out DIR   (modes, budgets, query types)
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from pixsearch.config import from_dict, load, merge, parse_overrides, to_dict
from pixsearch.eval.modes import MODES
from pixsearch.eval.runner import EvalConfig, run_eval

SWEEP_BUDGETS = (0, 1, 2, 3, 4, None)


def _budget(text: str) -> int | None:
    if text.lower() in ("none", "unbounded", "inf", "∞"):
        return None
    return int(text)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, help="EvalConfig YAML")
    p.add_argument("--data", help="records JSONL, or a world folder with <split>.jsonl")
    p.add_argument("--split", help="split of a world folder (default test)")
    p.add_argument("--format", choices=("auto", "pixsearch", "crag-mm"))
    p.add_argument("--model", help="model preset or checkpoint folder (default mini)")
    p.add_argument("--index", help="knowledge-index folder or search-server URL "
                                   "(default: <world>/index)")
    p.add_argument("--top-k", type=int, help="hits per search (and k of recall@k)")
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--limit", type=int, help="evaluate the first N records only")
    p.add_argument("--workers", type=int, help="parallel workers (processes)")
    p.add_argument("--ray", action="store_true", default=None,
                   help="run workers as Ray actors (pip install 'pixsearch[distributed]')")
    p.add_argument("--judge", choices=("rule", "openai", "none"))
    p.add_argument("--judge-url", help="OpenAI-compatible endpoint of the LLM judge")
    p.add_argument("--judge-model", help="model name of the LLM judge")
    p.add_argument("--pipeline-select", choices=("saliency", "retrieval"))
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("overrides", nargs="*", help="EvalConfig key=value overrides")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a model: baselines, ablations, reports, plots")
    esub = p.add_subparsers(dest="eval_cmd", required=True, metavar="CMD")
    r = esub.add_parser("run", help="answer, score and report one evaluation run")
    _common(r)
    r.add_argument("--mode", choices=MODES)
    r.add_argument("--max-searches", type=_budget, help="search budget B (or 'unbounded')")
    r.add_argument("--modalities", help="allowed query types, e.g. region,text")
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


_FLAGS = ("data", "split", "format", "model", "index", "top_k", "max_new_tokens", "limit",
          "workers", "ray", "judge", "judge_url", "judge_model", "pipeline_select", "progress",
          "mode", "modalities")


def eval_config(args: argparse.Namespace) -> EvalConfig:
    """EvalConfig: YAML ← flags ← key=value overrides."""
    flags = {k: getattr(args, k) for k in _FLAGS if getattr(args, k, None) is not None}
    if "max_searches" in vars(args) and args.max_searches is not None:
        flags["max_searches"] = args.max_searches
    base = to_dict(load(EvalConfig, args.config)) if args.config else {}
    data = merge(merge(base, flags), parse_overrides(args.overrides))
    data["out"] = str(args.out)
    cfg = from_dict(EvalConfig, data)
    if not cfg.data:
        raise SystemExit("pixsearch eval: --data is required (a JSONL file or a world folder)")
    return cfg


def _summary(cfg: EvalConfig, scores: dict) -> str:
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
    full = replace(cfg, mode="full", max_searches=None, modalities=("region", "image", "text"))
    runs = {f"mode_{m}": replace(full, mode=m) for m in MODES}
    for b in budgets:
        if b is not None:  # the unbounded budget is mode_full itself
            runs[f"budget_{b}"] = replace(full, max_searches=b)
    for m in full.modalities:
        runs[f"no_{m}"] = replace(full, modalities=tuple(x for x in full.modalities if x != m))
    return {name: replace(c, out=str(root / name)) for name, c in runs.items()}


def sweep(args: argparse.Namespace) -> int:
    from pixsearch.eval.report import combine_runs

    cfg = eval_config(args)
    budgets = tuple(_budget(b) for b in args.budgets.split(",") if b)
    runs = sweep_configs(cfg, budgets)
    for name, sub in runs.items():
        print(f"[sweep] {name}")
        print(_summary(sub, run_eval(sub)))
    combine_runs([c.out for c in runs.values()], Path(cfg.out) / "report")
    print(f"report: {Path(cfg.out) / 'report' / 'report.md'}")
    return 0
