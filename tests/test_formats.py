"""The data formats' one strict reader each: records (training and evaluation alike) and the
knowledge base (documents, image manifests). Errors name the file and the line."""

from __future__ import annotations

import json

import pytest

from pixsearch.data.jsonl import FormatError
from pixsearch.data.knowledge import read_documents, read_images, read_kb
from pixsearch.data.records import Record, read_records, write_records
from pixsearch.eval.datasets import load_records, record_turns
from pixsearch.retrieval.build import build_index


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


GOOD = {"id": "a", "image": "a.png", "question": "Which country?", "answer": "Peru"}


@pytest.mark.parametrize("row, message", [
    ({**GOOD, "answer": 3}, r"record 'a': 'answer' must be str, not 3"),
    ({**GOOD, "ego": "yes"}, r"'ego' must be bool"),
    ({**GOOD, "answers": ["Peru", 7]}, r"'answers' must be list\[str\]"),
    ({**GOOD, "target": 1.5}, r"'target' must be int \| None"),
    ({**GOOD, "numeric_tolerance": True}, r"'numeric_tolerance' must be float"),
    ({**GOOD, "search_types": ["photo"]}, r"search_types must be among"),
    ({**GOOD, "entities": [{"code": "PE"}], "masks": [{}, {}]}, r"2 masks for 1 entities"),
    ({**GOOD, "entities": [{"code": "PE"}], "target": 3}, r"target 3 is not an entity index"),
    ({**GOOD, "id": None}, r"a record needs 'id'"),
    ({"id": "a", "image": "a.png"}, r"record 'a' needs 'question', 'answer'"),
    ({**GOOD, "conversation": [{"question": "q"}]}, r"turn 0 needs a string 'answer'"),
    ("[1, 2]", r"each line must be a JSON object, not list"),
    ('{"id": "a",', r"not valid JSON"),
])
def test_record_reader_is_strict_and_names_file_and_line(tmp_path, row, message):
    path = _write(tmp_path / "set.jsonl", [GOOD, "", row])
    for read in (read_records, load_records):  # evaluation reads through the same reader
        with pytest.raises(FormatError, match=rf"set.jsonl:3: .*{message}"):
            read(path)


def test_record_reader_accepts_what_the_format_documents(tmp_path):
    (tmp_path / "imgs").mkdir()
    rows = [
        # extra fields (a user's labels) are kept and written back flat; null = default
        {**GOOD, "image": "imgs/a.png", "my_label": {"x": 1}, "split": None, "ego": None},
        # a text-only question: no image
        {"id": "t", "question": "Capital of Peru?", "answer": "Lima"},
        # a CRAG-MM session as `crag_mm_records` converts it: conversation + CRAG labels
        {"id": "s", "image": "imgs/s.png", "image_url": None, "source": "crag-mm",
         "question_type": "simple", "ego": True, "split": None,
         "conversation": [{"id": "t1", "question": "What is it?", "answer": "a flag",
                           "answers": ["a flag"], "domain": "other", "dynamism": "static"},
                          {"id": "t2", "question": "Of where?", "answer": "Peru"}]},
    ]
    path = _write(tmp_path / "set.jsonl", rows)
    a, t, s = read_records(path)
    assert a.extra == {"my_label": {"x": 1}} and a.split == "test" and a.ego is False
    assert t.image == "" and t.answers == ["Lima"]
    with pytest.raises(ValueError, match="no image"):
        t.load_image(tmp_path)
    assert (s.question, s.answer) == ("What is it?", "a flag") and len(s.conversation) == 2
    assert s.extra == {"image_url": None, "source": "crag-mm"}
    # round trip: written back, the extra fields are top-level fields again
    write_records(tmp_path / "back.jsonl", [a, t, s])
    assert read_records(tmp_path / "back.jsonl") == [a, t, s]
    back = json.loads((tmp_path / "back.jsonl").read_text().splitlines()[0])
    assert back["my_label"] == {"x": 1} and "extra" not in back and "conversation" not in back
    # the evaluation view: dicts with the image resolved, turns with their labels
    rows = load_records(path)
    assert rows[0]["image_path"] == str((tmp_path / "imgs/a.png").resolve())
    assert "image_path" not in rows[1]
    turns = record_turns(rows[2])
    assert [x["id"] for x in turns] == ["t1", "t2"] and turns[1]["meta"]["ego"] is True


def test_world_records_are_written_exactly_as_before(tmp_path):
    # a record without conversation or extra fields writes the schema's fields only, in order
    r = Record(id="a", image="x.jpg", question="q?", answer="Lima")
    write_records(tmp_path / "r.jsonl", [r])
    assert list(json.loads((tmp_path / "r.jsonl").read_text())) == [
        "id", "image", "question", "answer", "answers", "question_type", "needs_search", "ego",
        "split", "entities", "masks", "target", "trajectory", "search_types", "searches",
        "region_spans", "numeric_tolerance"]


def _kb(tmp_path, docs, images):
    (tmp_path / "images").mkdir(exist_ok=True)
    _write(tmp_path / "docs.jsonl", docs)
    _write(tmp_path / "images" / "images.jsonl", images)
    return tmp_path


DOC = {"id": "PE:card", "title": "Peru", "text": "Country in South America.", "entity": "PE",
       "kind": "card"}
IMG = {"id": "PE_flag", "path": "PE_flag.png", "doc_id": "PE:card"}


def test_kb_reader_reads_documents_and_images(tmp_path):
    kb = _kb(tmp_path, [DOC, {"id": "PE:capital", "title": "Peru — capital",
                              "text": "The capital of Peru is Lima."}], [IMG])
    docs, images = read_kb(kb)
    assert [d.id for d in docs] == ["PE:card", "PE:capital"] and docs[1].kind == "passage"
    assert images[0].doc_id == "PE:card"


@pytest.mark.parametrize("doc, message", [
    ({**DOC, "url": "x"}, r"docs.jsonl:2: Document 'PE:card': unknown field\(s\) \['url'\]"),
    ({**DOC, "title": None}, r"docs.jsonl:2: Document 'PE:card' needs 'title'"),
    ({**DOC, "entity": 5}, r"docs.jsonl:2: .*'entity' must be str \| None"),
    ("oops", r"docs.jsonl:2: not valid JSON"),
])
def test_kb_reader_is_strict(tmp_path, doc, message):
    other = {**DOC, "id": "PE:other"}
    kb = _kb(tmp_path, [other, doc], [IMG])
    with pytest.raises(FormatError, match=message):
        read_documents(kb / "docs.jsonl")
    # `pixsearch index build` reads through the same reader
    with pytest.raises(FormatError, match=message):
        build_index(kb / "docs.jsonl", kb / "images", tmp_path / "index")


def test_kb_reader_rejects_duplicate_ids_and_bad_manifests(tmp_path):
    kb = _kb(tmp_path, [DOC, DOC], [IMG, {**IMG, "doc": "x"}])
    with pytest.raises(FormatError, match=r"duplicate document id 'PE:card'"):
        read_documents(kb / "docs.jsonl")
    with pytest.raises(FormatError, match=r"images.jsonl:2: .*unknown field\(s\) \['doc'\]"):
        read_images(kb / "images")
    with pytest.raises(FileNotFoundError, match="images.jsonl"):
        read_images(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="documents file"):
        read_documents(tmp_path / "nowhere.jsonl")
