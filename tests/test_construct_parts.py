"""The pieces of data construction: the plan grammar and its checks, query typing, reading
LLM replies, answer support, the rule annotator's decisions, the prompt files and the
content-addressed call cache."""

from __future__ import annotations

import pytest

from pixsearch.construct.annotator import Question
from pixsearch.construct.cache import CallCache, call_key
from pixsearch.construct.decompose import SubQuestion, format_subquestions, parse_subquestions
from pixsearch.construct.plan import (
    PlanError,
    PlanSearch,
    PlanText,
    final_text,
    parse_plan,
    plan_problems,
    to_text,
)
from pixsearch.construct.prompts import STEPS, load_prompt, render
from pixsearch.construct.queries import parse_query_type, referring_expression, rule_query_type
from pixsearch.construct.rule import (
    RuleAnnotator,
    direct_answer,
    parse_question,
    referring_phrase,
)
from pixsearch.construct.selection import QUESTION_TYPES, parse_selection
from pixsearch.construct.support import mentions, names_in, normalize

PLAN = ("The flag on the left <search>the flag on the left</search> is the flag of {1}. "
        "<search>capital of {1}</search> The capital of {1} is Lima.")


def test_plan_round_trip_and_errors():
    steps = parse_plan(PLAN)
    assert [type(s).__name__ for s in steps] == ["PlanText", "PlanSearch", "PlanText",
                                                  "PlanSearch", "PlanText"]
    def stripped(plan):
        return [PlanText(s.text.strip()) if isinstance(s, PlanText) else s for s in plan]

    assert stripped(parse_plan(to_text(steps))) == stripped(steps)
    assert final_text(steps) == "The capital of {1} is Lima."
    assert parse_plan("<search><region></search> x")[0] == PlanSearch("<region>", "region")
    for bad, why in [("<search>a <search>b</search></search>", "nested"),
                     ("a </search>", "without"), ("<search>x", "unclosed"),
                     ("<search>x</search><information>e</information>", "information"),
                     ("It is {1}. <search>x</search>", "no earlier search"),
                     ("<search> </search>", "empty")]:
        with pytest.raises(PlanError, match=why):
            parse_plan(bad)


def test_plan_problems_are_the_self_refinement_checks():
    ok = parse_plan(PLAN)
    assert plan_problems(ok, ["Lima"], True, 4) == []
    assert "does not say the gold answer" in plan_problems(ok, ["Quito"], True, 4)[0]
    assert "no search" in plan_problems(parse_plan("It is Lima."), ["Lima"], True, 4)[0]
    assert "needs no knowledge" in plan_problems(ok, ["Lima"], False, 4)[0]
    assert "more than 1" in plan_problems(ok, ["Lima"], True, 1)[0]
    leak = parse_plan("<search>capital Lima Peru</search> The capital is Lima.")
    assert any("gives the answer away" in p for p in plan_problems(leak, ["Lima"], True, 4))
    idk = parse_plan("<search>the whole image</search> No match. I don't know.")
    assert plan_problems(idk, ["I don't know"], True, 4) == []
    ident = parse_plan("<search>the whole image</search> This is the flag of {1}.")
    assert plan_problems(ident, ["Peru"], True, 4) == []  # the entity comes from retrieval


@pytest.mark.parametrize("payload,kind", [
    ("the flag on the left", "region"), ("the blue-and-white flag", "region"),
    ("the second flag from the right", "region"), ("the flag behind the red one", "region"),
    ("the whole image", "image"), ("this flag", "image"), ("the picture", "image"),
    ("capital of {1}", "text"), ("capital of Peru", "text"), ("<region>", "region"),
    ("<image>", "image"), ("who designed the Eiffel Tower", "text")])
def test_rule_query_types(payload, kind):
    assert rule_query_type(payload) == kind


def test_referring_expression_of_bare_region_payload():
    steps = parse_plan("Look. The red car <search><region></search> is a {1}.")
    assert referring_expression(steps, 1) == "The red car"
    assert referring_expression(parse_plan(PLAN), 1) == "the flag on the left"


