"""The published benchmarks' own scores of a question-answering run, beside the common ones.

`score_run` (`scores.py`) gives every run exact match, relaxed EM and F1 against the gold
answers and aliases — the paper's metrics for InfoSeek, OVEN, TextVQA and the text-only QA
sets. `benchmark_scores` adds what each benchmark reports officially:

- TextVQA: VQA accuracy over the ten human answers (`vqa_accuracy.py`);
- InfoSeek: the official score (exact / numeric-range rules) per split and the harmonic mean
  of `unseen_question` and `unseen_entity`, and its relaxed-match variant
  (`infoseek_scoring.py`);
- OVEN: accuracy on seen and unseen entities and their harmonic mean;
- every set: which dataset and split the run read (for the paper's tables), and EM / relaxed
  EM / F1 again per question type when the set has types.

`benchmark_section(scores)` renders these as markdown for the run's report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pixsearch.eval.infoseek_scoring import infoseek_score, infoseek_summary, oven_summary
from pixsearch.eval.text_metrics import relaxed_exact_match, score_text
from pixsearch.eval.vqa_accuracy import vqa_accuracy


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def benchmark_scores(records: Sequence[Mapping[str, Any]],
                     predictions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """The official scores of the benchmark the records come from (None for records of the
    project's own format, which carry no `source`)."""
    rows = [r for r in records if str(r["id"]) in predictions and r.get("source")]
    sources = sorted({str(r["source"]) for r in rows})
    if not rows or sources == ["crag-mm"]:
        return None
    answer = {str(r["id"]): str(predictions[str(r["id"])]["answer"]) for r in rows}
    out: dict[str, Any] = {"sources": sources, "task": rows[0].get("task"), "n": len(rows)}
    textvqa = [r for r in rows if r.get("vqa_answers")]
    if textvqa:
        accs = [vqa_accuracy(answer[str(r["id"])], r["vqa_answers"]) for r in textvqa]
        out["vqa_accuracy"] = sum(accs) / len(accs)
    infoseek = [r for r in rows if r.get("answer_eval") is not None]
    if infoseek:
        out["infoseek"] = infoseek_summary(
            (r.get("split") or "", infoseek_score(answer[str(r["id"])], r["answer_eval"],
                                                  r.get("question_type") or "STRING"),
             infoseek_score(answer[str(r["id"])], r["answer_eval"],
                            r.get("question_type") or "STRING", relaxed=True))
            for r in infoseek)
    oven = [r for r in rows if r.get("source") == "oven"]
    if oven:
        out["oven"] = oven_summary((r.get("split") or "",
                                    int(relaxed_exact_match(answer[str(r["id"])], r["answers"])))
                                   for r in oven)
    types = sorted({str(r["question_type"]) for r in rows if r.get("question_type")})
    if 1 < len(types) <= 50:
        out["by_question_type"] = {
            t: score_text([answer[str(r["id"])] for r in rows if r.get("question_type") == t],
                          [r["answers"] for r in rows if r.get("question_type") == t]).as_dict()
            for t in types}
    return out


def benchmark_section(scores: Mapping[str, Any]) -> str:
    """Markdown of a run's `benchmark` scores ("" when the run has none)."""
    b = scores.get("benchmark")
    if not b:
        return ""
    text = scores["groups"]["all"]["text"]
    lines = ["## Benchmark scores", "",
             f"- data: {', '.join(b['sources'])} ({b['n']} questions, task {b['task']})",
             f"- exact match {_pct(text['exact_match'])}, relaxed EM "
             f"{_pct(text['relaxed_exact_match'])}, F1 {_pct(text['f1'])} (the paper's metrics)"]
    if "vqa_accuracy" in b:
        lines.append(f"- VQA accuracy (ten human answers): {_pct(b['vqa_accuracy'])}")
    if "infoseek" in b:
        s = b["infoseek"]
        lines.append(f"- InfoSeek official score {_pct(s['all']['accuracy'])} (relaxed "
                     f"{_pct(s['all']['relaxed'])}); unseen question "
                     f"{_pct(s['unseen_question']['accuracy'])}, unseen entity "
                     f"{_pct(s['unseen_entity']['accuracy'])}, harmonic mean "
                     f"{_pct(s['final'])}")
    if "oven" in b:
        s = b["oven"]
        lines.append(f"- OVEN accuracy seen {_pct(s['seen']['accuracy'])}, unseen "
                     f"{_pct(s['unseen']['accuracy'])}, harmonic mean {_pct(s['final'])}")
    if "by_question_type" in b:
        lines += ["", "| question type | n | EM | rEM | F1 |", "|---|---|---|---|---|"]
        lines += [f"| {t} | {int(v['n'])} | {_pct(v['exact_match'])} | "
                  f"{_pct(v['relaxed_exact_match'])} | {_pct(v['f1'])} |"
                  for t, v in b["by_question_type"].items()]
    return "\n".join(lines + [""])
