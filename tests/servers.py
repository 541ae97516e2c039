"""Test helpers of the HTTP layers: run an ASGI app on a real uvicorn server in a background
thread, and a language model whose pace and faults a server test controls (`PacedLM`).

The tests of the HTTP layers (`serve/app.py`, `retrieval/server.py`) use TestClient for most
checks and one real server each, so that sockets, streaming and the HTTP client are exercised
end to end. The `live_server` fixture of `conftest.py` wraps `serve_in_thread`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def serve_in_thread(app: Any, timeout: float = 20.0, log_level: str = "error") -> Iterator[str]:
    """Serve `app` on 127.0.0.1 until the block exits; yields the base URL."""
    import uvicorn

    # bind the socket here and hand it to uvicorn: no window in which another process could
    # take a port that was found free and then released
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level=log_level))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not server.started:
            raise RuntimeError(f"uvicorn did not start within {timeout:.0f}s")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# -- language models whose pace and faults the server tests control -------------------------

class PacedLM:
    """A real `SearchLM` (wrapped by `scripted.SteeredLM`, so its answer starts with `script`)
    that sleeps `delay_s` before every step and fails at step `fail_at` (None: never), like a
    slow machine or a model that crashes mid-answer. `steps` counts the steps it computed, so
    a test can tell whether work continued after its client left."""

    def __init__(self, model: Any, script: list, delay_s: float = 0.0,
                 fail_at: int | None = None) -> None:
        from scripted import SteeredLM

        self.inner = SteeredLM(model, script)
        self.tokens, self.renderer = self.inner.tokens, self.inner.renderer
        self.delay_s, self.fail_at = delay_s, fail_at
        self.steps = 0
        self.started = 0

    def start(self, prompt: Any, image: Any):
        self.started += 1
        session, logits = self.inner.start(prompt, image)
        extend = session.extend

        def paced(ids: list[int]):
            time.sleep(self.delay_s)
            self.steps += 1
            if self.fail_at is not None and self.steps >= self.fail_at:
                raise RuntimeError(f"injected fault at decode step {self.steps}")
            return extend(ids)

        session.extend = paced
        return session, logits
