"""Every published-format reader on its hand-made fixture in the official layout: ids,
questions, answers, images, masks, label maps, and the errors a wrong layout gets."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from benchmark_fixtures import write_all, write_infoseek, write_oven_images
from PIL import Image

from pixsearch.data.formats import FORMATS, read_benchmark
from pixsearch.data.formats.images import ImageFolder
from pixsearch.data.formats.refcoco import read_refs
from pixsearch.data.formats.sample import IGNORE
from pixsearch.data.jsonl import FormatError
from pixsearch.masks import rle_to_mask


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return write_all(tmp_path_factory.mktemp("bench"))


def test_infoseek_questions_answer_eval_types_entities_and_images(fx):
    s = read_benchmark("infoseek", fx["infoseek"], images=fx["oven_images"])
    assert [x.id for x in s] == [f"infoseek_val_0000000{k}" for k in range(4)]
    assert all(x.task == "vqa" and x.source == "infoseek" for x in s)
    assert s[0].answers == ["Rubyville", "Ruby Ville"]  # the answer, then answer_eval's
    assert s[0].answer_eval == ["Rubyville", "Ruby Ville"] and s[1].answers == ["1990"]
    assert [x.question_type for x in s] == ["STRING", "NUMERICAL", "TIME", "NUMERICAL"]
    # the numeric range of a list-of-dict and of a bare dict `answer_eval`
    assert s[1].answer_eval == [1989.0, 1991.0] and s[3].answer_eval == [270.0, 330.0]
    assert [x.split for x in s] == ["val_unseen_question", "val_unseen_entity",
                                    "val_unseen_entity", "val_unseen_question"]
    assert [x.entity_id for x in s] == ["Q1", "Q2", "Q3", "Q4"]  # from _withkb.jsonl
    # images resolved in the OVEN snapshot's shards (first two digits of the number)
    assert s[0].image.endswith("oven_images/00/oven_00000001.jpg")
    assert s[3].image.endswith("oven_images/04/oven_04925844.jpg")
    rec = s[0].to_record()
    assert rec["image_path"] == s[0].image and rec["entities"] == [{"code": "Q1", "in_kb": None}]
    assert rec["target"] == 0 and rec["answer"] == "Rubyville"


def test_infoseek_without_companion_files_infers_numerical_from_the_range(tmp_path):
    images = write_oven_images(tmp_path)
    path = write_infoseek(tmp_path)
    for suffix in ("qtype", "withkb"):
        (path.parent / f"infoseek_val_{suffix}.jsonl").unlink()
    s = read_benchmark("infoseek", path, images=images)
    assert [x.question_type for x in s] == ["STRING", "NUMERICAL", "STRING", "NUMERICAL"]
    assert all(x.entity_id is None for x in s)


def test_oven_entity_names_are_the_answers(fx):
    s = read_benchmark("oven", fx["oven"], images=fx["oven_images"])
    assert [(x.id, x.answers, x.entity_id, x.split) for x in s] == [
        ("oven_entity_val_00000000", ["Redland"], "Q1", "entity_val_seen"),
        ("oven_entity_val_00000001", ["Greenia"], "Q2", "entity_val_seen"),
        ("oven_entity_val_00000002", ["Blueland"], "Q3", "entity_val_unseen")]
    assert s[2].image.endswith("00/oven_00000003.jpg")


def test_textvqa_keeps_the_ten_answers_and_ranks_the_gold_by_votes(fx):
    s = read_benchmark("textvqa", fx["textvqa"], images=fx["textvqa_images"])
    assert [x.id for x in s] == ["34602", "34603"]
    assert s[0].answers[:2] == ["dakota", "dakota digital"]  # 5 votes, then 3
    assert len(s[0].vqa_answers) == 10 and s[0].vqa_answers[0] == "nous les gosses"
    assert s[1].answers == ["2", "two"]
    assert s[0].image.endswith("train_images/0054c91397f2fe05.jpg") and s[0].split == "val"


def test_text_qa_sets_have_no_image_and_keep_aliases(fx):
    hot = read_benchmark("hotpotqa", fx["hotpotqa"])
    assert [(x.id, x.answers, x.question_type, x.meta["level"]) for x in hot] == [
        ("5a8b57f25542995d1e6f1371", ["Redland"], "bridge", "hard"),
        ("5a8c7595554299585d9e36b6", ["yes"], "comparison", "medium")]
    nq = read_benchmark("nq-open", fx["nq-open"])
    assert [(x.id, x.answers) for x in nq] == [("nq-1", ["Rubyville", "Ruby Ville"]),
                                               ("nq-2", ["Emerald Smith"])]
    pop = read_benchmark("popqa", fx["popqa"])
    assert [(x.id, x.answers, x.question_type) for x in pop] == [
        ("4222362", ["Rubyville", "Ruby Ville"], "capital"),
        ("1001", ["farmer", "agriculturist"], "occupation")]
    mus = read_benchmark("musique", fx["musique"])  # the unanswerable question is skipped
    assert [(x.id, x.answers, x.question_type) for x in mus] == [
        ("2hop__1_2", ["Rubyville", "Ruby Ville"], "2hop"),
        ("3hop1__3_4_5", ["Emerald Smith"], "3hop1")]
    for x in hot + nq + pop + mus:
        assert x.task == "text_qa" and x.image is None and "image_path" not in x.to_record()


def test_refcoco_one_sample_per_sentence_with_the_polygon_mask(fx):
    s = read_benchmark("refcoco", fx["refcoco"], "val", images=fx["coco_images"])
    assert [(x.id, x.question) for x in s] == [("0:0", "red square left"), ("0:1", "the red one")]
    mask = rle_to_mask(s[0].mask)
    assert mask.shape == (30, 40)
    ys, xs = np.nonzero(mask)  # the polygon (2,5)-(12,15), as pycocotools rasterises it
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (2, 11, 5, 14)
    assert s[0].image.endswith("train2014/COCO_train2014_000000000009.jpg")
    assert s[0].meta == {"ref_id": 0, "ann_id": 101, "category": "kite"}
    test_a = read_benchmark("refcoco+", fx["refcoco+"], "testA", images=fx["coco_images"])
    assert [x.id for x in test_a] == ["1:2"] and rle_to_mask(test_a[0].mask).sum() == 225
    # RefCOCOg is split by umd: val / test
    assert [x.id for x in read_benchmark("refcocog", fx["refcocog"], "test",
                                         images=fx["coco_images"])] == ["1:2"]
    assert [x.id for x in read_benchmark("refcoco", fx["refcoco"], "testB",
                                         images=fx["coco_images"])] == ["2:3"]
    with pytest.raises(ValueError, match="splits: testA, testB, val"):
        read_benchmark("refcoco", fx["refcoco"], "test", images=fx["coco_images"])


def test_refs_pickles_load_plain_data_only(tmp_path):
    bad = tmp_path / "refs(unc).p"
    bad.write_bytes(pickle.dumps([{"x": json.JSONDecoder}]))  # a class reference
    with pytest.raises(FormatError, match="plain lists and dicts"):
        read_refs(bad)


def test_ade20k_label_map_and_class_list(fx):
    (s,) = read_benchmark("ade20k", fx["ade20k"], "val")
    assert s.id == "ADE_val_00000001" and s.split == "validation" and s.task == "semseg"
    assert s.labels.names == ["wall", "building, edifice", "sky"]
    assert s.labels.prompts == ["wall", "building", "sky"]
    gold = np.asarray(s.labels.lut, np.uint8)[np.asarray(Image.open(s.label_map))]
    assert (gold[:12] == 2).all() and (gold[12:, :16] == 0).all()  # sky, wall
    assert (gold[12:, 16:] == IGNORE).all()  # "other" is not scored


def test_coco_stuff_drops_the_unused_ids_and_maps_pixels(fx):
    (s,) = read_benchmark("coco-stuff", fx["coco-stuff"], "val")
    assert s.split == "val2017"
    assert s.labels.names == ["person", "building-other", "sky-other"]  # no "street sign"
    assert s.labels.prompts == ["person", "building", "sky"]
    lut = s.labels.lut
    assert lut[0] == 0 and lut[95] == 1 and lut[156] == 2 and lut[255] == IGNORE
    assert lut[11] == IGNORE  # id 12 (street sign) has no masks in COCO-Stuff


def test_image_folder_reads_an_id_map(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "elsewhere.png")
    (tmp_path / "id2image.jsonl").write_text(json.dumps(
        {"image_id": "oven_1", "image_path": "elsewhere.png"}) + "\n")
    assert ImageFolder(tmp_path).path("oven_1").endswith("elsewhere.png")
    with pytest.raises(FileNotFoundError, match="oven_2"):
        ImageFolder(tmp_path).path("oven_2")


def test_readers_name_what_is_wrong(fx, tmp_path):
    with pytest.raises(ValueError, match="pass the image folder"):
        read_benchmark("infoseek", fx["infoseek"])
    with pytest.raises(ValueError, match="unknown benchmark format"):
        read_benchmark("vqa-v2", fx["infoseek"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"data_id": "x", "image_id": "oven_00000001"}) + "\n")
    with pytest.raises(FormatError, match=r"bad.jsonl:1: missing 'question', 'answer'"):
        read_benchmark("infoseek", bad, images=fx["oven_images"])
    with pytest.raises(FileNotFoundError, match="annotation splits: validation"):
        read_benchmark("ade20k", fx["ade20k"], "training")
    assert set(FORMATS) == {"infoseek", "oven", "textvqa", "hotpotqa", "nq-open", "popqa",
                            "musique", "refcoco", "refcoco+", "refcocog", "ade20k", "coco-stuff"}
