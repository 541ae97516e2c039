"""The on-disk layout of an index folder: immutable versions and an atomic pointer to one.

    OUT/
      current -> versions/v000002     relative symlink, swapped with one `os.replace`
      versions/v000001/ …             complete index folders (index.yaml, docs.sqlite, …)
      versions/v000002/ …
      staging/                        the work of a build or update in progress (resumable)
      .lock                           held by the one writer at a time
      index.yaml -> current/index.yaml, docs.sqlite -> current/docs.sqlite, …

A writer builds a whole new version next to the published one and then points `current` at
it: a reader that resolves `current` once (`resolve`, what `KnowledgeIndex.open` does) sees
the old index or the new one, never a mix. The top-level links through `current` keep paths
like `OUT/index.yaml` working for tools that read one file; a program reading several files
must resolve `current` once, as `resolve` does. Older versions are kept (`keep`) so that a
reader that opened one just before a publish still finds its files.

A folder holding an index directly (`OUT/index.yaml`, the layout before versions) is a valid
index too: `resolve` returns it as it is, and the next build into it converts it.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

CURRENT = "current"
VERSIONS = "versions"
STAGING = "staging"
LOCK = ".lock"
MANIFEST = "index.yaml"
_VERSION = re.compile(r"^v(\d{6})$")
# the files an index folder held before versions (removed when a build converts it)
_UNVERSIONED_FILES = {MANIFEST, "docs.sqlite", "text.faiss", "text.keys.json", "image.faiss",
                      "image.keys.json", "image_embedder.json", "image_embedder.safetensors",
                      "provenance.json"}


class IndexBusyError(OSError):
    """Another process is building or updating this index folder."""


def resolve(directory: str | Path) -> Path:
    """The folder holding the index files of `directory`: its current version, or the folder
    itself when it is an unversioned index (FileNotFoundError when it is neither)."""
    d = Path(directory).expanduser()
    link = d / CURRENT
    if link.is_symlink() or link.is_dir():
        target = link.resolve()
        if not (target / MANIFEST).is_file():
            raise FileNotFoundError(f"{d}: `current` points to {target}, which holds no "
                                    f"{MANIFEST}")
        return target
    if (d / MANIFEST).is_file():
        return d
    raise FileNotFoundError(f"{d} is not a knowledge index ({MANIFEST} missing); "
                            "build one with `pixsearch index build`")


def is_index(directory: str | Path) -> bool:
    """Whether `directory` holds a published index (versioned or not)."""
    try:
        resolve(directory)
    except FileNotFoundError:
        return False
    return True


def current_version(directory: Path) -> str | None:
    """The name of the published version (None: nothing published, or unversioned)."""
    link = Path(directory) / CURRENT
    if not link.is_symlink():
        return None
    return Path(os.readlink(link)).name


def versions(directory: Path) -> list[str]:
    """Complete version folders, oldest first."""
    root = Path(directory) / VERSIONS
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if _VERSION.match(p.name))


def next_version(directory: Path) -> str:
    """A version name newer than every version folder there (published or not)."""
    names = versions(directory)
    seq = int(_VERSION.match(names[-1]).group(1)) + 1 if names else 1
    return f"v{seq:06d}"


def version_dir(directory: Path, name: str) -> Path:
    return Path(directory) / VERSIONS / name


def publish(directory: Path, name: str) -> None:
    """Point `current` at version `name` in one atomic rename, then refresh the top-level
    convenience links (and turn the files of an unversioned index into links)."""
    directory = Path(directory)
    target = version_dir(directory, name)
    if not (target / MANIFEST).is_file():
        raise FileNotFoundError(f"version {target} is incomplete ({MANIFEST} missing)")
    tmp = directory / f".{CURRENT}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.join(VERSIONS, name), tmp)
    os.replace(tmp, directory / CURRENT)
    _fsync_dir(directory)
    _refresh_links(directory, target)


def _refresh_links(directory: Path, target: Path) -> None:
    files = {p.name for p in target.iterdir() if p.is_file()}
    for name in files:
        link = directory / name
        want = os.path.join(CURRENT, name)
        if link.is_symlink() and os.readlink(link) == want:
            continue
        tmp = directory / f".{name}.link"
        tmp.unlink(missing_ok=True)
        os.symlink(want, tmp)
        os.replace(tmp, link)  # replaces an unversioned index's file atomically too
    for link in directory.iterdir():
        if link.name in files:
            continue
        if link.is_symlink() and os.readlink(link).startswith(CURRENT + os.sep):
            link.unlink()  # a file the new version no longer has (e.g. no images)
        elif link.is_file() and link.name in _UNVERSIONED_FILES:
            link.unlink()  # left over from the unversioned index this folder held


def collect(directory: Path, keep: int,
            before_delete: Callable[[Path], None] | None = None) -> list[str]:
    """Delete all but the `keep` newest versions up to the published one (and any version
    newer than it that was never published); `before_delete(version folder)` runs first
    for each (e.g. dropping its Milvus collections); returns the names deleted."""
    directory = Path(directory)
    current = current_version(directory)
    names = versions(directory)
    if current is None or current not in names:
        return []
    upto = names[: names.index(current) + 1]
    doomed = upto[:-keep] + names[names.index(current) + 1:]
    for name in doomed:
        if before_delete is not None:
            before_delete(version_dir(directory, name))
        shutil.rmtree(version_dir(directory, name), ignore_errors=True)
    return doomed


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # platforms without directory handles
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """Flush every file under `path` and the folders themselves to disk (before a publish,
    so that a power cut cannot leave a published version with missing data)."""
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(root))


@contextmanager
def writer_lock(directory: Path) -> Iterator[None]:
    """Hold the folder's writer lock (IndexBusyError if another process holds it). The OS
    releases it when the process dies, so a killed build never leaves the folder locked."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one writer at a time is on the user
        yield
        return
    with open(directory / LOCK, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise IndexBusyError(f"another process is building or updating {directory} "
                                 f"({f.read().strip() or 'pid unknown'}); wait for it to "
                                 "finish") from None
        f.truncate(0)
        f.write(f"pid {os.getpid()}")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
