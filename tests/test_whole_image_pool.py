"""After a whole-image search the model did not choose: the forced call is no training target,
the evidence opens with how many entities the image holds (gold count in the world, the
session's entity centres in the engine), the `whole_image` pool answers with the count or
"I don't know.", and a stage can move the `<image>` row alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from index_kb import BUILD, CFG, write_kb
from PIL import Image
from scripted import ScriptedLM
from test_engine import RecordingSearch

from pixsearch.data.records import Record
from pixsearch.decode.config import DecodeConfig
from pixsearch.decode.engine import Engine
from pixsearch.masks import mask_to_rle
from pixsearch.model.build import build_model, set_trainable
from pixsearch.model.presets import get_preset
from pixsearch.perception import image_view
from pixsearch.retrieval.builder import IndexBuilder
from pixsearch.retrieval.evidence import EvidenceConfig
from pixsearch.retrieval.index import KnowledgeIndex
from pixsearch.train.whole_image import IDK, forced_turn, whole_image_samples
from pixsearch.turns import Information, SearchCall, Text
from pixsearch.types import Hit, Query

COUNTED = EvidenceConfig(perception=True, image_count=True)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model(get_preset("tiny"))


def test_a_forced_search_call_is_not_a_training_target(tiny):
    turn = [SearchCall("image", forced=True), Information("[1] Peru: Capital: Lima."),
            Text(" I don't know.")]
    forced = tiny.renderer.render("Whose flag is it?", turn)
    chosen = tiny.renderer.render("Whose flag is it?", [SearchCall("image"), *turn[1:]])
    assert forced.input_ids == chosen.input_ids  # the same ids: only the targets differ
    ids = tiny.tokens.ids
    call = [i for i, t in enumerate(forced.input_ids)
            if t in (ids["search_open"], ids["image_query"], ids["search_close"])]
    assert len(call) == 3
    assert [forced.loss_mask[i] for i in call] == [0, 0, 0]
    assert [chosen.loss_mask[i] for i in call] == [1, 1, 1]
    assert forced.loss_mask[-1] == 1 and sum(forced.loss_mask) == sum(chosen.loss_mask) - 3


def _record(rid: str, question_type: str, target: int | None, n: int = 3, image: str = "s.png",
            searches: list | None = None, trajectory: str = "") -> Record:
    ents = [{"code": f"E{i}", "name": f"Entity {i}", "kind": "flag", "box": [0, 0, 4, 4],
             "refexp": f"flag {i}", "in_kb": True} for i in range(n)]
    masks = [mask_to_rle(np.eye(8, dtype=bool)) for _ in range(n)]
    if question_type == "counting" and not trajectory:  # it looks at one flag first
        trajectory = (f"Flag 0 <search><region></search><information>[0] Seen: mostly red; {n} "
                      f"like it in the image, 0 left of it.</information> is one of them. "
                      f"There are {n} flags in the picture.")
        searches, spans = [{"type": "region", "entity": 0}], [[0, 6]]
    else:
        spans = []
    return Record(id=rid, image=image, question=f"{question_type}?", answer="x",
                  question_type=question_type, ego=n > 1, entities=ents, masks=masks,
                  target=target, trajectory=trajectory, searches=searches or [],
                  search_types=[s["type"] for s in searches or []], region_spans=spans)


def test_forced_turn_counts_or_says_it_does_not_know():
    hits = [Hit(doc_id="d1", title="Entity 1", score=0.4, text="Capital: One.", entity="E1")]
    count = forced_turn(_record("c", "counting", None, n=4), hits, COUNTED)
    assert count[0] == SearchCall("image", forced=True)
    assert count[1].evidence == f"{image_view(4)}\n[1] Entity 1: Capital: One."
    assert count[2].text == " There are 4 flags in the picture."
    other = forced_turn(_record("i", "identification", 2), hits, COUNTED)
    assert other[2].text == " " + IDK
    # the whole image found the very entity asked about: no plan for that answer, left out
    assert forced_turn(_record("f", "identification", 1), hits, COUNTED) is None
    # a photo of one entity is left to its own gold trajectory
    assert forced_turn(_record("p", "identification", 0, n=1), hits, COUNTED) is None
    # without `image_count` the evidence is the hits alone
    plain = forced_turn(_record("c", "counting", None), hits, EvidenceConfig(perception=True))
    assert plain[1].evidence == "[1] Entity 1: Capital: One."
    # without "I don't know." answers only the counts stay
    assert forced_turn(_record("i", "identification", 2), hits, COUNTED, idk=False) is None
    assert forced_turn(_record("c", "counting", None, n=4), hits, COUNTED, idk=False) == count


def test_pool_from_a_real_index_one_abstention_per_scene(tmp_path):
    docs, images = write_kb(tmp_path / "kb", range(5), range(5))
    IndexBuilder(tmp_path / "index", CFG, BUILD).build(docs, images)
    index = KnowledgeIndex.open(tmp_path / "index")
    # a scene of five entities E0..E4, the whole image's first hit among them
    Image.open(images / "alpha1.png").save(tmp_path / "s.png")
    first = index.search(Query("image", image=Image.open(tmp_path / "s.png")), 1)[0].entity
    found = int(first[1:])
    gold = ("<search><image></search><information>[1] Entity 0: x.</information> "
            "This is the flag of Entity 0.")
    records = [_record("count", "counting", None, n=5), _record("found", "factoid", found, n=5),
               _record("idk-1", "factoid", (found + 1) % 5, n=5),
               _record("idk-2", "binary", (found + 2) % 5, n=5),
               _record("photo", "identification", 0, n=1, image="s.png",
                       searches=[{"type": "image", "entity": 0}], trajectory=gold)]
    pool = whole_image_samples(records, index, COUNTED, tmp_path)
    assert [s.record_id for s in pool] == ["count", "idk-1", "photo"]
    assert all(s.pool == "whole_image" and not s.masks for s in pool)
    assert pool[0].parts[1].evidence.startswith("[0] Seen: 5 like it in the image.\n[1] ")
    assert pool[1].display.endswith("</information> I don't know.")
    assert pool[2].display == gold  # the photo's own trajectory, its call the model's choice
    assert not pool[2].parts[0].forced
    counts_only = whole_image_samples(records, index, COUNTED, tmp_path, idk=False)
    assert [s.record_id for s in counts_only] == ["count", "photo"]
    # the counts the model will see, right or wrong, replace the scene's in every count line
    seen = whole_image_samples(records, index, COUNTED, tmp_path, counts={"s.png": 2})
    assert seen[0].parts[1].evidence.startswith("[0] Seen: 2 like it in the image.\n[1] ")
    assert seen[0].parts[2].text == " There are 5 flags in the picture."  # the answer stays
    counted_gold = gold.replace("<information>", "<information>[0] Seen: 1 like it in the "
                                "image.\n")
    photo = _record("photo", "identification", 0, n=1, image="s.png",
                    searches=[{"type": "image", "entity": 0}], trajectory=counted_gold)
    (recounted,) = whole_image_samples([photo], index, COUNTED, tmp_path, counts={"s.png": 3})
    assert recounted.display == counted_gold.replace("Seen: 1 like", "Seen: 3 like")


def test_a_stage_can_move_the_image_row_alone(tiny):
    set_trainable(tiny, ["control_rows"], ["image_query"])
    emb = tiny.backbone.input_embeddings().weight
    tiny.zero_grad()
    (emb * torch.randn_like(emb)).sum().backward()
    rows = emb.grad.abs().sum(1).nonzero().flatten().tolist()
    assert rows == [tiny.tokens.ids["image_query"]]
    set_trainable(tiny, ["control_rows"])  # every control row again
    tiny.zero_grad()
    (emb * torch.randn_like(emb)).sum().backward()
    assert set(emb.grad.abs().sum(1).nonzero().flatten().tolist()) == set(
        tiny.tokens.ids.values())
    with pytest.raises(ValueError, match="unknown control role"):
        set_trainable(tiny, ["control_rows"], ["image"])
    tiny.zero_grad()


class CentresLM(ScriptedLM):
    """A scripted model served the whole-image count, whose sessions tell entity centres."""

    def __init__(self, script, centres, evidence):
        super().__init__(script)
        self.cfg = type("Cfg", (), {"evidence": evidence})()
        self.centres = centres

    def start(self, prompt, image):
        session, logits = super().start(prompt, image)
        session.centres = lambda: self.centres
        return session, logits


TWO = np.array([[5.0, 5.0], [30.0, 20.0]])


# no centre found is a proposer that missed (an outline), not an image of nothing: no line
@pytest.mark.parametrize("evidence, centres, opens", [
    (COUNTED, TWO, "[0] Seen: 2 like it in the image.\n"),
    (COUNTED, np.zeros((0, 2)), "[1] "),
    (EvidenceConfig(perception=True), TWO, "[1] ")])
def test_engine_opens_whole_image_evidence_with_the_sessions_count(evidence, centres, opens):
    image = Image.new("RGB", (40, 30), (200, 30, 30))
    lm = CentresLM([" Two."], centres, evidence)
    ans = Engine(lm, RecordingSearch(), DecodeConfig(max_new_tokens=8)).answer(
        "How many flags?", image, forced_queries=[Query("image", image=image)])
    step = ans.trace.steps[0]
    assert step.modality == "image" and step.evidence.startswith(opens)


def test_gold_whole_image_search_opens_with_the_scenes_count():
    from pixsearch.world.questions import QA, Search
    from pixsearch.world.trajectories import TrajectoryWriter

    image = Image.new("RGB", (40, 30), (200, 30, 30))
    masks = [np.zeros((30, 40), bool) for _ in range(3)]
    qa = QA("Whose flags?", "Peru", "identification", True, None,
            [Search("image"), " This is the flag of Peru."])
    for evidence, opens in ((COUNTED, "[0] Seen: 3 like it in the image.\n[1] Peru: "),
                            (EvidenceConfig(perception=True), "[1] Peru: ")):
        traj = TrajectoryWriter(RecordingSearch(), evidence).write(qa, image, masks,
                                                                   ["PE", "FR", "JP"])
        assert traj.parts[1].evidence.startswith(opens)


def test_a_stage_on_the_whole_image_pool_trains(tmp_path, capsys):
    import json

    import yaml

    from pixsearch.cli import main
    from pixsearch.data.records import write_records

    world = tmp_path / "world"
    docs, images = write_kb(world / "kb", range(5), range(5))
    IndexBuilder(world / "index", CFG, BUILD).build(docs, images)
    (world / "images").mkdir()
    for split in ("train", "val"):
        Image.open(images / "alpha1.png").resize((64, 48)).save(world / "images" / f"{split}.png")
        recs = [_record(f"{split}-c", "counting", None, n=5, image=f"images/{split}.png"),
                _record(f"{split}-i", "factoid", 0, n=5, image=f"images/{split}.png")]
        write_records(world / f"{split}.jsonl", recs)
    stage = dict(name="look", steps=2, lr=1e-3, warmup=0, trainable=["control_rows"],
                 control_roles=["image_query"], mixture={"whole_image": 1}, batch_size=2)
    cfg = dict(model="tiny", world=str(world), stages=[stage], eval_batches=1, save_every=1,
               out=str(tmp_path / "run"), num_threads=1, progress=False)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(tmp_path / "cfg.yaml")]) == 0
    printed = capsys.readouterr()
    assert "2 samples after a whole-image search" in printed.out + printed.err
    rows = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss/lm" in r] == [1, 2]
    # control roles narrow the control rows: a stage that does not train them is refused
    stage.update(trainable=["lora"])
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**cfg, "stages": [stage]}))
    assert main(["train", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "control_roles" in capsys.readouterr().err


def test_model_counts_are_the_centres_its_sessions_tell(tmp_path):
    from pixsearch.model.session import PixSearchSession
    from pixsearch.train.whole_image import model_counts

    torch.manual_seed(0)
    model = build_model(get_preset("tiny", {"referent": {
        "enabled": True, "source": "components", "instances": "points",
        "peak_threshold": 0.0}})).eval()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 40, 3), np.uint8))
    counts = model_counts(model, ["a.png", "a.png"], lambda path: model.preprocess(image))
    session, _ = PixSearchSession.open(model, model.renderer.prompt("?"), image)
    assert counts == {"a.png": len(session.centres())}
    with pytest.raises(ValueError, match="entity centres"):
        model_counts(build_model(get_preset("tiny")), ["a.png"], lambda path: {})


def test_count_lines_are_gold_or_the_models():
    from pixsearch.train.config import StageConfig, TrainConfig

    stage = StageConfig(mixture={"whole_image": 1})
    assert TrainConfig(stages=[stage], whole_image_counts="model").whole_image_counts == "model"
    with pytest.raises(ValueError, match="whole_image_counts"):
        TrainConfig(stages=[stage], whole_image_counts="mine")
