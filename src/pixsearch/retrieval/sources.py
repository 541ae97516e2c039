"""Streaming corpus input for index builds: documents and KB images read in chunks.

A build never holds the corpus in memory: it walks a `Source` chunk by chunk (`chunks`), and
chunk `i` is always items `[i·size, (i+1)·size)` of the stream, whatever reads it. File
sources (`JsonlSource`: a documents JSONL, or the `images.jsonl` manifest of an image folder)
can also cut themselves into byte ranges (`ranges`) that another process reads on its own
(`read`): that is how Ray workers on other machines read their chunks of a shared file.
Any other iterable (`IterableSource`, e.g. a reader of a Wikipedia dump) streams through
this process only.

Every row is parsed by the strict knowledge-base readers (`pixsearch.data.knowledge`), and a
row that does not parse names its file and line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Generic, TypeVar

from pixsearch.data.jsonl import FormatError, parse_line
from pixsearch.data.knowledge import IMAGE_MANIFEST, parse_document, parse_image
from pixsearch.types import Document, KBImage

T = TypeVar("T", Document, KBImage)


@dataclass(frozen=True)
class ChunkRange:
    """Chunk `chunk` of a JSONL source: bytes [start, end), first item on line `line`."""

    chunk: int
    start: int
    end: int
    line: int
    count: int


class JsonlSource(Generic[T]):
    """A JSONL file of documents or KB images, read in chunks (see the module docstring).

    Args:
        path: the JSONL file.
        kind: "documents" or "images" (which strict parser reads the rows).
    """

    def __init__(self, path: str | Path, kind: str) -> None:
        if kind not in _PARSERS:
            raise ValueError(f"unknown source kind {kind!r}; use documents or images")
        self.path, self.kind = Path(path), kind
        if not self.path.is_file():
            raise FileNotFoundError(f"{kind} file {self.path} does not exist")
        self._parse: Callable[[dict[str, Any]], T] = _PARSERS[kind]

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the file's content for resuming a build (path, size, mtime)."""
        st = self.path.stat()
        return {"path": str(self.path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def ranges(self, chunk_size: int) -> Iterator[ChunkRange]:
        """Byte ranges of the chunks, from one pass that reads lines but parses nothing."""
        start, count, first, chunk = 0, 0, 1, 0
        offset = 0
        with self.path.open("rb") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    if count == 0:
                        start, first = offset, n
                    count += 1
                    if count == chunk_size:
                        yield ChunkRange(chunk, start, offset + len(line), first, count)
                        chunk, count = chunk + 1, 0
                offset += len(line)
        if count:
            yield ChunkRange(chunk, start, offset, first, count)

    def read(self, r: ChunkRange) -> list[T]:
        """The items of one chunk range (parsed strictly; errors name file and line)."""
        with self.path.open("rb") as f:
            f.seek(r.start)
            data = f.read(r.end - r.start)
        items = self._parse_lines(data.decode("utf-8").splitlines(), r.line)
        if len(items) != r.count:
            raise FormatError(f"{self.path}: chunk {r.chunk} holds {len(items)} items, "
                              f"{r.count} expected (the file changed during the build)")
        return items

    def chunks(self, chunk_size: int) -> Iterator[list[T]]:
        """The items in chunks of `chunk_size`, streamed."""
        with self.path.open(encoding="utf-8") as f:
            lines = enumerate(f, 1)
            while True:
                block: list[tuple[int, str]] = []
                for n, line in lines:
                    if line.strip():
                        block.append((n, line))
                        if len(block) == chunk_size:
                            break
                if not block:
                    return
                yield [self._parse_line(line, n) for n, line in block]

    def _parse_lines(self, lines: list[str], first: int) -> list[T]:
        return [self._parse_line(line, n) for n, line in enumerate(lines, first) if line.strip()]

    def _parse_line(self, line: str, n: int) -> T:
        row = parse_line(line, f"{self.path}:{n}")
        try:
            return self._parse(row)
        except (ValueError, TypeError) as e:
            raise FormatError(f"{self.path}:{n}: {e}") from e


class IterableSource(Generic[T]):
    """Documents or images from any iterable (a generator over a dump, a list): streamed in
    chunks through this process. It has no fingerprint, so a resumed build checks each
    re-streamed chunk against its checkpoint instead."""

    def __init__(self, items: Iterable[T], kind: str) -> None:
        self.items, self.kind = items, kind

    def fingerprint(self) -> None:
        return None

    def chunks(self, chunk_size: int) -> Iterator[list[T]]:
        it = iter(self.items)
        while block := list(islice(it, chunk_size)):
            yield block


Source = JsonlSource | IterableSource

_PARSERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "documents": parse_document, "images": parse_image}


def as_source(value: Source | str | Path | Iterable | None, kind: str) -> Source | None:
    """A `Source` of `kind` from a source, a file (documents JSONL; for images the folder
    holding `images.jsonl`, or the manifest itself) or an iterable of items."""
    if value is None or isinstance(value, (JsonlSource, IterableSource)):
        return value
    if isinstance(value, (str, Path)):
        path = Path(value)
        if kind == "images" and path.is_dir():
            manifest = path / IMAGE_MANIFEST
            if not manifest.is_file():
                raise FileNotFoundError(f"{manifest} does not exist: an image folder needs an "
                                        f"{IMAGE_MANIFEST} with one {{id, path, doc_id}} "
                                        "object a line")
            path = manifest
        return JsonlSource(path, kind)
    return IterableSource(value, kind)
