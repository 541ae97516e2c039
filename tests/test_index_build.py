"""Index builds that survive real use: `kill -9` at many points then resume, a reader during
rebuilds never sees a mix, add/remove round trips, an edited corpus re-embeds only what
changed. Real MiniLM text vectors, real FAISS, real SQLite; kills are real SIGKILLs of a
forked build process at chosen points (the fork shares the loaded encoder, so each costs a
fraction of a second)."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from index_kb import BUILD, CFG, assert_same_index, doc_row, snapshot, write_kb

from pixsearch.retrieval import layout
from pixsearch.retrieval.builder import IndexBuilder, UnknownIdError
from pixsearch.retrieval.docstore import DuplicateIdError
from pixsearch.retrieval.index import KnowledgeIndex
from pixsearch.retrieval.shards import StagingConflict

FORK = multiprocessing.get_context("fork")


@pytest.fixture(scope="module")
def kb(tmp_path_factory) -> tuple[Path, Path]:
    return write_kb(tmp_path_factory.mktemp("kb"), range(40), range(10))


@pytest.fixture(scope="module")
def reference(kb, tmp_path_factory) -> dict:
    """An uninterrupted build of the KB."""
    out = tmp_path_factory.mktemp("ref") / "idx"
    IndexBuilder(out, CFG, BUILD).build(*kb)
    return snapshot(out)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _killed_child(out: Path, kb: tuple[Path, Path], point: tuple[str, str, int],
                  overwrite: bool) -> None:
    """Run the build in this (forked) process and SIGKILL it at `point`:
    ("embed", modality, n): while embedding the n-th chunk of a modality (before its shard);
    ("replace", what, n): just before the n-th atomic rename of `what` ("text", "image":
    shard vectors; "records": shard records; "version": the assembled version; "current":
    the publish); ("published", "", 1): after the publish, before the staging is cleaned."""
    from pixsearch.retrieval import builder, chunks
    from pixsearch.retrieval.shards import Staging

    kind, what, n = point
    seen = {"n": 0}

    def hit() -> None:
        seen["n"] += 1
        if seen["n"] == n:
            _die()

    if kind == "embed":
        method = "documents" if what == "text" else "images"
        original = getattr(chunks.ChunkEmbedder, method)

        def embed(self, *args, **kw):
            out = original(self, *args, **kw)
            hit()
            return out

        setattr(chunks.ChunkEmbedder, method, embed)
    elif kind == "replace":
        real_replace = os.replace

        def replace(src, dst, *args, **kw):
            p = Path(dst)
            tag = ("records" if p.suffix == ".jsonl" else p.parent.name if p.suffix == ".npz"
                   else "version" if p.parent.name == "versions" else p.name)
            if tag == what:
                hit()
            return real_replace(src, dst, *args, **kw)

        os.replace = replace
    else:
        Staging.discard = lambda self: _die()
    builder.IndexBuilder(out, CFG, BUILD).build(*kb, overwrite=overwrite)
    os._exit(0)  # the kill point was never reached


def _build_killed(out: Path, kb, point, overwrite: bool = False) -> None:
    proc = FORK.Process(target=_killed_child, args=(out, kb, point, overwrite))
    proc.start()
    proc.join(120)
    assert proc.exitcode == -signal.SIGKILL, f"the build was not killed at {point}"


KILL_POINTS = [
    ("embed", "text", 1),        # first chunk embedded, nothing written
    ("replace", "records", 3),   # third chunk: nothing of it written yet
    ("replace", "text", 4),      # fourth chunk: records written, vectors not (mid-shard)
    ("embed", "image", 2),       # all text done, second image chunk in flight
    ("replace", "version", 1),   # assembled, not yet renamed into versions/
    ("replace", "current", 1),   # version complete, not yet published
    ("published", "", 1),        # published, staging not yet cleaned up
]


@pytest.mark.parametrize("point", KILL_POINTS, ids=["-".join(map(str, p)) for p in KILL_POINTS])
def test_kill_and_resume_equals_an_uninterrupted_build(kb, reference, tmp_path, point):
    out = tmp_path / "idx"
    _build_killed(out, kb, point)
    published = layout.is_index(out)
    assert published == (point[0] == "published")  # nothing half-built is ever visible
    report = IndexBuilder(out, CFG, BUILD).build(*kb)  # the same command again
    assert_same_index(snapshot(out), reference)
    assert not (out / layout.STAGING).exists()
    assert layout.versions(out) == ["v000001"]
    if point[0] == "embed" and point[1] == "text":
        assert report.resumed["text"] == 0 and report.embedded["text"] == 40
    if point == ("replace", "text", 4):  # chunks 0-2 kept, 3.. embedded again
        assert report.resumed["text"] == 3 and report.embedded["text"] == 40 - 18
    if point[1] == "image":
        assert report.resumed["text"] == 7 and report.embedded["text"] == 0
        assert report.resumed["image"] == 1 and report.embedded["image"] == 4


def test_a_killed_rebuild_leaves_the_published_index_intact(kb, reference, tmp_path):
    out = tmp_path / "idx"
    other = write_kb(tmp_path / "kb_b", range(25), range(4), family="beta")
    IndexBuilder(out, CFG, BUILD).build(*other)
    before = snapshot(out)
    _build_killed(out, kb, ("replace", "text", 5), overwrite=True)
    assert_same_index(snapshot(out), before)  # readers still get the old index, whole
    with pytest.raises(FileExistsError, match="overwrite"):
        IndexBuilder(out, CFG, BUILD).build(*other)  # another build: refused, not mixed in
    IndexBuilder(out, CFG, BUILD).build(*kb, overwrite=True)
    assert_same_index(snapshot(out), reference)


def test_other_settings_do_not_reuse_checkpoints(kb, tmp_path):
    out = tmp_path / "idx"
    _build_killed(out, kb, ("replace", "text", 3))
    other = IndexBuilder(out, replace(CFG, text_kinds=("card",)), BUILD)
    with pytest.raises(StagingConflict, match="--restart"):
        other.build(*kb)
    report = other.build(*kb, restart=True)
    assert report.counts["text_vectors"] < 40 and report.resumed["text"] == 0


def test_an_edited_corpus_re_embeds_only_the_changed_chunks(kb, tmp_path):
    out = tmp_path / "idx"
    docs, images = write_kb(tmp_path / "kb", range(40), range(10))
    _build_killed(out, (docs, images), ("embed", "image", 1))
    lines = docs.read_text().splitlines()
    lines[13] = lines[13].replace("atlas", "gazetteer")  # chunk 2 (6 items a chunk)
    docs.write_text("\n".join(lines[:-4]) + "\n")  # and the last 4 documents gone
    report = IndexBuilder(out, CFG, BUILD).build(docs, images)
    assert report.embedded["text"] == 6 + 0 and report.resumed["text"] == 5
    fresh = tmp_path / "fresh"
    IndexBuilder(fresh, CFG, BUILD).build(docs, images)
    assert_same_index(snapshot(out), snapshot(fresh))


def _reader(directory: str, stop, results) -> None:
    """Open and search the index again and again; each open must be one whole version."""
    seen, errors, opens = set(), [], 0
    while not stop.is_set():
        try:
            index = KnowledgeIndex.open(directory)
        except Exception as e:  # noqa: BLE001 - any failure to open is a finding
            errors.append(f"open: {type(e).__name__}: {e}")
            continue
        opens += 1
        families = {d.id.split("-")[0] for d in index.docs.documents()}
        families |= {k.split("-")[0] for k in index.text_store.live_keys()}
        families |= {h.doc_id.split("-")[0] for h in index.search("castles near town", 5)}
        manifest = yaml.safe_load((index.directory / "index.yaml").read_text())
        if len(families) != 1 or manifest["counts"]["documents"] != len(index.docs.documents()):
            errors.append(f"mixed version: {families}, {manifest['counts']}")
        seen |= families
        index.close()
    results.put((sorted(seen), errors, opens))


def test_a_reader_during_rebuilds_never_sees_a_mix(tmp_path):
    out = tmp_path / "idx"
    kbs = {f: write_kb(tmp_path / f, range(n), range(3), family=f)
           for f, n in (("alpha", 30), ("beta", 18))}
    IndexBuilder(out, CFG, BUILD).build(*kbs["alpha"])
    stop, results = FORK.Event(), FORK.Queue()
    reader = FORK.Process(target=_reader, args=(str(out), stop, results))
    reader.start()
    try:
        for family in ("beta", "alpha", "beta", "alpha", "beta"):
            IndexBuilder(out, CFG, BUILD).build(*kbs[family], overwrite=True)
            time.sleep(0.3)
    finally:
        stop.set()
    seen, errors, opens = results.get(timeout=60)
    reader.join(30)
    assert errors == []
    assert seen == ["alpha", "beta"] and opens > 5
    assert len(layout.versions(out)) == 2  # older versions collected, the last two kept


def test_add_and_remove_round_trip(tmp_path):
    base_kb = write_kb(tmp_path / "base", range(30), range(6))
    extra_kb = write_kb(tmp_path / "extra", range(30, 40), range(30, 34))
    docs, images = write_kb(tmp_path / "all", range(40), [*range(6), *range(30, 34)])
    out, base = tmp_path / "idx", tmp_path / "base_idx"
    IndexBuilder(base, CFG, BUILD).build(*base_kb)
    IndexBuilder(out, CFG, BUILD).build(*base_kb)

    report = IndexBuilder(out, build=BUILD).add(*extra_kb)
    assert report.embedded == {"text": 10, "image": 4}  # only the new items
    full = tmp_path / "full"
    IndexBuilder(full, CFG, BUILD).build(docs, images)
    assert_same_index(snapshot(out), snapshot(full), exact=False)  # other batches: ~1e-7
    index = KnowledgeIndex.open(out)
    row = doc_row(33)
    query = f"{row['title']}: {row['text']}"
    assert index.search(query, 1)[0].doc_id == "alpha-33"
    index.close()
    with pytest.raises(DuplicateIdError, match="alpha-30"):
        IndexBuilder(out, build=BUILD).add(extra_kb[0])  # refused before any embedding

    # a few removals: tombstones, filtered at search time
    report = IndexBuilder(out, build=BUILD).remove(doc_ids=["alpha-33", "alpha-7"])
    assert report.counts["documents"] == 38 and report.counts["images"] == 9  # img 33 went
    index = KnowledgeIndex.open(out)
    assert index.text_store.deleted  # not yet compacted
    hits = index.search(query, 40)
    assert {"alpha-33", "alpha-7"}.isdisjoint(h.doc_id for h in hits) and len(hits) == 38
    index.close()
    with pytest.raises(UnknownIdError, match="alpha-33"):
        IndexBuilder(out, build=BUILD).remove(doc_ids=["alpha-33"])

    # removing the rest of the added ones passes compact_fraction: rebuilt from the shards
    extra = [f"alpha-{i}" for i in range(30, 40) if i != 33]
    IndexBuilder(out, build=BUILD).remove(doc_ids=extra)
    IndexBuilder(out, build=BUILD).add(write_kb(tmp_path / "seven", range(7, 8), [])[0])
    after, original = snapshot(out), snapshot(base)
    assert not KnowledgeIndex.open(out).text_store.deleted
    order = lambda s: sorted(s["documents"], key=lambda d: d.id)  # noqa: E731
    assert order(after) == order(original) and after["counts"] == original["counts"]
    for name in ("text", "image"):
        mine = dict(zip(after[f"{name}_keys"], after[f"{name}_vectors"]))
        theirs = dict(zip(original[f"{name}_keys"], original[f"{name}_vectors"]))
        assert mine.keys() == theirs.keys()
        for key, vec in theirs.items():
            assert abs(mine[key] - vec).max() < 1e-5, key


def test_versions_and_links_of_a_published_folder(kb, tmp_path):
    out = tmp_path / "idx"
    IndexBuilder(out, CFG, BUILD).build(*kb)
    assert os.readlink(out / "current") == os.path.join("versions", "v000001")
    assert (out / "index.yaml").resolve() == (out / "versions/v000001/index.yaml").resolve()
    # an unversioned index folder (the layout before versions) is converted by a rebuild
    legacy = tmp_path / "legacy"
    shutil.copytree(out / "versions" / "v000001", legacy)
    assert KnowledgeIndex.open(legacy).directory == legacy
    IndexBuilder(legacy, CFG, BUILD).build(*kb, overwrite=True)
    assert (legacy / "index.yaml").is_symlink() and layout.current_version(legacy) == "v000001"
    assert KnowledgeIndex.open(legacy).directory == (legacy / "versions/v000001").resolve()


def test_one_writer_at_a_time(kb, tmp_path):
    out = tmp_path / "idx"
    with layout.writer_lock(out):
        with pytest.raises(layout.IndexBusyError, match="another process"):
            IndexBuilder(out, CFG, BUILD).build(*kb)
    IndexBuilder(out, CFG, BUILD).build(*kb)  # the lock went with its holder


def test_cli_build_add_remove(tmp_path, capsys):
    from pixsearch.cli import main

    docs, images = write_kb(tmp_path / "kb", range(12), range(3))
    extra = write_kb(tmp_path / "extra", range(12, 15), [])[0]
    out = str(tmp_path / "idx")
    flags = ["--chunk-size", "5", "--quiet"]
    assert main(["index", "build", "--docs", str(docs), "--images", str(images), "--out", out,
                 *flags, "image_embedder=thumbnail-8x6"]) == 0
    assert "v000001: 12 documents, 3 images; text index flat (12 vectors)" in (
        capsys.readouterr().out)
    assert main(["index", "add", "--index", out, "--docs", str(extra), *flags]) == 0
    assert "v000002: 15 documents" in capsys.readouterr().out
    assert main(["index", "remove", "--index", out, "--ids", "alpha-0", "--quiet"]) == 0
    assert "v000003: 14 documents, 2 images" in capsys.readouterr().out
    assert main(["index", "remove", "--index", out, "--ids", "nope", "--quiet"]) == 2
    assert "holds no document or image 'nope'" in capsys.readouterr().err
