"""Per-step statistics of a construction run, written beside its output (`*.stats.json`).

Computed from the output files themselves (the kept records' `construct` metadata and the
dropped rows), so a resumed run reports on everything it wrote, not only its last part:
records in, kept and dropped (per reason), question types and the retrieval decision, the
candidate chosen and repairs, searches per trajectory, query-type shares, how the evidence
supports the answers, time per record; plus this run's model calls, cache hits and replies
the annotator could not read.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _shares(c: Counter) -> dict[str, float]:
    total = sum(c.values())
    return {k: round(v / total, 4) for k, v in sorted(c.items())} if total else {}


def summarize(kept: Iterable[dict[str, Any]], dropped: Iterable[dict[str, Any]],
              run: dict[str, Any] | None = None) -> dict[str, Any]:
    """The statistics of kept record dicts and dropped rows (see the module docstring);
    `run` adds this run's counters (model calls, cache hits, unreadable replies)."""
    kept, dropped = list(kept), list(dropped)
    meta_k = [r.get("construct", {}) for r in kept]
    meta_all = meta_k + [d.get("construct", {}) for d in dropped]
    searches = [len(r.get("search_types") or []) for r in kept]
    qtypes = Counter(t for r in kept for t in r.get("search_types") or [])
    seconds = [m["seconds"] for m in meta_all if "seconds" in m]
    out = {
        "records": len(kept) + len(dropped),
        "kept": len(kept),
        "dropped": len(dropped),
        "dropped_by_reason": dict(Counter(d.get("reason", "?") for d in dropped).most_common()),
        "selection": {
            "question_types": dict(Counter(m.get("question_type", "?") for m in meta_all)
                                   .most_common()),
            "needs_search": sum(bool(m.get("needs_search")) for m in meta_all),
            "no_search": sum(not m.get("needs_search") for m in meta_all if m),
        },
        "responses": {
            "chosen_rank": dict(sorted(Counter(m.get("chosen_rank", -1) for m in meta_k)
                                       .items())),
            "repaired": sum(bool(m.get("repaired")) for m in meta_k),
            "support": dict(Counter(m.get("support", "?") for m in meta_k).most_common()),
        },
        "searches": {
            "per_trajectory_mean": round(statistics.fmean(searches), 3) if searches else 0.0,
            "per_trajectory": dict(sorted(Counter(searches).items())),
            "query_types": dict(qtypes),
            "query_type_shares": _shares(qtypes),
        },
        "seconds_per_record": {
            "mean": round(statistics.fmean(seconds), 3) if seconds else None,
            "median": round(statistics.median(seconds), 3) if seconds else None,
        },
    }
    if run:
        out["this_run"] = run
    return out


def write_stats(path: Path, stats: dict[str, Any]) -> None:
    """Write the statistics as indented JSON."""
    Path(path).write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n",
                          encoding="utf-8")
