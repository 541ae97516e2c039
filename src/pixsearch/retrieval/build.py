"""Build a knowledge index from files: `DOCS.jsonl` and an image folder with `images.jsonl`.

    DOCS.jsonl          one `Document` a line: {"id", "title", "text", "entity", "kind"}
    IMAGES/images.jsonl one `KBImage` a line: {"id", "path", "doc_id"}, paths relative to IMAGES

This is what `pixsearch index build` runs.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import TypeVar

from pixsearch.retrieval.index import IndexConfig, KnowledgeIndex
from pixsearch.types import Document, KBImage

IMAGE_MANIFEST = "images.jsonl"
T = TypeVar("T")


def _read_jsonl(path: Path, cls: type[T]) -> list[T]:
    names = {f.name for f in fields(cls)}
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e})") from e
            unknown = set(row) - names
            if unknown:
                raise ValueError(f"{path}:{n}: unknown field(s) {sorted(unknown)} for "
                                 f"{cls.__name__} (fields: {sorted(names)})")
            try:
                out.append(cls(**row))
            except TypeError as e:
                raise ValueError(f"{path}:{n}: {e}") from e
    return out


def load_documents(path: str | Path) -> list[Document]:
    """Documents from a JSONL file; ids must be unique."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"documents file {path} does not exist")
    docs = _read_jsonl(path, Document)
    ids = [d.id for d in docs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate document ids")
    return docs


def load_images(images_dir: str | Path) -> list[KBImage]:
    """KB images listed in `images_dir/images.jsonl`."""
    manifest = Path(images_dir) / IMAGE_MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} does not exist: an image folder needs an "
                                f"{IMAGE_MANIFEST} with one {{id, path, doc_id}} object a line")
    return _read_jsonl(manifest, KBImage)


def build_index(docs_path: str | Path, images_dir: str | Path | None, out_dir: str | Path,
                config: IndexConfig | None = None, overwrite: bool = False) -> KnowledgeIndex:
    """Read the files and build the index into `out_dir`."""
    docs = load_documents(docs_path)
    images = load_images(images_dir) if images_dir is not None else []
    root = Path(images_dir) if images_dir is not None else Path(".")
    return KnowledgeIndex.build(docs, images, root, Path(out_dir), config, overwrite=overwrite)
