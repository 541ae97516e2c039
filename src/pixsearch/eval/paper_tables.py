"""The paper's Tables 2–5 laid out from run folders of the published benchmarks.

- Table 2, knowledge-intensive VQA: InfoSeek, OVEN, TextVQA — relaxed EM and F1 (and, in a
  second table, each benchmark's official score: InfoSeek's and OVEN's harmonic means,
  TextVQA's VQA accuracy);
- Table 3, text-only QA: HotpotQA, NQ (open), PopQA, MuSiQue — relaxed EM and F1;
- Table 4, referring segmentation: RefCOCO val/testA/testB, RefCOCO+ val/testA/testB,
  RefCOCOg val/test — gIoU (cIoU beside it);
- Table 5, semantic segmentation: ADE20K and COCO-Stuff — mIoU.

Rows are methods (the run's mode — PixSearch, the baselines — prefixed by the model when the
runs hold several models), columns datasets (and splits); a cell is filled by the run that
read that dataset (split) with that method, "–" where no run did. `pixsearch eval report`
writes them (`paper_sections`); docs/reproduce.md lists the commands that fill every cell.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pixsearch.data.formats import FORMATS

VQA_COLUMNS = (("infoseek", "InfoSeek"), ("oven", "OVEN"), ("textvqa", "TextVQA"))
TEXT_QA_COLUMNS = (("hotpotqa", "HotpotQA"), ("nq-open", "NQ"), ("popqa", "PopQA"),
                   ("musique", "MuSiQue"))
REFSEG_COLUMNS = (("refcoco", "val"), ("refcoco", "testA"), ("refcoco", "testB"),
                  ("refcoco+", "val"), ("refcoco+", "testA"), ("refcoco+", "testB"),
                  ("refcocog", "val"), ("refcocog", "test"))
SEMSEG_COLUMNS = (("ade20k", "ADE20K"), ("coco-stuff", "COCO-Stuff"))
_NAMES = {"refcoco": "RefCOCO", "refcoco+": "RefCOCO+", "refcocog": "RefCOCOg"}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def is_benchmark_run(run: Any) -> bool:
    """Whether a run read one of the published benchmarks (Tables 2–5), not CRAG-MM or the
    project's records (Tables 1, 6, 7)."""
    return run.config.get("format") in FORMATS


def _method(run: Any, several_models: bool) -> str:
    from pixsearch.eval.report import MODE_NAMES  # report imports this module: no cycle

    cfg = run.config
    task = run.scores.get("task") or (run.scores.get("benchmark") or {}).get("task")
    name = "segment (no search)" if task in ("refseg", "semseg") else MODE_NAMES.get(
        cfg.get("mode"), cfg.get("mode"))
    return f"{cfg.get('model')} · {name}" if several_models else name


def _grid(runs: Sequence[Any], key: Callable[[Any], tuple | None]
          ) -> tuple[list[str], dict[tuple[str, tuple], Any]]:
    """(method labels in first-seen order, {(method, column key): run})."""
    several = len({r.config.get("model") for r in runs}) > 1
    methods: list[str] = []
    cells: dict[tuple[str, tuple], Any] = {}
    for r in runs:
        k = key(r)
        if k is None:
            continue
        m = _method(r, several)
        if m not in methods:
            methods.append(m)
        cells[(m, k)] = r
    return methods, cells


def _text(run: Any | None, metric: str) -> str:
    return "–" if run is None else _pct(run.scores["groups"]["all"]["text"][metric])


def _qa_table(runs: Sequence[Any], columns: Sequence[tuple[str, str]]) -> str:
    methods, cells = _grid(runs, lambda r: (r.config["format"],)
                           if r.config["format"] in dict(columns) else None)
    if not methods:
        return ""
    header = ["Method"] + [f"{label} {m}" for _, label in columns for m in ("rEM", "F1")]
    body = [[m] + [_text(cells.get((m, (fmt,))), metric) for fmt, _ in columns
                   for metric in ("relaxed_exact_match", "f1")] for m in methods]
    return _table(header, body)


