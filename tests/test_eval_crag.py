"""CRAG-MM scoring on hand-made cases: truncation, miss detection, exact match, truthfulness
arithmetic, the multi-turn early stop, grouping and judge agreement."""

from __future__ import annotations

import pytest

from pixsearch.eval.crag import (
    TurnResult,
    aggregate,
    apply_early_stop,
    crag_exact_match,
    is_missing,
    score_crag,
)
from pixsearch.eval.judges import RuleJudge, Verdict
from pixsearch.eval.truncation import truncate_response


def test_truncate_whitespace_default_keeps_original_spacing():
    text = "one  two\tthree four five"
    assert truncate_response(text, max_tokens=3) == "one  two\tthree"
    assert truncate_response(text, max_tokens=5) == text


def test_truncate_with_callable_and_with_encode_decode_tokenizer():
    text = "abc def ghi"
    # A character tokenizer: 5 tokens are "abc d".
    assert truncate_response(text, max_tokens=5, tokenizer=list) == "abc d"
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {"[UNK]": 0, "abc": 1, "def": 2, "ghi": 3}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    assert truncate_response(text, max_tokens=2, tokenizer=tok) == "abc def"
    assert truncate_response(text, max_tokens=3, tokenizer=tok) == text
    # A transformers fast tokenizer over the same vocabulary takes the same path.
    transformers = pytest.importorskip("transformers")
    hf = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    assert truncate_response(text, max_tokens=1, tokenizer=hf) == "abc"


def test_default_truncation_is_75_tokens():
    long = " ".join(f"w{i}" for i in range(100))
    assert truncate_response(long).split() == [f"w{i}" for i in range(75)]


@pytest.mark.parametrize(
    "response, missing",
    [
        ("I don't know.", True),
        ("Sorry, I dont know", True),
        ("i do not know the answer", True),
        ("I DON’T KNOW", True),  # typographic apostrophe
        ("I know: it is Lima", False),
        ("I'm not sure", False),  # CRAG-MM only detects "I don't know" phrasings
    ],
)
def test_missing_detection(response, missing):
    assert is_missing(response) is missing


def test_exact_match_is_strip_lower_equality_with_aliases():
    assert crag_exact_match("  LIMA ", "lima")
    assert not crag_exact_match("Lima.", "lima")  # punctuation is not stripped officially
    assert crag_exact_match("Ciudad de los Reyes", "Lima", ["ciudad de los reyes"])


def _turn(rid: str, k: int, correct: bool, missing: bool = False) -> TurnResult:
    return TurnResult(rid, f"{rid}{k}", k, "q", "a", "r", False, missing, correct)


def test_truthfulness_arithmetic():
    # 3 correct, 2 missing, 5 hallucinated out of 10 single-turn sessions.
    turns = (
        [_turn(f"c{i}", 0, True) for i in range(3)]
        + [_turn(f"m{i}", 0, False, True) for i in range(2)]
        + [_turn(f"h{i}", 0, False) for i in range(5)]
    )
    score = aggregate(turns)
    assert (score.total, score.correct, score.missing, score.hallucinated) == (10, 3, 2, 5)
    assert score.accuracy == pytest.approx(0.3)
    assert score.missing_rate == pytest.approx(0.2)
    assert score.hallucination_rate == pytest.approx(0.5)
    assert score.truthfulness == pytest.approx((2 * 3 + 2) / 10 - 1)  # -0.2
    assert score.truthfulness == pytest.approx(score.accuracy - score.hallucination_rate)
    # Single-turn sessions: the conversation score is the truthfulness.
    assert score.conversation_score == pytest.approx(-0.2)


def test_early_stop_after_two_consecutive_non_correct_turns():
    # correct, wrong, missing, correct, wrong → turns 3 and 4 become missing.
    turns = [
        _turn("s", 0, True),
        _turn("s", 1, False),
        _turn("s", 2, False, True),
        _turn("s", 3, True),
        _turn("s", 4, False),
    ]
    stopped = apply_early_stop(turns)
    assert [t.correct for t in stopped] == [True, False, False, False, False]
    assert [t.missing for t in stopped] == [False, False, True, True, True]
    assert [t.early_stopped for t in stopped] == [False, False, False, True, True]
    score = aggregate(stopped)
    assert (score.correct, score.missing, score.hallucinated) == (1, 3, 1)
    assert score.conversation_score == pytest.approx(1 / 5 - 1 / 5)


def test_no_early_stop_when_failures_alternate():
    turns = [_turn("s", 0, False), _turn("s", 1, True), _turn("s", 2, False), _turn("s", 3, True)]
    assert [t.correct for t in apply_early_stop(turns)] == [False, True, False, True]


