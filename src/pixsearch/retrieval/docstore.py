"""SQLite store of the knowledge base's documents and of the images linked to them.

Documents are what hits resolve to; images carry the id of the document they depict, so an
image-index hit becomes a document hit. Standard-library `sqlite3`, one file (`docs.sqlite`).
Opening an existing store (`create=False`) never creates one: a missing or foreign file is an
error, not an empty store.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from pixsearch.types import Document, KBImage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, text TEXT NOT NULL, entity TEXT, kind TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY, path TEXT NOT NULL, doc_id TEXT NOT NULL REFERENCES documents(id)
);
CREATE INDEX IF NOT EXISTS images_doc ON images(doc_id);
"""


class DuplicateIdError(ValueError):
    """A document or image id that the store already holds (or that repeats in one batch)."""


class DocStore:
    """Documents and images by id, persisted in one SQLite file."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        """Open (with `create`, create) the store at `path`. With `create=False` the file must
        exist and hold both tables: FileNotFoundError / ValueError otherwise."""
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise FileNotFoundError(f"document store {self.path} is missing")
        # one connection shared by server threads; sqlite3 serialises with our lock
        uri = f"{self.path.resolve().as_uri()}?mode={'rwc' if create else 'rw'}"
        self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self._lock = threading.Lock()
        try:
            with self._lock:
                if create:
                    self._conn.executescript(_SCHEMA)
                tables = {r[0] for r in self._conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise ValueError(f"{self.path} is not a document store ({e})") from e
        if not {"documents", "images"} <= tables:
            self._conn.close()
            raise ValueError(f"{self.path} lacks the documents/images tables")

    def add_documents(self, docs: Iterable[Document]) -> None:
        """Insert documents (one transaction); DuplicateIdError names an id already there."""
        rows = [(d.id, d.title, d.text, d.entity, d.kind) for d in docs]
        with self._lock, self._conn:
            self._insert("documents", "INSERT INTO documents VALUES (?, ?, ?, ?, ?)", rows)

    def add_images(self, images: Iterable[KBImage]) -> None:
        """Insert images linked to stored documents (ValueError naming unknown ones)."""
        rows = [(im.id, im.path, im.doc_id) for im in images]
        with self._lock, self._conn:
            missing = [r[2] for r in rows if self._get("documents", r[2]) is None]
            if missing:
                raise ValueError(f"images link to unknown document ids: {sorted(set(missing))[:5]}")
            self._insert("images", "INSERT INTO images VALUES (?, ?, ?)", rows)

    def _insert(self, table: str, sql: str, rows: list[tuple]) -> None:
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.IntegrityError as e:
            ids = [r[0] for r in rows]
            dup = next((i for i in ids if self._get(table, i) is not None), None)
            if dup is None:  # duplicated within `rows` itself
                seen: set[str] = set()
                dup = next((i for i in ids if i in seen or seen.add(i)), None)
            raise DuplicateIdError(f"duplicate {table[:-1]} id {dup!r} ({e})") from None

    def remove_documents(self, doc_ids: Iterable[str]) -> tuple[list[str], list[str]]:
        """Delete documents and the images linked to them; returns (document ids, image ids)
        actually deleted (unknown ids are ignored)."""
        ids = list(dict.fromkeys(doc_ids))
        with self._lock, self._conn:
            found = [i for i in ids if self._get("documents", i) is not None]
            images = [r[0] for i in found for r in self._conn.execute(
                "SELECT id FROM images WHERE doc_id = ? ORDER BY rowid", (i,))]
            self._conn.executemany("DELETE FROM images WHERE id = ?", [(i,) for i in images])
            self._conn.executemany("DELETE FROM documents WHERE id = ?", [(i,) for i in found])
        return found, images

    def remove_images(self, image_ids: Iterable[str]) -> list[str]:
        """Delete images; returns the ids actually deleted."""
        ids = list(dict.fromkeys(image_ids))
        with self._lock, self._conn:
            found = [i for i in ids if self._get("images", i) is not None]
            self._conn.executemany("DELETE FROM images WHERE id = ?", [(i,) for i in found])
        return found

    def _get(self, table: str, key: str) -> tuple | None:
        return self._conn.execute(f"SELECT * FROM {table} WHERE id = ?", (key,)).fetchone()

    def document(self, doc_id: str) -> Document:
        with self._lock:
            row = self._get("documents", doc_id)
        if row is None:
            raise KeyError(f"no document {doc_id!r} in {self.path}")
        return Document(*row)

    def image(self, image_id: str) -> KBImage:
        with self._lock:
            row = self._get("images", image_id)
        if row is None:
            raise KeyError(f"no image {image_id!r} in {self.path}")
        return KBImage(*row)

    def documents(self, kinds: tuple[str, ...] | None = None) -> list[Document]:
        """All documents (optionally of some kinds), in insertion order."""
        with self._lock:
            rows = self._conn.execute("SELECT * FROM documents ORDER BY rowid").fetchall()
        docs = [Document(*r) for r in rows]
        return [d for d in docs if kinds is None or d.kind in kinds]

    def images(self) -> list[KBImage]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM images ORDER BY rowid").fetchall()
        return [KBImage(*r) for r in rows]

    def ids(self, table: str) -> set[str]:
        """Every id of `table` ("documents" or "images")."""
        if table not in ("documents", "images"):
            raise ValueError(f"no table {table!r}")
        with self._lock:
            return {r[0] for r in self._conn.execute(f"SELECT id FROM {table}")}

    def ids_among(self, table: str, ids: list[str]) -> set[str]:
        """Which of `ids` the table ("documents" or "images") holds."""
        if table not in ("documents", "images"):
            raise ValueError(f"no table {table!r}")
        found: set[str] = set()
        with self._lock:
            for i in range(0, len(ids), 500):  # SQLite's bound-parameter limit
                part = ids[i : i + 500]
                marks = ",".join("?" * len(part))
                found.update(r[0] for r in self._conn.execute(
                    f"SELECT id FROM {table} WHERE id IN ({marks})", part))
        return found

    def images_of(self, doc_ids: list[str]) -> list[str]:
        """The ids of the images linked to `doc_ids`, in insertion order."""
        found: list[tuple[int, str]] = []
        with self._lock:
            for i in range(0, len(doc_ids), 500):
                part = doc_ids[i : i + 500]
                marks = ",".join("?" * len(part))
                found += self._conn.execute(
                    f"SELECT rowid, id FROM images WHERE doc_id IN ({marks})", part).fetchall()
        return [image_id for _, image_id in sorted(found)]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {t: self._conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                    for t in ("documents", "images")}

    def close(self) -> None:
        with self._lock:
            self._conn.close()
