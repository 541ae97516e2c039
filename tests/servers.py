"""Test helper: run an ASGI app on a real uvicorn server in a background thread.

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
