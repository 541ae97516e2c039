"""Re-deciding a finished run's abstentions with another policy, without decoding again.

The abstention policy acts after decoding: the engine finishes the answer, scores the trace's
confidence features (`pixsearch/abstention.py`) and replaces the answer by "I don't know." below
the threshold, keeping the model's words in `trace.raw_answer`. So a run's predictions already
hold everything a new policy needs, and replaying them gives exactly the answers a fresh run of
the same weights would give with that policy. `pixsearch eval apply-policy --run RUN --model
CKPT --out OUT` writes such a run (its predictions, scores, report and figures): a recalibrated
policy is measured on test in seconds instead of the hours of decoding again, and a sweep
folder is replayed run by run. The decision is the engine's own (`pixsearch.abstention.decide`);
answers the engine gave up on (`trace.failure`) stay abstentions.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from pixsearch.abstention import AbstentionConfig, decide
from pixsearch.config import save, to_dict
from pixsearch.types import Trace


def redecide(trace: dict[str, Any], answer: str, policy: AbstentionConfig
             ) -> tuple[dict[str, Any], str]:
    """One turn's (trace, answer) as the engine would have returned them under `policy`: the
    trace is taken back to before the engine's decision, then decided again."""
    tr = Trace.from_dict(trace)
    words = tr.raw_answer if tr.abstained or tr.failure is not None else answer
    assert words is not None, "an abstained or failed trace keeps the model's words"
    tr.p_correct, tr.abstain_threshold, tr.abstained, tr.raw_answer = None, None, False, None
    text = decide(tr, words, policy)
    return tr.to_dict(), text


def redecide_line(line: dict[str, Any], policy: AbstentionConfig) -> dict[str, Any]:
    """A prediction line (every turn of it) re-decided under `policy`."""
    out = dict(line)
    out["trace"], out["answer"] = redecide(line["trace"], line["answer"], policy)
    if "turn_answers" in line:
        later = [redecide(t, a, policy)
                 for t, a in zip(line["turn_traces"], line["turn_answers"][1:])]
        out["turn_traces"] = [t for t, _ in later]
        out["turn_answers"] = [out["answer"], *(a for _, a in later)]
    return out


def check_same_weights(run_model: str, checkpoint: Path, recorded: str | None = None) -> None:
    """Refuse a policy fitted for other weights than the run's: its confidences would be
    another model's. `recorded`: the digest of the weights that answered, from the run's
    provenance (`runner.model_weights`); runs written before it was recorded have none, and
    the folder the run names is digested instead (it may hold other weights by now). A run of
    a preset without a folder cannot be checked and is allowed."""
    from pixsearch.eval.runner import model_weights

    ran = recorded or model_weights(run_model).get("model_weights_sha256")
    ours = model_weights(str(checkpoint)).get("model_weights_sha256")
    if ran and ours and ran != ours:
        raise ValueError(f"the run was answered by weights with sha256 {ran[:12]}…, not "
                         f"{checkpoint}'s ({ours[:12]}…): a policy only re-decides answers of "
                         "its own weights")


def replay_run(run_dir: str | Path, checkpoint: str | Path, out: str | Path) -> dict[str, Any]:
    """Write into `out` the run `run_dir` re-decided with `checkpoint`'s policy (module doc);
    returns its scores."""
    from pixsearch.eval.runner import (
        finish_run,
        load_config,
        load_eval_records,
        model_weights,
        read_predictions,
    )
    from pixsearch.model.config import ModelConfig
    from pixsearch.provenance import read_provenance, write_provenance

    t0 = time.perf_counter()
    run_dir, checkpoint, out = Path(run_dir), Path(checkpoint), Path(out)
    if out.resolve() == run_dir.resolve():
        raise ValueError("write the replayed run to another folder (--out): the original "
                         "predictions are what is replayed")
    cfg = load_config(run_dir)
    check_same_weights(cfg.model, checkpoint,
                       (read_provenance(run_dir) or {}).get("model_weights_sha256"))
    policy = ModelConfig.from_dict(json.loads((checkpoint / "config.json").read_text())).abstention
    predictions = read_predictions(run_dir / "predictions.jsonl")
    if not predictions:
        raise FileNotFoundError(f"{run_dir} has no predictions to replay")
    records = [r for r in load_eval_records(cfg) if str(r["id"]) in predictions]
    out.mkdir(parents=True, exist_ok=True)
    cfg = replace(cfg, model=str(checkpoint), out=str(out))
    save(cfg, out / "config.yaml")
    lines = {rid: redecide_line(p, policy) for rid, p in predictions.items()}
    with (out / "predictions.jsonl").open("w", encoding="utf-8") as f:
        for line in lines.values():
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    scores = finish_run(cfg, records, lines)
    scores["replayed"] = {"from": str(run_dir), "policy": to_dict(policy)}
    (out / "scores.json").write_text(json.dumps(scores, indent=2))
    write_provenance(out, "eval", time.perf_counter() - t0, **model_weights(str(checkpoint)))
    return scores


def _sweep_order(sweep_dir: Path) -> dict[str, int]:
    """Position of each run in the sweep's own report (its provenance lists them)."""
    prov = sweep_dir / "report" / "provenance.json"
    runs = json.loads(prov.read_text()).get("runs", []) if prov.is_file() else []
    return {Path(r).name: i for i, r in enumerate(runs)}


def replay(run_dir: str | Path, checkpoint: str | Path, out: str | Path) -> list[Path]:
    """Replay one run folder, or every run of a sweep folder (its sub-folders with a
    `config.yaml`, combined into `out/report`). Returns the replayed run folders."""
    from pixsearch.eval.report import combine_runs

    run_dir, out = Path(run_dir), Path(out)
    if (run_dir / "config.yaml").is_file():
        replay_run(run_dir, checkpoint, out)
        return [out]
    order = _sweep_order(run_dir)
    subs = sorted((d for d in run_dir.iterdir() if (d / "config.yaml").is_file()
                   and (d / "predictions.jsonl").is_file()),
                  key=lambda d: (order.get(d.name, len(order)), d.name))
    if not subs:
        raise FileNotFoundError(f"{run_dir} is neither an eval run nor a sweep of runs")
    done = []
    for d in subs:
        replay_run(d, checkpoint, out / d.name)
        done.append(out / d.name)
    combine_runs(done, out / "report")
    return done
