"""The knowledge index: documents + linked images, a text index and an image index, on disk.

`KnowledgeIndex.build` embeds the documents (text index over "passage" and "card" documents)
and the KB images (image index; a learned embedder is trained on the KB images first) through
`IndexBuilder` (streamed, checkpointed, published atomically: `builder.py`), into one folder
whose `current` version holds:

    index.yaml                  config, embedder names, dims, counts, vector index kinds
    docs.sqlite                 documents and images (`DocStore`)
    text.faiss / text.keys.json
    image.faiss / image.keys.json
    image_embedder.*            the trained image embedder (when `image_embedder: learned`)
    vectors/                    the raw vectors as shards (re-indexing, updates)

`KnowledgeIndex.open` resolves the folder's current version once (`layout.resolve`: a
concurrent rebuild never mixes two versions) and checks that it holds together before
anything is searched: every file there, `docs.sqlite` a readable document store (never
silently recreated empty), the counts of documents, images and vectors what the manifest
says, each keys file paired with its vectors (`FaissStore.load`), and every live key a
document or image of the store — a `CorruptIndexError` says what is wrong. The embedders are
loaded on first use, so opening is quick and a question that never searches text never loads
the text encoder.

`search(query, k)` answers text, image and region queries (image hits resolve to the
documents their images depict, one hit per document).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml
from PIL import Image

from pixsearch.config import from_dict
from pixsearch.retrieval import layout
from pixsearch.retrieval.api import QueryLike
from pixsearch.retrieval.chunks import doc_text, load_image
from pixsearch.retrieval.config import BuildConfig, IndexConfig
from pixsearch.retrieval.crop import DEFAULT_FILL, crop
from pixsearch.retrieval.docstore import DocStore
from pixsearch.retrieval.embedders import Embedder, make_image_embedder, make_text_embedder
from pixsearch.retrieval.store import FaissStore, StoreError, VectorStore
from pixsearch.retrieval.vector_index import SearchKnobs
from pixsearch.types import Document, Hit, KBImage, Query

__all__ = ["CorruptIndexError", "IndexConfig", "KnowledgeIndex", "doc_text", "load_image"]

MANIFEST = layout.MANIFEST
DOCS = "docs.sqlite"


class CorruptIndexError(ValueError):
    """An index folder whose parts are missing or do not hold together."""


class KnowledgeIndex:
    """A searchable knowledge base (implements `SearchAPI`)."""

    def __init__(self, directory: Path, config: IndexConfig, docs: DocStore,
                 text_store: FaissStore, image_store: FaissStore | None,
                 text_embedder: Embedder, image_embedder: Embedder | None) -> None:
        self.directory, self.config, self.docs = directory, config, docs
        self.root = directory  # the folder it was opened from (`directory`: its version)
        self.text_store, self.image_store = text_store, image_store
        self.text_embedder, self.image_embedder = text_embedder, image_embedder

    @classmethod
    def build(cls, docs: list[Document], images: list[KBImage], image_root: Path,
              out_dir: Path, config: IndexConfig | None = None, overwrite: bool = False,
              build: BuildConfig | None = None, regions: str | Path | None = None
              ) -> KnowledgeIndex:
        """Embed and store `docs` and `images` (paths relative to `image_root`) in `out_dir`
        (`IndexBuilder.build`: resumable, published atomically), and open it. `regions`: a
        region examples file the learned image embedder also trains on
        (`pixsearch/retrieval/regions.py`)."""
        from pixsearch.retrieval.builder import IndexBuilder

        IndexBuilder(out_dir, config, build).build(docs, images or None, image_root,
                                                   overwrite=overwrite, regions=regions)
        return cls.open(out_dir)

    @classmethod
    def open(cls, directory: str | Path) -> KnowledgeIndex:
        """Reopen an index written by `build`, checked (see the module docstring)."""
        root = Path(directory).expanduser()
        for attempt in range(3):
            d = layout.resolve(root)  # FileNotFoundError: not an index
            try:
                return cls._open_version(root, d)
            except CorruptIndexError:
                # a version collected between resolving and reading: read the new one
                if attempt == 2 or d.exists():
                    raise
        raise AssertionError("unreachable")

    @classmethod
    def _open_version(cls, root: Path, d: Path) -> KnowledgeIndex:
        hint = f"rebuild it (`pixsearch index build ... --out {root} --overwrite`)"
        try:
            manifest = yaml.safe_load((d / MANIFEST).read_text())
            config = from_dict(IndexConfig, manifest["config"])
            text_info, image_info = manifest["text_embedder"], manifest.get("image_embedder")
            counts = manifest.get("counts") or {}
        except (OSError, yaml.YAMLError, ValueError, KeyError, TypeError) as e:
            raise CorruptIndexError(f"{d / MANIFEST} is unreadable ({type(e).__name__}: {e}); "
                                    f"{hint}") from e
        knobs = SearchKnobs.of(config)
        try:
            docs = DocStore(d / DOCS, create=False)
            text_store = _vector_store(d, root, "text", manifest, config, text_info, knobs)
            image_store = (_vector_store(d, root, "image", manifest, config, image_info, knobs)
                           if image_info else None)
            text_emb = make_text_embedder(text_info["name"], config.num_threads, lazy=True,
                                          dim=text_info.get("dim"))
            image_emb = (make_image_embedder(image_info["name"], d, config.num_threads,
                                             lazy=True, dim=image_info.get("dim"))
                         if image_info else None)
            _check_counts(docs, text_store, image_store, counts)
        except (FileNotFoundError, StoreError, ValueError) as e:
            raise CorruptIndexError(f"index {d} is incomplete or corrupt: {e}; {hint}") from e
        index = cls(d, config, docs, text_store, image_store, text_emb, image_emb)
        index.root = root
        return index

    def region_image(self, query: Query) -> tuple[Image.Image, tuple[int, int, int, int] | None]:
        """The image a (region or image) query is embedded from, and the crop box if any."""
        if query.modality == "region":
            return crop(query.image, query.mask, self.config.crop_pad,
                        self.config.suppress_background, DEFAULT_FILL, self.config.crop_erode)
        return query.image, None

    def search(self, query: Query | str | Image.Image | tuple, k: int = 5) -> list[Hit]:
        """Top-k documents for text, a PIL image, or an (image, mask) region query."""
        q = Query.of(query)
        if k <= 0:
            return []
        if q.modality == "text":
            vec = self.text_embedder.embed_texts([q.text])
            return [self._hit(doc_id, score, "text")
                    for doc_id, score in self.text_store.search(vec, k)[0]]
        if self.image_store is None or self.image_embedder is None:
            raise RuntimeError(f"index {self.directory} has no images; image and region "
                               "queries need KB images (`--images DIR` at build time)")
        image, _ = self.region_image(q)
        vec = self.image_embedder.embed_images([image])
        return self._image_hits(self.image_store.search(vec, k * self.config.image_oversample)[0],
                                k)

    def search_many(self, queries: Sequence[QueryLike], k: int = 5) -> list[list[Hit]]:
        """`search` for several queries, embedding the texts together and the images
        together (one encoder call and one vector search per modality)."""
        qs = [Query.of(q) for q in queries]
        out: list[list[Hit]] = [[] for _ in qs]
        if k <= 0:
            return out
        texts = [i for i, q in enumerate(qs) if q.modality == "text"]
        if texts:
            vecs = self.text_embedder.embed_texts([qs[i].text for i in texts])
            for i, row in zip(texts, self.text_store.search(vecs, k)):
                out[i] = [self._hit(doc_id, score, "text") for doc_id, score in row]
        pics = [i for i, q in enumerate(qs) if q.modality != "text"]
        if pics:
            if self.image_store is None or self.image_embedder is None:
                raise RuntimeError(f"index {self.directory} has no images; image and region "
                                   "queries need KB images (`--images DIR` at build time)")
            vecs = self.image_embedder.embed_images([self.region_image(qs[i])[0] for i in pics])
            rows = self.image_store.search(vecs, k * self.config.image_oversample)
            for i, row in zip(pics, rows):
                out[i] = self._image_hits(row, k)
        return out

    def _image_hits(self, row: list[tuple[str, float]], k: int) -> list[Hit]:
        """Image-index hits → the best hit of each document they depict, k at most."""
        hits: list[Hit] = []
        seen: set[str] = set()
        for image_id, score in row:
            doc_id = self.docs.image(image_id).doc_id
            if doc_id not in seen:
                seen.add(doc_id)
                hits.append(self._hit(doc_id, score, image_id))
            if len(hits) == k:
                break
        return hits

    def _hit(self, doc_id: str, score: float, via: str) -> Hit:
        d = self.docs.document(doc_id)
        return Hit(doc_id=d.id, title=d.title, score=score, text=d.text, entity=d.entity, via=via)

    def close(self) -> None:
        self.docs.close()
        for store in (self.text_store, self.image_store):
            if hasattr(store, "close"):
                store.close()  # a Milvus client


def _vector_store(d: Path, root: Path, modality: str, manifest: dict, config: IndexConfig,
                  info: dict, knobs: SearchKnobs) -> VectorStore:
    """The modality's vector store: FAISS files in the version, or its Milvus collection."""
    entry = (manifest.get("milvus") or {}).get(modality)
    if entry is None:
        return FaissStore.load(d, modality, knobs=knobs)
    from pixsearch.retrieval.milvus_backend import open_store

    return open_store(entry, root, int(info["dim"]), config)


def _check_counts(docs: DocStore, text_store: VectorStore, image_store: VectorStore | None,
                  counts: dict) -> None:
    """The documents, images and vectors are those the manifest counted, and every key is a
    document (text store) or an image (image store) of `docs` (ValueError saying which)."""
    have = {**docs.counts(), "text_vectors": len(text_store),
            "image_vectors": len(image_store) if image_store else 0}
    wrong = [f"{k}: {have[k]} found, {counts[k]} recorded" for k in have
             if k in counts and counts[k] != have[k]]
    if wrong:
        raise ValueError("counts differ from the manifest (" + "; ".join(wrong) + ")")
    for name, store, ids in (("text", text_store, docs.ids("documents")),
                             ("image", image_store, docs.ids("images"))):
        if store is None or not isinstance(store, FaissStore):
            continue  # a Milvus collection is not listed key by key (millions of rows)
        unknown = [k for k in store.live_keys() if k not in ids]
        if unknown:
            raise ValueError(f"{len(unknown)} {name} key(s) name nothing in {DOCS}, e.g. "
                             f"{unknown[:3]}")
