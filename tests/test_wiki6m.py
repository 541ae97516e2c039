"""The paper's knowledge base from the Wikipedia entity file of OVEN / InfoSeek: the streaming
reader (cards, passages, entity images linked to their card), `pixsearch index build --from
wiki6m` searched by text and by image, and a build that resumes after an interruption."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pytest
from benchmark_fixtures import COLOURS, write_wiki6m
from PIL import Image

from pixsearch.cli import main
from pixsearch.data.formats.wiki6m import (
    Wiki6MConfig,
    Wiki6MSource,
    Wiki6MStats,
    chunk_passages,
    iter_entities,
)
from pixsearch.data.jsonl import FormatError
from pixsearch.retrieval.builder import IndexBuilder
from pixsearch.retrieval.config import BuildConfig, IndexConfig
from pixsearch.retrieval.index import KnowledgeIndex
from pixsearch.retrieval.sources import IterableSource


@pytest.fixture(scope="module")
def wiki(tmp_path_factory):
    root = tmp_path_factory.mktemp("wiki")
    path, images = write_wiki6m(root)
    return root, path, images


def test_entities_become_cards_passages_and_linked_images(wiki):
    root, path, images = wiki
    stats = Wiki6MStats()
    ents = list(iter_entities(path, images, stats=stats))
    assert [e.id for e in ents] == ["Q1", "Q2", "Q3", "Q4", "Q5"]  # the repeated Q1 skipped
    assert stats.duplicates == 1 and stats.entities == 5
    q1 = ents[0]
    assert (q1.card.id, q1.card.kind, q1.card.entity) == ("Q1", "card", "Q1")
    assert q1.card.text == "Redland is a country with a plain red flag."
    # two short paragraphs packed together, then a 130-word paragraph cut at 100 words
    assert [p.id for p in q1.passages] == ["Q1#0", "Q1#1", "Q1#2"]
    assert q1.passages[0].text.endswith("The capital of Redland is Rubyville.")
    assert [len(p.text.split()) for p in q1.passages[1:]] == [100, 30]
    assert all(p.kind == "passage" and p.entity == "Q1" for p in q1.passages)
    # images: sharded <id[:4]>/<id>.jpg, flat <id>.png, a local image_path; a URL with no
    # file on disk and an entity without image are text-only
    got = {e.id: e.image for e in ents}
    assert got["Q1"].path == str((images / "Q1" / "Q1.jpg").resolve())
    assert got["Q2"].path.endswith("Q2.png") and got["Q3"].path.endswith("local/blueland.png")
    assert got["Q4"] is None and got["Q5"] is None
    assert all(got[q].doc_id == q and got[q].id == f"img:{q}" for q in ("Q1", "Q2", "Q3"))
    assert (stats.images, stats.images_missing, stats.missing_examples) == (3, 1, ["Q4"])
    # the card of an entity without a summary is its opening words
    assert ents[2].card.text == "Blueland lies by the sea. Its capital is Port Azure."


def test_sections_gzip_limits_and_errors(tmp_path):
    passages = chunk_passages([("", "a b c"), ("History", "d e f")], words=10)
    assert passages == ["a b c", "History: d e f"]  # a passage never spans two sections
    gz = tmp_path / "wiki.jsonl.gz"
    rows = [{"id": "E1", "title": "Evqa", "section_titles": ["Abstract", "Life"],
             "section_texts": ["Opening words.", "Born somewhere."],
             "image_urls": ["https://x/E1.jpg"]},
            {"wikidata_id": "Q9", "wikipedia_title": "Nine", "wikipedia_content": "Nine."}]
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    ents = list(iter_entities(gz, cfg=Wiki6MConfig(limit=1)))
    assert len(ents) == 1 and [p.text for p in ents[0].passages] == [
        "Opening words.", "Life: Born somewhere."]
    assert ents[0].image_missing  # a URL, and no image folder to find it in
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(rows[1]) + "\n" + json.dumps({"wikidata_id": "Q2"}) + "\n")
    with pytest.raises(FormatError, match=r"bad.jsonl:2: .*needs an id .* and a title"):
        list(iter_entities(bad))


def test_index_build_from_wiki6m_searched_by_text_and_image(wiki, tmp_path, capsys):
    root, path, images = wiki
    out = tmp_path / "kb"
    assert main(["index", "build", "--from", "wiki6m", "--docs", str(path), "--images",
                 str(images), "--out", str(out), "image_embedder=thumbnail-16x12"]) == 0
    said = capsys.readouterr().out
    assert "5 entities (1 repeated lines skipped; 1 image URLs without a file" in said
    assert "12 documents, 3 images linked to their entity" in said
    index = KnowledgeIndex.open(out)
    hits = index.search("What is the capital of Textonia?", 3)
    assert hits[0].entity == "Q5" and "Letterburg" in hits[0].text
    for qid in ("Q1", "Q2", "Q3"):  # a photo of the entity's colour finds its card
        (hit, *_) = index.search(Image.new("RGB", (40, 30), COLOURS[qid]), 2)
        assert hit.doc_id == qid and hit.via == f"img:{qid}" and hit.title == index.docs.document(qid).title
    # a region query: the blue half of a half-red image
    scene = np.zeros((30, 60, 3), np.uint8)
    scene[:, :30], scene[:, 30:] = COLOURS["Q1"], COLOURS["Q3"]
    mask = np.zeros((30, 60), bool)
    mask[:, 30:] = True
    assert index.search((Image.fromarray(scene), mask), 1)[0].doc_id == "Q3"
    index.close()


def test_an_interrupted_wiki6m_build_resumes(wiki, tmp_path):
    root, path, images = wiki
    out = tmp_path / "kb"
    cfg = IndexConfig(image_embedder="thumbnail-16x12")
    settings = BuildConfig(chunk_size=3, progress=False)

    def crashing(docs):
        for k, d in enumerate(docs):
            if k == 7:
                raise KeyboardInterrupt("killed while streaming")
            yield d

    src = Wiki6MSource(path, images)
    with pytest.raises(KeyboardInterrupt):
        IndexBuilder(out, cfg, settings).build(
            IterableSource(crashing(src.documents()), "documents"),
            IterableSource(src.images(), "images"), src.image_root)
    report = IndexBuilder(out, cfg, settings).build(
        IterableSource(src.documents(), "documents"), IterableSource(src.images(), "images"),
        src.image_root)
    assert report.resumed["text"] == 2 and report.embedded["text"] == 12 - 6
    assert report.counts == {"documents": 12, "images": 3, "text_vectors": 12,
                             "image_vectors": 3}
    assert KnowledgeIndex.open(out).search("capital of Greenia", 1)[0].entity == "Q2"
    shutil.rmtree(out)
