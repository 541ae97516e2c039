"""Checkpointed shards of an index build: the staging folder a killed build resumes from.

    OUT/staging/
      plan.json                 what is being built (its `key`), the version it will become
      documents/000007.jsonl    the documents of chunk 7 (for the document store)
      text/0003-000007.npz      keys + vectors of chunk 7's text-indexed documents
      images/000007.jsonl, image/0003-000007.npz      the same for KB images
      image_embedder.*          a learned image embedder, once trained

Every file is written to a temporary name and renamed into place, and a chunk's `.npz` is
written last: a chunk is done exactly when its `.npz` exists, so a `kill -9` at any point
leaves whole chunks and at most one stray temporary file. A resumed build skips done chunks
after checking that the input still has the same items there (a digest of them), so
nothing is embedded twice or lost. A resumed build checks each chunk it skips against its
input (`chunk_digest`: the records, and the image files' sizes and times), so a corpus edited
between the runs has exactly its changed chunks embedded again. A build of other settings
refuses to reuse a folder holding checkpoints (`StagingConflict`) unless told to restart.

Vector shards are immutable: a published version links them (`vectors/<modality>/`), so a
version can be re-indexed, compacted or extended without embedding anything again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pixsearch.retrieval.layout import STAGING

PLAN = "plan.json"
RECORD_DIRS = {"text": "documents", "image": "images"}


class StagingConflict(FileExistsError):
    """The staging folder holds an interrupted build of other inputs or settings."""


def chunk_digest(records: Iterable[dict[str, Any]], files: Iterable[Path] = ()) -> str:
    """What identifies a chunk's input: sha1 of its records in order (and of the size and
    modification time of the image files they name). Equal digests, equal vectors."""
    h = hashlib.sha1()
    for r in records:
        h.update(json.dumps(r, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        h.update(b"\0")
    for path in files:
        try:
            st = path.stat()
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
        except OSError:
            h.update(b"missing")
    return h.hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def shard_name(batch: int, chunk: int) -> str:
    return f"{batch:04d}-{chunk:06d}.npz"


def write_vectors(path: Path, keys: Sequence[str], vectors: np.ndarray, digest: str) -> None:
    """One vector shard: keys, float32 vectors and the digest of its chunk's items."""
    buf = io.BytesIO()
    np.savez(buf, keys=np.asarray(list(keys), dtype=str),
             vectors=np.ascontiguousarray(vectors, np.float32), digest=np.asarray(digest))
    atomic_write(path, buf.getvalue())


def read_vectors(path: Path) -> tuple[list[str], np.ndarray]:
    """(keys, vectors) of a vector shard."""
    with np.load(path, allow_pickle=False) as z:
        return z["keys"].tolist(), z["vectors"]


def shard_files(folder: Path) -> list[Path]:
    """The vector shards of a folder, in build order."""
    return sorted(folder.glob("*.npz")) if folder.is_dir() else []


def iter_vectors(folders: Iterable[Path]) -> Iterator[tuple[list[str], np.ndarray]]:
    """(keys, vectors) of every shard of `folders`, in order."""
    for folder in folders:
        for path in shard_files(folder):
            yield read_vectors(path)


class Staging:
    """The staging folder of one build or update (see the module docstring)."""

    def __init__(self, root: Path, plan: dict[str, Any]) -> None:
        self.root, self.plan = root, plan

    @classmethod
    def open(cls, out_dir: Path, plan: dict[str, Any], restart: bool = False) -> Staging:
        """Resume the staging folder of the same plan (same `key`), or start a new one;
        `StagingConflict` if it holds another plan and `restart` is off."""
        root = Path(out_dir) / STAGING
        old = cls.existing(out_dir)
        if old is not None:
            if old.plan["key"] == plan["key"] and not restart:
                return old
            if not restart and any(old.done(m) for m in RECORD_DIRS):
                raise StagingConflict(
                    f"{out_dir} holds an interrupted {old.plan['op']} (started "
                    f"{old.plan['started']}) of other inputs or settings; rerun that command "
                    "to resume it, or pass --restart (restart=True) to discard it")
            shutil.rmtree(root)
        elif root.exists():
            shutil.rmtree(root)  # a staging folder killed before its plan was written
        root.mkdir(parents=True)
        plan = {**plan, "id": uuid.uuid4().hex,
                "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        atomic_write(root / PLAN, json.dumps(plan, indent=1).encode())
        return cls(root, plan)

    @classmethod
    def existing(cls, out_dir: Path) -> Staging | None:
        """The staging folder of `out_dir` if a plan was written there."""
        root = Path(out_dir) / STAGING
        try:
            plan = json.loads((root / PLAN).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return cls(root, plan)

    @property
    def batch(self) -> int:
        """The shard batch number of this build (its version's sequence number)."""
        return int(self.plan["version"][1:])

    def vector_dir(self, modality: str) -> Path:
        return self.root / modality

    def done(self, modality: str) -> dict[int, str]:
        """Chunk → item digest of every finished chunk of `modality` ("text" or "image")."""
        out = {}
        for path in shard_files(self.vector_dir(modality)):
            with np.load(path, allow_pickle=False) as z:
                out[int(path.stem.split("-")[1])] = str(z["digest"])
        return out

    def write_chunk(self, modality: str, chunk: int, digest: str,
                    records: list[dict[str, Any]], keys: Sequence[str],
                    vectors: np.ndarray) -> None:
        """Checkpoint one chunk: its records, then (last, marking it done) its vectors and
        the digest of its input (`chunk_digest`)."""
        rec_dir = self.root / RECORD_DIRS[modality]
        rec_dir.mkdir(exist_ok=True)
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        atomic_write(rec_dir / f"{chunk:06d}.jsonl", lines.encode("utf-8"))
        vec_dir = self.vector_dir(modality)
        vec_dir.mkdir(exist_ok=True)
        write_vectors(vec_dir / shard_name(self.batch, chunk), keys, vectors, digest)

    def drop(self, modality: str, chunks: Iterable[int]) -> None:
        """Delete the checkpoints of `chunks` (past the end of an input that shrank)."""
        for chunk in chunks:
            (self.vector_dir(modality) / shard_name(self.batch, chunk)).unlink(missing_ok=True)

    def records(self, modality: str) -> Iterator[list[dict[str, Any]]]:
        """The records of every done chunk of `modality`, chunk by chunk in order."""
        for path in shard_files(self.vector_dir(modality)):
            chunk = int(path.stem.split("-")[1])
            lines = (self.root / RECORD_DIRS[modality] / f"{chunk:06d}.jsonl").read_text(
                encoding="utf-8").splitlines()
            yield [json.loads(line) for line in lines if line]

    def discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
