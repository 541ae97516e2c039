"""Write the model card of the shipped `mini` checkpoint: src/pixsearch/weights/mini/README.md.

Everything in it is read from the repository: the architecture and parameter counts from the
checkpoint itself, training from its `training.json`, evaluation results, error analysis and
failure examples from the committed reports in docs/results/mini/*/scores.json. What no file
records is given below with where it is written down: the exact commands of the committed
runs and of the training (docs/results/mini/README.md, configs/train/mini.yaml); the machine
and package versions of the training run are in the checkpoint's `provenance.json`.

    python scripts/model_card_mini.py          # rewrite the card after the reports change
"""

from __future__ import annotations

from pathlib import Path

from pixsearch.model.checkpoint import load_checkpoint
from pixsearch.model_card import EvalRun, write_model_card

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "pixsearch" / "weights" / "mini"
RESULTS = ROOT / "docs" / "results" / "mini"
WORLD = "~/.cache/pixsearch/world"
EVAL = (f"pixsearch eval run --data {WORLD} --split {{split}} --model mini --mode full "
        "--max-new-tokens 64 --workers 2 --out {out}")
# run folder → the commands that made it (docs/results/mini/README.md)
RUNS = {
    "val_full": EVAL.format(split="val", out="docs/results/mini/val_full")
    + " decode.abstain=false && pixsearch eval calibrate --run docs/results/mini/val_full "
      "--model src/pixsearch/weights/mini",
    "test_full": EVAL.format(split="test", out="runs/test_full"),
    "test_unseen_full": EVAL.format(split="test_unseen", out="runs/test_unseen_full"),
}
# configs/train/mini.yaml (header) and the README's account of the shipped run
# then referent selection on the frozen result (its report: referent_report.json beside it)
TRAIN_COMMAND = ("pixsearch world build --scale full && pixsearch train --config "
                 "configs/train/mini.yaml && pixsearch train --recipe referent --config "
                 "configs/train/mini_referent.yaml")
DATA = (f"the standard full benchmark world (`pixsearch world build --scale full`, seed 0, into "
        f"`{WORLD}`; 1,800 training scenes, paraphrased questions): its `train` split for "
        "training, `val` for validation")
HARDWARE = "the project's 2-core CPU development machine (no GPU)"


def main() -> Path:
    model = load_checkpoint(WEIGHTS)
    evals = [EvalRun(RESULTS / name, command, f"../../../../docs/results/mini/{name}/report.md")
             for name, command in RUNS.items()]
    path = write_model_card(WEIGHTS, model, evals, command=TRAIN_COMMAND, hardware=HARDWARE,
                            data=DATA, usage_path="mini")
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
