"""Region examples for the learned image embedder: the file, perturbed masks, query crops,
training on them, and an index built with them (CLI and world)."""

import argparse
import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from pixsearch.masks import mask_to_rle
from pixsearch.retrieval.augment import random_views
from pixsearch.retrieval.config import LearnedConfig
from pixsearch.retrieval.learned import LearnedImageEmbedder
from pixsearch.retrieval.regions import (
    Region,
    RegionExample,
    perturb_mask,
    read_region_examples,
    region_views,
    write_region_examples,
)
from pixsearch.world.flags import render_flag

CODES = ("FR", "JP", "BR", "CA", "IN", "SE")
SMALL = LearnedConfig(steps=30, batch_size=32, channels=8, dim=32, seed=0, num_threads=1)


def scene(codes, seed):
    """A photograph-like scene with flags pasted side by side; their masks, touching."""
    rng = np.random.default_rng(seed)
    img = (rng.random((120, 80 * len(codes) + 20, 3)) * 255).astype(np.uint8)
    masks = []
    for i, code in enumerate(codes):
        x = 10 + 80 * i
        img[30:90, x : x + 80] = np.asarray(render_flag(code, 80, 60).convert("RGB"))
        m = np.zeros(img.shape[:2], bool)
        m[30:90, x : x + 80] = True
        masks.append(m)
    return Image.fromarray(img), masks


@pytest.fixture(scope="module")
def examples_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("regions")
    (root / "photos").mkdir()
    examples = []
    for s, codes in enumerate([("FR", "JP"), ("BR", "CA", "IN"), ("SE", "FR")]):
        img, masks = scene(codes, s)
        img.save(root / "photos" / f"{s}.jpg", quality=95)
        examples.append(RegionExample(f"photos/{s}.jpg", [
            Region(mask_to_rle(m), None if c == "IN" else f"img-{c}")  # IN: not in the KB
            for c, m in zip(codes, masks)]))
    write_region_examples(root / "regions.jsonl", examples)
    return root / "regions.jsonl"


def test_file_round_trip_and_errors(examples_file, tmp_path):
    back = read_region_examples(examples_file)
    assert [e.image for e in back] == ["photos/0.jpg", "photos/1.jpg", "photos/2.jpg"]
    assert [r.image_id for r in back[1].regions] == ["img-BR", "img-CA", None]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(examples_file.read_text().splitlines()[0] + "\n{\"image\": \"x.jpg\"}\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not a region example"):
        read_region_examples(bad)


def test_perturbed_masks_are_the_kinds_a_model_makes():
    left, right = np.zeros((120, 220), bool), np.zeros((120, 220), bool)
    left[30:90, 10:90] = True
    right[30:90, 100:180] = True  # 10 px apart: more than growth reaches (9), less than a join
    rng = np.random.default_rng(0)
    kinds = {"grown": 0, "shrunk": 0, "neighbour": 0, "cut": 0}
    for _ in range(200):
        m = perturb_mask(left, [right], rng)
        assert m.sum() >= 0.24 * left.sum()
        if (m & right).any():
            kinds["neighbour"] += 1
        elif m.sum() > left.sum() and (m & ~left).any():
            kinds["grown"] += 1
        elif not (m & ~left).any() and m.sum() < left.sum():
            inner = m[left].reshape(60, 80)
            full_rows = inner.all(axis=1).sum() + inner.all(axis=0).sum()
            kinds["cut" if full_rows else "shrunk"] += 1
    assert kinds["grown"] >= 50 and kinds["shrunk"] >= 20 and kinds["neighbour"] >= 10, kinds
    assert kinds["cut"] >= 3, kinds
    a = perturb_mask(left, [right], np.random.default_rng(5))
    assert np.array_equal(a, perturb_mask(left, [right], np.random.default_rng(5)))


def test_region_views_label_kb_regions_only(examples_file):
    rows = {f"img-{c}": i for i, c in enumerate(CODES)}
    views, labels = region_views(read_region_examples(examples_file), examples_file.parent,
                                 rows, (64, 48), views=3, seed=0)
    assert views.shape == (18, 3, 48, 64) and views.min() >= 0 and views.max() <= 1
    assert sorted(set(labels.tolist())) == [0, 1, 2, 3, 5]  # FR, JP, BR, CA, SE; IN unlabelled
    again = region_views(read_region_examples(examples_file), examples_file.parent, rows,
                         (64, 48), views=3, seed=0)
    assert torch.equal(views, again[0])
    with pytest.raises(ValueError, match="image_id"):
        region_views(read_region_examples(examples_file), examples_file.parent,
                     {"img-XX": 0}, (64, 48), views=1, seed=0)
    with pytest.raises(FileNotFoundError, match="missing"):
        region_views(read_region_examples(examples_file), examples_file.parent / "elsewhere",
                     rows, (64, 48), views=1, seed=0)


