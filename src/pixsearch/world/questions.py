"""Questions, answers and answer plans for the paper's question types, on world scenes.

Each generator returns a `QA`: the question, the short gold answer with its aliases, whether
answering needs search, and the plan of the gold answer — literal text, referring expressions
and searches — that `trajectories.py` turns into the display format by running the searches.
Questions about an entity left out of the knowledge base are answered "I don't know".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pixsearch.world.countries import Country
from pixsearch.world.flags import COLOUR_NAMES, flag_colours
from pixsearch.world.knowledge import FACT_QUERIES
from pixsearch.world.refexp import count_left_of
from pixsearch.world.wording import Wording

IDK = "I don't know"


@dataclass
class Ref:
    """A referring expression in the answer; the next region search is about it."""

    text: str


@dataclass
class Search:
    """A search in the answer plan: modality, the entity it targets, the text query."""

    type: str  # "region", "image" or "text"
    entity: int | None = None
    query: str | None = None
    expect: str | None = None  # code of the country whose document should come back


Part = str | Ref | Search


@dataclass
class QA:
    """A question with its gold answer and the plan of its gold trajectory."""

    question: str
    answer: str
    question_type: str
    needs_search: bool
    target: int | None
    parts: list[Part]
    answers: list[str] = field(default_factory=list)
    numeric_tolerance: float = 0.0


@dataclass
class SceneView:
    """What question generators know about a scene: entities, refexps, KB membership."""

    codes: list[str]
    refexps: list[str | None]
    in_kb: list[bool]
    ego: bool
    kind: str  # "flag" or "outline" (non-ego scenes show one of either)
    countries: dict[str, Country]
    kb_codes: set[str]
    scene_entities: list = field(default_factory=list)  # SceneEntity, for spatial questions
    all_refexps: list[list[str]] = field(default_factory=list)  # every refexp per entity
    wording: Wording = field(default_factory=Wording)  # canonical unless given an RNG
    # questions about what the image shows look first: a region search on the entity, whose
    # evidence opens with what its mask shows (`EvidenceConfig.perception`)
    look: bool = False


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _subject(v: SceneView, t: int) -> tuple[str, list[Part], str]:
    """How the question names the entity, the identifying answer prefix, and the phrase."""
    if v.ego:
        ref = v.refexps[t]
        assert ref is not None
        return (v.wording.phrase("subject_ego", ref=ref), [Ref(_cap(ref)), Search("region", t)],
                " is the flag of {name}.")
    what = "flag" if v.kind == "flag" else "outline"
    return (v.wording.phrase(f"subject_{what}"), [Search("image", t)],
            f"This is the {what} of {{name}}.")


def _identify(v: SceneView, t: int) -> tuple[list[Part], Country | None]:
    """Plan of identifying entity t; None country when it is not in the KB (abstain)."""
    _, parts, says = _subject(v, t)
    c = v.countries[v.codes[t]]
    if not v.in_kb[t]:
        tail = (" does not match anything the search found." if v.ego
                else "It does not match anything the search found.")
        return [*parts, tail, f" {IDK}."], None
    return [*parts, says.format(name=c.name)], c


def _names(c: Country) -> list[str]:
    return [c.name, *c.aliases]


def q_identification(v: SceneView, t: int, rng) -> QA:
    if v.ego:
        q = v.wording.question("identify_ego", ref=v.refexps[t])
    else:
        q = v.wording.question(f"identify_{v.kind}")
    parts, c = _identify(v, t)
    return QA(q, c.name if c else IDK, "identification", True, t, parts,
              _names(c) if c else [IDK])


# fact -> (answer getter, aliases getter, numeric tolerance); the question and answer sentence
# families are in `wording.py` (QUESTIONS[fact], ANSWERS[fact])
FACTS: dict[str, tuple[Callable, Callable, float]] = {
    "capital": (lambda c: c.capital, lambda c: [c.capital], 0.0),
    "population": (lambda c: f"{c.population:,}",
                   lambda c: [f"{c.population:,}", str(c.population)], 0.05),
    "area": (lambda c: f"{c.area:,.0f}", lambda c: [f"{c.area:,.0f}", f"{c.area:.0f}"], 0.05),
    "languages": (lambda c: c.languages[0], lambda c: list(c.languages), 0.0),
    "currency": (lambda c: c.currencies[0], lambda c: list(c.currencies), 0.0),
    "calling": (lambda c: f"+{c.calling_codes[0]}",
                lambda c: [f"+{x}" for x in c.calling_codes] + list(c.calling_codes), 0.0),
    "region": (lambda c: c.region, lambda c: [c.region, c.subregion], 0.0),
    "people": (lambda c: c.demonym, lambda c: [c.demonym], 0.0),
}


def _fact_ok(c: Country, fact: str) -> bool:
    return bool({"languages": c.languages, "currency": c.currencies, "calling": c.calling_codes,
                 "people": c.demonym and c.native_name}.get(fact, True))


def q_factoid(v: SceneView, t: int, rng) -> QA | None:
    c0 = v.countries[v.codes[t]]
    facts = [f for f in FACTS if _fact_ok(c0, f)]
    fact = facts[rng.integers(len(facts))]
    get, aliases, tol = FACTS[fact]
    subj, _, _ = _subject(v, t)
    q = v.wording.question(fact, s=subj)
    parts, c = _identify(v, t)
    if c is None:
        return QA(q, IDK, "factoid", True, t, parts, [IDK])
    a = get(c)
    parts += [Search("text", None, FACT_QUERIES[fact].format(name=c.name), c.code),
              " " + v.wording.answer(fact, c.name, a)]
    return QA(q, a, "factoid", True, t, parts, list(dict.fromkeys([a, *aliases(c)])), tol)


def q_multi_hop(v: SceneView, t: int, rng) -> QA | None:
    """Identify → look up the neighbours → look up a neighbour's capital."""
    c0 = v.countries[v.codes[t]]
    nbrs = [v.countries[b] for b in c0.border_codes if b in v.kb_codes and b in v.countries]
    if v.in_kb[t] and not nbrs:
        return None
    subj, _, _ = _subject(v, t)
    q = v.wording.question("multi_hop", s=subj)
    parts, c = _identify(v, t)
    if c is None:
        return QA(q, IDK, "multi_hop", True, t, parts, [IDK])
    n = nbrs[0]
    parts += [Search("text", None, FACT_QUERIES["borders"].format(name=c.name), c.code),
              f" {c.name} borders {n.name}.",
              Search("text", None, FACT_QUERIES["capital"].format(name=n.name), n.code),
              f" The capital of {n.name} is {n.capital}."]
    every = [v.countries[b].capital for b in c0.border_codes if b in v.countries]
    return QA(q, n.capital, "multi_hop", True, t, parts, list(dict.fromkeys([n.capital, *every])))


