"""A standalone Milvus server on loopback, from the `milvus` package (optional
`milvus-server` extra).

PyPI's `milvus` (2.3.x) ships the Milvus standalone binary with embedded etcd and local
storage; `LocalMilvusServer` runs it on 127.0.0.1 with its data in one folder, so that an
index can live in a real Milvus server on one machine and move to a cluster unchanged
(`MilvusStore` is the client of both). The package needs nothing but the standard library;
the client is the environment's own `pymilvus` (2.4+ talks to this 2.3 server; the
`milvus[client]` extra would pin pymilvus < 2.4 and older protobuf/grpc, and is not needed).

    with LocalMilvusServer("milvus-data") as server:
        store = MilvusStore(server.url, "passages", 384)
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

INSTALL_HINT = "pip install 'pixsearch[milvus-server]'"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalMilvusServer:
    """The `milvus` package's standalone server, bound to 127.0.0.1.

    Args:
        data_dir: where the server keeps its data, logs and unpacked binary (kept between
            starts: restart it on the same folder and the collections are there).
        port: the gRPC/HTTP port clients connect to (None: a free one).
        start_timeout_s: how long `start` waits for the server's health check.
    """

    def __init__(self, data_dir: str | Path, port: int | None = None,
                 start_timeout_s: float = 180.0) -> None:
        try:
            from milvus import MilvusServer, MilvusServerConfig
        except ImportError as e:
            raise ImportError(f"a local Milvus server needs the milvus package: {INSTALL_HINT}"
                              ) from e
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = port or _free_port()
        self.start_timeout_s = start_timeout_s
        class Config(MilvusServerConfig):
            """The package's config, probing ports as the server binds them (SO_REUSEADDR):
            its plain probe fails for a minute after a restart, while connections the old
            server closed linger in TIME_WAIT on the port the new one binds at once."""

            def try_bind_port(self, port: int):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", port))
                    sock.listen()
                    return sock
                except OSError:
                    sock.close()
                    return None

        self._config_cls, self._server_cls = Config, MilvusServer
        self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.running

    def start(self) -> LocalMilvusServer:
        """Start the server and wait until it answers (seconds: it unpacks and boots)."""
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self._config_cls(data_dir=str(self.data_dir), proxy_port=self.port)
        server = self._server_cls(config, wait_for_started=False)
        server.start()
        try:
            server.wait_started(timeout=int(self.start_timeout_s * 1000))
        except (TimeoutError, RuntimeError) as e:
            server.stop()
            log = self.data_dir / "logs" / "milvus-stderr.log"
            raise RuntimeError(f"the Milvus server did not start ({e}); see {log}") from e
        self._server = server
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a second); data flushed by clients
        stays in `data_dir`."""
        if self._server is not None:
            self._server.stop()
            self._server = None
            time.sleep(0.5)  # let the OS release the ports before a restart binds them

    def restart(self) -> LocalMilvusServer:
        self.stop()
        return self.start()

    def __enter__(self) -> LocalMilvusServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
