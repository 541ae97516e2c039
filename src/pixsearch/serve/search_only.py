"""`pixsearch serve --search-only`: one shared retriever for many model workers.

Serves a knowledge index (or another search server) as the search API of
`pixsearch.retrieval.server` — single and batch queries, a request-size limit — optionally
behind a record/replay cache (`pixsearch.retrieval.search_cache`):

    pixsearch serve --search-only --index IDX --search-cache DIR --search-mode record
    pixsearch serve --search-only --search-cache DIR --search-mode replay      (no index)

An evaluation pointed at the recording server (`--index http://…`) stores every answer; the
replaying server answers the same queries with the same hits, bit for bit, offline, and any
query it never saw with 404 — so a run against paid, drifting web search can be repeated.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_search_only_flags(p: argparse.ArgumentParser) -> None:
    """The flags of the search-only server (next to `--search-only` and `--index`)."""
    p.add_argument("--search-cache", metavar="DIR",
                   help="--search-only: record answers into / replay them from this folder")
    p.add_argument("--search-mode", choices=("record", "replay"), default="record",
                   help="--search-only with --search-cache: record (search live, store what is "
                        "new) or replay (answer from the cache only; no index needed)")
    p.add_argument("--max-batch", type=int, default=64,
                   help="--search-only: most queries in one POST /search/batch (default 64)")
    p.add_argument("--max-body-mb", type=float, default=32.0,
                   help="--search-only: largest request body in MiB (default 32)")


def search_only_app(args: argparse.Namespace, index: str | None) -> Any:
    """The search-only app the flags describe (SystemExit with the reason if they don't fit)."""
    from pixsearch.images import ImageLimits
    from pixsearch.predictor import load_search
    from pixsearch.retrieval.search_cache import CachedSearch
    from pixsearch.retrieval.server import SearchServerLimits, make_app

    if args.search_mode == "replay" and args.search_cache is None:
        raise SystemExit("pixsearch serve: --search-mode replay needs --search-cache DIR")
    replay = args.search_cache is not None and args.search_mode == "replay"
    try:
        search = None if replay else load_search(index)
        if search is None and not replay:
            raise SystemExit("pixsearch serve --search-only needs --index (no world index found "
                             "either), or --search-cache DIR --search-mode replay")
        if args.search_cache is not None:
            search = CachedSearch(search, args.search_cache, args.search_mode)
        limits = SearchServerLimits(max_body_bytes=int(args.max_body_mb * 2**20),
                                    max_batch=args.max_batch,
                                    image=ImageLimits(max_bytes=int(args.max_image_mb * 2**20)))
    except (OSError, ValueError) as e:
        raise SystemExit(f"pixsearch serve: {e}") from None
    stats = (lambda: {"cache": search.mode, **search.stats}) if isinstance(
        search, CachedSearch) else None
    return make_app(search, limits, stats)
