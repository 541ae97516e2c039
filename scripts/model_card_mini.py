"""Write the model card of a shipped checkpoint: src/pixsearch/weights/MODEL/README.md.

Everything in it is read from the repository: the architecture and parameter counts from the
checkpoint itself, training from its `training.json`, evaluation results, error analysis and
failure examples from the committed reports in docs/results/MODEL/*/scores.json. What no file
records is given below with where it is written down: the exact commands of the committed
runs and of the training (docs/results/MODEL/README.md, configs/train/*.yaml); the machine
and package versions of the training run are in the checkpoint's `provenance.json`.

    python scripts/model_card_mini.py [mini|gemma-270m]   # rewrite a card after its reports change
"""

from __future__ import annotations

from pathlib import Path

from pixsearch.model.checkpoint import load_checkpoint
from pixsearch.model_card import EvalRun, write_model_card

ROOT = Path(__file__).resolve().parents[1]
WORLD = "~/.cache/pixsearch/world"
DATA = (f"the standard full benchmark world (`pixsearch world build --scale full`, seed 0, into "
        f"`{WORLD}`; 1,800 training scenes, paraphrased questions): its `train` split for "
        "training, `val` for validation")
VAL900 = "~/.cache/pixsearch/world-val900"  # 300 val scenes (900 records), same KB and index
HARDWARE = "the project's 2-core CPU development machine (no GPU)"


def _eval(model: str, split: str, out: str, extra: str = "", world: str = WORLD,
          mode: str = "full") -> str:
    return (f"pixsearch eval run --data {world} --split {split} --model {model} --mode {mode} "
            f"--max-new-tokens 64 --workers 2{extra} --out {out}")


def _calibrate(model: str, *runs: str) -> str:
    where = " ".join(f"--run docs/results/{model}/{run}" for run in runs)
    return (f" decode.abstain=false && pixsearch eval calibrate {where} "
            f"--model src/pixsearch/weights/{model}")


def _runs(model: str, val_limit: str, val900: bool = False) -> dict[str, str]:
    """Run folder → the commands that made it (docs/results/MODEL/README.md). With `val900`
    the policy was calibrated on the model's full-mode and whole-image answers to the
    900-record val world (VAL900) pooled, not on the 300 of val."""
    val = _eval(model, "val", f"docs/results/{model}/val_full", val_limit)
    runs = {"val_full": val + (" decode.abstain=false" if val900 else _calibrate(model, "val_full"))}
    if val900:
        runs["val900_full"] = (f"pixsearch world build --scale full --out {VAL900} scenes.val=300 "
                               "reuse_index=true && "
                               + _eval(model, "val", f"docs/results/{model}/val900_full",
                                       world=VAL900) + " decode.abstain=false")
        runs["val900_whole_image"] = (
            _eval(model, "val", f"docs/results/{model}/val900_whole_image", world=VAL900,
                  mode="whole_image")
            + _calibrate(model, "val900_full", "val900_whole_image"))
    runs["test_full"] = _eval(model, "test", "runs/test_full")
    runs["test_unseen_full"] = _eval(model, "test_unseen", "runs/test_unseen_full")
    return runs


# per shipped model: its eval runs and its training commands (the configs' headers and the
# README's account of the shipped runs); referent selection is trained on the frozen result
# (its report: referent_report.json beside the weights)
CARDS = {
    "mini": dict(runs=_runs("mini", ""), command=(
        "pixsearch world build --scale full && pixsearch train --config configs/train/mini.yaml "
        "&& pixsearch train --recipe referent --config configs/train/mini_referent.yaml")),
    "gemma-270m": dict(runs=_runs("gemma-270m", "", val900=True), command=(
        "pixsearch world build --scale full && pixsearch train --config "
        "configs/train/gemma.yaml && pixsearch train --recipe referent --config "
        "configs/train/mini_referent.yaml model=$PIXSEARCH_HOME/models/gemma-270m "
        "out=$PIXSEARCH_HOME/models/gemma-270m-referent8k "
        "'referent.thresholds=[0.5,0.2,0.05,0.01,0.002]' selector_samples=8000 "
        "val_samples=300, then its weights continued on a world that looks: "
        "pixsearch world build --scale full --out $PIXSEARCH_HOME/world-look "
        "evidence.perception=true && pixsearch train --config configs/train/gemma_look.yaml, "
        "then its selector fine-tuned on the result: pixsearch train --recipe referent "
        "--config configs/train/mini_referent.yaml model=$PIXSEARCH_HOME/models/gemma-270m-look "
        "'referent.thresholds=[0.5,0.2,0.05,0.01,0.002]' warm_start=true selector_samples=2000 "
        "val_samples=300 selector_lr=5e-4, then its entity counter (the proposer's centre "
        "heatmap, everything else frozen): pixsearch train --recipe referent --config "
        "configs/train/gemma_centres.yaml, then its proposals cut at those centres (no "
        "weight changes): pixsearch train --recipe referent --config "
        "configs/train/gemma_peak_split.yaml, then its selector retrained fresh on 12,000 "
        "expressions with the centres counted around each candidate: pixsearch train "
        "--recipe referent --config configs/train/gemma_peak_counts.yaml, then the refiner "
        "that zooms into the picked flag and segments it again (everything else frozen): "
        "pixsearch train --recipe refiner --config configs/train/gemma_zoom.yaml, then its "
        "selector retrained fresh with the expression's colour words matched against each "
        "candidate's colours: pixsearch train --recipe referent --config "
        "configs/train/gemma_colour_words.yaml; it searches the world's index, whose image "
        "embedder is three networks also trained on the train scenes' region examples "
        "(pixsearch world build --scale full: learned.members=3, index_regions=true); then "
        "its <image> row alone trained on forced whole-image searches answered with their "
        "counts and on the photos' own whole-image trajectories: pixsearch world build "
        "--scale full --out $PIXSEARCH_HOME/world-count reuse_index=true "
        "evidence.perception=true evidence.image_count=true && pixsearch train --config "
        "configs/train/gemma_whole_image.yaml"),
        data=DATA + ". The first run (`configs/train/gemma.yaml`, 53.9 min) and the referent "
        "selection (below; measured on the span embeddings before the last stage) used it as "
        "is; the stage that taught it to look (`configs/train/gemma_look.yaml`, 44.8 min) used "
        "the same scenes and questions with gold trajectories that look "
        "(`$PIXSEARCH_HOME/world-look`, `evidence.perception=true`); the last stage (the "
        "table) used them with whole-image evidence that opens with the count "
        "(`$PIXSEARCH_HOME/world-count`, `evidence.image_count=true`)"),
}


def main(name: str = "mini", weights: Path | None = None) -> Path:
    """Write the card of shipped model `name` (into `weights`, default its package folder)."""
    weights = weights or ROOT / "src" / "pixsearch" / "weights" / name
    model = load_checkpoint(weights)
    evals = [EvalRun(ROOT / "docs" / "results" / name / run, command,
                     f"../../../../docs/results/{name}/{run}/report.md")
             for run, command in CARDS[name]["runs"].items()]
    path = write_model_card(weights, model, evals, command=CARDS[name]["command"],
                            hardware=HARDWARE, data=CARDS[name].get("data", DATA),
                            usage_path=name)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    import sys

    main(*sys.argv[1:2])
