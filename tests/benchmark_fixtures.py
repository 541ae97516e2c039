"""Hand-made fixtures of every published benchmark format, written in the official layout
(field names, file names, folder layout as released), with a few tiny images generated here.

`write_all(root)` writes every one under `root` and returns their paths by format name; the
same layout is what docs/benchmarks.md describes. Values are chosen so that the tests can
check exact ids, answers, masks and label maps.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"Q1": (220, 30, 30), "Q2": (30, 160, 60), "Q3": (30, 60, 200), "Q4": (230, 200, 20)}


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _image(path: Path, rgb: tuple[int, int, int], size: tuple[int, int] = (32, 24)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, rgb).save(path)
    return path


def write_oven_images(root: Path) -> Path:
    """The OVEN image snapshot layout: `<shard>/oven_<8 digits>.jpg`, shard = first 2 digits."""
    folder = root / "oven_images"
    for k, rgb in enumerate(COLOURS.values(), 1):
        _image(folder / "00" / f"oven_0000000{k}.jpg", rgb)
    _image(folder / "04" / "oven_04925844.jpg", (128, 128, 128))
    return folder


def write_infoseek(root: Path) -> Path:
    d = root / "infoseek"
    rows = [
        {"data_id": "infoseek_val_00000000", "image_id": "oven_00000001",
         "question": "What is the capital of this country?", "answer": ["Rubyville"],
         "answer_eval": ["Rubyville", "Ruby Ville"], "data_split": "val_unseen_question"},
        {"data_id": "infoseek_val_00000001", "image_id": "oven_00000002",
         "question": "In which year was this flag adopted?", "answer": ["1990"],
         "answer_eval": [{"wikidata": 1990.0, "range": [1989.0, 1991.0]}],
         "data_split": "val_unseen_entity"},
        {"data_id": "infoseek_val_00000002", "image_id": "oven_00000003",
         "question": "When was this building opened?", "answer": ["1815"],
         "answer_eval": ["1815", "June 1815"], "data_split": "val_unseen_entity"},
        {"data_id": "infoseek_val_00000003", "image_id": "oven_04925844",
         "question": "How tall is this tower in metres?", "answer": ["300"],
         "answer_eval": {"wikidata": 300.0, "range": [270.0, 330.0]},
         "data_split": "val_unseen_question"},
    ]
    path = _jsonl(d / "infoseek_val.jsonl", rows)
    _jsonl(d / "infoseek_val_qtype.jsonl", [
        {"data_id": "infoseek_val_00000000", "question_type": "STRING"},
        {"data_id": "infoseek_val_00000001", "question_type": "NUMERICAL"},
        {"data_id": "infoseek_val_00000002", "question_type": "TIME"},
        {"data_id": "infoseek_val_00000003", "question_type": "NUMERICAL"}])
    _jsonl(d / "infoseek_val_withkb.jsonl", [
        {"data_id": r["data_id"], "entity_id": q} for r, q in zip(rows, ["Q1", "Q2", "Q3", "Q4"])])
    return path


def write_oven(root: Path) -> Path:
    rows = [
        {"data_id": "oven_entity_val_00000000", "image_id": "oven_00000001",
         "question": "what is this country?", "entity_id": "Q1", "entity_text": "Redland",
         "data_split": "entity_val_seen"},
        {"data_id": "oven_entity_val_00000001", "image_id": "oven_00000002",
         "question": "what is this country?", "entity_id": "Q2", "entity_text": "Greenia",
         "data_split": "entity_val_seen"},
        {"data_id": "oven_entity_val_00000002", "image_id": "oven_00000003",
         "question": "what is this country?", "entity_id": "Q3", "entity_text": "Blueland",
         "data_split": "entity_val_unseen"},
    ]
    return _jsonl(root / "oven" / "oven_entity_val.jsonl", rows)


def write_textvqa(root: Path) -> tuple[Path, Path]:
    images = root / "textvqa" / "train_images"
    _image(images / "0054c91397f2fe05.jpg", (200, 200, 200))
    _image(images / "00685bc495504d61.jpg", (20, 20, 20))
    data = [
        {"question_id": 34602, "question": "what is the brand of this camera?",
         "image_id": "0054c91397f2fe05", "image_classes": ["Camera"], "image_width": 32,
         "image_height": 24, "answers": ["nous les gosses", "dakota", "clos culombu",
                                         "dakota digital", "dakota", "dakota", "dakota digital",
                                         "dakota digital", "dakota", "dakota"],
         "question_tokens": ["what", "is", "the", "brand"], "set_name": "val"},
        {"question_id": 34603, "question": "what number is on the shirt?",
         "image_id": "00685bc495504d61", "answers": ["two"] * 4 + ["2"] * 6, "set_name": "val"},
    ]
    path = root / "textvqa" / "TextVQA_0.5.1_val.json"
    path.write_text(json.dumps({"dataset_name": "textvqa", "dataset_type": "val",
                                "dataset_version": "0.5.1", "data": data}))
    return path, images


def write_text_qa(root: Path) -> dict[str, Path]:
    for name in ("hotpotqa", "nq_open", "popqa", "musique"):
        (root / name).mkdir(parents=True, exist_ok=True)
    hotpot = root / "hotpotqa" / "hotpot_dev_distractor_v1.json"
    hotpot.write_text(json.dumps([
        {"_id": "5a8b57f25542995d1e6f1371", "question": "Which country has Rubyville as its "
         "capital?", "answer": "Redland", "type": "bridge", "level": "hard",
         "supporting_facts": [["Redland", 0]], "context": [["Redland", ["Redland is red."]]]},
        {"_id": "5a8c7595554299585d9e36b6", "question": "Are Redland and Greenia both "
         "countries?", "answer": "yes", "type": "comparison", "level": "medium",
         "supporting_facts": [], "context": []}]))
    nq = _jsonl(root / "nq_open" / "NQ-open.dev.jsonl", [
        {"question": "what is the capital of redland", "answer": ["Rubyville", "Ruby Ville"]},
        {"question": "who founded greenia", "answer": ["Emerald Smith"]}])
    popqa = root / "popqa" / "popQA.tsv"
    popqa.write_text("id\tsubj\tprop\tobj\ts_pop\tquestion\tpossible_answers\n"
                     "4222362\tRedland\tcapital\tRubyville\t120\tWhat is the capital of "
                     "Redland?\t[\"Rubyville\", \"Ruby Ville\"]\n"
                     "1001\tGreenia\toccupation\tfarmer\t5\tWhat is Greenia's occupation?\t"
                     "[\"farmer\", \"agriculturist\"]\n")
    musique = _jsonl(root / "musique" / "musique_ans_v1.0_dev.jsonl", [
        {"id": "2hop__1_2", "question": "What is the capital of the country with a red flag?",
         "answer": "Rubyville", "answer_aliases": ["Ruby Ville"], "answerable": True,
         "paragraphs": [{"idx": 0, "title": "Redland", "paragraph_text": "Redland ...",
                         "is_supporting": True}], "question_decomposition": []},
        {"id": "3hop1__3_4_5", "question": "Who founded the capital of Greenia?",
         "answer": "Emerald Smith", "answer_aliases": [], "answerable": True, "paragraphs": [],
         "question_decomposition": []},
        {"id": "2hop__9_9", "question": "Unanswerable?", "answer": "", "answer_aliases": [],
         "answerable": False, "paragraphs": [], "question_decomposition": []}])
    return {"hotpotqa": hotpot, "nq-open": nq, "popqa": popqa, "musique": musique}


def write_refcoco(root: Path, name: str = "refcoco") -> tuple[Path, Path]:
    """`<name>/refs(<split_by>).p` + `instances.json` and COCO train2014 images: two objects
    (a red square on the left, a blue one on the right) in one 40x30 image; RefCOCOg is split
    by umd (val, test), the others by unc (val, testA, testB)."""
    images = root / "coco" / "train2014"
    arr = np.full((30, 40, 3), 128, np.uint8)
    arr[5:15, 2:12] = COLOURS["Q1"]
    arr[10:25, 20:35] = COLOURS["Q3"]
    images.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(images / "COCO_train2014_000000000009.jpg")
    folder = root / "refer" / name
    folder.mkdir(parents=True, exist_ok=True)
    instances = {
        "info": {}, "licenses": [],
        "images": [{"id": 9, "file_name": "COCO_train2014_000000000009.jpg", "height": 30,
                    "width": 40}],
        "annotations": [
            {"id": 101, "image_id": 9, "category_id": 1, "iscrowd": 0, "area": 100.0,
             "bbox": [2, 5, 10, 10], "segmentation": [[2, 5, 12, 5, 12, 15, 2, 15]]},
            {"id": 102, "image_id": 9, "category_id": 2, "iscrowd": 0, "area": 225.0,
             "bbox": [20, 10, 15, 15], "segmentation": [[20, 10, 35, 10, 35, 25, 20, 25]]}],
        "categories": [{"id": 1, "name": "kite", "supercategory": "sports"},
                       {"id": 2, "name": "frisbee", "supercategory": "sports"}]}
    (folder / "instances.json").write_text(json.dumps(instances))
    refs = [
        {"sent_ids": [0, 1], "file_name": "COCO_train2014_000000000009_101.jpg", "ann_id": 101,
         "ref_id": 0, "image_id": 9, "split": "val", "category_id": 1,
         "sentences": [{"tokens": ["red", "square", "left"], "raw": "Red square, left",
                        "sent_id": 0, "sent": "red square left"},
                       {"tokens": ["the", "red", "one"], "raw": "the red one", "sent_id": 1,
                        "sent": "the red one"}]},
        {"sent_ids": [2], "file_name": "COCO_train2014_000000000009_102.jpg", "ann_id": 102,
         "ref_id": 1, "image_id": 9, "split": "test" if name == "refcocog" else "testA",
         "category_id": 2,
         "sentences": [{"tokens": ["blue", "square"], "raw": "blue square", "sent_id": 2,
                        "sent": "blue square"}]},
        {"sent_ids": [3], "file_name": "COCO_train2014_000000000009_101.jpg", "ann_id": 101,
         "ref_id": 2, "image_id": 9, "split": "val" if name == "refcocog" else "testB",
         "category_id": 1,
         "sentences": [{"tokens": ["small", "red", "square"], "raw": "small red square",
                        "sent_id": 3, "sent": "small red square"}]},
    ]
    with (folder / f"refs({'umd' if name == 'refcocog' else 'unc'}).p").open("wb") as f:
        pickle.dump(refs, f, protocol=2)  # the published files are protocol-2 pickles
    return folder, images


def _label_png(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8), mode="L").save(path)


def write_ade20k(root: Path) -> Path:
    """ADEChallengeData2016 with one validation image: top = sky (3), bottom-left = wall (1),
    bottom-right = other (0, not scored); a three-class objectInfo150.txt."""
    d = root / "ADEChallengeData2016"
    arr = np.zeros((24, 32, 3), np.uint8)
    arr[:12] = (120, 170, 240)
    arr[12:, :16] = (180, 160, 140)
    (d / "images" / "validation").mkdir(parents=True)
    Image.fromarray(arr).save(d / "images" / "validation" / "ADE_val_00000001.jpg")
    labels = np.zeros((24, 32), np.uint8)
    labels[:12], labels[12:, :16] = 3, 1
    _label_png(d / "annotations" / "validation" / "ADE_val_00000001.png", labels)
    (d / "objectInfo150.txt").write_text("Idx\tRatio\tTrain\tVal\tName\n"
                                         "1\t0.1576\t11664\t1172\twall\n"
                                         "2\t0.1072\t6046\t612\tbuilding, edifice\n"
                                         "3\t0.0878\t8265\t796\tsky\n")
    return d


def write_coco_stuff(root: Path) -> Path:
    """cocostuff with one val2017 image: person (value 0 = id 1), building-other (95 = id
    96), unlabeled (255); labels.txt with an unused thing id (12, street sign)."""
    d = root / "cocostuff"
    _image(d / "images" / "val2017" / "000000000139.jpg", (90, 90, 90))
    labels = np.full((24, 32), 255, np.uint8)
    labels[:, :10], labels[:, 10:25] = 0, 95
    _label_png(d / "annotations" / "val2017" / "000000000139.png", labels)
    (d / "labels.txt").write_text("0: unlabeled\n1: person\n12: street sign\n"
                                  "96: building-other\n157: sky-other\n")
    return d


def write_wiki6m(root: Path) -> tuple[Path, Path]:
    """`wiki6m/Wiki6M_ver_1_0.jsonl` of five entities (one repeated) and the entity-image
    folder: Q1 sharded (`Q1/Q1.jpg`), Q2 flat (`Q2.png`), Q3 a local `image_path`, Q4 a URL
    with no file on disk, Q5 no image."""
    root = root / "wiki6m"
    images = root / "wikipedia_images_full"
    _image(images / "Q1" / "Q1.jpg", COLOURS["Q1"], (48, 32))
    _image(images / "Q2.png", COLOURS["Q2"], (48, 32))
    _image(root / "local" / "blueland.png", COLOURS["Q3"], (48, 32))
    long_text = " ".join(f"word{i}" for i in range(130))
    rows = [
        {"wikidata_id": "Q1", "wikipedia_title": "Redland",
         "wikipedia_summary": "Redland is a country with a plain red flag.",
         "wikipedia_content": "Redland is a country with a plain red flag.\n\nThe capital of "
                              "Redland is Rubyville.\n" + long_text,
         "wikipedia_image_url": "https://upload.wikimedia.org/wikipedia/commons/a/ab/Flag.svg"},
        {"wikidata_id": "Q2", "wikipedia_title": "Greenia",
         "wikipedia_summary": "Greenia is a country with a green flag.",
         "wikipedia_content": "Greenia is a country with a green flag. Its capital is "
                              "Emerald City.",
         "wikipedia_image_url": "https://upload.wikimedia.org/x/Greenia.png"},
        {"wikidata_id": "Q3", "wikipedia_title": "Blueland", "wikipedia_summary": "",
         "wikipedia_content": "Blueland lies by the sea. Its capital is Port Azure.",
         "image_path": "local/blueland.png"},
        {"wikidata_id": "Q4", "wikipedia_title": "Goldshire",
         "wikipedia_summary": "Goldshire is famous for its mines.",
         "wikipedia_content": "Goldshire is famous for its gold mines.",
         "wikipedia_image_url": "https://upload.wikimedia.org/x/Goldshire.jpg"},
        {"wikidata_id": "Q5", "wikipedia_title": "Textonia", "wikipedia_summary": "",
         "wikipedia_content": "Textonia has no picture. Its capital is Letterburg.",
         "wikipedia_image_url": None},
        {"wikidata_id": "Q1", "wikipedia_title": "Redland (duplicate)",
         "wikipedia_content": "A repeated line.", "wikipedia_image_url": None},
    ]
    return _jsonl(root / "Wiki6M_ver_1_0.jsonl", rows), images


def write_crag_mm(root: Path) -> Path:
    """CRAG-MM rows exported to JSONL (the Hugging Face row schema; images by path): one
    egocentric session of two turns, one web-image session."""
    d = root / "crag-mm"
    _image(d / "images" / "s1.jpg", COLOURS["Q1"])
    _image(d / "images" / "s2.jpg", COLOURS["Q2"])
    turn = {"domain": "other", "query_category": "simple", "dynamism": "static",
            "image_quality": "normal"}
    return _jsonl(d / "crag_mm_single_turn_val.jsonl", [
        {"session_id": "s1", "image": "images/s1.jpg", "image_url": None,
         "turns": [{"interaction_id": "s1-0", "query": "what country is this flag from?",
                    **turn},
                   {"interaction_id": "s1-1", "query": "what is its capital?", **turn}],
         "answers": [{"interaction_id": "s1-0", "ans_full": "Redland"},
                     {"interaction_id": "s1-1", "ans_full": "Rubyville"}]},
        {"session_id": "s2", "image": "images/s2.jpg", "image_url": "https://example.org/g.jpg",
         "turns": [{"interaction_id": "s2-0", "query": "what country is this flag from?",
                    **turn}],
         "answers": [{"interaction_id": "s2-0", "ans_full": "Greenia"}]}])


def write_all(root: Path) -> dict[str, Path]:
    """Every fixture under `root`; paths by name (formats, plus the image folders)."""
    out: dict[str, Path] = {"oven_images": write_oven_images(root)}
    out["infoseek"] = write_infoseek(root)
    out["oven"] = write_oven(root)
    out["textvqa"], out["textvqa_images"] = write_textvqa(root)
    out.update(write_text_qa(root))
    for name in ("refcoco", "refcoco+", "refcocog"):
        out[name], out["coco_images"] = write_refcoco(root, name)
    out["ade20k"] = write_ade20k(root)
    out["coco-stuff"] = write_coco_stuff(root)
    out["wiki6m"], out["wiki_images"] = write_wiki6m(root)
    out["crag-mm"] = write_crag_mm(root)
    return out
