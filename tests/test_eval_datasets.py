"""Evaluation-set loading: project JSONL records and the CRAG-MM row adapter."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from pixsearch.eval.crag import score_crag
from pixsearch.eval.datasets import (
    as_record_dict,
    crag_mm_records,
    load_crag_mm_jsonl,
    load_records,
    record_turns,
)


def _write(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")


def test_load_records_keeps_extra_fields_and_resolves_images(tmp_path):
    (tmp_path / "imgs").mkdir()
    rows = [
        {
            "id": "a",
            "image": "imgs/a.png",
            "question": "q?",
            "answer": "Peru",
            "answers": ["Peru", "Perú"],
            "ego": True,
            "question_type": "identification",
            "my_extra": 7,
        },
        {"id": "b", "image": "imgs/b.png", "question": "q2?", "answer": "3", "needs_search": False},
    ]
    _write(tmp_path / "set.jsonl", rows)
    records = load_records(tmp_path / "set.jsonl")
    assert records[0]["my_extra"] == 7
    assert records[0]["image_path"] == str((tmp_path / "imgs/a.png").resolve())
    turns = record_turns(records[0])
    assert turns[0]["answers"] == ["Peru", "Perú"] and turns[0]["meta"]["ego"] is True
    as_objects = load_records(tmp_path / "set.jsonl", as_dataclass=True)
    assert type(as_objects[1]).__name__ == "Record" and as_objects[1].needs_search is False
    assert as_record_dict(as_objects[0])["answers"] == ["Peru", "Perú"]
    report = score_crag(as_objects, {"a": "perú", "b": "three"})
    assert report.groups["ego"].correct == 1 and report.groups["non_ego"].hallucinated == 1


def test_load_records_errors_name_the_line(tmp_path):
    _write(
        tmp_path / "bad.jsonl",
        [{"id": "a", "question": "q", "answer": "x"}, {"id": "b", "question": "q"}],
    )
    with pytest.raises(ValueError, match=r"bad.jsonl:2: .*needs 'answer'"):
        load_records(tmp_path / "bad.jsonl")
    with pytest.raises(FileNotFoundError):
        load_records(tmp_path / "missing.jsonl")


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 3), "red").save(buf, format="PNG")
    return buf.getvalue()


MULTI_DICT_OF_LISTS = {
    "session_id": "s1",
    "image": {"bytes": _png_bytes(), "path": None},
    "image_url": None,
    "turns": {
        "interaction_id": ["i0", "i1", "i2"],
        "query": ["what is this?", "where is it from?", "how tall is it?"],
        "domain": [1, 1, 1],
        "query_category": [0, 2, 0],
        "dynamism": [0, 0, 0],
        "image_quality": [0, 0, 0],
    },
    "answers": {
        "interaction_id": ["i1", "i0", "i2"],
        "ans_full": ["from Peru", "a llama", "1.7 m"],
    },
}
SINGLE_LIST_OF_DICTS = {
    "session_id": "s2",
    "image": "pics/x.jpg",
    "image_url": "https://example.org/x.jpg",
    "turns": [
        {
            "interaction_id": "j0",
            "query": "what brand?",
            "domain": "vehicles",
            "query_category": "simple",
            "dynamism": "static",
            "image_quality": "normal",
        }
    ],
    "answers": [{"interaction_id": "j0", "ans_full": "BMW"}],
}
NAMES = {
    "domain": ["food", "animal"],
    "query_category": ["simple", "comparison", "multi-hop"],
    "dynamism": ["static", "slow"],
    "image_quality": ["normal", "low light"],
}


def test_crag_mm_adapter_both_row_shapes(tmp_path):
    multi, single = crag_mm_records(
        [MULTI_DICT_OF_LISTS, SINGLE_LIST_OF_DICTS],
        split="validation",
        label_names=NAMES,
        image_dir=tmp_path,
    )
    assert multi["id"] == "s1" and multi["ego"] is True and multi["split"] == "validation"
    assert isinstance(multi["image"], Image.Image) and multi["image"].size == (4, 3)
    conv = multi["conversation"]
    assert [t["answer"] for t in conv] == ["a llama", "from Peru", "1.7 m"]  # matched by id
    assert [t["query_category"] for t in conv] == ["simple", "multi-hop", "simple"]
    assert conv[0]["domain"] == "animal" and multi["question"] == "what is this?"
    assert single["ego"] is False and single["image"] == str(tmp_path / "pics/x.jpg")
    assert single["conversation"][0]["domain"] == "vehicles"
    # Multi-turn scoring with the early stop: wrong, wrong → the third turn is missing.
    report = score_crag([multi, single], {"s1": ["a cat", "Chile", "1.7 m"], "s2": "bmw"})
    turns = {t.turn_id: t for t in report.turns}
    assert turns["i2"].missing and turns["i2"].early_stopped and not turns["i2"].correct
    assert report.groups["ego"].conversation_score == pytest.approx(-2 / 3)
    assert report.groups["non_ego"].truthfulness == 1.0
    by_domain = score_crag(
        [multi, single], {"s1": ["a llama", "x", "y"], "s2": "bmw"}, group_by=("domain",)
    ).groups
    assert set(by_domain) == {"domain=animal", "domain=vehicles"}


def test_crag_mm_jsonl_export_and_missing_answer(tmp_path):
    _write(tmp_path / "crag.jsonl", [SINGLE_LIST_OF_DICTS])
    (record,) = load_crag_mm_jsonl(tmp_path / "crag.jsonl", split="public_test")
    assert record["image"] == str(tmp_path / "pics/x.jpg") and record["answer"] == "BMW"
    broken = dict(SINGLE_LIST_OF_DICTS, answers=[{"interaction_id": "other", "ans_full": "x"}])
    with pytest.raises(ValueError, match="no answer for turn 'j0'"):
        crag_mm_records([broken])
