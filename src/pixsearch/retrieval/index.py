"""The knowledge index: documents + linked images, a text index and an image index, on disk.

`KnowledgeIndex.build` embeds the documents (text index over "passage" and "card" documents)
and the KB images (image index; a learned embedder is trained on the KB images first), and
writes one folder:

    index.yaml                  config, embedder names, dims, counts
    docs.sqlite                 documents and images (`DocStore`)
    text.faiss / text.keys.json
    image.faiss / image.keys.json
    image_embedder.*            the trained image embedder (when `image_embedder: learned`)

`KnowledgeIndex.open` reopens it and checks that the folder holds together before anything is
searched: every file there, `docs.sqlite` a readable document store (never silently recreated
empty), the counts of documents, images and vectors what the manifest says, each keys file
paired with its vectors (`FaissStore.load`), and every key a document or image of the store —
a `CorruptIndexError` says what is wrong. The embedders are loaded on first use, so opening is
quick and a question that never searches text never loads the text encoder.

`search(query, k)` answers text, image and region queries (image hits resolve to the
documents their images depict, one hit per document).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from tqdm import tqdm

from pixsearch import images
from pixsearch.config import from_dict, to_dict
from pixsearch.retrieval.config import IndexConfig
from pixsearch.retrieval.crop import DEFAULT_FILL, crop
from pixsearch.retrieval.docstore import DocStore
from pixsearch.retrieval.embedders import Embedder, make_image_embedder, make_text_embedder
from pixsearch.retrieval.store import FaissStore, StoreError
from pixsearch.types import Document, Hit, KBImage, Query

MANIFEST = "index.yaml"
DOCS = "docs.sqlite"


class CorruptIndexError(ValueError):
    """An index folder whose parts are missing or do not hold together."""


def doc_text(doc: Document) -> str:
    """What the text index embeds for a document."""
    return f"{doc.title}: {doc.text}" if doc.title else doc.text


def load_image(path: Path, max_side: int) -> Image.Image:
    """A knowledge-base image through the one loader (`pixsearch.images`: upright, transparency
    composited like query images), shrunk to `max_side`."""
    im = images.load_image(path)
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.LANCZOS)
    return im


def _embed(embed, items: Sequence, batch_size: int, desc: str) -> np.ndarray:
    """Batched embedding with a progress bar."""
    out = [embed(items[i : i + batch_size])
           for i in tqdm(range(0, len(items), batch_size), desc=desc, unit="batch")]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


class KnowledgeIndex:
    """A searchable knowledge base (implements `SearchAPI`)."""

    def __init__(self, directory: Path, config: IndexConfig, docs: DocStore,
                 text_store: FaissStore, image_store: FaissStore | None,
                 text_embedder: Embedder, image_embedder: Embedder | None) -> None:
        self.directory, self.config, self.docs = directory, config, docs
        self.text_store, self.image_store = text_store, image_store
        self.text_embedder, self.image_embedder = text_embedder, image_embedder

    @classmethod
    def build(cls, docs: list[Document], images: list[KBImage], image_root: Path,
              out_dir: Path, config: IndexConfig | None = None,
              overwrite: bool = False) -> KnowledgeIndex:
        """Embed and store `docs` and `images` (paths relative to `image_root`) in `out_dir`."""
        config = config or IndexConfig()
        out_dir = Path(out_dir)
        if (out_dir / MANIFEST).exists():
            if not overwrite:
                raise FileExistsError(f"{out_dir} already holds an index; pass overwrite=True "
                                      "(CLI: --overwrite) or choose another --out")
            for name in out_dir.iterdir():
                if name.is_file():
                    name.unlink()
        out_dir.mkdir(parents=True, exist_ok=True)
        store = DocStore(out_dir / DOCS)
        store.add_documents(docs)
        store.add_images(images)

        text_emb = make_text_embedder(config.text_embedder, config.num_threads)
        text_docs = [d for d in docs if d.kind in config.text_kinds]
        text_store = FaissStore(text_emb.dim, config.store, config.hnsw_m, config.ef_search)
        vecs = _embed(text_emb.embed_texts, [doc_text(d) for d in text_docs],
                      config.batch_size, "embed documents")
        if text_docs:
            text_store.add([d.id for d in text_docs], vecs)
        text_store.save(out_dir, "text")

        image_store, image_emb = None, None
        if images:
            image_store, image_emb = cls._build_images(images, Path(image_root), out_dir, config)
        manifest = {
            "config": to_dict(config),
            "text_embedder": {"name": text_emb.name, "dim": text_emb.dim},
            "image_embedder": ({"name": image_emb.name, "dim": image_emb.dim}
                               if image_emb else None),
            "counts": {**store.counts(), "text_vectors": len(text_store),
                       "image_vectors": len(image_store) if image_store else 0},
        }
        (out_dir / MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False))
        return cls(out_dir, config, store, text_store, image_store, text_emb, image_emb)

    @staticmethod
    def _build_images(images: list[KBImage], root: Path, out_dir: Path,
                      config: IndexConfig) -> tuple[FaissStore, Embedder]:
        missing = [im.path for im in images if not (root / im.path).is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} KB image(s) missing under {root}, "
                                    f"e.g. {missing[:3]}")
        pics = [load_image(root / im.path, config.max_image_side)
                for im in tqdm(images, desc="load images", unit="img")]
        if config.image_embedder == "learned":
            from pixsearch.retrieval.learned import LearnedImageEmbedder  # torch: when needed

            emb = LearnedImageEmbedder.create(config.learned)
            emb.train(pics)
            emb.save(out_dir)
            # one call: kb_vectors pairs each image with its prototype by position
            vecs = emb.kb_vectors(pics)
        else:
            emb = make_image_embedder(config.image_embedder, out_dir, config.num_threads)
            vecs = _embed(emb.embed_images, pics, config.batch_size, "embed images")
        image_store = FaissStore(emb.dim, config.store, config.hnsw_m, config.ef_search)
        image_store.add([im.id for im in images], vecs)
        image_store.save(out_dir, "image")
        return image_store, emb

    @classmethod
    def open(cls, directory: str | Path) -> KnowledgeIndex:
        """Reopen an index written by `build`, checked (see the module docstring)."""
        d = Path(directory).expanduser()
        if not (d / MANIFEST).is_file():
            raise FileNotFoundError(f"{d} is not a knowledge index ({MANIFEST} missing); "
                                    "build one with `pixsearch index build`")
        hint = f"rebuild it (`pixsearch index build ... --out {d} --overwrite`)"
        try:
            manifest = yaml.safe_load((d / MANIFEST).read_text())
            config = from_dict(IndexConfig, manifest["config"])
            text_info, image_info = manifest["text_embedder"], manifest.get("image_embedder")
            counts = manifest.get("counts") or {}
        except (yaml.YAMLError, ValueError, KeyError, TypeError) as e:
            raise CorruptIndexError(f"{d / MANIFEST} is unreadable ({type(e).__name__}: {e}); "
                                    f"{hint}") from e
        try:
            docs = DocStore(d / DOCS, create=False)
            text_store = FaissStore.load(d, "text", config.ef_search)
            image_store = FaissStore.load(d, "image", config.ef_search) if image_info else None
            text_emb = make_text_embedder(text_info["name"], config.num_threads, lazy=True,
                                          dim=text_info.get("dim"))
            image_emb = (make_image_embedder(image_info["name"], d, config.num_threads,
                                             lazy=True, dim=image_info.get("dim"))
                         if image_info else None)
            _check_counts(docs, text_store, image_store, counts)
        except (FileNotFoundError, StoreError, ValueError) as e:
            raise CorruptIndexError(f"index {d} is incomplete or corrupt: {e}; {hint}") from e
        return cls(d, config, docs, text_store, image_store, text_emb, image_emb)

    def region_image(self, query: Query) -> tuple[Image.Image, tuple[int, int, int, int] | None]:
        """The image a (region or image) query is embedded from, and the crop box if any."""
        if query.modality == "region":
            return crop(query.image, query.mask, self.config.crop_pad,
                        self.config.suppress_background, DEFAULT_FILL)
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
        hits: list[Hit] = []
        seen: set[str] = set()
        for image_id, score in self.image_store.search(vec, k * self.config.image_oversample)[0]:
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


def _check_counts(docs: DocStore, text_store: FaissStore, image_store: FaissStore | None,
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
        if store is None:
            continue
        unknown = [k for k in store.keys if k not in ids]
        if unknown:
            raise ValueError(f"{len(unknown)} {name} key(s) name nothing in {DOCS}, e.g. "
                             f"{unknown[:3]}")
