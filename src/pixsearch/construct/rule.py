"""The deterministic rule annotator: data construction without a language model.

For tests, and for data whose questions follow patterns (templated benchmarks such as the
benchmark world, or a user's own templated questions). It reads the question's parts with
regular expressions — the entity it is about (a referring phrase such as "the flag on the
left", or the image as a whole for "this flag" / "whose flag is shown"), the fact it asks for
("capital", "population", ...), a hop through a relation ("a country that borders ...") — and
writes plans with placeholders, exactly as an LLM annotator would; retrieval fills them in.
It never reads labels or gold trajectories: only the question and the gold answer.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from pixsearch.construct.annotator import Candidate, Question
from pixsearch.construct.decompose import SubQuestion
from pixsearch.construct.plan import Step, searches
from pixsearch.construct.queries import rule_query_type
from pixsearch.construct.selection import Selection
from pixsearch.construct.support import is_abstention, is_yes_no

# fact → (words that ask for it, text query, sentence with the answer)
RELATIONS: dict[str, tuple[str, str, str]] = {
    # before population: "What are the inhabitants of X called?" asks for the demonym
    "demonym": (r"\bpeople from\b.*\bcalled\b|\bdemonym\b|\bcalled\?|\bcall someone\b",
                "demonym of {e}", "People from {e} are called {a}."),
    "capital": (r"\bcapital\b", "capital of {e}", "The capital of {e} is {a}."),
    "population": (r"\bpopulation\b|\bhow many (?:people|inhabitants)\b|\bnumber of people\b",
                   "population of {e}", "{e} has a population of {a}."),
    "area": (r"\barea\b|\bhow (?:big|large)\b|\bsquare kilomet", "area of {e}",
             "{e} has an area of {a} square kilometres."),
    "language": (r"\blanguages?\b|\bspoken\b|\bspeak\b", "languages of {e}",
                 "A language of {e} is {a}."),
    "currency": (r"\bcurrency\b|\bmoney\b", "currency of {e}", "The currency of {e} is the {a}."),
    "calling": (r"\bcalling code\b|\bdiall?ing code\b|\bphone prefix\b|\btelephone\b",
                "calling code of {e}", "The calling code of {e} is {a}."),
    "region": (r"\bcontinent\b|\bregion\b|\bpart of the world\b|\bwhere in the world\b",
               "region of {e}", "{e} is in {a}."),
}
HOP = (r"\bborders?\b|\bbordering\b|\bneighbou?r|\bnext to\b", "countries bordering {e}",
       "{e} borders {f}.")
_HOLISTIC = re.compile(r"\bthis\b(?! (?:\w+ )?(?:on|in|at|to|from|behind)\b)|\bshown\b|"
                       r"\bpictured\b|\bin the (?:image|picture|photo)\b", re.IGNORECASE)
# where a referring phrase ends: the question's end, a clause, or a name ("... Peru's flag?")
_BOUNDARY = re.compile(r"(?=\?|\.| the (?:flag|outline) of\b| called\b| belong| from(?:\?| [A-Z])|"
                       r" represent| in square\b| [A-Z]|,|$)")
_NOUN = re.compile(r"(?:country's|whose|the) (flag|outline)\b|\b(flag|outline|shape)\b",
                   re.IGNORECASE)
_COUNT = re.compile(r"^(?:how many|count|what is the number of)\b", re.IGNORECASE)
_ATTRIBUTE = re.compile(r"^(?:what|which)(?: is| are)?(?: the)?(?: main| (?:pre)?dominant)? "
                        r"(?:colou?rs?|shape|material|pattern)\b", re.IGNORECASE)
_OCR = re.compile(r"\b(?:say|written|read|text|word|label)\b", re.IGNORECASE)
_BINARY = re.compile(r"^(?:is|are|was|were|does|do|did|can|could|has|have)\b", re.IGNORECASE)
_IDENTIFY = re.compile(r"^(?:which|what|who|whose)\b.*\b(?:is|are) (?:this|that|these|the)\b|"
                       r"^which \w+(?:'s)?\b", re.IGNORECASE)


@dataclass(frozen=True)
class Parsed:
    """The parts of a question the rules found."""

    ref: str | None  # referring phrase of one entity (a region search), None if holistic
    holistic: bool   # the question is about the whole image (an image search)
    noun: str        # what the entity is ("flag", "outline", "entity")
    relation: str | None
    hop: bool


def referring_phrase(question: str) -> str | None:
    """The longest "the …" phrase of `question` that singles out one entity in the image and
    has no "of"/"that" clause ("the flag on the left", "the second flag from the left")."""
    q = question.strip()
    for m in re.finditer(r"\bthe\b", q, re.IGNORECASE):
        end = _BOUNDARY.search(q, m.end())
        phrase = q[m.start():end.start() if end else len(q)].strip()
        words = phrase.split()
        # "of" / "that" start a clause, except in "the largest of the flags", "the flag that
        # is smallest"
        if len(words) < 3 or re.search(r"\b(?:of|that|whose|which)\b(?! the \w+s$| is \w+$)",
                                       phrase):
            continue
        if rule_query_type(phrase) == "region":
            return phrase
    return None


def parse_question(question: str) -> Parsed:
    """The question's entity, fact and hop (see `Parsed`)."""
    ref = referring_phrase(question)
    holistic = ref is None and bool(_HOLISTIC.search(question))
    m = _NOUN.search(question)
    noun = (m.group(1) or m.group(2)).lower() if m else "entity"
    relation = next((k for k, (pat, _, _) in RELATIONS.items()
                     if re.search(pat, question, re.IGNORECASE)), None)
    hop = bool(re.search(HOP[0], question, re.IGNORECASE)) and relation is not None
    return Parsed(ref, holistic, "outline" if noun == "shape" else noun, relation, hop)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


