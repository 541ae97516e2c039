"""The figures of one evaluation run, as a reader of the paper expects to see them.

`write_run_figures(scores, records, predictions, out)` writes every PNG of a run folder and
returns {figure name: file name} (stored in `scores["figures"]`, linked from `report.md`):

| name | file | what |
| --- | --- | --- |
| `crag_bars` | `crag_bars.png` | Table 1 as grouped bars: accuracy / missing / hallucination, all / ego / non-ego |
| `question_types` | `question_types.png` | accuracy and truthfulness per question type |
| `query_confusion` | `query_confusion.png` | chosen vs gold query type of each search (region / image / text / none) |
| `iou_histogram` | `iou_histogram.png` | IoU of each first region mask with its gold mask, ego vs non-ego |
| `recall_at_k` | `recall_at_k.png` | recall@1 and recall@k of the gold entity per query type |
| `mask_gallery` | `mask_gallery.png` | predicted vs gold masks of the best, median and worst region searches |
| `search_patterns` | `search_patterns.png` | searches per sample and query-type shares (Fig. 4) |
| `risk_coverage` | `risk_coverage.png` | the abstention policy's risk–coverage curve (when it has one) |
| `worst_regions` | `worst_regions.png` | the error analysis' worst region masks |

A figure without data in the run (no region search, no question types) is left out. Every
figure is titled with the model, split and run (`plots.run_caption`); rates are in percent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pixsearch.eval.plots import (
    percent_axis,
    plot_region_overlays,
    plot_risk_coverage,
    plot_search_patterns,
    pyplot,
    run_caption,
    save_figure,
    set_title,
)
from pixsearch.types import MODALITIES, Trace

CRAG_BARS = (("accuracy", "accuracy"), ("missing_rate", "missing"),
             ("hallucination_rate", "hallucination"))
GROUP_NAMES = {"all": "all", "ego": "egocentric", "non_ego": "non-egocentric"}
NO_SEARCH = "none"  # a gold search the model did not make, or a search it should not have made


def plot_crag_bars(rows: Sequence[tuple[str, Mapping[str, Any]]], path: str | Path,
                   caption: str = "") -> Path:
    """Table 1 as grouped bars (percent). One run: the image groups side by side; several
    runs (methods): one panel per image group, a bar group per method."""
    plt = pyplot()
    groups = [g for g in GROUP_NAMES if any(g in s["groups"] for _, s in rows)]
    width = 0.8 / len(CRAG_BARS)
    if len(rows) == 1:
        panels = [("", [(GROUP_NAMES[g], rows[0][1]["groups"].get(g)) for g in groups])]
    else:
        panels = [(GROUP_NAMES[g], [(label, s["groups"].get(g)) for label, s in rows])
                  for g in groups]
    fig, axes = plt.subplots(1, len(panels), figsize=(max(5.5, 1.1 * len(rows) * len(panels)
                                                          + 2.5), 4.0), squeeze=False)
    for ax, (name, bars) in zip(axes[0], panels):
        for i, (key, label) in enumerate(CRAG_BARS):
            values = [g["crag"][key] if g else 0.0 for _, g in bars]
            drawn = ax.bar([x + i * width for x in range(len(bars))], values, width,
                           label=label)
            ax.bar_label(drawn, labels=[f"{100 * v:.0f}" for v in values], fontsize=6)
        ax.set_xticks([x + width for x in range(len(bars))],
                      [f"{lbl}\n(n={g['n']})" if g else lbl for lbl, g in bars],
                      fontsize=8, rotation=0 if len(bars) <= 3 else 30)
        ax.set(ylim=(0, 1.08), title=name)
        percent_axis(ax)
    axes[0][0].set_ylabel("share of answers")
    axes[0][0].legend(fontsize=8)
    set_title(fig, "CRAG-MM truthfulness (Table 1)", caption)
    return save_figure(plt, fig, path)


def plot_question_types(scores: Mapping[str, Any], path: str | Path, caption: str = ""
                        ) -> Path | None:
    """Accuracy and truthfulness (percent) per question type; None without question types."""
    types = sorted((k.split("=", 1)[1], g) for k, g in scores["groups"].items()
                   if k.startswith("question_type="))
    if not types:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, max(2.8, 1.2 + 0.45 * len(types))))
    ys = range(len(types))
    for i, (key, label) in enumerate((("accuracy", "accuracy"), ("truthfulness", "truthfulness"))):
        values = [g["crag"][key] for _, g in types]
        drawn = ax.barh([y + 0.4 * i for y in ys], values, 0.4, label=label)
        ax.bar_label(drawn, labels=[f"{100 * v:.0f}" for v in values], fontsize=6, padding=2)
    ax.set_yticks([y + 0.2 for y in ys], [f"{t} (n={g['n']})" for t, g in types], fontsize=8)
    ax.axvline(0, color="grey", linewidth=0.5)
    ax.set(xlim=(-1.05, 1.05), xlabel="share of answers")
    percent_axis(ax, "x")
    ax.invert_yaxis()
    ax.legend(fontsize=8, loc="lower right")
    set_title(fig, "Accuracy and truthfulness per question type", caption)
    return save_figure(plt, fig, path)


def query_type_confusion(records: Sequence[Mapping[str, Any]],
                         predictions: Mapping[str, Mapping[str, Any]]
                         ) -> tuple[list[str], list[list[int]]] | None:
    """(labels, counts[gold][chosen]) over the searches of records that name their gold
    searches: the i-th search made is paired with the i-th gold search; unmatched ones pair
    with "none", and a record that needs no search and made none counts once as none/none.
    None when no record names its gold searches (e.g. CRAG-MM rows)."""
    labels = [*MODALITIES, NO_SEARCH]
    counts = Counter()
    seen = False
    for r in records:
        pred = predictions.get(str(r["id"]))
        if pred is None or r.get("searches") is None:
            continue
        seen = True
        gold = [s.get("type") for s in r["searches"] if s.get("type") in MODALITIES]
        made = [s.modality for s in Trace.from_dict(pred["trace"]).steps if s.skipped is None]
        for i in range(max(len(gold), len(made), 1)):
            counts[(gold[i] if i < len(gold) else NO_SEARCH,
                    made[i] if i < len(made) else NO_SEARCH)] += 1
    if not seen:
        return None
    return labels, [[counts[(g, c)] for c in labels] for g in labels]


def plot_query_confusion(labels: Sequence[str], matrix: Sequence[Sequence[int]],
                         path: str | Path, caption: str = "") -> Path:
    """Confusion matrix of chosen vs gold query type, each row as shares of its gold type."""
    import numpy as np

    plt = pyplot()
    counts = np.asarray(matrix, dtype=float)
    shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for g in range(len(labels)):
        for c in range(len(labels)):
            ax.text(c, g, f"{int(counts[g, c])}\n{100 * shares[g, c]:.0f}%", ha="center",
                    va="center", fontsize=7, color="white" if shares[g, c] > 0.6 else "black")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="query type chosen by the model", ylabel="gold query type")
    set_title(fig, "Query type: chosen vs gold (per search)", caption)
    return save_figure(plt, fig, path)


def region_ious(records: Sequence[Mapping[str, Any]],
                predictions: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, float, bool]]:
    """(record id, IoU, ego) of every record whose first region search can be scored against
    a gold mask (the IoU that the report's gIoU averages)."""
    from pixsearch.eval.scores import score_record

    out = []
    for r in records:
        pred = predictions.get(str(r["id"]))
        if pred is None:
            continue
        iu = score_record(r, pred).iou
        if iu is not None:
            out.append((str(r["id"]), iu[0] / iu[1] if iu[1] else 1.0, bool(r.get("ego"))))
    return out


def plot_iou_histogram(ious: Sequence[tuple[str, float, bool]], path: str | Path,
                       caption: str = "") -> Path:
    """Histogram of region-mask IoU (ego and non-ego stacked), with the mean (gIoU) marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    bins = [i / 10 for i in range(11)]
    parts = [([v for _, v, e in ious if e], "egocentric"),
             ([v for _, v, e in ious if not e], "non-egocentric")]
    parts = [(v, lbl) for v, lbl in parts if v]
    ax.hist([v for v, _ in parts], bins=bins, stacked=True,
            label=[f"{lbl} (n={len(v)})" for v, lbl in parts])
    mean = sum(v for _, v, _ in ious) / len(ious)
    ax.axvline(mean, color="black", linestyle="--", linewidth=1, label=f"mean (gIoU) {mean:.2f}")
    ax.set(xlabel="IoU of the first region mask with the gold mask", ylabel="region searches",
           xlim=(0, 1))
    ax.legend(fontsize=8)
    set_title(fig, "Mask IoU of region searches", caption)
    return save_figure(plt, fig, path)


def plot_recall_at_k(scores: Mapping[str, Any], path: str | Path, caption: str = ""
                     ) -> Path | None:
    """recall@1 and recall@k (percent) of the gold entity per query type and overall; None
    when no search had a gold entity."""
    retrieval = scores["groups"]["all"]["retrieval"]
    names = [m for m in (*MODALITIES, "all") if retrieval.get(m, {}).get("n")]
    if not names:
        return None
    k_key = next((key for key in retrieval["all"] if key.startswith("recall@")
                  and key != "recall@1"), "recall@1")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for i, key in enumerate(dict.fromkeys(("recall@1", k_key))):
        values = [retrieval[m][key] for m in names]
        drawn = ax.bar([x + 0.4 * i for x in range(len(names))], values, 0.4,
                       label=key.replace("recall", "R"))
        ax.bar_label(drawn, labels=[f"{100 * v:.0f}" for v in values], fontsize=7)
    ax.set_xticks([x + 0.2 for x in range(len(names))],
                  [f"{m}\n(n={retrieval[m]['n']})" for m in names])
    ax.set(ylim=(0, 1.08), ylabel="searches whose hits hold the gold entity")
    percent_axis(ax)
    ax.legend(fontsize=8)
    set_title(fig, "Retrieval recall per query type", caption)
    return save_figure(plt, fig, path)


def gallery_cases(ious: Sequence[tuple[str, float, bool]], per_kind: int = 2,
                  image_of: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(label, record id) of the `per_kind` best, median and worst region searches by IoU;
    each record once and, with `image_of` (record id → image), each image once, since several
    questions share a scene (fewer when the run has few)."""
    ranked = sorted(ious, key=lambda t: (-t[1], t[0]))
    mid = (len(ranked) - 1) / 2
    by_middle = [t for _, t in sorted(enumerate(ranked), key=lambda it: abs(it[0] - mid))]
    orders = (("best", ranked), ("median", by_middle), ("worst", ranked[::-1]))
    out, used = [], set()
    for label, order in orders:
        taken = 0
        for rid, _, _ in order:
            key = (image_of or {}).get(rid, rid)
            if taken < per_kind and rid not in used and key not in used:
                used.update((rid, key))
                out.append((label, rid))
                taken += 1
    return out


def write_run_figures(scores: dict[str, Any], records: Sequence[Mapping[str, Any]],
                      predictions: Mapping[str, Mapping[str, Any]], out: str | Path
                      ) -> dict[str, str]:
    """Write every figure of a run into `out` (see the module docstring); returns
    {name: file name} of those written. Sets `scores["errors"]["overlays"]` when the worst
    region masks are drawn (the error analysis links them)."""
    out = Path(out)
    caption = run_caption(scores["config"], out.name)
    figures: dict[str, str] = {}

    def keep(name: str, path: Path | None) -> None:
        if path is not None:
            figures[name] = path.name

    keep("crag_bars", plot_crag_bars([(scores["config"]["mode"], scores)], out / "crag_bars.png",
                                     caption))
    keep("question_types", plot_question_types(scores, out / "question_types.png", caption))
    confusion = query_type_confusion(records, predictions)
    if confusion is not None:
        keep("query_confusion", plot_query_confusion(*confusion, out / "query_confusion.png",
                                                     caption))
    keep("recall_at_k", plot_recall_at_k(scores, out / "recall_at_k.png", caption))
    keep("search_patterns", plot_search_patterns(scores, out / "search_patterns.png", caption))
    if "risk_coverage" in scores:
        rc = scores["risk_coverage"]
        keep("risk_coverage", plot_risk_coverage(rc["curve"], out / "risk_coverage.png",
                                                 rc.get("threshold"), caption))
    ious = region_ious(records, predictions)
    if ious:
        keep("iou_histogram", plot_iou_histogram(ious, out / "iou_histogram.png", caption))
    by_id = {str(r["id"]): r for r in records if r.get("image_path")}
    images = {rid: str(r["image_path"]) for rid, r in by_id.items()}
    shown = [(label, rid) for label, rid in gallery_cases(ious, image_of=images) if rid in by_id]
    if shown:
        cases = [(by_id[rid], Trace.from_dict(predictions[rid]["trace"])) for _, rid in shown]
        keep("mask_gallery", plot_region_overlays(
            cases, out / "mask_gallery.png", caption, labels=[label for label, _ in shown],
            title="region searches by IoU: best, median, worst (gold green, predicted red)"))
    worst = [rid for rid in scores.get("errors", {}).get("worst_regions") or [] if rid in by_id]
    if worst:
        cases = [(by_id[rid], Trace.from_dict(predictions[rid]["trace"])) for rid in worst
                 if rid in predictions]
        keep("worst_regions", plot_region_overlays(cases, out / "worst_regions.png", caption))
        scores["errors"]["overlays"] = "worst_regions.png"
    return figures
