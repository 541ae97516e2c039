"""POST to an OpenAI-compatible endpoint with retries: the LLM judge (`eval/llm_judge.py`) and
Stage-2 data construction (`construct/llm.py`) both talk to such servers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def post_with_retries(client: Any, url: str, body: dict, retries: int, backoff: float,
                      error: type[Exception], name: str, hint: str,
                      on_send: Callable[[], None] = lambda: None) -> Any:
    """The JSON reply of POSTing `body` to `url` with an `httpx.Client`. Transport errors,
    timeouts, 429 and 5xx are retried up to `retries` attempts in all, waiting `backoff` s
    and doubling; any other 4xx raises `error` at once with `hint`. `name` is how messages
    call the endpoint; `on_send` runs before every request sent (cost accounting)."""
    import httpx

    last = ""
    for attempt in range(retries):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        on_send()
        try:
            r = client.post(url, json=body)
        except (httpx.TimeoutException, httpx.TransportError) as e:
            last = f"{type(e).__name__}: {e}"
            continue
        if r.status_code == 429 or r.status_code >= 500:
            last = f"HTTP {r.status_code}: {r.text[:200]}"
            continue
        if r.status_code >= 400:
            raise error(f"{name} rejected the request with HTTP {r.status_code}: "
                        f"{r.text[:300]} ({hint})")
        return r.json()
    raise error(f"{name} failed {retries} times; last error: {last}")
