"""Training curves of a run as a PNG, drawn from its `log.jsonl`.

`plot_training_curves(out)` reads the log the trainer writes (one row per optimiser step: loss
per term, lr, throughput; one row per validation) and writes `out/curves.png`: the loss terms
(log scale), the learning rate, validation metrics (mask IoU, token accuracy, LM loss) and
throughput, against the global step, with stage boundaries marked. It is redrawn after every
validation, so a long run's folder always shows how far it got — with or without an
experiment tracker.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CURVES = "curves.png"
# validation metrics drawn (the ones `train/validation.py` reports over all pools)
VAL_METRICS = ("mask_iou", "stage1/mask_iou", "stage2/mask_iou", "stage1/token_acc",
               "stage2/token_acc", "text/token_acc")
VAL_LOSS = "lm_loss"  # on its own axis: losses are not shares


def read_log(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(step rows, validation rows) of a run's `log.jsonl`."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return ([r for r in rows if "loss/total" in r], [r for r in rows if "eval" in r])


def plot_training_curves(out: str | Path, title: str = "") -> Path | None:
    """Draw `out/log.jsonl` into `out/curves.png` (None when no step has been logged yet)."""
    from pixsearch.eval.plots import pyplot, save_figure, set_title

    out = Path(out)
    log = out / "log.jsonl"
    if not log.is_file():
        return None
    steps, evals = read_log(log)
    if not steps:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    (ax_loss, ax_lr), (ax_val, ax_speed) = axes
    xs = [r["step"] for r in steps]
    terms = sorted({k for r in steps for k in r if k.startswith("loss/")},
                   key=lambda k: (k != "loss/total", k))
    for key in terms:
        pts = [(r["step"], r[key]) for r in steps if key in r and r[key] > 0]
        if pts:
            ax_loss.plot(*zip(*pts), label=key.split("/", 1)[1],
                         linewidth=1.6 if key == "loss/total" else 0.9)
    ax_loss.set(yscale="log", xlabel="step", ylabel="loss", title="Training loss per term")
    ax_lr.plot(xs, [r["lr"] for r in steps])
    ax_lr.set(xlabel="step", ylabel="learning rate", title="Learning rate")
    for key in VAL_METRICS:
        pts = [(r["step"], r["eval"][key]) for r in evals if key in r["eval"]]
        if pts:
            ax_val.plot(*zip(*pts), marker="o", markersize=3, label=key)
    ax_val.set(xlabel="step", ylabel="IoU / accuracy", ylim=(0, 1),
               title="Validation (teacher-forced)")
    pts = [(r["step"], r["eval"][VAL_LOSS]) for r in evals if VAL_LOSS in r["eval"]]
    ax_vloss = ax_val.twinx()
    if pts:
        ax_vloss.plot(*zip(*pts), color="black", linestyle="--", marker="x", markersize=3,
                      label=f"{VAL_LOSS} (right)")
    ax_vloss.set_ylabel("validation LM loss")
    ax_speed.plot(xs, [r["samples_per_s"] for r in steps], label="samples/s")
    ax_tok = ax_speed.twinx()
    ax_tok.plot(xs, [r["tokens_per_s"] for r in steps], color="tab:orange",
                label="tokens/s (right)")
    ax_speed.set(xlabel="step", ylabel="samples/s", title="Throughput")
    ax_tok.set_ylabel("tokens/s")
    for ax in (ax_loss, ax_lr, ax_val, ax_speed):
        _mark_stages(ax, steps)
    ax_loss.legend(fontsize=7)
    for ax, twin in ((ax_val, ax_vloss), (ax_speed, ax_tok)):
        handles = ax.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        if handles[0] or more[0]:
            ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=7)
    set_title(fig, "Training curves", title or f"run {out.name}")
    # a fixed layout: tight_layout measures every tick label (seconds per redraw on a CPU box)
    fig.subplots_adjust(left=0.07, right=0.93, bottom=0.07, top=0.9, wspace=0.45, hspace=0.35)
    return save_figure(plt, fig, out / CURVES, tight=False)


def _mark_stages(ax: Any, steps: list[dict[str, Any]]) -> None:
    """A dotted line where each stage after the first begins."""
    for prev, row in zip(steps, steps[1:]):
        if row["stage"] != prev["stage"]:
            ax.axvline(row["step"] - 0.5, color="grey", linestyle=":", linewidth=0.8)
