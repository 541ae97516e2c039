"""KnowledgeIndex on a small real KB (flags + country facts): build, search, reopen, CLI."""

import argparse
import json

import numpy as np
import pytest
from PIL import Image

from pixsearch.retrieval.build import build_index
from pixsearch.retrieval.index import IndexConfig, KnowledgeIndex
from pixsearch.retrieval.learned import LearnedConfig
from pixsearch.types import Document, Query
from pixsearch.world.flags import render_flag

COUNTRIES = {
    "FR": ("France", "Paris", "euro"),
    "JP": ("Japan", "Tokyo", "yen"),
    "BR": ("Brazil", "Brasília", "real"),
    "CA": ("Canada", "Ottawa", "Canadian dollar"),
    "IN": ("India", "New Delhi", "Indian rupee"),
    "SE": ("Sweden", "Stockholm", "Swedish krona"),
}
SMALL_LEARNED = LearnedConfig(steps=60, batch_size=32, channels=8, dim=32, seed=0, num_threads=1)


def write_kb(root):
    """DOCS.jsonl + images/ (flag PNGs and images.jsonl) for the six countries."""
    images = root / "images"
    images.mkdir(parents=True)
    docs, rows = [], []
    for code, (name, capital, currency) in COUNTRIES.items():
        docs.append(Document(f"card-{code}", name, f"{name}. Capital: {capital}. "
                             f"Currency: {currency}.", code, "card"))
        docs.append(Document(f"fact-{code}", f"{name} capital",
                             f"The capital city of {name} is {capital}.", code))
        render_flag(code, 160, 120).save(images / f"{code.lower()}.png")
        rows.append({"id": f"img-{code}", "path": f"{code.lower()}.png", "doc_id": f"card-{code}"})
    (root / "docs.jsonl").write_text("".join(json.dumps(d.__dict__) + "\n" for d in docs))
    (images / "images.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "docs.jsonl", images


def region_query(code):
    """A flag pasted into a real photo, with its exact paste mask."""
    from skimage import data

    scene = Image.fromarray(data.astronaut()).convert("RGB")
    flag = render_flag(code, 96, 72).rotate(6, Image.BICUBIC, expand=True)
    alpha = Image.new("L", (96, 72), 255).rotate(6, Image.BICUBIC, expand=True)
    scene.paste(flag, (300, 120), alpha)
    mask = np.zeros((scene.height, scene.width), bool)
    mask[120 : 120 + alpha.height, 300 : 300 + alpha.width] = np.asarray(alpha) > 127
    return scene, mask


@pytest.fixture(scope="module")
def kb_files(tmp_path_factory):
    return write_kb(tmp_path_factory.mktemp("kb"))


@pytest.fixture(scope="module")
def index_dir(kb_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("index")
    build_index(*kb_files, out, IndexConfig(learned=SMALL_LEARNED), overwrite=True)
    return out


def _queries():
    return [
        "What is the capital city of Japan?",
        "Which country uses the Swedish krona?",
        render_flag("BR", 200, 150),
        region_query("FR"),
        region_query("CA"),
    ]


def test_layout(index_dir):
    names = {p.name for p in index_dir.iterdir()}
    assert {"index.yaml", "docs.sqlite", "text.faiss", "image.faiss", "image_embedder.json",
            "image_embedder.safetensors"} <= names


def test_text_image_and_region_search(index_dir):
    index = KnowledgeIndex.open(index_dir)
    text = index.search("What is the capital city of Japan?", 3)
    assert text[0].entity == "JP" and text[0].via == "text"
    assert index.search("Which country uses the Swedish krona?", 1)[0].doc_id == "card-SE"

    image = index.search(render_flag("BR", 200, 150), 3)
    assert image[0].doc_id == "card-BR" and image[0].via == "img-BR"
    assert len({h.doc_id for h in image}) == len(image) == 3  # one hit per document

    scene, mask = region_query("FR")
    region = index.search((scene, mask), 2)
    assert region[0].doc_id == "card-FR" and region[0].via == "img-FR"
    assert index.search(Query("region", image=scene, mask=mask), 2) == region
    canada = index.search(region_query("CA"), 1)
    assert canada[0].title == "Canada"


def test_reopen_gives_identical_results(index_dir):
    first = KnowledgeIndex.open(index_dir)
    again = KnowledgeIndex.open(index_dir)
    for q in _queries():
        assert first.search(q, 4) == again.search(q, 4)


def test_build_refuses_to_overwrite(index_dir, kb_files):
    with pytest.raises(FileExistsError, match="overwrite"):
        build_index(*kb_files, index_dir, IndexConfig(learned=SMALL_LEARNED))


def test_cli_build_and_search(kb_files, tmp_path, capsys):
    from pixsearch.cli import index as cli_index

    parser = argparse.ArgumentParser()
    cli_index.register(parser.add_subparsers(dest="verb"))
    docs, images = kb_files
    out = tmp_path / "idx"
    args = parser.parse_args(["index", "build", "--docs", str(docs), "--images", str(images),
                              "--out", str(out), "image_embedder=thumbnail-16x12",
                              "store=hnsw"])
    assert args.func(args) == 0
    assert "12 documents, 6 images" in capsys.readouterr().out
    flag = tmp_path / "jp.png"
    render_flag("JP", 120, 90).save(flag)
    args = parser.parse_args(["index", "search", "--index", str(out), "--image", str(flag),
                              "-k", "2", "--json"])
    assert args.func(args) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert hits[0]["doc_id"] == "card-JP" and len(hits) == 2
    args = parser.parse_args(["index", "search", "--index", str(out), "--text", "yen", "-k", "1"])
    assert args.func(args) == 0
    assert "Japan" in capsys.readouterr().out
