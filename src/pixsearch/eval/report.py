"""Markdown reports: one run's metrics, and several runs laid out like the paper's tables.

- `run_report(scores)`: the run's settings, every metric per group, the figures of the run
  (`pixsearch.eval.figures`, listed in `scores["figures"]`), abstention and error analysis;
  one function per section, so a section is added without touching the others.
- `combine_runs(run_dirs, out)`: Table 1 (rows = modes: full, no search, text question, whole
  image, pipeline) with its grouped-bar figure, Table 6 (rows = allowed query types,
  PixSearch mode), Table 7 (rows = search budget B), each with CRAG-MM accuracy / missing /
  hallucination / truthfulness for overall, egocentric and non-egocentric images; a table of
  every run's other metrics; and the accuracy-vs-budget plot when runs differ in B.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixsearch.eval.plots import budget_label, plot_budget_curve, run_caption
from pixsearch.provenance import write_provenance
from pixsearch.types import MODALITIES

MODE_NAMES = {"full": "PixSearch", "no_search": "No search", "text_question": "Text question",
              "whole_image": "Whole image", "pipeline": "Modular pipeline"}
_CRAG_COLS = (("accuracy", "Acc"), ("missing_rate", "Miss"), ("hallucination_rate", "Hall"),
              ("truthfulness", "Truth"))
_GROUPS = (("all", "Overall"), ("ego", "Ego"), ("non_ego", "Non-ego"))


@dataclass
class Run:
    """A finished run folder: its name, settings and scores."""

    name: str
    config: dict[str, Any]
    scores: dict[str, Any]


def decode_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The decode settings of a run's config: its `decode` section (runs saved before the
    decode config was nested kept `max_searches`, `modalities`, `top_k` at the top level)."""
    return config.get("decode", config)


