"""Paraphrase families: the ways a question, an answer sentence or a referring expression of
the benchmark world can be worded.

A world whose questions come from one template per kind teaches a small model the templates,
not the language: it then fails on the same question asked another way ("Whose flag is the
biggest one?" instead of "Which country's flag is the largest flag?"). Every wording the world
writes therefore comes from a family of paraphrases. The first member of each family is the
canonical wording; `Wording(None)` always picks it, which reproduces a world built without
paraphrases. `Wording(rng)` draws from an RNG stream of its own (`build.py` seeds it per scene),
so scenes, targets and gold answers are the same with and without paraphrases: only the words
change.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from pixsearch.world.flags import COLOUR_NAMES

# Question families by kind; {s} is the subject phrase, {ref} a referring expression,
# {what} "flag" / "outline" or a referring expression, {x} a country name.
QUESTIONS: dict[str, tuple[str, ...]] = {
    "identify_ego": ("Which country's flag is {ref}?", "Whose flag is {ref}?",
                     "Which country does {ref} belong to?", "What country is {ref} from?",
                     "Which nation does {ref} represent?"),
    "identify_flag": ("Which country's flag is this?", "Whose flag is this?",
                      "Which country does this flag belong to?", "What country is this flag from?",
                      "Which nation does this flag represent?"),
    "identify_outline": ("Which country has this shape?", "Which country has this outline?",
                         "What country is shaped like this?", "Whose outline is this?",
                         "Which country's borders are drawn here?"),
    "subject_ego": ("the country of {ref}", "the nation of {ref}",
                    "the country that {ref} belongs to", "the country represented by {ref}"),
    "subject_flag": ("the country whose flag is shown", "the country of this flag",
                     "the country this flag belongs to", "the nation whose flag is pictured"),
    "subject_outline": ("the country whose outline is shown", "the country with this outline",
                        "the country shaped like this", "the nation whose outline is drawn"),
    "capital": ("What is the capital of {s}?", "What's the capital city of {s}?",
                "Which city is the capital of {s}?", "Name the capital of {s}."),
    "population": ("What is the population of {s}?", "How many people live in {s}?",
                   "How many inhabitants does {s} have?", "What's the number of people living "
                   "in {s}?"),
    "area": ("What is the area in square kilometres of {s}?",
             "How large is {s} in square kilometres?",
             "How many square kilometres does {s} cover?", "What's the surface area of {s} in "
             "km²?"),
    "languages": ("What language is spoken in {s}?", "Which language do people speak in {s}?",
                  "Name a language of {s}.", "What is a language used in {s}?"),
    "currency": ("What currency is used in {s}?", "Which currency does {s} use?",
                 "What money is used in {s}?", "What is the currency of {s}?"),
    "calling": ("What is the calling code of {s}?", "What is the international dialling code "
                "of {s}?", "Which phone prefix does {s} use?", "What's the telephone country "
                "code of {s}?"),
    "region": ("On which continent or region is {s}?", "Where in the world is {s}?",
               "Which region of the world is {s} in?", "In which part of the world does {s} "
               "lie?"),
    "people": ("What are people from {s} called?", "What is the demonym of {s}?",
               "What do you call someone from {s}?", "What are the inhabitants of {s} called?"),
    "multi_hop": ("What is the capital of a country that borders {s}?",
                  "Name the capital of a country bordering {s}.",
                  "Which city is the capital of a neighbour of {s}?",
                  "What is the capital of one of the countries next to {s}?"),
    "binary_ego": ("Is {ref} the flag of {x}?", "Does {ref} belong to {x}?",
                   "Is {ref} {x}'s flag?", "Is {ref} from {x}?"),
    "binary_shown": ("Is this the {what} of {x}?", "Is this {x}'s {what}?",
                     "Does this {what} belong to {x}?", "Is this {what} from {x}?"),
    "attribute": ("What is the main colour of {what}?", "Which colour dominates {what}?",
                  "What colour is most of {what}?", "What is the predominant colour of {what}?"),
    "counting": ("How many flags are in the picture?", "How many flags can you see?",
                 "How many flags are there in this image?", "Count the flags in the picture.",
                 "What is the number of flags shown?"),
    "spatial": ("How many flags are to the left of {ref}?", "How many flags are left of {ref}?",
                "How many flags can be seen to the left of {ref}?",
                "Count the flags to the left of {ref}."),
}

# Answer sentences by fact; {name} is the country, {a} the answer (always copied verbatim).
ANSWERS: dict[str, tuple[str, ...]] = {
    "capital": ("The capital of {name} is {a}.", "{name}'s capital is {a}."),
    "population": ("{name} has a population of {a}.", "About {a} people live in {name}."),
    "area": ("{name} has an area of {a} square kilometres.",
             "{name} covers {a} square kilometres."),
    "languages": ("A language of {name} is {a}.", "People in {name} speak {a}."),
    "currency": ("The currency of {name} is the {a}.", "{name} uses the {a}."),
    "calling": ("The calling code of {name} is {a}.", "{name}'s calling code is {a}."),
    "region": ("{name} is in {a}.", "{name} lies in {a}."),
    "people": ("People from {name} are called {a}.", "The people of {name} are called {a}."),
}

# Referring expressions: a canonical pattern (as `refexp.py` writes it) → its paraphrases,
# with the pattern's groups substituted; every paraphrase keeps the words that the world's
# filters look for ("left", "right", colour names).
_SIDES = r"(left|right)"
_C = "(" + "|".join(COLOUR_NAMES) + ")"
REFEXPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (rf"the {_SIDES}most flag", ("the {0}most flag", "the flag on the far {0}",
                                 "the flag furthest to the {0}", "the {0}-most flag")),
    (r"the highest flag", ("the highest flag", "the topmost flag", "the flag at the very top",
                           "the flag highest up")),
    (r"the lowest flag", ("the lowest flag", "the bottommost flag",
                          "the flag at the very bottom", "the flag lowest down")),
    (rf"the flag on the {_SIDES}", ("the flag on the {0}", "the {0} flag",
                                    "the flag at the {0}")),
    (rf"the second flag from the {_SIDES}", ("the second flag from the {0}",
                                             "the second flag counting from the {0}",
                                             "the flag second from the {0}")),
    (r"the largest flag", ("the largest flag", "the biggest flag", "the largest of the flags",
                           "the flag that is largest")),
    (r"the smallest flag", ("the smallest flag", "the tiniest flag",
                            "the smallest of the flags", "the flag that is smallest")),
    (rf"the flag behind the {_C}-and-{_C} one", ("the flag behind the {0}-and-{1} one",
                                                  "the flag partly hidden by the {0}-and-{1} one",
                                                  "the flag behind the {0} and {1} flag")),
    (rf"the flag behind the {_C} one", ("the flag behind the {0} one",
                                        "the flag partly hidden by the {0} one",
                                        "the flag behind the {0} flag")),
    (rf"the {_C}-and-{_C} flag", ("the {0}-and-{1} flag", "the {0} and {1} flag",
                                   "the flag in {0} and {1}", "the {0}-{1} flag")),
    (rf"the {_C} flag", ("the {0} flag", "the flag in {0}", "the {0}-coloured flag")),
)


class Wording:
    """Picks one wording per family: the canonical (first) one when `rng` is None, else one
    drawn uniformly from `rng` (a stream used for nothing else)."""

    def __init__(self, rng: np.random.Generator | None = None) -> None:
        self.rng = rng

    def pick(self, family: Sequence[str]) -> str:
        if self.rng is None or len(family) == 1:
            return family[0]
        return family[int(self.rng.integers(len(family)))]

    def question(self, kind: str, **fields: str) -> str:
        """A question of `kind` (a key of `QUESTIONS`), capitalised."""
        text = self.pick(QUESTIONS[kind]).format(**fields)
        return text[:1].upper() + text[1:]

    def phrase(self, kind: str, **fields: str) -> str:
        """A phrase of `kind` to go inside a sentence (not capitalised)."""
        return self.pick(QUESTIONS[kind]).format(**fields)

    def answer(self, fact: str, name: str, a: str) -> str:
        """The answer sentence of `fact` (a key of `ANSWERS`)."""
        return self.pick(ANSWERS[fact]).format(name=name, a=a)

    def refexp(self, canonical: str) -> str:
        """A paraphrase of a referring expression written by `refexp.py` (itself when no
        family matches)."""
        for pattern, family in REFEXPS:
            m = re.fullmatch(pattern, canonical)
            if m:
                return self.pick(family).format(*m.groups())
        return canonical
