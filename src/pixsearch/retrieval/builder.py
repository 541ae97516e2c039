"""Index builds and updates that survive real corpora: streamed, checkpointed, published atomically.

    builder = IndexBuilder("idx", IndexConfig(), BuildConfig(chunk_size=2048))
    builder.build(docs, images, image_root)      # docs/images: files, sources or iterables
    builder.add(new_docs, new_images, root)      # embeds only the new items
    builder.remove(doc_ids=["d1"])               # their images go too

A build streams its inputs chunk by chunk (`sources`), embeds each chunk (`chunks`) in this
process or on Ray (`ray_build`, `BuildConfig.engine`), and checkpoints it as a shard in the
staging folder (`shards`). After `kill -9` at any point, running the same build again skips
the finished chunks (checking that the input has not changed) and ends with the same index an
uninterrupted build makes. The finished shards are assembled into a new version folder
(`assemble`) and published with one atomic rename (`layout`): readers see the old index or
the new one, never a mix, and a crash mid-rebuild leaves the published index as it was.
One writer at a time holds the folder's lock.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pixsearch.config import from_dict, to_dict
from pixsearch.logs import get_logger, progress_bar
from pixsearch.retrieval import layout
from pixsearch.retrieval.assemble import Change, assemble
from pixsearch.retrieval.chunks import EMBEDDER_DIR, ChunkEmbedder, input_digest, load_images
from pixsearch.retrieval.config import BuildConfig, IndexConfig, LearnedConfig
from pixsearch.retrieval.docstore import DocStore, DuplicateIdError
from pixsearch.retrieval.embedders import Embedder
from pixsearch.retrieval.shards import Staging, chunk_digest
from pixsearch.retrieval.sources import JsonlSource, Source, as_source
from pixsearch.types import KBImage

log = get_logger(__name__)
TRAIN_IDS = "train_ids.json"


class InputChangedError(ValueError):
    """The input of a resumed build is not the one its checkpoints were made from."""


class UnknownIdError(ValueError):
    """Ids to remove that the index does not hold."""


@dataclass
class BuildReport:
    """What a build or update did.

    Attributes:
        directory: the index folder; version: the version it published.
        counts: documents, images, text_vectors and image_vectors of the new version.
        stores: the vector index kind of each modality.
        embedded: items embedded by this run, per modality ("text": documents).
        resumed: chunks found already done, per modality.
        seconds: wall time per phase ("text", "image", "assemble") and "total".
    """

    directory: Path
    version: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    stores: dict[str, str] = field(default_factory=dict)
    embedded: dict[str, int] = field(default_factory=lambda: {"text": 0, "image": 0})
    resumed: dict[str, int] = field(default_factory=lambda: {"text": 0, "image": 0})
    seconds: dict[str, float] = field(default_factory=dict)

    def rate(self, modality: str) -> float:
        """Items embedded per second in this run's `modality` phase."""
        return self.embedded[modality] / max(self.seconds.get(modality, 0.0), 1e-9)


