"""`pixsearch serve`: the HTTP API and web page (or, with --search-only, the search API)."""

from __future__ import annotations

import argparse

from pixsearch.cli.options import add_decode_flags, decode_config, default_index


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the model (HTTP API + web page) or a search index")
    p.add_argument("--model", default="mini", help="preset name or checkpoint dir")
    p.add_argument("--index", default=None, help="knowledge-index dir or search-server URL")
    p.add_argument("--search-only", action="store_true",
                   help="serve only the index as a search API (POST /search)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    add_decode_flags(p, config_file=True)
    p.add_argument("overrides", nargs="*", help="DecodeConfig key=value overrides (the "
                                                "server's defaults; requests may override some)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from pixsearch.predictor import Predictor, load_search

    index = default_index(args.index)
    if args.search_only:
        from pixsearch.retrieval.server import make_app

        search = load_search(index)
        if search is None:
            raise SystemExit("--search-only needs --index (no world index found either)")
        app = make_app(search)
    else:
        from pixsearch.serve.app import create_app

        cfg = decode_config(args, list(args.overrides))
        app = create_app(Predictor.load(args.model, index, cfg), name=args.model)
    uvicorn.run(app, host=args.host, port=args.port)
    return 0
