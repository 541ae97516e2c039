"""A content-addressed cache of LLM calls, so that a construction run never pays twice.

The key is the sha256 of everything that decides a completion: the back-end kind, the model,
the prompt (or chat messages) and the sampling parameters (temperature, seed, token budget,
stop strings). The value is the raw reply. One SQLite file (standard library; safe across
threads and processes) holds every entry; rerunning a construction after a kill, or with
other downstream settings, answers repeated calls from it. `hits` / `misses` count lookups.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any


def call_key(backend: str, model: str, request: dict[str, Any]) -> str:
    """sha256 of (backend, model, request) in canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps({"backend": backend, "model": model, "request": request},
                           sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class CallCache:
    """SQLite map key → reply.

    Args:
        path: the database file (parent folders are created); ":memory:" keeps it in memory.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._lock = threading.Lock()
        self.hits = self.misses = 0
        with self._lock, self._conn:
            self._conn.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, "
                               "backend TEXT, model TEXT, reply TEXT NOT NULL, created REAL)")

    def get(self, key: str) -> str | None:
        """The cached reply of `key`, or None (counted as a hit or a miss)."""
        with self._lock:
            row = self._conn.execute("SELECT reply FROM calls WHERE key = ?", (key,)).fetchone()
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
            return row[0]

    def put(self, key: str, reply: str, backend: str = "", model: str = "") -> None:
        """Store the reply of `key`."""
        with self._lock, self._conn:
            self._conn.execute("INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?, ?)",
                               (key, backend, model, reply, time.time()))

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()
