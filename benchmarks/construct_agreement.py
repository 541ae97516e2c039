"""Agreement of constructed Stage-2 trajectories with a built world's gold ones.

Strips a split of its gold (trajectory, searches, search types, region spans, needs-search
flag, question type, and the entities' names, codes and KB membership), runs
`pixsearch construct` on what is left, and compares with the gold records:

- needs-search decision (all records), question type (the world's labels mapped onto the
  paper's ten, `construct.selection.WORLD_TYPES`);
- on records the construction kept: number of searches, the query-type sequence, query-type
  confusion per search (aligned by position), and identical trajectories;
- kept share and seconds per record (from the run's statistics).

    python benchmarks/construct_agreement.py --world ~/.cache/pixsearch/world --split val \
        --llm rule --seg record --out runs/construct/rule
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path

from pixsearch.cli import main as cli_main
from pixsearch.construct.selection import WORLD_TYPES

GOLD_FIELDS = ("trajectory", "search_types", "searches", "region_spans", "needs_search",
               "question_type")
ENTITY_LABELS = ("name", "code", "in_kb")


def strip_split(world: Path, split: str, out: Path, limit: int) -> Path:
    """`world/<split>.jsonl` without its gold, images by absolute path, into `out`."""
    raw = out / f"raw_{split}.jsonl"
    with open(world / f"{split}.jsonl", encoding="utf-8") as f, open(raw, "w") as g:
        for n, line in enumerate(f):
            if limit and n >= limit:
                break
            r = json.loads(line)
            for k in GOLD_FIELDS:
                r.pop(k, None)
            r["image"] = os.path.join(str(world.resolve()), r["image"])
            for e in r.get("entities") or []:
                for k in ENTITY_LABELS:
                    e.pop(k, None)
            g.write(json.dumps(r) + "\n")
    return raw


def agreement(gold: dict[str, dict], kept: list[dict], dropped: list[dict]) -> dict:
    """The agreement figures of the module docstring."""
    metas = {r["id"]: r["construct"] for r in kept} | {d["id"]: d["construct"] for d in dropped}
    ids = [i for i in gold if i in metas]
    ns = sum(metas[i]["needs_search"] == gold[i]["needs_search"] for i in ids)
    qt = sum(metas[i]["question_type"] == WORLD_TYPES.get(gold[i]["question_type"]) for i in ids)
    n_same = types_same = traj_same = 0
    confusion: Counter = Counter()
    for r in kept:
        g = gold[r["id"]]
        n_same += len(r["search_types"]) == len(g["search_types"])
        types_same += r["search_types"] == g["search_types"]
        traj_same += r["trajectory"] == g["trajectory"]
        for k in range(max(len(r["search_types"]), len(g["search_types"]))):
            a = g["search_types"][k] if k < len(g["search_types"]) else "-"
            b = r["search_types"][k] if k < len(r["search_types"]) else "-"
            confusion[f"{a}->{b}"] += 1
    region = _regions(gold, kept)
    # the query types of the first candidate that was run, kept or not (an LLM keeps few)
    tried = [(i, m["tried"][0]["query_types"]) for i, m in metas.items() if m.get("tried")]
    first_types = sum(t == gold[i]["search_types"] for i, t in tried)
    by_type = Counter((gold[d["id"]]["question_type"], d["reason"]) for d in dropped)
    k = max(len(kept), 1)
    return {
        "records": len(ids), "kept": len(kept), "dropped": len(dropped),
        "needs_search_agreement": round(ns / max(len(ids), 1), 4),
        "question_type_agreement": round(qt / max(len(ids), 1), 4),
        "kept_n_searches_agreement": round(n_same / k, 4),
        "kept_query_types_agreement": round(types_same / k, 4),
        "kept_identical_trajectory": round(traj_same / k, 4),
        "first_tried_candidates": len(tried),
        "first_tried_query_types_agreement": round(first_types / max(len(tried), 1), 4),
        "query_type_confusion_gold_to_constructed": dict(confusion.most_common()),
        **region,
        "dropped_by_gold_type_and_reason": {f"{a}: {b}": n for (a, b), n in by_type.most_common()},
    }


def _regions(gold: dict[str, dict], kept: list[dict]) -> dict:
    """Region searches of kept records whose gold has a target entity: IoU of the
    constructed mask with the gold one, and whether the top hit is the gold entity (among
    targets the knowledge base has)."""
    from pixsearch.masks import mask_iou, rle_to_mask

    ious, top1 = [], []
    for r in kept:
        g = gold[r["id"]]
        if g.get("target") is None or not g.get("masks"):
            continue
        code = g["entities"][g["target"]]["code"]
        for s in r["searches"]:
            if s["type"] != "region":
                continue
            ious.append(mask_iou(rle_to_mask(r["masks"][s["entity"]]),
                                 rle_to_mask(g["masks"][g["target"]])))
            if g["entities"][g["target"]].get("in_kb"):
                top1.append(bool(s["hits"]) and s["hits"][0].split(":")[0] == code)
    return {"region_searches": len(ious),
            "region_mask_iou_mean": round(sum(ious) / max(len(ious), 1), 4),
            "region_searches_in_kb": len(top1),
            "region_top1_is_gold_entity": round(sum(top1) / max(len(top1), 1), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, default=Path("~/.cache/pixsearch/world").expanduser())
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--compare-only", action="store_true",
                    help="compare what --out already holds (no construction)")
    ap.add_argument("construct_args", nargs=argparse.REMAINDER,
                    help="passed to `pixsearch construct` (e.g. --llm rule --seg record)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"constructed_{args.split}.jsonl"
    extra = [a for a in args.construct_args if a != "--"]
    if not args.compare_only:
        raw = strip_split(args.world, args.split, args.out, args.limit)
        rc = cli_main(["construct", "--input", str(raw), "--out", str(out),
                       "--index", str(args.world / "index"), *extra])
        if rc:
            raise SystemExit(rc)
    gold = {json.loads(line)["id"]: json.loads(line)
            for line in open(args.world / f"{args.split}.jsonl", encoding="utf-8")}
    kept = [json.loads(line) for line in open(out, encoding="utf-8")]
    dropped = [json.loads(line) for line in open(out.with_name(out.stem + ".dropped.jsonl"))]
    stats = json.loads(out.with_name(out.stem + ".stats.json").read_text())
    result = {**agreement(gold, kept, dropped), "seconds_per_record": stats["seconds_per_record"],
              "this_run": stats.get("this_run"), "command": extra}
    (args.out / "agreement.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
