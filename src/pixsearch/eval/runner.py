"""The evaluation runner: answer every record of a set under one mode, log, score, report.

`run_eval(EvalConfig)` writes into `out`:

    config.yaml         the EvalConfig of the run
    predictions.jsonl   one line per record: answer, per-turn answers, full trace, timings
    scores.json         every metric per group (`pixsearch.eval.scores.score_run`)
    report.md           the run's tables (`pixsearch.eval.report`)
    search_patterns.png searches per sample and query-type shares, ego vs non-ego (Fig. 4)

Predictions are appended as records finish, so an interrupted run resumes where it stopped
(ids already in predictions.jsonl are skipped). `workers > 1` answers records in a process
pool (each worker loads the model once) or, with `ray: true`, in Ray actors.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pixsearch.config import ConfigError, from_dict, save, to_dict
from pixsearch.decode.config import DecodeConfig
from pixsearch.defaults import DEFAULT_MODEL
from pixsearch.eval.datasets import (
    BENCHMARK_FORMATS,
    BenchmarkConfig,
    load_benchmark_records,
    load_crag_mm_jsonl,
    load_records,
)
from pixsearch.eval.modes import MODES
from pixsearch.eval.proposals import ProposalConfig
from pixsearch.eval.segmentation import SEG_TASKS, SegmentationConfig
from pixsearch.logs import progress_bar
from pixsearch.provenance import tensors_sha256, write_provenance
from pixsearch.types import Trace

# fields that do not change what a record's prediction is (a resumed run may change them)
_RESUME_FREE = ("limit", "workers", "ray", "batch", "judge", "judge_url", "judge_model",
                "judge_max_tokens", "progress", "device")


@dataclass
class EvalConfig:
    """One evaluation run.

    Attributes:
        data: a JSONL file of records, or a world folder holding `<split>.jsonl`.
        split: the split read from a world folder (ignored for a file).
        format: "pixsearch" (the project's records), "crag-mm" (CRAG-MM rows exported to
            JSONL), a published benchmark (`pixsearch.data.formats.FORMATS`: infoseek, oven,
            textvqa, hotpotqa, nq-open, popqa, musique, refcoco, refcoco+, refcocog, ade20k,
            coco-stuff; docs/benchmarks.md; `data` is its question file or dataset folder)
            or "auto" (CRAG-MM when the first line has `session_id` and `turns`, else the
            project's records).
        model: model preset name or checkpoint folder.
        index: knowledge-index folder or search-server URL (default: `<world>/index`).
        mode: one of `pixsearch.eval.modes.MODES`.
        decode: how answers are decoded (every `DecodeConfig` field: `decode.max_searches=2`
            is the search budget B, `decode.modalities` the Table 6 ablation,
            `decode.temperature`, `decode.evidence_max_words`, ...); a baseline mode overrides
            what it needs (its budget is always 0). `decode.top_k` is also the k of recall@k.
        limit: answer only the first N records (None: all).
        workers: parallel workers (1: in this process).
        ray: use Ray actors instead of a process pool for `workers > 1`.
        batch: records answered at once in this process by the batched engine (continuous
            batching, `pixsearch.decode.batched`); 1 answers them one at a time. At
            temperature 0 its answers are the one-at-a-time answers up to float rounding.
        judge: "rule" (offline, default), "openai" (an OpenAI-compatible LLM judge; the rule
            judge then runs too and their agreement is reported) or "none" (exact match only).
        judge_url, judge_model: the LLM judge's endpoint and model name.
        judge_max_tokens: completion budget of each LLM-judge call (explanation + verdict);
            lower it for small local judges that ramble until the budget runs out.
        pipeline_select: which proposal the `pipeline` mode searches with ("saliency" or
            "retrieval").
        proposals: region-proposal settings of the `pipeline` mode.
        images: the image folder of a benchmark that names images by id (InfoSeek, OVEN,
            TextVQA, RefCOCO*).
        benchmark: how a published benchmark is read (`benchmark.split_by`,
            `benchmark.classes`).
        segmentation: how the refseg / semseg tasks prompt the model
            (`segmentation.semseg_classes=all`, ...).
        device: torch device the model answers on ("cuda", "cuda:1", "auto"; None: where it
            loads, the CPU).
        model_overrides: nested `ModelConfig` overrides of a preset model (the CLI's
            `model.key=value`: `lm.pretrained`, `mask_decoder.sam_pretrained`, `dtype`).
        out: the run folder.
        progress: show a progress bar.
    """

    data: str = ""
    split: str = "test"
    format: str = "auto"
    model: str = DEFAULT_MODEL
    index: str | None = None
    mode: str = "full"
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    limit: int | None = None
    workers: int = 1
    ray: bool = False
    batch: int = 1
    judge: str = "rule"
    judge_url: str | None = None
    judge_model: str | None = None
    judge_max_tokens: int = 1024
    pipeline_select: str = "saliency"
    proposals: ProposalConfig = field(default_factory=ProposalConfig)
    images: str | None = None
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    device: str | None = None
    model_overrides: dict = field(default_factory=dict)
    out: str = "eval_run"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode {self.mode!r} is not one of {MODES}")
        if self.judge not in ("rule", "openai", "none"):
            raise ConfigError(f"judge {self.judge!r} is not one of rule, openai, none")
        if self.judge == "openai" and not (self.judge_url and self.judge_model):
            raise ConfigError("the openai judge needs judge_url and judge_model")
        if not self.decode.modalities:
            raise ConfigError("decode.modalities is empty; allow at least one of region, image, "
                              "text (or set decode.max_searches=0)")
        if self.workers < 1:
            raise ConfigError("workers must be at least 1")
        if self.batch < 1:
            raise ConfigError("batch must be at least 1")
        if self.batch > 1 and self.workers > 1:
            raise ConfigError("use either workers > 1 (processes) or batch > 1 (one process "
                              "decoding records together), not both")


def data_file(cfg: EvalConfig) -> Path:
    """The JSONL file a config reads: `data` itself, or `<data>/<split>.jsonl`."""
    path = Path(cfg.data).expanduser()
    if path.is_dir():
        path = path / f"{cfg.split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no evaluation set at {path}: pass a JSONL file or a world "
                                "folder with <split>.jsonl (`pixsearch world build`)")
    return path


def load_eval_records(cfg: EvalConfig) -> list[dict[str, Any]]:
    """The records of the run (project records, converted CRAG-MM rows or a published
    benchmark's samples), `limit` applied."""
    if cfg.format in BENCHMARK_FORMATS:
        records = load_benchmark_records(cfg.format, cfg.data, cfg.split, cfg.images,
                                         cfg.benchmark)
        return records[: cfg.limit] if cfg.limit is not None else records
    path = data_file(cfg)
    fmt = cfg.format
    if fmt == "auto":
        with path.open(encoding="utf-8") as f:
            first = json.loads(next((line for line in f if line.strip()), "{}"))
        fmt = "crag-mm" if "session_id" in first and "turns" in first else "pixsearch"
    if fmt == "crag-mm":
        records = load_crag_mm_jsonl(path, split=cfg.split)
        for r in records:
            r["image_path"] = r.get("image")
    elif fmt == "pixsearch":
        records = load_records(path)
    else:
        raise ConfigError(f"format {fmt!r} is not one of auto, pixsearch, crag-mm, "
                          f"{', '.join(BENCHMARK_FORMATS)}")
    return records[: cfg.limit] if cfg.limit is not None else records


def default_index(cfg: EvalConfig) -> str | None:
    """`index`, else the `index/` folder of the world the data comes from (if any)."""
    if cfg.index:
        return cfg.index
    data = Path(cfg.data).expanduser()
    for folder in (data, data.parent):
        if (folder / "index" / "index.yaml").is_file():
            return str(folder / "index")
    return None


def read_predictions(path: Path) -> dict[str, dict[str, Any]]:
    """Prediction lines by id. A last line cut off by a crash is dropped from the file, so
    appending after it stays valid JSONL."""
    if not path.is_file():
        return {}
    out: dict[str, dict[str, Any]] = {}
    good = 0
    with path.open("rb") as f:
        for raw in f:
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                break
            if not raw.endswith(b"\n"):
                break
            out[str(line["id"])] = line
            good += len(raw)
    if good < path.stat().st_size:
        with path.open("r+b") as f:
            f.truncate(good)
    return out


def _check_resume(cfg: EvalConfig, out: Path) -> None:
    saved = out / "config.yaml"
    if not saved.is_file():
        return
    import yaml

    old = dict(_flat(yaml.safe_load(saved.read_text()) or {}))
    new = dict(_flat(to_dict(cfg)))
    # a setting added after the run was made had its default value in that run
    default = dict(_flat(to_dict(EvalConfig())))
    diff = sorted(k for k in new if k not in _RESUME_FREE and k != "out"
                  and old.get(k, default.get(k)) != new[k])
    if diff:
        raise ConfigError(f"{out} holds a run with different settings ({', '.join(diff)}); "
                          "use another --out or delete the folder to start over")


def _flat(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf of a nested config dict (`decode.top_k`, ...)."""
    for k, v in data.items():
        if isinstance(v, dict) and v:
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def recall_k(cfg: EvalConfig, predictions: dict[str, dict[str, Any]]) -> int:
    """The k of recall@k: the run's hits per search, `decode.top_k`; when that is left to
    the model (None), the most hits any search of the run returned (3 if none searched)."""
    if cfg.decode.top_k is not None:
        return cfg.decode.top_k
    counts = [len(step.hits) for line in predictions.values()
              for step in Trace.from_dict(line["trace"]).steps]
    return max(counts, default=0) or 3


def answer_records(cfg: EvalConfig, records: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Prediction lines for `records`, in completion order (parallel when `workers > 1`,
    batched when `batch > 1`)."""
    if cfg.batch > 1 and len(records) > 1:
        from pixsearch.eval.parallel import answer_batched

        yield from answer_batched(cfg, default_index(cfg), records)
        return
    if cfg.workers == 1 or len(records) <= 1:
        from pixsearch.eval.worker import Worker

        worker = Worker(to_dict(cfg), default_index(cfg))
        yield from (worker.answer(r) for r in records)
        return
    from pixsearch.eval.parallel import answer_parallel

    yield from answer_parallel(cfg, default_index(cfg), records)


def run_eval(cfg: EvalConfig) -> dict[str, Any]:
    """Answer (resuming), score and report one run; returns the scores."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = replace(cfg, index=default_index(cfg))  # record which index actually answered
    _check_resume(cfg, out)
    save(cfg, out / "config.yaml")
    records = load_eval_records(cfg)
    pred_path = out / "predictions.jsonl"
    done = read_predictions(pred_path)
    todo = [r for r in records if str(r["id"]) not in done]
    t0 = time.perf_counter()
    with pred_path.open("a", encoding="utf-8") as f:
        bar = progress_bar(total=len(todo), desc=f"eval {cfg.mode}", unit="rec",
                           disable=not cfg.progress)
        for line in answer_records(cfg, todo):
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
            f.flush()  # a crash loses at most the record in flight
            done[str(line["id"])] = line
            bar.update(1)
        bar.close()
    scores = finish_run(cfg, records, done)
    scores["timing"] = {"answered": len(todo), "skipped": len(records) - len(todo),
                        "seconds": time.perf_counter() - t0}
    (out / "scores.json").write_text(json.dumps(scores, indent=2))
    write_provenance(out, "eval", time.perf_counter() - t0, **model_weights(cfg.model))
    return scores


def model_weights(model: str) -> dict[str, str]:
    """`{"model_weights_sha256": …}` of a model folder's weights (`tensors_sha256`): what a
    run's provenance records, so that a later `eval apply-policy` can tell whether the folder
    still holds the weights that answered (empty for a preset without a folder)."""
    from pixsearch.predictor import model_path

    try:
        weights = model_path(model) / "model.safetensors"
    except FileNotFoundError:
        return {}
    return {"model_weights_sha256": tensors_sha256(weights)} if weights.is_file() else {}


def finish_run(cfg: EvalConfig, records: list[dict[str, Any]],
               predictions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Score the predictions and write scores.json, report.md and the figures."""
    from pixsearch.eval.benchmark_scores import benchmark_scores, benchmark_section
    from pixsearch.eval.figures import write_run_figures
    from pixsearch.eval.report import run_report
    from pixsearch.eval.scores import score_run
    from pixsearch.eval.segmentation import score_segmentation, segmentation_report

    out = Path(cfg.out)
    if records and records[0].get("task") in SEG_TASKS:  # masks only: no answers to judge
        scores = {**score_segmentation(records, predictions), "config": to_dict(cfg)}
        (out / "scores.json").write_text(json.dumps(scores, indent=2))
        (out / "report.md").write_text(segmentation_report(scores))
        return scores
    judge, second = make_judges(cfg)
    scores = score_run(records, predictions, judge, second, recall_k(cfg, predictions))
    scores["config"] = to_dict(cfg)
    bench = benchmark_scores(records, predictions)
    if bench is not None:
        scores["benchmark"] = bench
    (out / "scores.json").write_text(json.dumps(scores, indent=2))
    scores["figures"] = write_run_figures(scores, records, predictions, out)
    (out / "scores.json").write_text(json.dumps(scores, indent=2))
    (out / "report.md").write_text(run_report(scores) + benchmark_section(scores))
    return scores


def make_judges(cfg: EvalConfig):
    """The CRAG-MM judge of the run and, for an LLM judge, the rule judge for agreement."""
    from pixsearch.eval.judges import RuleJudge

    if cfg.judge == "none":
        return None, None
    if cfg.judge == "rule":
        return RuleJudge(), None
    from pixsearch.eval.llm_judge import OpenAIJudge

    return OpenAIJudge(cfg.judge_url, cfg.judge_model, max_tokens=cfg.judge_max_tokens), RuleJudge()


def load_config(run_dir: str | Path) -> EvalConfig:
    """The EvalConfig saved in a run folder."""
    import yaml

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not an eval run (no config.yaml)")
    return from_dict(EvalConfig, yaml.safe_load(path.read_text()))