def test_training_mixes_region_crops_into_every_batch(examples_file):
    flags = [render_flag(c, 128, 96) for c in CODES]
    rows = {f"img-{c}": i for i, c in enumerate(CODES)}
    regions = region_views(read_region_examples(examples_file), examples_file.parent, rows,
                           (64, 48), views=2, seed=0)
    src = torch.rand(len(flags), 3, 96, 128)
    n = round(SMALL.region_share * SMALL.batch_size)
    for jitter in (False, True):
        emb = LearnedImageEmbedder.create(dataclasses.replace(SMALL, region_photometric=jitter))
        views, labels = emb._batch(src, regions, torch.Generator().manual_seed(0))
        assert views.shape[0] == labels.shape[0] == SMALL.batch_size
        # the last `n` views are region crops (jittered or as made), with their rows
        assert any(torch.equal(views[-1], r) for r in regions[0]) is not jitter
        assert set(labels[-n:].tolist()) <= set(regions[1].tolist())
    stats = emb.train(flags, progress=False, regions=regions)
    assert stats["n_region_crops"] == len(regions[0]) and np.isfinite(stats["loss"])
    # without region examples a batch is KB views only, drawn as before they existed
    views, labels = emb._batch(src, None, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, len(src), (SMALL.batch_size,), generator=g)
    assert torch.equal(labels, idx)
    assert torch.equal(views, random_views(src[idx], (48, 64), SMALL.augment, g))


def test_config_refuses_bad_region_settings():
    with pytest.raises(ValueError, match="region_share"):
        LearnedConfig(region_share=1.0)
    with pytest.raises(ValueError, match="region_views"):
        LearnedConfig(region_views=0)


def test_index_cli_builds_with_regions(examples_file, tmp_path):
    """An index whose embedder has two members, trained with region examples."""
    from test_retrieval_index import write_kb

    from pixsearch.cli import index as cli_index
    from pixsearch.retrieval.index import KnowledgeIndex

    docs, images = write_kb(tmp_path / "kb")
    parser = argparse.ArgumentParser()
    cli_index.register(parser.add_subparsers(dest="verb"))
    out = tmp_path / "index"
    args = parser.parse_args(["index", "build", "--docs", str(docs), "--images", str(images),
                              "--regions", str(examples_file), "--out", str(out),
                              "learned.steps=30", "learned.batch_size=32",
                              "learned.channels=8", "learned.dim=32", "learned.num_threads=1",
                              "learned.members=2"])
    assert args.func(args) == 0
    index = KnowledgeIndex.open(out)
    assert index.image_embedder.dim == 64  # lazy: the dim the build recorded, both members
    img, masks = scene(("SE", "FR"), 2)
    hits = index.search((img, masks[0]), 3)  # a region query of a trained photograph
    assert hits and index.image_embedder.dim == 64
    missing = parser.parse_args(["index", "build", "--docs", str(docs), "--regions",
                                 str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "x")])
    with pytest.raises(FileNotFoundError, match="region examples"):
        missing.func(missing)


def test_world_writes_train_regions(tmp_path):
    from pixsearch.world.build import build_world
    from pixsearch.world.config import WorldConfig

    small = WorldConfig.preset("small")
    cfg = small.replace(index_regions=True, index_config=small.index_config.__class__(
        image_embedder="learned", learned=SMALL))
    build_world(tmp_path, cfg, progress=False)
    examples = read_region_examples(tmp_path / "kb" / "regions.jsonl")
    assert len(examples) == cfg.scenes.train
    assert all(e.image.startswith("../images/train_") for e in examples)
    kb = {json.loads(line)["id"] for line in
          (tmp_path / "kb" / "images" / "images.jsonl").read_text().splitlines()}
    labelled = [r.image_id for e in examples for r in e.regions if r.image_id is not None]
    assert labelled and set(labelled) <= kb
    # the scenes the regions were cut from are the train split's, byte for byte
    train = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    first = next(r for r in train if r["image"] == "images/train_00000.jpg")
    assert first["masks"] == [r.mask for r in examples[0].regions]
