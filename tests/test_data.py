"""Unit tests of the world's parts that need no index: flags, countries, KB documents, masks,
records, scenes, referring expressions and question plans."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pixsearch.data.records import Record, read_records, write_records
from pixsearch.masks import (
    largest_component,
    mask_box,
    mask_iou,
    mask_to_rle,
    rle_area,
    rle_to_mask,
)
from pixsearch.world.config import SceneConfig, WorldConfig
from pixsearch.world.countries import load_countries
from pixsearch.world.flags import flag_codes, flags_dir, render_flag
from pixsearch.world.knowledge import build_documents, write_kb
from pixsearch.world.outlines import outline_mask
from pixsearch.world.questions import IDK, Ref, SceneView, Search, make_questions
from pixsearch.world.refexp import referring_expressions
from pixsearch.world.scenes import compose_ego, compose_nonego
from pixsearch.world.trajectories import plain_trajectory


@pytest.fixture(scope="module")
def countries():
    return {c.code: c for c in load_countries()}


def test_flags_render_real_svgs(monkeypatch, tmp_path):
    codes = flag_codes()
    assert len(codes) > 200 and "PE" in codes and all(len(c) == 2 for c in codes)
    peru = np.asarray(render_flag("pe", 120))
    assert peru.shape == (90, 120, 3)
    # Peru: red, white, red vertical bands.
    assert peru[45, 10, 0] > 180 and peru[45, 10, 1] < 80 and peru[5, 60].min() > 230
    monkeypatch.setenv("PIXSEARCH_FLAGS_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="npm install"):
        flags_dir()


def test_countries_have_real_facts(countries):
    pe = countries["PE"]
    assert pe.name == "Peru" and pe.capital == "Lima" and "Spanish" in pe.languages
    assert "Bolivia" in pe.borders and "BO" in pe.border_codes and pe.colours[:2] == ["red", "white"]
    assert len(countries) > 180


def test_documents_state_the_facts(countries):
    docs = {d.id: d for d in build_documents([countries["PE"]])}
    assert docs["PE:card"].kind == "card" and "Lima" in docs["PE:card"].text
    assert docs["PE:capital"].text == "The capital of Peru is Lima."
    assert "Bolivia" in docs["PE:borders"].text and all(d.entity == "PE" for d in docs.values())


def test_kb_written_in_engine_format(countries, tmp_path):
    docs, images = write_kb([countries["PE"], countries["FR"]], tmp_path / "kb", 64)
    assert (tmp_path / "kb" / "docs.jsonl").is_file()
    assert {i.id for i in images} == {"PE_flag", "PE_outline", "FR_flag", "FR_outline"}
    assert all((tmp_path / "kb" / "images" / i.path).is_file() for i in images)
    assert {i.doc_id for i in images} == {"PE:card", "FR:card"}


def test_outline_is_the_country_shape(countries):
    m = outline_mask(countries["CL"].geojson, 120, 90)
    x0, y0, x1, y1 = mask_box(m)
    assert (y1 - y0) > 3 * (x1 - x0), "Chile is long and thin"


def test_rle_roundtrip():
    rng = np.random.default_rng(0)
    m = rng.random((37, 51)) > 0.6
    rle = mask_to_rle(m)
    assert isinstance(rle["counts"], str) and rle["size"] == [37, 51]
    assert np.array_equal(rle_to_mask(rle), m) and rle_area(rle) == m.sum()
    assert mask_iou(m, m) == 1.0


def test_largest_component_keeps_one_object():
    m = np.zeros((20, 30), bool)
    m[2:8, 2:12] = True  # 60 px
    m[12:15, 20:24] = True  # 12 px
    m[8, 12] = True  # touches the first blob diagonally: 8-connected, part of it
    kept = largest_component(m)
    assert kept.sum() == 61 and not kept[12:15, 20:24].any()
    assert np.array_equal(largest_component(m[:10]), m[:10])  # one component: unchanged
    assert not largest_component(np.zeros((4, 4), bool)).any()


def test_records_roundtrip(tmp_path):
    m = np.zeros((8, 10), bool)
    m[2:5, 3:7] = True
    r = Record(id="a", image="x.jpg", question="q?", answer="Lima", entities=[{"code": "PE"}],
               masks=[mask_to_rle(m)])
    write_records(tmp_path / "r.jsonl", [r])
    back = read_records(tmp_path / "r.jsonl")[0]
    assert back == r and back.answers == ["Lima"] and np.array_equal(back.mask(0), m)
    (tmp_path / "bad.jsonl").write_text('{"id": "b", "image": "x.jpg"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        read_records(tmp_path / "bad.jsonl")


def test_ego_scene_masks_are_visible_pixels():
    cfg = SceneConfig(overlap_prob=0.9, pole_prob=1.0)
    scene = compose_ego(["PE", "FR", "JP", "BR"], "coffee", cfg, np.random.default_rng(3))
    assert scene.image.size == cfg.ego_size and len(scene.entities) == 4
    union = np.zeros(scene.entities[0].mask.shape, int)
    for e in scene.entities:
        union += e.mask
        w = e.box[2] - e.box[0]
        assert cfg.min_scale * 960 * 0.7 <= w <= cfg.max_scale * 960 * 1.4
        assert e.mask.sum() <= e.full_area
    assert union.max() == 1, "visible masks never overlap"


def test_nonego_outline_fills_the_frame(countries):
    cfg = SceneConfig()
    scene = compose_nonego("IT", "outline", "astronaut", cfg, np.random.default_rng(0),
                           geojson=countries["IT"].geojson)
    (e,) = scene.entities
    assert e.kind == "outline" and not scene.ego
    assert (e.box[2] - e.box[0]) > 0.3 * cfg.nonego_size[0]


def test_refexps_and_questions(countries):
    scene = compose_ego(["PE", "SE", "JP"], "grass", SceneConfig(), np.random.default_rng(1))
    colours = {c: countries[c].colours for c in ("PE", "SE", "JP")}
    refs = [referring_expressions(scene.entities, i, colours) for i in range(3)]
    assert "the blue-and-yellow flag" in refs[1]
    kb = {"PE", "JP"}
    view = SceneView(["PE", "SE", "JP"], [r[0] for r in refs], [c in kb for c in ("PE", "SE", "JP")],
                     True, "flag", countries, kb, scene.entities, refs)
    qas = make_questions(view, 7, np.random.default_rng(0))
    assert len({q.question_type for q in qas}) == len(qas) >= 5
    for qa in qas:
        if qa.target == 1 and qa.needs_search:
            assert qa.answer == IDK  # Sweden is outside this KB
        if not qa.needs_search:
            assert not any(isinstance(p, Search) for p in qa.parts)
            assert qa.answer in plain_trajectory(qa)
        regions = [p for p in qa.parts if isinstance(p, Search) and p.type == "region"]
        assert len(regions) == sum(isinstance(p, Ref) for p in qa.parts)


def test_presets():
    small, full = WorldConfig.preset("small"), WorldConfig.preset("full")
    assert small.n_countries and sum(vars(small.scenes).values()) < 100
    assert sum(vars(full.scenes).values()) * full.questions_per_scene >= 3000
    with pytest.raises(ValueError):
        WorldConfig.preset("huge")


def test_trajectory_writer_builds_typed_turns():
    """A plan becomes parts: spaced text, the refexp of the region search marked as its span
    (a refexp no region search follows is plain text), evidence cut to the world's budget."""
    from pixsearch.retrieval.evidence import EvidenceConfig
    from pixsearch.turns import Information, SearchCall, Text
    from pixsearch.types import Hit
    from pixsearch.world.questions import QA
    from pixsearch.world.trajectories import TrajectoryWriter

    class Index:
        def __init__(self) -> None:
            self.ks: list[int] = []

        def search(self, query, k):
            self.ks.append(k)
            return [Hit(f"PE:{i}", "Peru", 1.0, "Peru is in South America and its capital "
                        "is Lima.", "PE") for i in range(k)]

    plan = [Ref("the big flag"), "is big.", Ref("The flag on the left"), Search("region", 0),
            "is Peru.", Search("text", None, "capital of Peru"), " The capital is Lima."]
    qa = QA("q", "Lima", "multi_hop", True, 0, plan)
    index = Index()
    image, masks = Image.new("RGB", (8, 8)), [np.ones((8, 8), bool)]
    traj = TrajectoryWriter(index, EvidenceConfig(top_k=2, max_words=8)).write(
        qa, image, masks, ["PE"])
    assert index.ks == [2, 2]
    assert [type(p) for p in traj.parts] == [Text, Text, Text, Text, Text, SearchCall,
                                             Information, Text, Text, SearchCall, Information,
                                             Text]
    assert traj.parts[3] == Text("The flag on the left", refers=True)
    assert traj.parts[0] == Text("the big flag")  # no region search is about it
    assert traj.text.startswith("the big flag is big. The flag on the left <search><region>"
                                "</search><information>[1] Peru: Peru is in South")
    assert traj.text.endswith("</information> is Peru. <search>capital of Peru</search>"
                              f"<information>{traj.parts[10].evidence}</information> The "
                              "capital is Lima.")
    a, b = traj.region_spans[0]
    assert traj.region_spans == [[a, b]] and traj.text[a:b] == "The flag on the left"
    assert all(len(p.evidence.split()) <= 8 for p in traj.parts if isinstance(p, Information))
    assert traj.search_types == ["region", "text"]