class _Always:
    """A judge that returns a fixed verdict and counts its calls."""

    def __init__(self, verdict: bool | None, name: str = "fixed") -> None:
        self.verdict, self.name, self.calls = verdict, name, 0

    def judge(self, question, gold, prediction, aliases=()):
        self.calls += 1
        return Verdict(self.verdict, "fixed")


RECORDS = [
    {"id": "e1", "question": "which flag?", "answer": "Peru", "ego": True},
    {"id": "e2", "question": "capital?", "answer": "Lima", "ego": True},
    {"id": "n1", "question": "population?", "answer": "about 33 million", "ego": False},
    {
        "id": "conv",
        "ego": False,
        "conversation": [
            {"id": "t0", "question": "what is it?", "answer": "a llama"},
            {"id": "t1", "question": "where from?", "answer": "Peru"},
            {"id": "t2", "question": "colour?", "answer": "white"},
        ],
    },
]


def test_score_crag_exact_match_needs_no_judge_and_groups_ego():
    judge = _Always(True)
    preds = {
        "e1": "peru",
        "e2": "I don't know",
        "n1": "33 million people",
        "conv": ["x", "y", "white"],
    }
    report = score_crag(RECORDS, preds, judge)
    # Only non-exact, non-missing answers go to the judge: n1, t0, t1.
    assert judge.calls == 3
    all_, ego, non_ego = report.groups["all"], report.groups["ego"], report.groups["non_ego"]
    assert (all_.total, all_.correct, all_.exact, all_.missing) == (6, 5, 2, 1)
    assert (ego.total, ego.correct, ego.missing) == (2, 1, 1)
    assert ego.truthfulness == pytest.approx(0.5)
    assert (non_ego.total, non_ego.correct) == (4, 4)


def test_score_crag_without_judge_counts_only_exact_matches():
    preds = {
        "e1": "Peru",
        "e2": "Lima is the capital",
        "n1": "33 million",
        "conv": ["a llama", "no", "no"],
    }
    report = score_crag(RECORDS, preds, judge=None)
    turns = {t.turn_id: t for t in report.turns}
    assert turns["e1#0"].correct and not turns["e2#0"].correct
    # conv: correct, wrong, wrong → no later turn to stop; 1 correct, 2 hallucinated.
    assert [turns[t].correct for t in ("t0", "t1", "t2")] == [True, False, False]
    assert report.groups["all"].hallucinated == 4


def test_predictions_by_turn_id_or_aligned_sequence():
    by_turn = {"e1": "Peru", "e2": "Lima", "n1": "x", "t0": "a llama", "t1": "Peru", "t2": "white"}
    seq = ["Peru", "Lima", "x", ["a llama", "Peru", "white"]]
    a = score_crag(RECORDS, by_turn).groups["all"]
    b = score_crag(RECORDS, seq).groups["all"]
    assert a.as_dict() == b.as_dict()
    assert a.correct == 5
    with pytest.raises(KeyError, match="no prediction for record 'n1'"):
        score_crag(RECORDS, {"e1": "Peru", "e2": "Lima"})


def test_unusable_verdict_scores_wrong_and_field_groups():
    records = [dict(r, domain="geo") for r in RECORDS[:3]]
    report = score_crag(
        records, {"e1": "a", "e2": "b", "n1": "c"}, _Always(None), ("all", "domain")
    )
    assert report.groups["domain=geo"].hallucinated == 3
    assert all(t.judged and t.verdict is None for t in report.turns)


def test_second_judge_agreement_reported():
    records = RECORDS[:3]
    preds = {"e1": "It is the flag of Peru", "e2": "Quito", "n1": "33,000,000"}
    report = score_crag(records, preds, RuleJudge(), second_judge=_Always(True))
    assert [t.verdict for t in report.turns] == [True, False, True]
    assert report.agreement is not None
    assert report.agreement.n == 3 and report.agreement.agreement == pytest.approx(2 / 3)
    assert "judge_agreement" in report.as_dict()


def test_abstaining_is_right_where_the_gold_is_an_abstention():
    records = [{"id": "absent", "question": "Capital of the flag's country?",
                "answer": "I don't know"},
               {"id": "known", "question": "Capital of Peru?", "answer": "Lima"}]
    preds = {"absent": "I don't know.", "known": "I do not know."}
    turns = {t.record_id: t for t in score_crag(records, preds, judge=None).turns}
    assert turns["absent"].correct and not turns["absent"].missing
    assert turns["known"].missing and not turns["known"].correct
