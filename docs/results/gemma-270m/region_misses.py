"""Where ego region R@1 is lost: the first region mask of each answer against the gold masks.

For every ego record of a run whose first planned search is a region search of an entity the
knowledge base has, the model's first region mask (its trace) is compared with each gold
entity mask of the record, and the answer falls in one of:

- on the target (IoU ≥ 0.5 with it), top hit right or wrong;
- on another entity (IoU ≥ 0.5 with a flag the question is not about);
- part of the target (≥ 80% of the mask inside the target, < 50% of the target covered: one
  stripe of a large flag);
- the target merged (≥ 80% of the target covered, < 50% of the mask on it: the target and its
  neighbours or background in one blob);
- elsewhere (none of these).

R@1 of the run is the share whose first hit is the target, so the rows say how much of the
loss is the referent chosen (another entity) and how much the mask's extent (part, merged).
A second table gives that R@1 by the kind of the target's referring expression: relation
("behind", "hidden"), colour (a colour word), size ("largest", "smallest", ...), else
position:

    python docs/results/gemma-270m/region_misses.py RUN [RUN ...]
"""
import argparse
import collections
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import yaml

from pixsearch.eval.datasets import load_records
from pixsearch.eval.retrieval_metrics import hit_rank
from pixsearch.masks import rle_to_mask

ROWS = ("on the target, top hit right", "on the target, top hit wrong", "on another entity",
        "part of the target", "the target merged", "elsewhere")


KINDS = (("relation", r"behind|hidden|in front"),
         ("colour", r"\b(red|orange|yellow|green|blue|purple|white|black)\b"),
         ("size", r"larg|small|big|tin|huge|size"))


def kind(expression: str) -> str:
    """The kind of a referring expression (see the module doc)."""
    return next((k for k, pattern in KINDS if re.search(pattern, expression.lower())),
                "position")


def classify(mask: np.ndarray, golds: list[np.ndarray], target: int) -> str:
    """The row of one first region mask (see the module doc), hit aside."""
    inter = np.array([(mask & g).sum() for g in golds], dtype=float)
    union = np.array([(mask | g).sum() for g in golds], dtype=float)
    iou = inter / np.maximum(union, 1)
    if iou[target] >= 0.5:
        return "on the target"
    if iou.max() >= 0.5:
        return "on another entity"
    precision = inter[target] / max(mask.sum(), 1)
    coverage = inter[target] / max(golds[target].sum(), 1)
    if precision >= 0.8 and coverage < 0.5:
        return "part of the target"
    if coverage >= 0.8 and precision < 0.5:
        return "the target merged"
    return "elsewhere"


def region_answers(run: Path) -> Iterator[tuple[Path, dict, int, dict | None]]:
    """(the world folder, record, target entity index, first region step or None when the
    answer made no region mask) of each ego answer whose first planned search is a region
    search of an entity the knowledge base has."""
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    data = Path(cfg["data"])
    records = {r["id"]: r for r in load_records(data / f"{cfg['split']}.jsonl")}
    with open(run / "predictions.jsonl") as f:
        for line in f:
            p = json.loads(line)
            r = records[p["id"]]
            plan = r.get("searches") or []
            if not r.get("ego") or not plan or plan[0]["type"] != "region":
                continue
            target = plan[0]["entity"]
            if not r["entities"][target].get("in_kb", True):
                continue
            steps = [s for s in p["trace"]["steps"] if s["modality"] == "region"]
            first = steps[0] if steps and steps[0]["mask_rle"] is not None else None
            yield data, r, target, first


def rows(run: Path) -> collections.Counter:
    """Counts per row, and of right first hits per row (key (row, True))."""
    out: collections.Counter = collections.Counter()
    for _, r, target, step in region_answers(run):
        if step is None:
            out["no region mask"] += 1
            continue
        golds = [rle_to_mask(m).astype(bool) for m in r["masks"]]
        row = classify(rle_to_mask(step["mask_rle"]).astype(bool), golds, target)
        right = hit_rank(step["hits"][:1], r["entities"][target]["code"]) == 1
        if row == "on the target":
            row += ", top hit right" if right else ", top hit wrong"
        out[row] += 1
        out[(row, True)] += int(right)
        what = kind(r["entities"][target]["refexp"])
        out[("kind", what)] += 1
        out[("kind", what, True)] += int(right)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="`pixsearch eval run` output folders")
    args = ap.parse_args()
    counts = [rows(run) for run in args.runs]
    print("| first region mask | " + " | ".join(r.name for r in args.runs) + " |")
    print("|---|" + "---|" * len(args.runs))
    for row in (*ROWS, "no region mask"):
        cells = []
        for c in counts:
            n = sum(v for k, v in c.items() if isinstance(k, str))
            cells.append(f"{c[row]} ({100 * c[row] / max(n, 1):.1f}%), {c[(row, True)]} right")
        print(f"| {row} | " + " | ".join(cells) + " |")
    for run, c in zip(args.runs, counts):
        n = sum(v for k, v in c.items() if isinstance(k, str))
        right = sum(v for k, v in c.items() if isinstance(k, tuple) and k[0] != "kind")
        print(f"{run}: {n} region answers, R@1 {100 * right / max(n, 1):.1f}")
    print("\n| kind of expression | " + " | ".join(r.name for r in args.runs) + " |")
    print("|---|" + "---|" * len(args.runs))
    for name in ("colour", "position", "size", "relation"):
        cells = [f"{c[('kind', name, True)] / max(c[('kind', name)], 1):.3f} "
                 f"({c[('kind', name)]})" for c in counts]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
