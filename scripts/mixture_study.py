"""The mixture study of the paper (Table 9) at small scale: does Stage-1:Stage-2 = 1:9 collapse
segmentation where 7:9 keeps it?

Both runs start from the same Stage-1 model (`configs/train/mini.yaml`'s `stage-stage1`), train
Stage 2 with the same steps, lr and seed, and differ only in the mixture weights; the val mask
IoU (teacher-forced, gold spans) of each is compared with the starting point's.

    python scripts/mixture_study.py                       # configs as committed
    python scripts/mixture_study.py stages.0.steps=60 world=/path/to/world
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pixsearch.config import load
from pixsearch.train.config import TrainConfig, resolve_path
from pixsearch.train.trainer import Trainer

CONFIGS = {"1:9": "configs/train/mixture_1to9.yaml", "7:9": "configs/train/mixture_7to9.yaml"}
KEYS = ("mask_iou", "stage1/mask_iou", "stage2/mask_iou", "stage1/token_acc", "stage2/token_acc",
        "stage2/lm_loss")


def _metrics(folder: Path) -> dict:
    path = folder / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/mixture_study.json"))
    ap.add_argument("overrides", nargs="*", help="TrainConfig overrides for both runs")
    args = ap.parse_args(argv)
    rows = {}
    for ratio, path in CONFIGS.items():
        cfg = load(TrainConfig, path, list(args.overrides))
        if "start" not in rows:
            rows["start (Stage 1)"] = _metrics(resolve_path(cfg.init_from))
        Trainer(cfg).run()
        rows[ratio] = _metrics(resolve_path(cfg.out) / f"stage-{cfg.stages[-1].name}")
        rows[ratio]["minutes"] = rows[ratio].get("progress", {}).get("elapsed", 0) / 60
        rows[ratio]["steps"] = rows[ratio].get("progress", {}).get("stage_step")
    print("| mixture | " + " | ".join(KEYS) + " | steps |")
    print("|---" * (len(KEYS) + 2) + "|")
    for name, m in rows.items():
        cells = [f"{m[k]:.3f}" if isinstance(m.get(k), float) else "–" for k in KEYS]
        print(f"| {name} | " + " | ".join(cells) + f" | {m.get('steps', '–')} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({k: {kk: v for kk, v in m.items() if kk != "progress"}
                                    for k, m in rows.items()}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
