"""A persistent cache of LLM-judge responses, keyed by (model, prompt hash).

Judging a benchmark costs one chat completion per non-trivial answer; re-scoring the same
predictions (a new report, a changed grouping, a crashed run) should cost nothing. The cache is
a single SQLite file (standard library, safe across threads and processes), one row per
(model, sha256 of the full message list), holding the raw response text. Raw text rather than
the parsed verdict is stored so that a better parser can be applied later without new calls.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path


def prompt_hash(messages: list[dict[str, str]]) -> str:
    """Stable sha256 of a chat message list (roles and contents, order-sensitive)."""
    canonical = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class JudgeCache:
    """SQLite-backed map (model, prompt hash) → response text.

    Args:
        path: the database file; parent folders are created. ":memory:" keeps it in memory.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the judge's worker threads, serialised by a lock.
        self._conn = sqlite3.connect(self.path, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._conn:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS responses ("
                " model TEXT NOT NULL, prompt_hash TEXT NOT NULL, response TEXT NOT NULL,"
                " PRIMARY KEY (model, prompt_hash))"
            )

    def get(self, model: str, key: str) -> str | None:
        """The cached response for (model, prompt hash), or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT response FROM responses WHERE model = ? AND prompt_hash = ?", (model, key)
            ).fetchone()
        return None if row is None else row[0]

    def put(self, model: str, key: str, response: str) -> None:
        """Store (or replace) the response for (model, prompt hash)."""
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO responses (model, prompt_hash, response) VALUES (?, ?, ?)",
                (model, key, response),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()
