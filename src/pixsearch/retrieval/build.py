"""Build, extend and shrink a knowledge index from files: what `pixsearch index` runs.

The files are in the knowledge-base format (`pixsearch.data.knowledge`, read strictly and in
chunks, never whole):

    DOCS.jsonl          one `Document` a line: {"id", "title", "text", "entity", "kind"}
    IMAGES/images.jsonl one `KBImage` a line: {"id", "path", "doc_id"}, paths relative to IMAGES

Each function is one `IndexBuilder` operation (`builder.py`): resumable after a kill, and
published atomically as a new version of the index folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pixsearch.retrieval.builder import BuildReport, IndexBuilder
from pixsearch.retrieval.config import BuildConfig, IndexConfig
from pixsearch.retrieval.index import KnowledgeIndex


def build_index(docs_path: str | Path, images_dir: str | Path | None, out_dir: str | Path,
                config: IndexConfig | None = None, overwrite: bool = False,
                build: BuildConfig | None = None, restart: bool = False) -> KnowledgeIndex:
    """Build the index of the files into `out_dir` (resuming an interrupted build of them)
    and open it."""
    build_report(docs_path, images_dir, out_dir, config, overwrite, build, restart)
    return KnowledgeIndex.open(out_dir)


def build_report(docs_path: str | Path, images_dir: str | Path | None, out_dir: str | Path,
                 config: IndexConfig | None = None, overwrite: bool = False,
                 build: BuildConfig | None = None, restart: bool = False,
                 regions: str | Path | None = None) -> BuildReport:
    """`build_index` returning what the build did (counts, throughput, resumed chunks);
    `regions`: a region examples file for the learned image embedder (`regions.py`)."""
    return IndexBuilder(out_dir, config, build).build(docs_path, images_dir,
                                                      overwrite=overwrite, restart=restart,
                                                      regions=regions)


def add_to_index(index_dir: str | Path, docs_path: str | Path | None = None,
                 images_dir: str | Path | None = None, build: BuildConfig | None = None,
                 restart: bool = False) -> BuildReport:
    """Embed and add the documents and/or images of the files to the index."""
    if docs_path is None and images_dir is None:
        raise ValueError("nothing to add: give documents and/or images")
    return IndexBuilder(index_dir, build=build).add(docs_path, images_dir, restart=restart)


def remove_from_index(index_dir: str | Path, doc_ids: Sequence[str] = (),
                      image_ids: Sequence[str] = (), build: BuildConfig | None = None
                      ) -> BuildReport:
    """Remove documents (with their images) and images from the index."""
    if not doc_ids and not image_ids:
        raise ValueError("nothing to remove: give document and/or image ids")
    return IndexBuilder(index_dir, build=build).remove(doc_ids, image_ids)