class IndexBuilder:
    """Builds and updates the index folder `out_dir` (see the module docstring).

    Args:
        out_dir: the index folder.
        config: index settings of a new build (updates keep the index's own).
        build: how the build runs (chunking, engine, versions kept, progress).
        text_embedder, image_embedder: embedders to use instead of the ones the config
            names (their `name` must be one `KnowledgeIndex.open` can load again; the local
            engine only).
    """

    def __init__(self, out_dir: str | Path, config: IndexConfig | None = None,
                 build: BuildConfig | None = None, text_embedder: Embedder | None = None,
                 image_embedder: Embedder | None = None) -> None:
        self.out = Path(out_dir).expanduser()
        self.config = config or IndexConfig()
        self.settings = build or BuildConfig()
        self._text, self._image = text_embedder, image_embedder
        if self.settings.engine == "ray" and (text_embedder or image_embedder):
            raise ValueError("the Ray engine makes its embedders from the config; pass "
                             "embedder names in IndexConfig, not embedder objects")

    # ---- the three operations ----------------------------------------------------------

    def build(self, docs: Source | str | Path | Iterable, images: Any = None,
              image_root: str | Path | None = None, overwrite: bool = False,
              restart: bool = False, regions: str | Path | None = None) -> BuildReport:
        """Build a new index of `docs` (and `images`, paths relative to `image_root`; for an
        image folder, the folder) and publish it; resumes an interrupted build of the same
        inputs. `overwrite`: publish over an existing index (kept until then). `regions`: a
        region examples file (`regions.py`) the learned image embedder also trains on."""
        docs_src, img_src = as_source(docs, "documents"), as_source(images, "images")
        root = _image_root(img_src, image_root)
        if regions is not None and not Path(regions).is_file():
            raise FileNotFoundError(f"region examples file {regions} does not exist")
        started = time.perf_counter()
        with layout.writer_lock(self.out):
            # a build without region examples keeps the key it had before they existed
            extra = () if regions is None else (_file_digest(regions),)
            key = self._key("build", self.config, docs_src, img_src, root, *extra)
            pending = Staging.existing(self.out)
            resuming = pending is not None and pending.plan["key"] == key and not restart
            if layout.is_index(self.out) and not (overwrite or resuming):
                raise FileExistsError(
                    f"{self.out} already holds an index; pass overwrite=True (CLI: "
                    "--overwrite) to publish a new version over it, or choose another --out")
            staging = self._staging("build", key, None, restart)
            embedder = ChunkEmbedder(self.config, self._text, self._image)
            report = BuildReport(self.out)
            if not self._published(staging):
                with self._engine():
                    self._embed("text", staging, docs_src, None, embedder, report)
                    if img_src is not None:
                        self._learned_embedder(staging, img_src, root, embedder, regions)
                        self._embed("image", staging, img_src, root, embedder, report)
                self._assemble(staging, self.config, Change(), embedder,
                               img_src is not None, report, started)
            return self._publish(staging, report, started)

    def add(self, docs: Any = None, images: Any = None, image_root: str | Path | None = None,
            restart: bool = False) -> BuildReport:
        """Embed and add new documents and/or images to the published index (a new version;
        an id already there is an error)."""
        docs_src, img_src = as_source(docs, "documents"), as_source(images, "images")
        root = _image_root(img_src, image_root)
        started = time.perf_counter()
        with layout.writer_lock(self.out):
            base, config, manifest = self._base()
            key = self._key("add", config, docs_src, img_src, root, manifest["build"])
            staging = self._staging("add", key, base, restart)
            learned = config.image_embedder == "learned"
            embedder = ChunkEmbedder(config, self._text, self._image,
                                     embedder_dir=base if learned else None)
            report = BuildReport(self.out)
            if not self._published(staging):
                existing = DocStore(base / "docs.sqlite", create=False)
                try:
                    with self._engine():
                        if docs_src is not None:
                            self._embed("text", staging, docs_src, None, embedder, report,
                                        existing)
                        if img_src is not None:
                            self._embed("image", staging, img_src, root, embedder, report,
                                        existing)
                finally:
                    existing.close()
                has_images = img_src is not None or manifest.get("image_embedder") is not None
                self._assemble(staging, config, Change(base), embedder, has_images, report,
                               started)
            return self._publish(staging, report, started)

    def remove(self, doc_ids: Sequence[str] = (), image_ids: Sequence[str] = (),
               restart: bool = False) -> BuildReport:
        """Remove documents (with the images linked to them) and images from the published
        index (a new version). UnknownIdError names ids the index does not hold."""
        started = time.perf_counter()
        with layout.writer_lock(self.out):
            base, config, manifest = self._base()
            store = DocStore(base / "docs.sqlite", create=False)
            try:
                docs, images = store.ids_among("documents", list(doc_ids)), store.ids_among(
                    "images", list(image_ids))
                missing = ([i for i in doc_ids if i not in docs]
                           + [i for i in image_ids if i not in images])
                if missing:
                    raise UnknownIdError(f"{self.out} holds no document or image "
                                         f"{', '.join(map(repr, missing[:5]))}")
                linked = store.images_of(list(doc_ids))
            finally:
                store.close()
            removed = {"text": list(doc_ids), "image": list(dict.fromkeys([*linked, *image_ids]))}
            key = self._key("remove", config, None, None, None, manifest["build"],
                            chunk_digest([removed]))
            staging = self._staging("remove", key, base, restart)
            report = BuildReport(self.out)
            if not self._published(staging):
                embedder = ChunkEmbedder(config, self._text, self._image)
                self._assemble(staging, config, Change(base, removed), embedder,
                               manifest.get("image_embedder") is not None, report, started,
                               manifest)
            return self._publish(staging, report, started)

    # ---- steps ---------------------------------------------------------------------------

    def _engine(self) -> AbstractContextManager:
        """A Ray session around the embedding phases of the Ray engine."""
        if self.settings.engine != "ray":
            return nullcontext()
        from pixsearch.retrieval.ray_build import ray_session

        return ray_session(self.settings)

    def _key(self, op: str, config: IndexConfig, docs: Source | None, images: Source | None,
             root: Path | None, *extra: Any) -> str:
        """What identifies a build: equal keys, interchangeable checkpoints."""
        # the inputs themselves are not part of it: each resumed chunk is checked instead
        spec = {"op": op, "config": to_dict(config), "chunk_size": self.settings.chunk_size,
                "docs": docs is not None, "images": images is not None,
                "image_root": str(root) if root else None,
                "embedders": [getattr(e, "name", None) for e in (self._text, self._image)],
                "extra": extra}
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()

    def _staging(self, op: str, key: str, base: Path | None, restart: bool) -> Staging:
        plan = {"op": op, "key": key, "version": layout.next_version(self.out),
                "base": base.name if base else None}
        staging = Staging.open(self.out, plan, restart)
        if staging.plan["version"] != plan["version"] and not self._published(staging):
            # resumed: keep its version name unless a newer folder took it meanwhile
            taken = layout.version_dir(self.out, staging.plan["version"])
            if taken.exists() and _build_id(taken) != staging.plan["id"]:
                raise InputChangedError(f"{taken} was published by another build since this "
                                        "one started; pass --restart (restart=True)")
        return staging

    def _base(self) -> tuple[Path, IndexConfig, dict[str, Any]]:
        """The published version an update starts from, its config and manifest."""
        base = layout.resolve(self.out)
        manifest = yaml.safe_load((base / layout.MANIFEST).read_text())
        manifest.setdefault("build", {"id": "unversioned", "version": base.name})
        return base, from_dict(IndexConfig, manifest["config"]), manifest

    def _published(self, staging: Staging) -> bool:
        """Whether this staging's version is already the published one (killed after the
        publish, before the cleanup)."""
        name = staging.plan["version"]
        return (layout.current_version(self.out) == name
                and _build_id(layout.version_dir(self.out, name)) == staging.plan["id"])

    def _embed(self, modality: str, staging: Staging, source: Source, root: Path | None,
               embedder: ChunkEmbedder, report: BuildReport,
               existing: DocStore | None = None) -> None:
        """Embed and checkpoint every chunk of `source` whose checkpoint is missing or was
        made from other input (`input_digest`); `existing`: ids it holds are refused."""
        t0 = time.perf_counter()
        size, done = self.settings.chunk_size, staging.done(modality)
        what = "documents" if modality == "text" else "images"
        unit = "doc" if modality == "text" else "img"
        ray = self.settings.engine == "ray"
        if ray and not isinstance(source, JsonlSource):
            raise ValueError(f"the Ray engine reads {what} from files on each worker; pass "
                             "a JSONL file (or an image folder), not an iterable")
        ranges = (list(source.ranges(size)) if isinstance(source, JsonlSource)
                  else itertools.repeat(None))
        total = sum(r.count for r in ranges) if isinstance(ranges, list) else None
        bar = progress_bar(total=total, desc=f"{'check' if ray else 'embed'} {what}",
                           unit=unit, disable=not self.settings.progress)
        todo, n_chunks = [], 0
        for chunk, (items, r) in enumerate(zip(source.chunks(size), ranges)):
            n_chunks = chunk + 1
            if existing is not None:
                _refuse_known(existing, "documents" if modality == "text" else "images", items)
            digest = input_digest(items, root)
            if done.get(chunk) == digest:
                report.resumed[modality] += 1
            elif ray:
                todo.append(r)  # embedded below, on the workers
            else:
                out = (embedder.documents(items) if modality == "text"
                       else embedder.images(items, root))
                staging.write_chunk(modality, chunk, digest, *out)
                report.embedded[modality] += len(items)
            bar.update(len(items))
        bar.close()
        staging.drop(modality, [c for c in done if c >= n_chunks])  # the input got shorter
        if ray:
            from pixsearch.retrieval.ray_build import embed_on_ray

            report.embedded[modality] = embed_on_ray(
                self.settings, embedder.config, staging, modality, source, todo, root,
                embedder, progress=self.settings.progress)
        report.seconds[modality] = time.perf_counter() - t0
        log.info("embedded %d %s in %.1f s (%.1f/s), %d chunks resumed",
                 report.embedded[modality], what, report.seconds[modality],
                 report.rate(modality), report.resumed[modality])

    def _learned_embedder(self, staging: Staging, images: Source, root: Path,
                          embedder: ChunkEmbedder, regions: str | Path | None = None) -> None:
        """Train (once; the result is checkpointed) the learned image embedder on the first
        `learned.max_train_images` images (and the crops of `regions`, a region examples
        file), and point `embedder` at it."""
        if self.config.image_embedder != "learned" or self._image is not None:
            return
        folder = staging.root / EMBEDDER_DIR
        if not (folder / TRAIN_IDS).is_file():
            from pixsearch.retrieval.learned import LearnedImageEmbedder

            cap = self.config.learned.max_train_images
            train: list[KBImage] = []
            for items in images.chunks(self.settings.chunk_size):
                train += items[: cap - len(train)]
                if len(train) >= cap:
                    break
            pics = load_images(train, root, self.config.max_image_side)
            emb = LearnedImageEmbedder.create(self.config.learned)
            emb.train(pics, progress=self.settings.progress,
                      regions=_region_crops(regions, train, self.config.learned))
            tmp = staging.root / f".{EMBEDDER_DIR}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            emb.save(tmp)
            (tmp / TRAIN_IDS).write_text(json.dumps([im.id for im in train]))
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        embedder.embedder_dir = folder
        embedder.prototypes = prototype_rows(folder)

    def _assemble(self, staging: Staging, config: IndexConfig, change: Change,
                  embedder: ChunkEmbedder, has_images: bool, report: BuildReport,
                  started: float, manifest: dict[str, Any] | None = None) -> None:
        t0 = time.perf_counter()
        final = layout.version_dir(self.out, staging.plan["version"])
        if _build_id(final) != staging.plan["id"]:  # else: assembled before a kill
            if manifest is not None:  # no new embeddings: the base's embedders as they are
                embedders = {"text": manifest["text_embedder"],
                             "image": manifest.get("image_embedder")}
            else:
                embedders = {"text": {"name": embedder.text.name, "dim": embedder.text.dim},
                             "image": ({"name": embedder.image.name, "dim": embedder.image.dim}
                                       if has_images else None)}
            assemble(self.out, staging, config, change, embedders, started)
        report.seconds["assemble"] = time.perf_counter() - t0

    def _publish(self, staging: Staging, report: BuildReport, started: float) -> BuildReport:
        name = staging.plan["version"]
        layout.publish(self.out, name)
        staging.discard()
        layout.collect(self.out, self.settings.keep_versions, self._drop_collections)
        manifest = yaml.safe_load((layout.version_dir(self.out, name) / layout.MANIFEST)
                                  .read_text())
        report.version, report.counts = name, manifest["counts"]
        report.stores = manifest.get("stores", {})
        report.seconds["total"] = time.perf_counter() - started
        return report


    def _drop_collections(self, version: Path) -> None:
        """Drop the Milvus collections of a version being collected."""
        try:
            manifest = yaml.safe_load((version / layout.MANIFEST).read_text())
        except (OSError, yaml.YAMLError):
            return
        if isinstance(manifest, dict) and manifest.get("milvus"):
            from pixsearch.retrieval import milvus_backend

            milvus_backend.drop(manifest, self.out)


