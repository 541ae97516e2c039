"""`pixsearch construct`: Stage-2 data construction for any visual-question data.

    pixsearch construct --input RAW.jsonl --out TRAJ.jsonl --index DIR --llm rule|openai|gemma
                        [--seg record|grabcut|model|grounded-sam|none]

RAW is the project's record format without trajectories (docs/dataset_format.md), or CRAG-MM
rows exported to JSONL (`--format crag-mm`). TRAJ gets the records with their constructed
trajectories (what `pixsearch train` reads); TRAJ.dropped.jsonl the dropped ones with the
reason; TRAJ.stats.json the per-step statistics. Rerunning the same command resumes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

LLMS = ("rule", "openai", "gemma")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("construct", help="turn visual questions into search-interleaved "
                                         "training trajectories (Stage-2 data construction)")
    p.add_argument("--input", type=Path, required=True, help="raw records (JSONL)")
    p.add_argument("--out", type=Path, required=True, help="constructed records (JSONL)")
    p.add_argument("--index", required=True,
                   help="knowledge index folder (or URL of a search server)")
    p.add_argument("--llm", choices=LLMS, default="rule",
                   help="annotator: rule (deterministic), openai (any OpenAI-compatible "
                        "endpoint, --llm-url), gemma (Gemma 3 270M served here by llama.cpp)")
    p.add_argument("--seg", default="record",
                   choices=("record", "grabcut", "model", "grounded-sam", "none"),
                   help="masks of region searches (default: the record's annotated masks)")
    p.add_argument("--format", choices=("records", "crag-mm"), default="records",
                   help="input format")
    p.add_argument("--llm-url", default="http://127.0.0.1:8000/v1", help="API root (openai)")
    p.add_argument("--llm-model", default="default", help="model name the endpoint expects")
    p.add_argument("--llm-mode", choices=("chat", "completion"), default="chat",
                   help="chat completions, or raw completions (base models)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="sampling temperature of candidates 2..N")
    p.add_argument("--prompts", default="", help="folder of your own prompt files")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of the gemma server")
    p.add_argument("--cache", type=Path, default=None,
                   help="LLM call cache (SQLite; default $PIXSEARCH_HOME/cache/construct.sqlite)")
    p.add_argument("-n", "--candidates", type=int, default=5, help="candidate responses")
    p.add_argument("--max-searches", type=int, default=4)
    p.add_argument("--drop-no-search", action="store_true",
                   help="drop questions that need no retrieval (default: keep them with a "
                        "direct answer)")
    p.add_argument("--limit", type=int, default=0, help="first N records only")
    p.add_argument("--top-k", type=int, default=None,
                   help="hits per search (default: the world's budget, else 3)")
    p.add_argument("--evidence-words", type=int, default=None,
                   help="words per information block (default: the world's, else 70)")
    p.add_argument("--seg-model", default="mini", help="model of --seg model")
    p.add_argument("--grounding-dino", default="", help="GroundingDINO checkpoint (grounded-sam)")
    p.add_argument("--sam", default="", help="SAM checkpoint (grounded-sam)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def _records(args: argparse.Namespace):
    from pixsearch.data.records import Record, read_records

    if not args.input.is_file():
        raise FileNotFoundError(f"no input records at {args.input}")
    if args.format == "records":
        return read_records(args.input)
    from pixsearch.eval.datasets import load_crag_mm_jsonl

    return [Record.from_dict(r) for r in load_crag_mm_jsonl(args.input)]


def _evidence(args: argparse.Namespace):
    from pixsearch.retrieval.evidence import EvidenceConfig
    from pixsearch.train.data import world_evidence

    base = (world_evidence(Path(args.index).expanduser().parent)
            if not str(args.index).startswith("http") else None) or EvidenceConfig()
    return EvidenceConfig(args.top_k or base.top_k, args.evidence_words or base.max_words)


def run(args: argparse.Namespace) -> int:
    from pixsearch import paths
    from pixsearch.construct.cache import CallCache
    from pixsearch.construct.execute import Executor
    from pixsearch.construct.pipeline import ConstructConfig, Constructor
    from pixsearch.construct.segmentation import make_segmenter
    from pixsearch.predictor import load_search

    records = _records(args)
    search = load_search(args.index)
    seg = make_segmenter(args.seg, args.seg_model,
                         (args.grounding_dino, args.sam) if args.seg == "grounded-sam" else None)
    cfg = ConstructConfig(n_candidates=args.candidates, max_searches=args.max_searches,
                          keep_no_search=not args.drop_no_search, limit=args.limit,
                          progress=not args.no_progress)
    cache = None
    server = None
    try:
        if args.llm == "rule":
            from pixsearch.construct.rule import RuleAnnotator

            annotator = RuleAnnotator()
        else:
            from pixsearch.construct.llm import LLMConfig, OpenAICompatibleLM
            from pixsearch.construct.llm_annotator import LLMAnnotator, LLMAnnotatorConfig

            cache = CallCache(args.cache or paths.cache_dir() / "construct.sqlite")
            if args.llm == "gemma":
                from pixsearch.construct.llm_local import GEMMA_MODEL, LocalLlamaServer

                server = LocalLlamaServer(threads=args.threads)
                lm_cfg = LLMConfig(server.base_url, GEMMA_MODEL, "completion", api_key_env="")
            else:
                lm_cfg = LLMConfig(args.llm_url, args.llm_model, args.llm_mode)
            lm = OpenAICompatibleLM(lm_cfg, cache, backend=args.llm)
            annotator = LLMAnnotator(lm, LLMAnnotatorConfig(args.temperature,
                                                            prompts=args.prompts))
        executor = Executor(search, _evidence(args), seg, cfg.execute)
        t0 = time.perf_counter()
        stats = Constructor(annotator, executor, cfg, args.seg).run(
            records, args.input.resolve().parent, args.out)
    finally:
        if cache is not None:
            cache.close()
        if server is not None:
            server.close()
    print(json.dumps({k: stats[k] for k in ("records", "kept", "dropped", "dropped_by_reason")}))
    print(f"constructed in {time.perf_counter() - t0:.0f} s: {args.out} "
          f"(statistics beside it, *.stats.json)")
    return 0
