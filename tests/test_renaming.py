"""Counterfactual renaming of training samples (`train/renaming.py`): one invented name per real
name, everywhere in the sample; word edges and longest names first; referring spans kept;
the renamed share and determinism; the trainer's `rename` option."""

import re

import pytest

from pixsearch.train.config import TrainConfig
from pixsearch.train.data import TrainSample
from pixsearch.train.renaming import Renamer, rename_pools
from pixsearch.turns import parse_display

NAMES = ["Niger", "Nigeria", "Niamey", "Abuja", "Guinea", "Equatorial Guinea", "Malabo",
         "Peru", "Lima"]
INFO = ("<information>[1] Nigeria: Country in Western Africa. Capital: Abuja.\n"
        "[2] Niger: Country in Western Africa. Capital: Niamey.\n"
        "[3] Equatorial Guinea: Country in Middle Africa. Capital: Malabo.</information>")
TRAJ = (f"The flag on the left <search><region></search>{INFO} is the flag of Nigeria. "
        "<search>capital of Nigeria</search><information>[1] Nigeria — capital: The capital "
        "of Nigeria is Abuja.</information> The capital of Nigeria is Abuja.")


def _sample(question: str = "What is the capital of the country of the flag on the left?"
            ) -> TrainSample:
    parts = parse_display(TRAJ, [[0, 20]])
    return TrainSample("stage2", "trajectory", question, parts, image="images/x.jpg",
                       masks=[{"size": [4, 4], "counts": "0"}], record_id="r0")


def test_each_name_gets_one_invented_name_everywhere():
    s = _sample("Is the flag on the left the flag of Nigeria?")
    t = Renamer(NAMES, seed=0).rename(s)
    for real in NAMES:
        assert not re.search(rf"(?<!\w){re.escape(real)}(?!\w)", t.display + t.question), real
    # the answer's name is the one the evidence gives the best hit, and the question's too
    best = re.search(r"\[1\] ([^:]+):", t.display).group(1)
    assert t.display.endswith(f"The capital of {best} is " + t.display.split(
        "Capital: ")[1].split(".")[0] + ".")
    assert f"is the flag of {best}." in t.display and best in t.question
    assert f"<search>capital of {best}</search>" in t.display
    # Niger, Nigeria, Equatorial Guinea: three distinct invented names, none a real one
    titles = re.findall(r"\[\d\] ([^:—]+?)[:—]", t.display)
    assert len(set(titles[:3])) == 3 and not set(titles) & set(NAMES)
    assert t.record_id == "r0:renamed" and t.image == s.image and t.masks == s.masks


def test_referring_span_and_untouched_text_are_kept():
    s = _sample()
    t = Renamer(NAMES, seed=1).rename(s)
    assert [t.display[a:b] for a, b in t.spans] == ["The flag on the left"]
    assert t.question == s.question  # no name in it
    assert "Country in Western Africa" in t.display


def test_sample_without_names_is_returned_as_is():
    parts = parse_display("There are 3 flags.", [])
    s = TrainSample("stage1", "vqa", "How many flags are there?", parts)
    assert Renamer(NAMES).rename(s) is s


def test_share_and_determinism():
    samples = [_sample() for _ in range(400)]
    a = Renamer(NAMES, seed=3).rename_share(samples, 0.5)
    b = Renamer(NAMES, seed=3).rename_share(samples, 0.5)
    renamed = sum(x.record_id.endswith(":renamed") for x in a)
    assert 150 < renamed < 250
    assert [x.display for x in a] == [x.display for x in b]
    assert Renamer(NAMES).rename_share(samples, 0.0) == samples
    with pytest.raises(ValueError, match="within"):
        Renamer(NAMES).rename_share(samples, 1.5)


def test_rename_pools_leaves_stage1_alone():
    s1 = TrainSample("stage1", "vqa", "Is this the flag of Peru?", parse_display("Yes.", []))
    pools = {"stage1": [s1], "stage2": [_sample()]}
    out = rename_pools(pools, 1.0, NAMES)
    assert out["stage1"] == [s1] and "Nigeria" not in out["stage2"][0].display


def test_train_config_checks_the_share():
    with pytest.raises(ValueError, match="rename"):
        TrainConfig(rename=2.0)
    with pytest.raises(ValueError, match="at least one name"):
        Renamer([" ", ""])