def load_run(run_dir: str | Path) -> Run:
    """Read `scores.json` (which embeds the run's config) from a run folder."""
    path = Path(run_dir) / "scores.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} has no scores.json; run `pixsearch eval run` first")
    scores = json.loads(path.read_text())
    return Run(Path(run_dir).name, scores["config"], scores)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def crag_table(label: str, rows: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """A paper-style table: one row per (label, scores), CRAG-MM columns per image group."""
    header = [label] + [f"{g} {c}" for _, g in _GROUPS for _, c in _CRAG_COLS]
    body = []
    for name, scores in rows:
        cells = [name]
        for group, _ in _GROUPS:
            crag = scores["groups"].get(group, {}).get("crag")
            cells += [_pct(crag[k]) if crag else "–" for k, _ in _CRAG_COLS]
        body.append(cells)
    return _table(header, body)


def _metric_row(name: str, g: dict[str, Any]) -> list[str]:
    ret, seg = g["retrieval"]["all"], g["segmentation"]
    # recall at the run's own k (runs combined in one table may differ in top-k)
    at_k = next((v for key, v in ret.items() if key.startswith("recall@") and key != "recall@1"),
                ret["recall@1"])
    return [name, str(g["n"]), _pct(g["crag"]["accuracy"]), _pct(g["crag"]["truthfulness"]),
            _pct(g["text"]["exact_match"]), _pct(g["text"]["relaxed_exact_match"]),
            _pct(g["text"]["f1"]), _pct(seg["giou"]), _pct(seg["ciou"]),
            _pct(ret["recall@1"] if ret["n"] else None),
            _pct(at_k if ret["n"] else None),
            _pct(g["search_decision"]["f1"]), f"{g['searches']['per_sample']:.2f}",
            " / ".join(_pct(g["searches"]["shares"][m]) for m in MODALITIES)]


def _metric_header(label: str) -> list[str]:
    return [label, "n", "Acc", "Truth", "EM", "rEM", "F1", "gIoU", "cIoU", "R@1", "R@k",
            "Search F1", "Searches", "region / image / text %"]


def run_report(scores: dict[str, Any]) -> str:
    """The markdown report of one run."""
    cfg = scores["config"]
    dec = decode_settings(cfg)
    k = "model" if dec["top_k"] is None else dec["top_k"]
    lines = [f"# Evaluation: {MODE_NAMES.get(cfg['mode'], cfg['mode'])}", "",
             f"- data: `{cfg['data']}` (split {cfg['split']}), model `{cfg['model']}`, "
             f"index `{cfg['index']}`",
             f"- mode {cfg['mode']}, budget B={budget_label(dec['max_searches'])}, "
             f"query types {', '.join(dec['modalities'])}, top-k {k}, judge {cfg['judge']}",
             f"- records scored: {scores['n_records']}", "", "## CRAG-MM", "",
             crag_table("Run", [(cfg["mode"], scores)]), "", "## All metrics by group", "",
             _table(_metric_header("Group"),
                    [_metric_row(n, g) for n, g in scores["groups"].items()]), ""]
    if "judge_agreement" in scores:
        a = scores["judge_agreement"]
        lines += ["## Judge agreement (LLM vs rule judge)", "",
                  "- " + ", ".join(f"{key} {val:.3f}" for key, val in a.items()), ""]
    lines += _figures_section(scores) + _abstention_section(scores) + _error_section(scores)
    return "\n".join(lines)


# figures of `pixsearch.eval.figures` shown in the figures section, with what each one shows
# (the risk–coverage curve and the worst masks are shown in their own sections)
FIGURE_CAPTIONS = {
    "crag_bars": "Table 1 as bars: accuracy, missing and hallucination rates (%), all / "
                 "egocentric / non-egocentric images.",
    "question_types": "Accuracy and truthfulness (%) per question type.",
    "query_confusion": "Query type chosen by the model vs the gold query type, per search "
                       "(\"none\": a search missing or not needed).",
    "recall_at_k": "Recall@1 and recall@k (%) of the gold entity per query type.",
    "iou_histogram": "IoU of each first region mask with the gold mask of its entity.",
    "mask_gallery": "Predicted (red) vs gold (green) masks of the best, median and worst "
                    "region searches by IoU.",
    "search_patterns": "Searches per sample and the share of each query type, egocentric vs "
                       "non-egocentric (the paper's Fig. 4).",
}


def _figures_section(scores: dict[str, Any]) -> list[str]:
    figures = scores.get("figures") or {}
    shown = [(name, figures[name]) for name in FIGURE_CAPTIONS if name in figures]
    if not shown:
        return []
    lines = ["## Figures", ""]
    for name, file in shown:
        lines += [f"**{FIGURE_CAPTIONS[name]}**", "", f"![{name}]({file})", ""]
    return lines


def _abstention_section(scores: dict[str, Any]) -> list[str]:
    rc = scores.get("risk_coverage")
    if rc is None:
        return ["## Abstention", "", "The model has no calibrated abstention policy "
                "(`pixsearch eval calibrate`), so there is no risk–coverage curve.", ""]
    t = rc.get("threshold")
    at = (min(rc["curve"], key=lambda p: abs(p["threshold"] - t)) if t is not None
          else rc["curve"][0])
    return ["## Abstention (risk–coverage)", "",
            f"- the policy abstained on {rc['abstained']} of {rc['n']} answers"
            + (f" (threshold {t:.3f})" if t is not None else " (policy off)"),
            f"- at that point: coverage {_pct(at['coverage'])}%, risk {_pct(at['risk'])}%, "
            f"truthfulness {_pct(at['truthfulness'])}%",
            "", "![risk–coverage](risk_coverage.png)", ""]


def _error_section(scores: dict[str, Any]) -> list[str]:
    from pixsearch.eval.errors import error_table

    if "errors" not in scores:
        return []
    lines = ["## Error analysis", "", "One category per record (first turn), in the order an "
             "answer can fail; see `pixsearch/eval/errors.py` for the rules.", "",
             error_table(scores["errors"]), ""]
    if scores["errors"].get("overlays"):
        lines += ["Worst region masks (gold green, predicted red):", "",
                  f"![worst region masks]({scores['errors']['overlays']})", ""]
    return lines


def _budget(run: Run) -> int | None:
    return decode_settings(run.config)["max_searches"]


def _modalities(run: Run) -> tuple[str, ...]:
    return tuple(decode_settings(run.config)["modalities"])


def _is_default(run: Run) -> bool:
    return _modalities(run) == MODALITIES


def _table1(runs: Sequence[Run]) -> list[tuple[str, dict]]:
    order = list(MODE_NAMES)
    rows = [r for r in runs if _is_default(r) and
            (r.config["mode"] != "full" or _budget(r) is None)]
    rows.sort(key=lambda r: order.index(r.config["mode"]))
    return [(MODE_NAMES[r.config["mode"]], r.scores) for r in rows]


def _table6(runs: Sequence[Run]) -> list[tuple[str, dict]]:
    rows = [r for r in runs if r.config["mode"] == "full" and _budget(r) is None]
    rows.sort(key=lambda r: -len(_modalities(r)))
    return [(" + ".join(_modalities(r)), r.scores) for r in rows]


def _table7(runs: Sequence[Run]) -> list[tuple[int | None, dict]]:
    rows = [r for r in runs if r.config["mode"] == "full" and _is_default(r)]
    rows.sort(key=lambda r: float("inf") if _budget(r) is None else _budget(r))
    return [(_budget(r), r.scores) for r in rows]


def combine_runs(run_dirs: Sequence[str | Path], out: str | Path) -> str:
    """Write `report.md` (Tables 1, 6, 7, the benchmarks' Tables 2–5 and all metrics) and
    `budget_curve.png` into `out`;
    return the markdown. Tables that no combination of runs fills are left out."""
    from pixsearch.eval.paper_tables import is_benchmark_run, paper_sections

    every = [load_run(d) for d in run_dirs]
    # Tables 1, 6, 7 are CRAG-MM's / the project's records; the published benchmarks fill
    # Tables 2–5 (`paper_tables.py`)
    runs = [r for r in every if not is_benchmark_run(r)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parts = ["# PixSearch evaluation report", "",
             f"Runs: {', '.join(r.name for r in every)}. Numbers are percentages.", ""]
    t1, t6, t7 = _table1(runs), _table6(runs), _table7(runs)
    caption = _report_caption(runs, out)
    if t1:
        parts += ["## Table 1: PixSearch vs baselines (CRAG-MM)", "", crag_table("Method", t1), ""]
        parts += _table1_figure(t1, out, caption)
    if len({label for label, _ in t6}) > 1:
        parts += ["## Table 6: allowed query types at inference", "",
                  crag_table("Query types", t6), ""]
    if len({b for b, _ in t7}) > 1:
        parts += ["## Table 7: search budget B", "",
                  crag_table("B", [(budget_label(b), s) for b, s in t7]), "",
                  "![accuracy vs budget](budget_curve.png)", ""]
        plot_budget_curve(t7, out / "budget_curve.png", caption)
    parts += paper_sections(every)
    answered = [r for r in every if "groups" in r.scores]  # segmentation runs have no answers
    parts += ["## All metrics (all records; R@k at each run's top-k)", "",
              _table(_metric_header("Run"),
                     [_metric_row(r.name, r.scores["groups"]["all"]) for r in answered]), ""]
    text = "\n".join(parts)
    (out / "report.md").write_text(text)
    write_provenance(out, "report", runs=[str(d) for d in run_dirs])
    return text


def _report_caption(runs: Sequence[Run], out: Path) -> str:
    """"model M · split S · run R" of a combined report (several values joined by "+")."""
    def values(key: str) -> str:
        return "+".join(dict.fromkeys(Path(str(r.config.get(key))).name for r in runs))

    return run_caption({"model": values("model"), "split": values("split")}, out.name)


def _table1_figure(rows: Sequence[tuple[str, dict]], out: Path, caption: str) -> list[str]:
    from pixsearch.eval.figures import plot_crag_bars

    plot_crag_bars(rows, out / "table1_bars.png", caption)
    return ["![Table 1 as bars](table1_bars.png)", ""]