def q_binary(v: SceneView, t: int, rng) -> QA:
    c0 = v.countries[v.codes[t]]
    others = [k for k in v.countries if k != c0.code]
    ask = c0 if rng.random() < 0.5 else v.countries[others[rng.integers(len(others))]]
    if v.ego:
        q = v.wording.question("binary_ego", ref=v.refexps[t], x=ask.name)
    else:
        q = v.wording.question("binary_shown", what=v.kind, x=ask.name)
    parts, c = _identify(v, t)
    if c is None:
        return QA(q, IDK, "binary", True, t, parts, [IDK])
    a = "yes" if ask.code == c.code else "no"
    return QA(q, a, "binary", True, t, [*parts, f" So the answer is {a}."], [a])


def q_attribute(v: SceneView, t: int, rng) -> QA | None:
    if v.kind != "flag":
        return None
    shares = flag_colours(v.codes[t])
    if len(shares) > 1 and shares[0][1] < 1.25 * shares[1][1]:
        return None  # no clear main colour: the question would be ambiguous
    colour = shares[0][0]
    what = "this flag"
    if v.ego:  # a colour description would give the answer away
        refs = [r for r in v.all_refexps[t] if not any(n in r for n in COLOUR_NAMES)]
        if not refs:
            return None
        what = refs[rng.integers(len(refs))]
    q = v.wording.question("attribute", what=what)
    if v.look:
        parts: list[Part] = [Ref(_cap(what)), Search("region", t), f" is mostly {colour}."]
    else:
        parts = [f"{_cap(what)} is mostly {colour}."]
    return QA(q, colour, "attribute", False, t, parts, [colour])


def q_counting(v: SceneView, t: int, rng) -> QA | None:
    if not v.ego:
        return None
    n = len(v.codes)
    says = f"There are {n} flags in the picture."
    # looking at any one flag shows how many are like it
    parts: list[Part] = ([Ref(_cap(v.refexps[t])), Search("region", t), " is one of them. " + says]
                         if v.look and v.refexps[t] else [says])
    return QA(v.wording.question("counting"), str(n), "counting", False, None, parts, [str(n)])


def q_spatial(v: SceneView, t: int, rng) -> QA | None:
    if not v.ego or not v.scene_entities:
        return None
    k = count_left_of(v.scene_entities, t)
    # A left/right expression would give the count away; describe the flag otherwise.
    refs = [r for r in v.all_refexps[t] if "left" not in r and "right" not in r]
    if k is None or not refs:
        return None
    ref = refs[rng.integers(len(refs))]
    says = (f"There {'is' if k == 1 else 'are'} {k} flag{'' if k == 1 else 's'} to the "
            f"left of {ref}.")
    parts: list[Part] = ([Ref(_cap(ref)), Search("region", t), " " + says] if v.look
                         else [says])
    return QA(v.wording.question("spatial", ref=ref), str(k), "spatial", False, t, parts,
              [str(k)])


GENERATORS: dict[str, Callable] = {
    "identification": q_identification, "factoid": q_factoid, "multi_hop": q_multi_hop,
    "binary": q_binary, "attribute": q_attribute, "counting": q_counting, "spatial": q_spatial,
}
WEIGHTS: dict[str, float] = {"identification": 0.2, "factoid": 0.28, "multi_hop": 0.14,
                             "binary": 0.1, "attribute": 0.1, "counting": 0.08, "spatial": 0.1}


def make_questions(v: SceneView, n: int, rng: np.random.Generator) -> list[QA]:
    """Up to `n` questions of distinct types about a scene (targets drawn among entities that
    have a referring expression)."""
    targets = [i for i, r in enumerate(v.refexps) if r is not None] if v.ego else [0]
    if not targets:
        return []
    types = list(GENERATORS)
    p = np.array([WEIGHTS[x] for x in types])
    order = rng.choice(len(types), size=len(types), replace=False, p=p / p.sum())
    out: list[QA] = []
    for ti in order:
        if len(out) >= n:
            break
        # Entities outside the KB are asked about more often, so abstaining is learnt.
        w = np.array([3.0 if not v.in_kb[i] else 1.0 for i in targets])
        t = int(targets[rng.choice(len(targets), p=w / w.sum())])
        qa = GENERATORS[types[ti]](v, t, rng)
        if qa is not None:
            out.append(qa)
    return out
