"""A corrupt or incomplete index folder is refused when it is opened, saying what is wrong —
never silently recreated empty, never answering with wrong hits. Each case copies a real
index (MiniLM text index + thumbnail image index, `conftest.colour_index`) and breaks it the
way a failed copy, a hand edit or a half-finished build would."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from pixsearch.retrieval.index import CorruptIndexError, KnowledgeIndex


@pytest.fixture
def index_dir(colour_index, tmp_path):
    d = tmp_path / "index"
    shutil.copytree(colour_index.directory, d)
    return d


def _keys(d, name="text"):
    return json.loads((d / f"{name}.keys.json").read_text())


def _write_keys(d, meta, name="text"):
    (d / f"{name}.keys.json").write_text(json.dumps(meta))


def test_an_intact_copy_opens_and_searches(index_dir):
    index = KnowledgeIndex.open(index_dir)
    assert not index.text_embedder.loaded  # opening loads no encoder
    assert index.search("Which country has a red flag?", 1)[0].doc_id == "red"
    assert index.text_embedder.loaded
    index.close()


def test_missing_docs_sqlite_is_refused_not_recreated(index_dir):
    (index_dir / "docs.sqlite").unlink()
    with pytest.raises(CorruptIndexError, match="docs.sqlite is missing"):
        KnowledgeIndex.open(index_dir)
    assert not (index_dir / "docs.sqlite").exists()


def test_docs_sqlite_that_is_no_database(index_dir):
    (index_dir / "docs.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CorruptIndexError, match="not a document store"):
        KnowledgeIndex.open(index_dir)


def test_reordered_keys_file_is_detected(index_dir):
    meta = _keys(index_dir)
    assert len(meta["keys"]) == 3
    meta["keys"] = meta["keys"][1:] + meta["keys"][:1]  # same keys, rotated
    _write_keys(index_dir, meta)
    with pytest.raises(CorruptIndexError, match="reordered or edited"):
        KnowledgeIndex.open(index_dir)


def test_reordered_image_keys_are_detected(index_dir):
    meta = _keys(index_dir, "image")
    meta["keys"].reverse()
    _write_keys(index_dir, meta, "image")
    with pytest.raises(CorruptIndexError, match="reordered or edited"):
        KnowledgeIndex.open(index_dir)


def test_key_and_vector_counts_that_differ(index_dir):
    meta = _keys(index_dir)
    meta["keys"] = meta["keys"][:2]
    _write_keys(index_dir, meta)
    with pytest.raises(CorruptIndexError, match="holds 3 vectors but there are 2 keys"):
        KnowledgeIndex.open(index_dir)


def test_keys_naming_no_document(index_dir):
    meta = _keys(index_dir)
    meta["keys"][0] = "ghost"
    del meta["checksum"]  # as an index written before checksums would be
    _write_keys(index_dir, meta)
    with pytest.raises(CorruptIndexError, match="name nothing in docs.sqlite.*ghost"):
        KnowledgeIndex.open(index_dir)


def test_a_vector_file_from_another_build(index_dir, colour_index, tmp_path):
    from pixsearch.retrieval.index import IndexConfig
    from pixsearch.types import Document

    other = tmp_path / "other"
    docs = [Document(id=n, title=n, text=f"{n} is a word about {n}.", kind="card")
            for n in ("red", "green", "blue")]
    KnowledgeIndex.build(docs, [], tmp_path, other, IndexConfig(image_embedder="thumbnail-8x6"))
    shutil.copy(other / "text.faiss", index_dir / "text.faiss")  # same count, other vectors
    with pytest.raises(CorruptIndexError, match="reordered or edited, or one file comes from"):
        KnowledgeIndex.open(index_dir)


def test_an_old_index_without_checksums_still_opens(index_dir):
    for name in ("text", "image"):
        meta = _keys(index_dir, name)
        del meta["checksum"]
        _write_keys(index_dir, meta, name)
    assert KnowledgeIndex.open(index_dir).search("green flag", 1)[0].doc_id == "green"


@pytest.mark.parametrize("name, match", [
    ("text.faiss", "no vector store file"),
    ("image.keys.json", "no vector store file"),
])
def test_missing_files(index_dir, name, match):
    (index_dir / name).unlink()
    with pytest.raises(CorruptIndexError, match=match):
        KnowledgeIndex.open(index_dir)


def test_truncated_vector_file(index_dir):
    data = (index_dir / "text.faiss").read_bytes()
    (index_dir / "text.faiss").write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptIndexError, match="not a FAISS index|do not match"):
        KnowledgeIndex.open(index_dir)


def test_unreadable_keys_file_and_manifest(index_dir):
    (index_dir / "text.keys.json").write_text("{not json")
    with pytest.raises(CorruptIndexError, match="not a keys file"):
        KnowledgeIndex.open(index_dir)
    (index_dir / "index.yaml").write_text("config: [unclosed")
    with pytest.raises(CorruptIndexError, match="index.yaml is unreadable"):
        KnowledgeIndex.open(index_dir)


def test_manifest_counts_that_differ(index_dir):
    manifest = yaml.safe_load((index_dir / "index.yaml").read_text())
    manifest["counts"]["documents"] += 1
    (index_dir / "index.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(CorruptIndexError, match="documents: 3 found, 4 recorded"):
        KnowledgeIndex.open(index_dir)


def test_missing_folder_and_missing_manifest(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a knowledge index"):
        KnowledgeIndex.open(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="not a knowledge index"):
        KnowledgeIndex.open(tmp_path)


def test_learned_embedder_files_are_checked_at_open(tmp_path):
    """An index with the learned image embedder misses its weights: refused at open."""
    from pixsearch.retrieval.embedders import make_image_embedder

    with pytest.raises(FileNotFoundError, match="image_embedder"):
        make_image_embedder("learned", tmp_path, lazy=True, dim=32)


def test_learned_file_names_are_the_embedders():
    from pixsearch.retrieval import embedders
    from pixsearch.retrieval.learned import CONFIG_FILE, WEIGHTS_FILE

    src = Path(embedders.__file__).read_text()
    assert f'"{CONFIG_FILE}"' in src and f'"{WEIGHTS_FILE}"' in src