def _region_crops(path: str | Path | None, train: Sequence[KBImage], cfg: LearnedConfig
                  ) -> tuple[Any, Any] | None:
    """The query crops of a region examples file (`regions.region_views`) for an embedder
    trained on `train`, or None without a file."""
    if path is None:
        return None
    from pixsearch.retrieval.regions import read_region_examples, region_views

    examples = read_region_examples(path)
    rows = {im.id: row for row, im in enumerate(train)}
    crops = region_views(examples, Path(path).parent, rows,
                         (cfg.input_width, cfg.input_height), cfg.region_views, cfg.seed)
    log.info("%d region crops from %d photographs of %s", len(crops[1]), len(examples), path)
    return crops


def _file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def prototype_rows(folder: Path) -> dict[str, int]:
    """Image id → prototype row of a trained embedder's training images."""
    return {i: row for row, i in enumerate(json.loads((folder / TRAIN_IDS).read_text()))}


def _refuse_known(store: DocStore, table: str, items: Sequence) -> None:
    """DuplicateIdError if the index already holds one of `items`' ids."""
    found = store.ids_among(table, [it.id for it in items])
    known = [it.id for it in items if it.id in found]
    if known:
        raise DuplicateIdError(f"the index already holds {table[:-1]} id {known[0]!r}"
                               f"{f' (and {len(known) - 1} more)' if len(known) > 1 else ''}"
                               "; remove it first (`pixsearch index remove`) to replace it")


def _build_id(version: Path) -> str | None:
    try:
        return yaml.safe_load((version / layout.MANIFEST).read_text())["build"]["id"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None


def _image_root(images: Source | None, root: str | Path | None) -> Path | None:
    if images is None:
        return None
    if root is not None:
        return Path(root)
    if isinstance(images, JsonlSource):
        return images.path.parent
    raise ValueError("images given as an iterable need image_root (their paths are relative)")
