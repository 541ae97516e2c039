"""Plots of evaluation runs (matplotlib, Agg backend: no display needed).

- `plot_search_patterns`: the paper's Fig. 4 — how many searches a sample gets, and which
  query types (region / image / text) are used, egocentric vs non-egocentric images.
- `plot_budget_curve`: accuracy against the search budget B (Table 7 as a line plot).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pixsearch.types import MODALITIES


def _pyplot():
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


def plot_search_patterns(scores: dict[str, Any], path: str | Path) -> Path:
    """Searches-per-sample histogram and query-type shares, ego vs non-ego, as one PNG."""
    plt = _pyplot()
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
    return _save(plt, fig, path)


def _save(plt: Any, fig: Any, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def budget_label(b: int | None) -> str:
    """How a search budget is written in tables and plots (None is unbounded)."""
    return "∞" if b is None else str(b)


def plot_budget_curve(runs: Sequence[tuple[int | None, dict[str, Any]]],
                      path: str | Path) -> Path:
    """Accuracy (overall, ego, non-ego) against the search budget B of several runs."""
    plt = _pyplot()
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
    ax.set(xlabel="search budget B", ylabel="CRAG-MM accuracy", title="Accuracy vs budget")
    ax.legend(fontsize=8)
    return _save(plt, fig, path)