def test_reading_llm_replies():
    sel = parse_selection("type: entity_identification\nretrieval: yes\n")
    assert (sel.question_type, sel.needs_search, sel.parsed) == ("entity_identification",
                                                                 True, True)
    sel = parse_selection("type: Counting\nRetrieval: No")
    assert (sel.question_type, sel.needs_search) == ("counting", False)
    bad = parse_selection("I think it is a nice question")
    assert not bad.parsed and bad.question_type in QUESTION_TYPES
    subs = parse_subquestions("\n- Which flag is it? [search]\n2. Is it red? [no search]\nnoise")
    assert subs == [SubQuestion("Which flag is it?", True), SubQuestion("Is it red?", False)]
    assert parse_subquestions(format_subquestions(subs)) == subs
    assert parse_query_type(" Region\n") == "region" and parse_query_type("dunno") is None


def test_answer_support_matching():
    assert mentions("Its population is 33,715,471 people.", "33715471")
    assert mentions("The capital of Peru is Lima.", "lima")
    assert not mentions("Limassol is in Cyprus.", "Lima")
    assert mentions("It is São Tomé.", "Sao Tome")
    assert normalize("I don’t know.") == "i dont know"
    assert names_in("Peru borders Ecuador, Bolivia and Chile.", skip_first=False)[:4] == [
        "Peru", "Ecuador", "Bolivia", "Chile"]


def test_rule_annotator_reads_question_patterns():
    rules = RuleAnnotator()
    assert referring_phrase("What is the capital of a country that borders the country of "
                            "the second flag from the left?") == "the second flag from the left"
    p = parse_question("What is the capital of a country that borders the country whose "
                       "flag is shown?")
    assert p.holistic and p.hop and p.relation == "capital" and p.ref is None
    cases = {"How many flags are in the picture?": ("counting", False),
             "What is the main colour of the red flag?": ("attribute", False),
             "Is this the flag of Peru?": ("binary", True),
             "Which country has this shape?": ("entity_identification", True),
             "What currency is used in the country of the flag on the left?": ("factoid", True)}
    for q, want in cases.items():
        sel = rules.select(Question(q, ("x",)))
        assert (sel.question_type, sel.needs_search) == want, q
    q = Question("What is the capital of the country of the flag on the left?", ("Lima",))
    cands = rules.respond(q, rules.select(q), [], 5)
    assert cands[0] == PLAN and len(cands) == 4 and cands[-1] == "Lima."
    assert direct_answer("How many flags are to the left of the red flag?", "1") == \
        "There is 1 flag to the left of the red flag."
    assert direct_answer("What is the main colour of this flag?", "red") == \
        "This flag is mostly red."
    ranked = rules.refine(q, [])
    assert ranked == []


def test_prompt_files_fill_in_and_user_folders(tmp_path):
    for step in STEPS:
        assert "Question" in load_prompt(step).template or step == "query_type"
    text = render(load_prompt("respond"), question="Q?", answer="A", subquestions="- x [search]")
    assert text.endswith("Response:") and "Gold answer: A" in text
    with pytest.raises(KeyError):
        render(load_prompt("select"))
    (tmp_path / "select.md").write_text("Mine: $question\ntype:")
    assert render(load_prompt("select", tmp_path), question="q") == "Mine: q\ntype:"
    with pytest.raises(FileNotFoundError):
        load_prompt("refine", tmp_path)


def test_call_cache_is_content_addressed(tmp_path):
    base = {"prompt": "p", "temperature": 0.0, "seed": 0}
    assert call_key("openai", "m", base) == call_key("openai", "m", dict(reversed(base.items())))
    assert call_key("openai", "m", base) != call_key("openai", "m", {**base, "seed": 1})
    assert call_key("openai", "m", base) != call_key("gemma", "m", base)
    cache = CallCache(tmp_path / "c.sqlite")
    key = call_key("openai", "m", base)
    assert cache.get(key) is None
    cache.put(key, "reply")
    cache.close()
    again = CallCache(tmp_path / "c.sqlite")  # persists across processes / runs
    assert again.get(key) == "reply" and (again.hits, again.misses) == (1, 0) and len(again) == 1
