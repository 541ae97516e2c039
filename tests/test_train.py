"""Training: collation masks evidence, the reading pool, the mixture sampler, the schedule,
gradient clipping, and a one-step-per-stage run of `pixsearch train` on `tiny` (finite loss,
checkpoint written, resume continues the step count)."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from pixsearch.cli import main
from pixsearch.data.records import Record, write_records
from pixsearch.masks import mask_to_rle
from pixsearch.model.build import build_model
from pixsearch.model.checkpoint import load_checkpoint
from pixsearch.model.presets import get_preset
from pixsearch.train.data import build_pools, make_batch
from pixsearch.train.features import FeatureCache
from pixsearch.train.mixture import MixtureSampler
from pixsearch.train.optim import clip_gradients, lr_factor
from pixsearch.train.reading import reading_samples

INFO = "<information>Peru: capital Lima. Flag: red, white, red.</information>"
TRAJ = f"The flag on the left <search><region></search>{INFO} is the flag of Peru."


def _record(i: int, split: str, image: str, masks, search: bool) -> Record:
    ents = [{"code": c, "name": n, "kind": "flag", "box": [0, 0, 8, 8], "refexp": r,
             "refexps": [r], "in_kb": True}
            for c, n, r in (("PE", "Peru", "the flag on the left"),
                            ("FR", "France", "the flag on the right"))]
    if search:
        return Record(id=f"{split}-{i}", image=image, question="Which country is this flag from?",
                      answer="Peru", question_type="identification", split=split,
                      entities=ents, masks=masks, target=0, trajectory=TRAJ,
                      search_types=["region"], searches=[{"type": "region", "entity": 0}],
                      region_spans=[[0, 20]])
    return Record(id=f"{split}-{i}", image=image, question="How many flags are there?",
                  answer="2", question_type="counting", needs_search=False, split=split,
                  entities=ents, masks=masks, trajectory="There are 2 flags.")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A four-scene world in the benchmark world's record format."""
    root = tmp_path_factory.mktemp("world")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("val", 1)):
        recs = []
        for s in range(n):
            image = f"images/{split}_{s}.jpg"
            Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(root / image)
            a, b = np.zeros((48, 64), bool), np.zeros((48, 64), bool)
            a[10:30, 5:25], b[12:28, 40:60] = True, True
            masks = [mask_to_rle(a), mask_to_rle(b)]
            recs += [_record(2 * s, split, image, masks, True),
                     _record(2 * s + 1, split, image, masks, False)]
        write_records(root / f"{split}.jsonl", recs)
    (root / "kb").mkdir()
    docs = [dict(id="PE:card", title="Peru", text="Country in South America. Capital: Lima.",
                 entity="PE", kind="card"),
            dict(id="PE:capital", title="Peru — capital", text="The capital of Peru is Lima.",
                 entity="PE", kind="passage"),
            dict(id="PE:area", title="Peru — area", text="Peru has an area of 1,285,216 "
                 "square kilometres.", entity="PE", kind="passage"),
            dict(id="PE:currency", title="Peru — currency", text="The currency of Peru is the "
                 "Sol.", entity="PE", kind="passage"),
            dict(id="JP:capital", title="Japan — capital", text="The capital of Japan is Tokyo.",
                 entity="JP", kind="passage")]
    (root / "kb" / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    return root


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    return build_model(get_preset("tiny"))


def test_collation_masks_exactly_the_information_tokens(world, tiny):
    from pixsearch.data.records import read_records

    pools = build_pools(read_records(world / "train.jsonl"))
    sample = next(s for s in pools["stage2"] if s.kind == "trajectory")
    short = next(s for s in pools["stage2"] if s.kind == "vqa")
    features = FeatureCache(tiny, world, world / "cache", False)
    assert features.precompute([sample.image, short.image]) == 1  # one scene, cached once
    batch = make_batch(tiny, [sample, short], features)
    ids, loss, t = batch.input_ids[0].tolist(), batch.loss_mask[0].tolist(), tiny.tokens
    p = int(batch.prompt_len[0])
    a, b = ids.index(t.id("info_open")), ids.index(t.id("info_close"))
    assert a > p and b > a + 1
    n = int(batch.attention_mask[0].sum())
    expected = [0] * p + [0 if a <= i <= b else 1 for i in range(p, n)] + [0] * (len(ids) - n)
    assert loss == expected
    # the evidence tokens decode to the evidence text; the region search has one gold mask
    assert "capital Lima" in tiny.tokenizer.decode(ids[a + 1:b])
    assert batch.region_targets.shape == (1, tiny.mask_size, tiny.mask_size)
    assert batch.region_targets.sum() > 0
    spans = batch.span_labels[0].tolist()
    tagged = [i for i, s in enumerate(spans) if s > 0]
    assert tagged and tagged[-1] < ids.index(t.id("search_open"))
    assert tiny.tokenizer.decode([ids[i] for i in tagged]).strip() == "The flag on the left"
    # the second sample (no search) is padded with loss 0 and has no region target
    assert sum(batch.loss_mask[1].tolist()) > 0
    assert batch.kinds == ["trajectory", "vqa"]


def test_reading_pool_copies_answers_out_of_masked_evidence(world, tiny):
    from pixsearch.data.records import read_records

    samples = reading_samples(world, read_records(world / "train.jsonl"), passes=2)
    # one per fact passage of each training entity (cards and Japan, not in train, left out)
    assert len(samples) == 2 * 3 and {s.pool for s in samples} == {"text"}
    s = next(s for s in samples if s.record_id.startswith("kb:PE:capital"))
    assert s.question == "What does the knowledge base say about the capital of Peru?"
    assert s.display.startswith("<search>capital of Peru</search><information>[")
    assert s.display.endswith("</information> The capital of Peru is Lima.")
    assert s.display.count("\n[") == 2 and "Japan" not in s.display  # 3 hits, all of Peru
    assert not s.image and not s.masks
    r = tiny.renderer.trajectory(s.question, s.display, False, s.spans)
    a, b = r.input_ids.index(tiny.tokens.id("info_open")), r.input_ids.index(
        tiny.tokens.id("info_close"))
    assert set(r.loss_mask[a:b + 1]) == {0} and sum(r.loss_mask[b + 1:]) == len(r) - b - 1
    assert "capital of Peru is Lima" in tiny.tokenizer.decode(r.input_ids[a:b])


def test_clip_gradients_per_group_or_global():
    big, small = torch.nn.Parameter(torch.zeros(4)), torch.nn.Parameter(torch.zeros(4))
    for scope, expect in (("group", (1.0, 0.5)), ("global", (10 / 10.0125, 0.5 / 10.0125))):
        big.grad, small.grad = torch.full((4,), 5.0), torch.full((4,), 0.25)  # norms 10, 0.5
        clip_gradients([[big], [small]], 1.0, scope)
        norms = (float(big.grad.norm()), float(small.grad.norm()))
        assert norms == pytest.approx(expect, rel=1e-3), scope


def test_stage1_pool_has_referring_segmentation(world):
    from pixsearch.data.records import read_records

    pools = build_pools(read_records(world / "train.jsonl"))
    refseg = [s for s in pools["stage1"] if s.kind == "refseg"]
    assert len(refseg) == 3 * 2  # one per entity of each scene, scenes counted once
    s = refseg[0]
    assert s.question == "Segment the flag on the left."
    assert s.display == "the flag on the left <search><region></search>"
    assert s.spans == [(0, 20)] and len(s.masks) == 1
    assert {s.kind for s in pools["stage1"]} == {"refseg", "vqa"}
    assert len(pools["stage2"]) == 6


def test_mixture_sampler_ratio_and_resume(world):
    from pixsearch.data.records import read_records

    pools = build_pools(read_records(world / "train.jsonl"))
    sampler = MixtureSampler(pools, {"stage1": 7, "stage2": 9}, seed=3)
    for _ in range(200):
        sampler.batch(4)
    share = sampler.drawn["stage1"] / 800
    assert abs(share - 7 / 16) < 0.05
    state = json.loads(json.dumps(sampler.state_dict()))  # JSON-safe, as saved
    again = MixtureSampler(pools, {"stage1": 7, "stage2": 9}, seed=99)
    again.load_state_dict(state)
    assert [s.record_id for s in again.batch(8)] == [s.record_id for s in sampler.batch(8)]
    with pytest.raises(ValueError, match="positive weight"):
        MixtureSampler(pools, {"stage1": 0}, seed=0)


def test_lr_schedule_warmup_then_cosine():
    f = [lr_factor(s, 10, 100, "cosine", 0.1) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(x >= y for x, y in zip(f[10:], f[11:]))
    assert f[-1] == pytest.approx(0.1, abs=0.01)
    assert lr_factor(50, 0, 100, "linear", 0.0) == pytest.approx(0.5)
    # a stage whose time budget is nearly spent decays as if it were at its last step
    assert lr_factor(20, 10, 100, "cosine", 0.1, time_frac=0.999) == pytest.approx(0.1, abs=0.01)


def _train(world, out, *extra):
    return main(["train", "--config", "configs/train/tiny_smoke.yaml", f"world={world}",
                 f"out={out}", f"feature_cache={out}/cache", *extra])


def _steps(out):
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    return [r for r in rows if "loss/total" in r], [r for r in rows if "eval" in r]


def test_one_step_run_then_resume(world, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(world, out) == 0
    steps, evals = _steps(out)
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert all(math.isfinite(r["loss/total"]) and math.isfinite(r["loss/lm"]) for r in steps)
    assert "loss/seg" not in steps[0]  # stage 0 reads text: no region search, no mask
    assert "loss/seg" in steps[1] and "loss/kl" in steps[2]  # stage 2 keeps L_KL to stage 1
    assert [e["stage"] for e in evals] == ["stage0", "stage1", "stage2"]
    for name in ("checkpoint-last", "checkpoint-best", "stage-stage0", "stage-stage1",
                 "stage-stage2", "final"):
        assert (out / name / "model.safetensors").exists(), name
    model = load_checkpoint(out / "final")
    assert model.cfg.name == "tiny"
    # resume: a longer stage 2 continues from checkpoint-last at step 3, not from scratch
    assert _train(world, out, "stages.2.steps=3") == 0
    steps, _ = _steps(out)
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5]
    assert [r["stage_step"] for r in steps[3:]] == [2, 3]
    state = torch.load(out / "checkpoint-last" / "trainer_state.pt", weights_only=False)
    assert state["progress"]["global_step"] == 5
    # a run folder is resumed only by the same run: another seed (or model, data) is refused
    capsys.readouterr()
    assert _train(world, out, "seed=7") == 2  # the CLI's one-line error (issue #13)
    assert "other seed" in capsys.readouterr().err


def test_run_with_renamed_trajectories(world, tmp_path, capsys):
    # rename=1: every search trajectory naming a country (the stage-2 records, the reading
    # samples of Peru) trains on invented names (`train/renaming.py`)
    # the names come from the world's `world.json` (written by `pixsearch world build`)
    named = tmp_path / "world"
    shutil.copytree(world, named)
    (named / "world.json").write_text(json.dumps({"countries": {
        "PE": {"name": "Peru", "capital": "Lima"}, "JP": {"name": "Japan", "capital": "Tokyo"}}}))
    out = tmp_path / "renamed"
    assert _train(named, out, "rename=1.0") == 0
    printed = capsys.readouterr()
    assert "renamed the entities of" in printed.out + printed.err
    steps, _ = _steps(out)
    assert len(steps) == 3 and all(math.isfinite(r["loss/total"]) for r in steps)


def test_first_stage_of_a_continued_run_stays_near_its_checkpoint(world, tmp_path, capsys):
    # kl_teacher in the first stage keeps span embeddings near the `init_from` checkpoint
    # (configs/train/gemma_look.yaml); a fresh run has nothing to stay near and is refused
    base = tmp_path / "base"
    assert _train(world, base) == 0
    out = tmp_path / "continued"
    one = ["stages=[{name: look, steps: 2, lr: 1.0e-3, warmup: 0, batch_size: 2,"
           " mixture: {stage1: 1, stage2: 1}, kl_teacher: true}]"]
    assert _train(world, out, f"init_from={base / 'final'}", *one) == 0
    steps, _ = _steps(out)
    assert len(steps) == 2 and all("loss/kl" in r and math.isfinite(r["loss/kl"]) for r in steps)
    capsys.readouterr()
    assert _train(world, tmp_path / "fresh", *one) == 2
    assert "kl_teacher needs a previous stage or init_from" in capsys.readouterr().err
