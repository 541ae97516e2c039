"""Plots of evaluation runs (matplotlib, Agg backend: no display needed).

- `plot_search_patterns`: the paper's Fig. 4 — how many searches a sample gets, and which
  query types (region / image / text) are used, egocentric vs non-egocentric images.
- `plot_budget_curve`: accuracy against the search budget B (Table 7 as a line plot).
- `plot_region_overlays`: predicted region masks (red) against gold masks (green) on the image,
  for the worst region searches of a run.
- `plot_risk_coverage`: hallucination risk and truthfulness against coverage (the share of
  questions answered) as a confidence threshold sweeps: how abstention trades answers for trust.

Rates are drawn in percent, like the report's tables. Every figure carries a `caption` under
its title naming the model, the split and the run (`run_caption`), so a PNG that travels
without its report still says where it comes from. More figures of one run (Table 1 as bars,
accuracy per question type, query-type confusion, IoU histogram, recall@k, mask gallery) are
in `pixsearch.eval.figures`, which builds on the helpers here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pixsearch.types import MODALITIES


def run_caption(config: dict[str, Any], run: str | None = None) -> str:
    """"model M · split S · run R" of an evaluation run's config (`run`: the run folder's
    name, default the name of its `out`)."""
    model = Path(str(config.get("model", "?"))).name or str(config.get("model"))
    name = run or Path(str(config.get("out", "?"))).name
    return f"model {model} · split {config.get('split', '?')} · run {name}"


def set_title(fig: Any, title: str, caption: str = "") -> None:
    """The figure's title, with the caption (model · split · run) under it."""
    fig.suptitle(f"{title}\n{caption}" if caption else title, fontsize=10)


def percent_axis(ax: Any, axis: str = "y") -> None:
    """Tick labels of a [0, 1]-valued axis written as percentages."""
    from matplotlib.ticker import PercentFormatter

    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(PercentFormatter(xmax=1.0))


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (an error naming the extra when it is missing)."""
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("plots need matplotlib: pip install 'pixsearch[eval]'") from e
    matplotlib.use("Agg")  # files only; never open a window (servers, tests, workers)
    import matplotlib.pyplot as plt

    return plt


def _pattern_groups(scores: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    groups = scores["groups"]
    split = [(g, groups[g]) for g in ("ego", "non_ego") if g in groups]
    return split or [("all", groups["all"])]


def plot_search_patterns(scores: dict[str, Any], path: str | Path, caption: str = "") -> Path:
    """Searches-per-sample histogram and query-type shares, ego vs non-ego, as one PNG."""
    plt = pyplot()
    groups = _pattern_groups(scores)
    fig, (ax_n, ax_t) = plt.subplots(1, 2, figsize=(10, 3.8))
    width = 0.8 / len(groups)
    n_max = max([int(k) for _, g in groups for k in g["searches"]["histogram"]] + [0])
    for i, (name, g) in enumerate(groups):
        hist = {int(k): v for k, v in g["searches"]["histogram"].items()}
        total = sum(hist.values()) or 1
        xs = list(range(n_max + 1))
        ax_n.bar([x + i * width for x in xs], [hist.get(x, 0) / total for x in xs], width,
                 label=f"{name} (n={g['n']})")
        shares = g["searches"]["shares"]
        ax_t.bar([j + i * width for j in range(len(MODALITIES))],
                 [shares[m] for m in MODALITIES], width, label=name)
    ax_n.set_xticks([x + 0.4 - width / 2 for x in range(n_max + 1)], range(n_max + 1))
    ax_n.set(xlabel="searches per sample", ylabel="share of samples",
             title="Searches per sample")
    ax_t.set_xticks([j + 0.4 - width / 2 for j in range(len(MODALITIES))], MODALITIES)
    ax_t.set(ylabel="share of searches", title="Query types", ylim=(0, 1))
    for ax in (ax_n, ax_t):
        ax.legend(fontsize=8)
        percent_axis(ax)
    set_title(fig, "Search patterns (Fig. 4)", caption)
    return save_figure(plt, fig, path)


def save_figure(plt: Any, fig: Any, path: str | Path, tight: bool = True) -> Path:
    """Lay out (`tight`: matplotlib's tight layout; else the figure's own), write (PNG,
    100 dpi) and close `fig`; returns the path."""
    if tight:
        fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def budget_label(b: int | None) -> str:
    """How a search budget is written in tables and plots (None is unbounded)."""
    return "∞" if b is None else str(b)


def plot_budget_curve(runs: Sequence[tuple[int | None, dict[str, Any]]],
                      path: str | Path, caption: str = "") -> Path:
    """Accuracy (overall, ego, non-ego), in percent, against the search budget B of several
    runs."""
    plt = pyplot()
    assert runs, "a budget curve needs at least one run"
    finite = sorted(b for b, _ in runs if b is not None)
    # the unbounded run sits one step right of the largest finite budget
    x_of = {b: b for b in finite}
    x_of[None] = (finite[-1] + 1) if finite else 0
    ordered = sorted(runs, key=lambda r: x_of[r[0]])
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    top = 0.0
    for group in ("all", "ego", "non_ego"):
        pts = [(x_of[b], s["groups"][group]["crag"]["accuracy"]) for b, s in ordered
               if group in s["groups"]]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=group)
            top = max(top, *(p[1] for p in pts))
    ax.set_ylim(0, min(1.0, max(0.1, 1.15 * top)))  # accuracy is a share: never below 0
    ax.set_xticks([x_of[b] for b, _ in ordered], [budget_label(b) for b, _ in ordered])
    ax.set(xlabel="search budget B", ylabel="CRAG-MM accuracy (%)")
    percent_axis(ax)
    ax.legend(fontsize=8)
    set_title(fig, "Accuracy vs search budget (Table 7)", caption)
    return save_figure(plt, fig, path)


def plot_region_overlays(cases: Sequence[tuple[Any, Any]], path: str | Path,
                         caption: str = "", labels: Sequence[str] | None = None,
                         title: str = "worst region masks, zoomed: gold (green) vs predicted "
                                      "(red)") -> Path:
    """One panel per (record, trace): the image, the gold mask of the searched entity (green
    outline + tint) and the model's first region mask (red tint), zoomed, titled with the IoU
    and, when given, the panel's label (e.g. "best", "median", "worst")."""
    import numpy as np

    from pixsearch.images import load_image
    from pixsearch.masks import rle_to_mask
    from pixsearch.overlay import mask_iou, overlay, zoom_box

    plt = pyplot()
    n = max(1, len(cases))
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.0 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, (ax, (record, trace)) in enumerate(zip(axes.flat, cases)):
        image = load_image(record["image_path"])
        step = next((s for s in trace.steps if s.modality == "region" and s.mask_rle), None)
        gold = gold_region_mask(record, rle_to_mask)
        pred = (rle_to_mask(step.mask_rle) if step is not None
                else np.zeros((image.height, image.width), bool))
        y0, y1, x0, x1 = zoom_box(pred | gold if gold is not None else pred)
        ax.imshow(overlay(image, pred, gold)[y0:y1, x0:x1])
        if gold is not None:
            ax.contour(gold[y0:y1, x0:x1], levels=[0.5], colors="lime", linewidths=0.8)
        iou = mask_iou(pred, gold) if gold is not None else float("nan")
        label = f"{labels[k]}: " if labels is not None and k < len(labels) else ""
        ax.set_title(f"{label}{record['id']}  IoU {iou:.2f}", fontsize=8)
    set_title(fig, title, caption)
    return save_figure(plt, fig, path)


