"""`pixsearch construct` end to end with the rule annotator on the small benchmark world: the
records it writes, resume after an interruption, the statistics, and that the trainer's data
loader reads the output (real index, real searches; the world's gold is stripped first)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixsearch.cli import main as cli_main
from pixsearch.construct.execute import Executor
from pixsearch.construct.pipeline import ConstructConfig, Constructor, side_paths
from pixsearch.construct.rule import RuleAnnotator
from pixsearch.construct.segmentation import RecordSegmenter
from pixsearch.data.records import read_records
from pixsearch.retrieval.evidence import EvidenceConfig
from pixsearch.turns import parse_display

GOLD = ("trajectory", "search_types", "searches", "region_spans", "needs_search",
        "question_type")


def raw_records(world: Path, out: Path, n: int) -> Path:
    """The first `n` val records with every gold field removed (images by absolute path),
    picked so that ego, close-up and no-search questions are all there."""
    rows = [json.loads(line) for line in open(world / "val.jsonl", encoding="utf-8")]
    picked, kinds = [], set()
    for r in rows:  # one of each (type, ego) first, then the rest in order
        key = (r["question_type"], r["ego"])
        if key not in kinds:
            kinds.add(key)
            picked.append(r)
    picked += [r for r in rows if r not in picked]
    raw = out / "raw.jsonl"
    with open(raw, "w", encoding="utf-8") as f:
        for r in picked[:n]:
            r = {k: v for k, v in r.items() if k not in GOLD}
            r["image"] = str(world / r["image"])
            f.write(json.dumps(r) + "\n")
    return raw


def gold_of(world: Path) -> dict[str, dict]:
    return {json.loads(line)["id"]: json.loads(line) for line in open(world / "val.jsonl")}


class CountingRules(RuleAnnotator):
    """The rule annotator, counting the questions it was asked to select."""

    def __init__(self) -> None:
        super().__init__()
        self.selected = 0

    def select(self, q):
        self.selected += 1
        return super().select(q)


def test_rule_construction_end_to_end(small_world, tmp_path, capsys):
    raw = raw_records(small_world, tmp_path, 10)
    out = tmp_path / "out" / "traj.jsonl"
    rc = cli_main(["construct", "--input", str(raw), "--out", str(out), "--index",
                   str(small_world / "index"), "--llm", "rule", "--seg", "record",
                   "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    kept = read_records(out)  # the training format's own strict reader
    dropped = [json.loads(line) for line in open(side_paths(out)[0])]
    assert len(kept) + len(dropped) == 10 and len(kept) >= 7
    gold = gold_of(small_world)
    searching = [r for r in kept if r.search_types]
    assert searching and any(r.search_types[0] == "region" for r in searching)
    for r in kept:
        g = gold[r.id]
        assert r.needs_search == g["needs_search"]  # the rules agree with the world here
        turn = parse_display(r.trajectory, r.region_spans)
        assert len(r.searches) == len(r.search_types) == r.trajectory.count("<search>")
        assert (out.parent / r.image).is_file()  # image paths are relative to the output
        for s in r.searches:
            if s["type"] == "region":  # the mask of a region search is one of the record's
                assert r.masks[s["entity"]]["size"]
        if r.search_types == g["search_types"] and g["searches"]:
            # identical searches on the same index: the same evidence the world's gold has
            infos = [p for p in turn if type(p).__name__ == "Information"]
            gold_infos = [p for p in parse_display(g["trajectory"], g["region_spans"])
                          if type(p).__name__ == "Information"]
            assert infos[0] == gold_infos[0]
    stats = json.loads(side_paths(out)[1].read_text())
    assert stats["records"] == 10 and stats["kept"] == len(kept)
    assert set(stats["searches"]["query_type_shares"]) <= {"region", "image", "text"}
    assert sum(stats["selection"]["question_types"].values()) == 10


def test_resume_skips_finished_records_and_cuts_a_partial_line(small_world, tmp_path):
    from pixsearch.predictor import load_search

    raw = raw_records(small_world, tmp_path, 6)
    records = read_records(raw)
    out = tmp_path / "traj.jsonl"
    index = load_search(str(small_world / "index"))

    def constructor(annotator, limit=0):
        ex = Executor(index, EvidenceConfig(), RecordSegmenter())
        return Constructor(annotator, ex, ConstructConfig(limit=limit, progress=False), "record")

    first = CountingRules()
    constructor(first, limit=3).run(records, raw.parent, out)
    assert first.selected == 3
    done_before = out.read_text().splitlines()
    # a kill in the middle of writing the next record leaves half a line behind
    with open(out, "a", encoding="utf-8") as f:
        f.write('{"id": "half-writ')
    second = CountingRules()
    stats = constructor(second).run(records, raw.parent, out)
    assert second.selected == 3  # only the three not yet done
    lines = out.read_text().splitlines()
    assert lines[: len(done_before)] == done_before
    ids = [json.loads(line)["id"] for line in lines]
    ids += [json.loads(line)["id"] for line in open(side_paths(out)[0])]
    assert sorted(ids) == sorted(r.id for r in records)  # each once, none lost, none twice
    assert stats["records"] == 6
    third = CountingRules()
    constructor(third).run(records, raw.parent, out)
    assert third.selected == 0


def test_constructed_records_load_in_the_trainer(small_world, tmp_path):
    pytest.importorskip("torch")
    from pixsearch.model.build import build_model
    from pixsearch.model.presets import get_preset
    from pixsearch.train.data import build_pools, load_split

    raw = raw_records(small_world, tmp_path, 8)
    folder = tmp_path / "data"
    rc = cli_main(["construct", "--input", str(raw), "--out", str(folder / "train.jsonl"),
                   "--index", str(small_world / "index"), "--llm", "rule", "--no-progress"])
    assert rc == 0
    records = load_split(folder, "train")
    pools = build_pools(records)
    assert len(pools["stage2"]) == len(records) > 0
    model = build_model(get_preset("tiny"))
    regions = 0
    for sample in pools["stage2"]:
        rendered = sample.render(model.renderer)
        assert len(rendered.input_ids) == len(rendered.loss_mask)
        regions += len(sample.masks)
        assert len(sample.masks) == sample.display.count("<search><region></search>")
    assert regions > 0


def test_crag_mm_rows_through_the_adapter(small_world, tmp_path, capsys):
    gold = next(r for r in gold_of(small_world).values()
                if r["question_type"] == "identification" and r["answer"] != "I don't know")
    row = {"session_id": "crag-1", "image": str(small_world / gold["image"]), "image_url": None,
           "turns": [{"interaction_id": "t1", "query": gold["question"],
                      "query_category": "simple", "domain": "other"}],
           "answers": [{"interaction_id": "t1", "ans_full": gold["answer"]}]}
    raw = tmp_path / "crag.jsonl"
    raw.write_text(json.dumps(row) + "\n")
    out = tmp_path / "crag_traj.jsonl"
    assert cli_main(["construct", "--input", str(raw), "--format", "crag-mm", "--out", str(out),
                     "--index", str(small_world / "index"), "--llm", "rule", "--seg", "none",
                     "--no-progress"]) == 0
    rows = [json.loads(line) for line in open(out)] + [
        json.loads(line) for line in open(side_paths(out)[0])]
    assert [r["id"] for r in rows] == ["crag-1"]
    # no annotations and no segmenter: an ego question's region search cannot be made
    if gold["ego"]:
        assert rows[0]["reason"].startswith("segmentation found no mask")
    else:
        assert rows[0]["search_types"] == ["image"] and rows[0]["conversation"]


def test_unreachable_llm_is_a_one_line_user_error(small_world, tmp_path, capsys):
    from pixsearch.construct.llm_local import free_port

    raw = raw_records(small_world, tmp_path, 1)
    rc = cli_main(["construct", "--input", str(raw), "--out", str(tmp_path / "o.jsonl"),
                   "--index", str(small_world / "index"), "--llm", "openai", "--llm-url",
                   f"http://127.0.0.1:{free_port()}/v1", "--cache", str(tmp_path / "c.sqlite"),
                   "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "failed 3 times" in err and "Traceback" not in err
