"""Retrieval sanity of a built benchmark world: can the index find the right entity?

Recall@1 / recall@5 of the correct country on one split (default: test), for
  (a) region crops from gold masks   (egocentric scenes, every in-KB flag of the scene),
  (b) whole images as the query      (egocentric scenes: the same entities; close-ups apart),
  (c) text queries of the gold trajectories (follow-ups such as "capital of Peru"),
  (d) the question text as the query (the paper's "text question as query" baseline).
Region crops should clearly beat whole images on egocentric scenes; if they do not, the world
or the crop is wrong.

    python benchmarks/world_retrieval_bench.py --world ~/.cache/pixsearch/world [--split test]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import torch
import yaml

from pixsearch.data.knowledge import DOCS_FILE, read_documents
from pixsearch.data.records import read_records
from pixsearch.retrieval.index import KnowledgeIndex
from pixsearch.types import Query

KS = (1, 5)


def _rank(hits, code: str) -> int | None:
    for i, h in enumerate(hits):
        if h.entity == code:
            return i
    return None


class Recall:
    """Counts hits@k for a named query set."""

    def __init__(self) -> None:
        self.n = 0
        self.hits = defaultdict(int)

    def add(self, rank: int | None) -> None:
        self.n += 1
        for k in KS:
            self.hits[k] += rank is not None and rank < k

    def row(self) -> dict:
        return {"n": self.n, **{f"R@{k}": (self.hits[k] / self.n if self.n else float("nan"))
                               for k in KS}}


def evaluate(world: Path, split: str, limit: int | None = None) -> dict[str, dict]:
    """Recall per query kind on `split` of the world at `world`."""
    index = KnowledgeIndex.open(world / "index")
    records = read_records(world / f"{split}.jsonl")
    kb = {d.entity for d in read_documents(world / "kb" / DOCS_FILE)}
    out = {name: Recall() for name in ("region crop (ego)", "whole image (ego)",
                                       "whole image (close-up)", "text follow-up",
                                       "question as query (ego)")}
    by_image: dict[str, list] = defaultdict(list)
    for r in records:
        by_image[r.image].append(r)
    for n, recs in enumerate(by_image.values()):
        if limit is not None and n >= limit:
            break
        rec = recs[0]
        image = rec.load_image(world)
        whole = index.search(Query("image", image=image), max(KS))
        for i, e in enumerate(rec.entities):
            if e["code"] not in kb:
                continue
            if rec.ego:
                hits = index.search(Query("region", image=image, mask=rec.mask(i)), max(KS))
                out["region crop (ego)"].add(_rank(hits, e["code"]))
                out["whole image (ego)"].add(_rank(whole, e["code"]))
            else:
                out["whole image (close-up)"].add(_rank(whole, e["code"]))
        for r in recs:
            for s in r.searches:
                if s["type"] == "text" and s["expect"] in kb:
                    out["text follow-up"].add(_rank(index.search(s["query"], max(KS)), s["expect"]))
            t = r.entities[r.target] if r.target is not None else None
            if r.ego and r.needs_search and t is not None and t["code"] in kb:
                out["question as query (ego)"].add(_rank(index.search(r.question, max(KS)),
                                                         t["code"]))
    return {name: rec.row() for name, rec in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world", type=Path, required=True, help="folder of a built world")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=None, help="at most this many images")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = p.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    rows = evaluate(args.world, args.split, args.limit)
    manifest = yaml.safe_load((args.world / "index" / "index.yaml").read_text())
    print(f"world {args.world}, split {args.split}, "
          f"image embedder {manifest['image_embedder']['name']}")
    print(f"{'query':28s} {'n':>5s} " + " ".join(f"{'R@' + str(k):>6s}" for k in KS))
    for name, row in rows.items():
        print(f"{name:28s} {row['n']:5d} " + " ".join(f"{row[f'R@{k}']:6.3f}" for k in KS))
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