def gold_region_mask(record: Any, decode: Any) -> Any:
    """The gold mask of the entity a record's first region search is about (else of its
    target), decoded with `decode`; None when the record has none."""
    masks = record.get("masks") or []
    region = [s for s in record.get("searches") or [] if s.get("type") == "region"]
    index = region[0].get("entity") if region else record.get("target")
    if not isinstance(index, int) or not 0 <= index < len(masks):
        return None
    return decode(masks[index])


def plot_risk_coverage(curve: Sequence[dict[str, float]], path: str | Path,
                       chosen: float | None = None, caption: str = "") -> Path:
    """Risk (hallucinations among answered questions) and truthfulness against coverage, in
    percent.

    `curve` holds points `{"threshold", "coverage", "risk", "truthfulness"}` (see
    `pixsearch.eval.abstention.risk_coverage`); `chosen` marks the operating threshold."""
    plt = pyplot()
    pts = sorted(curve, key=lambda p: p["coverage"])
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot([p["coverage"] for p in pts], [p["risk"] for p in pts], label="risk (halluc./answered)")
    ax.plot([p["coverage"] for p in pts], [p["truthfulness"] for p in pts], label="truthfulness")
    if chosen is not None:
        at = min(pts, key=lambda p: abs(p["threshold"] - chosen))
        ax.scatter([at["coverage"]], [at["truthfulness"]], color="black", zorder=3,
                   label=f"threshold {chosen:.2f}")
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set(xlabel="coverage (share answered)", ylabel="rate", xlim=(0, 1), ylim=(-1, 1))
    percent_axis(ax, "x")
    percent_axis(ax, "y")
    ax.legend(fontsize=8)
    set_title(fig, "Risk–coverage of the abstention policy", caption)
    return save_figure(plt, fig, path)
