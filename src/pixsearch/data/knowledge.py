"""The knowledge-base format: documents and the images linked to them, as JSON Lines.

    DOCS.jsonl           one `Document` a line: {"id", "title", "text", "entity", "kind"}
    IMAGES/images.jsonl  one `KBImage` a line: {"id", "path", "doc_id"}, paths relative to IMAGES

A knowledge-base folder (what `pixsearch world build` writes under `kb/`) holds `docs.jsonl`
and `images/`. `pixsearch index build --docs DOCS.jsonl --images IMAGES` indexes any such pair.
The readers are strict: unknown fields, missing fields, wrong types and duplicate ids are
errors that name the file and the line.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from pixsearch.data.jsonl import FormatError, check_fields, parse_rows, write_rows
from pixsearch.types import Document, KBImage

DOCS_FILE = "docs.jsonl"
IMAGES_DIR = "images"
IMAGE_MANIFEST = "images.jsonl"

T = TypeVar("T", Document, KBImage)


def _parser(cls: type[T]):
    """Row → `cls`, rejecting fields the format does not have."""

    def parse(row: dict[str, Any]) -> T:
        label = f"{cls.__name__} {row['id']!r}" if isinstance(row.get("id"), str) else cls.__name__
        own, rest = check_fields(cls, row, label)
        if rest:
            raise ValueError(f"{label}: unknown field(s) {sorted(rest)} "
                             f"(fields: {sorted(cls.__dataclass_fields__)})")
        return cls(**own)

    return parse


parse_document = _parser(Document)  # one row → Document (strict), for streaming readers
parse_image = _parser(KBImage)  # one row → KBImage (strict)


def _unique(path: Path, items: list[T], what: str) -> list[T]:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise FormatError(f"{path}: duplicate {what} id {item.id!r}")
        seen.add(item.id)
    return items


def read_documents(path: str | Path) -> list[Document]:
    """The documents of a JSONL file (ids unique)."""
    return _unique(Path(path), parse_rows(path, parse_document, "documents"), "document")


def read_images(images_dir: str | Path) -> list[KBImage]:
    """The KB images listed in `images_dir/images.jsonl` (ids unique)."""
    manifest = Path(images_dir) / IMAGE_MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} does not exist: an image folder needs an "
                                f"{IMAGE_MANIFEST} with one {{id, path, doc_id}} object a line")
    return _unique(manifest, parse_rows(manifest, parse_image, "image manifest"), "image")


def read_kb(kb_dir: str | Path) -> tuple[list[Document], list[KBImage]]:
    """The documents and images of a knowledge-base folder (`docs.jsonl`, `images/`)."""
    kb_dir = Path(kb_dir)
    return read_documents(kb_dir / DOCS_FILE), read_images(kb_dir / IMAGES_DIR)


def write_documents(path: str | Path, docs: list[Document]) -> None:
    """Write documents as JSONL."""
    write_rows(path, (asdict(d) for d in docs))


def write_images(images_dir: str | Path, images: list[KBImage]) -> None:
    """Write the image manifest `images_dir/images.jsonl` (the PNGs are the caller's)."""
    write_rows(Path(images_dir) / IMAGE_MANIFEST, (asdict(i) for i in images))
