"""The rule-based judge, verdict parsing and judge agreement (Cohen's kappa)."""

from __future__ import annotations

import pytest

from pixsearch.eval.judges import Judge, RuleJudge, extract_numbers, judge_agreement
from pixsearch.eval.llm_judge import OpenAIJudge, parse_verdict

Q_POP = "what is the population of this country?"
Q_CAPITAL = "what is the capital of this country?"


@pytest.mark.parametrize(
    "question, gold, prediction, correct",
    [
        ("who will win?", "Lakers is favored to win.", "Sorry, it is hard to predict.", False),
        (
            "what building is this?",
            "This is the Empire State Building.",
            "I cannot help with that.",
            False,
        ),
        ("who authored this?", "William Shakespeare", "william shakespeare", True),
        ("how deep is it?", "It is about 618 ft.", "Seneca lake is 618.23 feet deep.", True),
        ("how tall is it?", "The height is 151 m.", "The height is 915 feet (279 m).", False),
        (Q_POP, "The population is 3,576,873.", "It is 3.3 million.", False),
        (Q_POP, "The population is 3,576,873.", "about 3.58 million people", True),
        ("how many bridges?", "There are three bridges.", "3", True),
        (
            "what is this bird called?",
            "This bird is called California Quail.",
            "A California Quail.",
            True,
        ),
        (Q_CAPITAL, "The capital of Chile is Santiago.", "Santiago", True),
        (Q_CAPITAL, "The capital of Chile is Santiago.", "Valparaiso", False),
        ("what kind of animal is this?", "a lion-dog, also known as a komainu.", "a lion", False),
        ("who wrote this novel?", "Gabriel Garcia Marquez wrote it.", "g garcia marquez", True),
        (
            "who plays in this band?",
            "The band U2 has Bono, Edge, Adam Clayton and Larry Mullen.",
            "Larry Mullen, Adam Clayton, Bono and Edge",
            True,
        ),
        (
            "what is this dish?",
            "The dish is a Peruvian ceviche.",
            "Ceviche: a cold Peruvian dish.",
            True,
        ),
        ("how old is he?", "He is 61 years old.", "He was born on May 2, 1963.", False),
    ],
)
def test_rule_judge_follows_crag_rules(question, gold, prediction, correct):
    assert RuleJudge().judge(question, gold, prediction).correct is correct


def test_rule_judge_aliases_and_tolerance():
    judge = RuleJudge(numeric_tolerance=0.1)
    assert judge.judge("q", "Burma", "It is Myanmar", aliases=["Myanmar"]).correct
    assert judge.judge("q", "100 km", "about 108 km").correct
    assert not RuleJudge(numeric_tolerance=0.05).judge("q", "100 km", "about 108 km").correct
    assert isinstance(judge, Judge)
    with pytest.raises(ValueError):
        RuleJudge(numeric_tolerance=-1)


def test_extract_numbers():
    assert extract_numbers("3,576,873 people and 2.81 trillion, twelve") == [
        3576873.0,
        2.81e12,
        12.0,
    ]
    assert extract_numbers("no digits") == []


@pytest.mark.parametrize(
    "text, verdict",
    [
        ("The prediction matches.\nResult: CORRECT", True),
        ("Explanation: wrong number.\nResult: WRONG", False),
        ("result:correct", True),
        ("Result :  **wrong**", False),
        ("Result: INCORRECT", False),
        ("Rule 2 says CORRECT... but on reflection\nResult: WRONG", False),
        ("Thinking...\nCORRECT", True),
        ("The answer is not INCORRECT", False),  # official substring test would say CORRECT
        ("CORRECT or WRONG?", None),  # two different words on the last line: undecided
        ("no verdict here", None),
        ("", None),
    ],
)
def test_parse_verdict(text, verdict):
    assert parse_verdict(text) is verdict


def test_agreement_and_kappa_hand_computed():
    a = [True, True, True, False, False, None]
    b = [True, True, False, False, True, True]
    agr = judge_agreement(a, b)
    # 5 usable pairs, 3 agree. pa = 3/5, pb = 3/5 → pe = .36 + .16 = .52; κ = (.6-.52)/.48
    assert agr.n == 5 and agr.agreement == pytest.approx(0.6)
    assert agr.kappa == pytest.approx((0.6 - 0.52) / 0.48)
    perfect = judge_agreement([True, True], [True, True])
    assert perfect.agreement == 1.0 and perfect.kappa == 1.0
    assert judge_agreement([None], [True]).n == 0
    with pytest.raises(ValueError):
        judge_agreement([True], [])


def test_openai_judge_is_a_judge():
    judge = OpenAIJudge("http://127.0.0.1:9/v1", "m", api_key="k")
    assert isinstance(judge, Judge) and judge.url == "http://127.0.0.1:9/v1/chat/completions"
    judge.close()