_HOW_MANY = re.compile(r"^how many (\w+) (?:are|is) (.+?)\?*$", re.IGNORECASE)
_WHAT_OF = re.compile(r"^what is the (main |(?:pre)?dominant )?(colou?r|shape|material|pattern) of "
                      r"(.+?)\?*$", re.IGNORECASE)


def direct_answer(question: str, answer: str) -> str:
    """A sentence answering without search, in the question's own words ("How many flags are
    in the picture?" → "There are 3 flags in the picture."); else the bare answer. Not "The
    answer is …": answers that search start with "The flag on the left …", and a model
    trained on both cannot tell from the first word whether to search."""
    q = question.strip()
    m = _HOW_MANY.match(q)
    if m:
        noun = m.group(1) if answer != "1" else re.sub(r"s$", "", m.group(1))
        return f"There {'is' if answer == '1' else 'are'} {answer} {noun} {m.group(2)}."
    m = _WHAT_OF.match(q)
    if m:
        if m.group(1):
            return f"{_cap(m.group(3))} is mostly {answer}."
        return f"{_cap(m.group(3))} is {answer}."
    return f"{_cap(answer)}."


class RuleAnnotator:
    """Deterministic decisions for patterned questions (see the module docstring)."""

    name = "rule"

    def __init__(self) -> None:
        self.failures: Counter = Counter()

    def select(self, q: Question) -> Selection:
        p, text = parse_question(q.text), q.text.strip()
        if _COUNT.match(text) and p.relation is None:
            return Selection("counting", False)
        if _ATTRIBUTE.match(text) and p.relation is None:
            return Selection("attribute", False)
        if _BINARY.match(text):
            # a yes/no question about which entity is shown needs it recognised first
            return Selection("binary", bool(p.ref or p.holistic))
        if p.hop:
            return Selection("multi_hop", True)
        if p.relation:
            return Selection("factoid", True)
        if _OCR.search(text):
            return Selection("ocr_read", False)
        if _IDENTIFY.search(text) or p.ref or p.holistic:
            return Selection("entity_identification", True)
        return Selection("factoid", True)

    def decompose(self, q: Question, sel: Selection) -> list[SubQuestion]:
        if not sel.needs_search:
            return [SubQuestion(q.text, False)]
        p = parse_question(q.text)
        subject = p.ref or "the image"
        subs = [SubQuestion(f"What is {subject}?", True)]
        if p.hop:
            subs.append(SubQuestion("Which countries border it?", True))
        if p.relation:
            subs.append(SubQuestion(f"What is the {p.relation} of "
                                    f"{'one of them' if p.hop else 'it'}?", True))
        if sel.question_type == "binary":
            subs.append(SubQuestion(f"So: {q.text}", False))
        return subs

    def respond(self, q: Question, sel: Selection, subs: list[SubQuestion], n: int
                ) -> list[str]:
        a = q.answer
        if not sel.needs_search:
            return [direct_answer(q.text, a)][:n]
        p = parse_question(q.text)
        if p.ref:
            ident = f"{_cap(p.ref)} <search>{p.ref}</search>"
            says = f" is the {p.noun} of {{1}}." if p.noun != "entity" else " is {1}."
        else:
            ident = "<search>the whole image</search>"
            says = f" This is the {p.noun} of {{1}}." if p.noun != "entity" else " This is {1}."
        if is_abstention(a):
            tail = " does not match anything the search found." if p.ref else \
                " It does not match anything the search found."
            return [f"{ident}{tail} I don't know."][:n]
        if is_yes_no(a) or not p.relation:
            end = f" So the answer is {a}." if is_yes_no(a) else ""
            return [f"{ident}{says}{end}", f"The answer is {a}."][:n]
        _, query, sentence = RELATIONS[p.relation]
        e = "{2}" if p.hop else "{1}"
        hop = f" <search>{HOP[1].format(e='{1}')}</search> {HOP[2].format(e='{1}', f='{2}')}" \
            if p.hop else ""
        n_hop = 3 if p.hop else 2
        variants = [query.format(e=e), f"{e} {p.relation}",
                    f"What is the {p.relation} of {e}?"]
        out = [f"{ident}{says}{hop} <search>{v}</search> {sentence.format(e=e, a=a)}"
               for v in variants]
        out.append(direct_answer(q.text, a))  # what the checks reject: no search at all
        assert all(o.count("<search>") <= n_hop for o in out)
        return out[:n]

    def refine(self, q: Question, candidates: list[Candidate]) -> list[int]:
        # fewest problems first; among equals, the order they were written in
        return sorted(range(len(candidates)),
                      key=lambda i: (candidates[i].steps is None, len(candidates[i].problems), i))

    def query_types(self, q: Question, steps: list[Step]) -> list[str]:
        return [s.type or rule_query_type(s.payload) for s in searches(steps)]
