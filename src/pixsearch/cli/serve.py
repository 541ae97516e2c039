"""`pixsearch serve`: the HTTP API and web page (or, with --search-only, the search API).

The server starts listening at once and loads the model in the background: /api/health
answers from the first second (`model_loaded` tells when asks will be served; until then they
queue). Binding to a non-loopback address needs an API key (`--api-key` or the environment
variable `PIXSEARCH_API_KEY`), which clients send in the X-API-Key header.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import threading

from pixsearch.cli.options import (
    add_decode_flags,
    add_device_flag,
    check_model_overrides,
    decode_config,
    default_index,
    split_model_overrides,
)
from pixsearch.defaults import DEFAULT_MODEL
from pixsearch.serve.search_only import add_search_only_flags, search_only_app

API_KEY_ENV = "PIXSEARCH_API_KEY"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the model (HTTP API + web page) or a search index")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"preset name or checkpoint dir (default: {DEFAULT_MODEL})")
    add_device_flag(p)
    p.add_argument("--index", default=None, help="knowledge-index dir or search-server URL")
    p.add_argument("--search-only", action="store_true",
                   help="serve only the index as a search API (POST /search)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind; anything but loopback needs an API key")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None,
                   help=f"require this key in the X-API-Key header (default: ${API_KEY_ENV})")
    p.add_argument("--batch", type=int, default=16,
                   help="requests decoded together by continuous batching (default 16; "
                        "1 decodes one at a time)")
    p.add_argument("--max-queue", type=int, default=16,
                   help="requests that may wait for the model; more get 429 (default 16)")
    p.add_argument("--request-timeout", type=float, default=120.0,
                   help="seconds one answer may take once decoding started (default 120)")
    p.add_argument("--max-image-mb", type=float, default=20.0,
                   help="largest image upload in MiB (default 20)")
    add_search_only_flags(p)
    add_decode_flags(p, config_file=True)
    p.add_argument("overrides", nargs="*", help="DecodeConfig key=value overrides (the "
                                                "server's defaults; requests may override some); "
                                                "model.key=value ones are the model's")
    p.set_defaults(func=run)


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def api_key(args: argparse.Namespace) -> str | None:
    """The key from `--api-key` or the environment; refuses a public bind without one."""
    key = args.api_key or os.environ.get(API_KEY_ENV) or None
    if key is None and not is_loopback(args.host):
        raise SystemExit(f"pixsearch serve: binding to {args.host} exposes the model to the "
                         f"network; set an API key with --api-key KEY or ${API_KEY_ENV} "
                         "(clients send it in the X-API-Key header), or bind to 127.0.0.1")
    return key


def run(args: argparse.Namespace) -> int:
    import uvicorn

    index = default_index(args.index)
    if args.search_only:
        if not is_loopback(args.host):
            print(f"warning: the search API on {args.host} has no authentication")
        app = search_only_app(args, index)
    else:
        app = _model_app(args, index, api_key(args))
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port,
                                           timeout_graceful_shutdown=5))
    worker = getattr(app.state, "worker", None)
    if worker is not None:  # on SIGINT/SIGTERM: end open answers now, refuse new ones
        handle_exit = server.handle_exit

        def stop(sig, frame) -> None:
            # a thread: this handler may interrupt the event loop inside the worker's lock
            threading.Thread(target=worker.shutdown, daemon=True).start()
            handle_exit(sig, frame)

        server.handle_exit = stop
    server.run()
    return 0


def _model_app(args: argparse.Namespace, index: str | None, key: str | None):
    """The app, with the model loading in the background once the inputs were checked."""
    from pathlib import Path

    from pixsearch.images import ImageLimits
    from pixsearch.model.presets import preset_names
    from pixsearch.predictor import Predictor, load_model, load_search
    from pixsearch.serve.app import create_app
    from pixsearch.serve.limits import ServeLimits
    from pixsearch.serve.samples import find_samples

    if not Path(args.model).expanduser().is_dir() and args.model not in preset_names():
        raise SystemExit(f"pixsearch serve: model {args.model!r} is neither a checkpoint "
                         f"folder nor a preset ({', '.join(preset_names())})")
    model_overrides, overrides = split_model_overrides(list(args.overrides))
    cfg = decode_config(args, overrides)
    check_model_overrides(args.model, model_overrides)
    if args.device is not None:
        from pixsearch.model.placement import resolve_device

        try:
            resolve_device(args.device)
        except ValueError as e:
            raise SystemExit(f"pixsearch serve: {e}") from None
    if args.batch < 1:
        raise SystemExit(f"pixsearch serve: --batch must be >= 1, got {args.batch}")
    try:
        limits = ServeLimits(image=ImageLimits(max_bytes=int(args.max_image_mb * 2**20)),
                             max_queue=args.max_queue, request_timeout_s=args.request_timeout)
    except ValueError as e:
        raise SystemExit(f"pixsearch serve: {e}") from None
    try:  # the index is opened (and checked) now: a bad one stops us before the model loads
        search = load_search(index)
    except (OSError, ValueError) as e:
        raise SystemExit(f"pixsearch serve: {e}") from None
    return create_app(lambda: Predictor(load_model(args.model, args.device, model_overrides),
                                        search, cfg), name=args.model,
                      limits=limits, api_key=key, samples=find_samples(index),
                      batch=args.batch)
