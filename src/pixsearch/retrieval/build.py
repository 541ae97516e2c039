"""Build a knowledge index from files: `DOCS.jsonl` and an image folder with `images.jsonl`.

The files are in the knowledge-base format (`pixsearch.data.knowledge`, read strictly):

    DOCS.jsonl          one `Document` a line: {"id", "title", "text", "entity", "kind"}
    IMAGES/images.jsonl one `KBImage` a line: {"id", "path", "doc_id"}, paths relative to IMAGES

This is what `pixsearch index build` runs.
"""

from __future__ import annotations

from pathlib import Path

from pixsearch.data.knowledge import read_documents, read_images
from pixsearch.retrieval.index import IndexConfig, KnowledgeIndex


def build_index(docs_path: str | Path, images_dir: str | Path | None, out_dir: str | Path,
                config: IndexConfig | None = None, overwrite: bool = False) -> KnowledgeIndex:
    """Read the files and build the index into `out_dir`."""
    docs = read_documents(docs_path)
    images = read_images(images_dir) if images_dir is not None else []
    root = Path(images_dir) if images_dir is not None else Path(".")
    return KnowledgeIndex.build(docs, images, root, Path(out_dir), config, overwrite=overwrite)
