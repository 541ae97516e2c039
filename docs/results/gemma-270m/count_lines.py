"""How often the count of a run's perception lines ("3 like it in the image") equals the
number of flags in the scene: the first region search of each record with a line, from the
run's `predictions.jsonl` and the world's records (every flag's mask is in the record).

    python docs/results/gemma-270m/count_lines.py RUN_DIR [WORLD] [SPLIT]
"""

from __future__ import annotations

import collections
import json
import re
import sys
from pathlib import Path

LINE = re.compile(r"(\d+) like it in the image")


def main(run: str, world: str = "~/.cache/pixsearch/world", split: str = "test") -> None:
    lines = (Path(world).expanduser() / f"{split}.jsonl").read_text().splitlines()
    records = {r["id"]: r for r in map(json.loads, lines)}
    flags = {r["image"]: len(r["masks"]) for r in records.values() if r.get("masks")}
    stat: collections.Counter = collections.Counter()
    for line in (Path(run) / "predictions.jsonl").read_text().splitlines():
        pred = json.loads(line)
        image = records[pred["id"]].get("image")
        for step in pred["trace"]["steps"]:
            m = LINE.search(step.get("evidence") or "")
            if m and image in flags:
                n, gold = int(m.group(1)), flags[image]
                stat["lines"] += 1
                stat["right"] += n == gold
                stat["too high"] += n > gold
                stat["too low"] += n < gold
                break
    print(dict(stat), f"right: {stat['right'] / max(stat['lines'], 1):.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