def table2(runs: Sequence[Any]) -> str:
    """Table 2 (knowledge VQA) and the benchmarks' official scores, as markdown."""
    main = _qa_table(runs, VQA_COLUMNS)
    if not main:
        return ""
    methods, cells = _grid(runs, lambda r: (r.config["format"],)
                           if r.config["format"] in dict(VQA_COLUMNS) else None)

    def official(m: str) -> list[str]:
        def bench(fmt: str) -> dict:
            run = cells.get((m, (fmt,)))
            return (run.scores.get("benchmark") or {}) if run is not None else {}
        info, oven, tvqa = bench("infoseek"), bench("oven"), bench("textvqa")
        return [m, _pct((info.get("infoseek") or {}).get("final")),
                _pct(((info.get("infoseek") or {}).get("all") or {}).get("accuracy")),
                _pct((oven.get("oven") or {}).get("final")), _pct(tvqa.get("vqa_accuracy"))]

    second = _table(["Method", "InfoSeek HM", "InfoSeek all", "OVEN HM", "TextVQA VQA acc"],
                    [official(m) for m in methods])
    return main + "\n\nOfficial scores of each benchmark:\n\n" + second


def table3(runs: Sequence[Any]) -> str:
    """Table 3 (text-only QA), as markdown."""
    return _qa_table(runs, TEXT_QA_COLUMNS)


def table4(runs: Sequence[Any]) -> str:
    """Table 4 (referring segmentation, gIoU / cIoU), as markdown."""
    methods, cells = _grid(runs, lambda r: (r.config["format"], r.config["split"])
                           if r.config["format"] in _NAMES else None)
    if not methods:
        return ""

    def cell(run: Any | None) -> str:
        if run is None:
            return "–"
        seg = run.scores["segmentation"]
        return f"{_pct(seg['giou'])} / {_pct(seg['ciou'])}"

    header = ["Method"] + [f"{_NAMES[f]} {s}" for f, s in REFSEG_COLUMNS]
    return _table(header, [[m] + [cell(cells.get((m, c))) for c in REFSEG_COLUMNS]
                           for m in methods])


def table5(runs: Sequence[Any]) -> str:
    """Table 5 (semantic segmentation, mIoU), as markdown."""
    methods, cells = _grid(runs, lambda r: (r.config["format"],)
                           if r.config["format"] in dict(SEMSEG_COLUMNS) else None)
    if not methods:
        return ""
    body = [[m] + ["–" if (run := cells.get((m, (fmt,)))) is None
                   else _pct(run.scores["segmentation"]["miou"]) for fmt, _ in SEMSEG_COLUMNS]
            for m in methods]
    return _table(["Method"] + [f"{label} mIoU" for _, label in SEMSEG_COLUMNS], body)


TABLES = (("Table 2: knowledge-intensive VQA (relaxed EM / F1, %)", table2),
          ("Table 3: text-only QA (relaxed EM / F1, %)", table3),
          ("Table 4: referring segmentation (gIoU / cIoU, %)", table4),
          ("Table 5: semantic segmentation (mIoU, %)", table5))


def paper_sections(runs: Sequence[Any]) -> list[str]:
    """Markdown lines of every one of Tables 2–5 that the runs fill (none: no lines)."""
    out: list[str] = []
    bench = [r for r in runs if is_benchmark_run(r)]
    for title, make in TABLES:
        text = make(bench)
        if text:
            out += [f"## {title}", "", text, ""]
    return out


def segmentation_summary(scores: Mapping[str, Any]) -> str:
    """One line for the CLI: records and the segmentation metrics of a run."""
    seg = scores["segmentation"]
    if scores.get("task") == "refseg":
        return (f"{scores['n_records']} expressions, gIoU {_pct(seg.get('giou'))}%, "
                f"cIoU {_pct(seg.get('ciou'))}%")
    return (f"{scores['n_records']} images, mIoU {_pct(seg.get('miou'))}%, pixel accuracy "
            f"{_pct(seg.get('pixel_accuracy'))}%")
