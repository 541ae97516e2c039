"""Named colours of pixels and words, and the relations that split an expression's colours."""

from __future__ import annotations

import pytest
import torch

from pixsearch.model.colours import (
    COLOUR_NAMES,
    MATCH,
    RELATION,
    colour_match,
    colour_mentions,
    colour_shares,
    expression_colours,
    relation_match,
    touching,
)


def _names(v: torch.Tensor) -> set[str]:
    return {COLOUR_NAMES[i] for i in range(len(v)) if v[i] > 0}


def test_colour_mentions_reads_colour_words_and_their_kin():
    assert _names(colour_mentions("the red-and-white flag")) == {"red", "white"}
    assert _names(colour_mentions("The flag in Crimson and GOLD")) == {"red", "yellow"}
    # "sky blue" names the light-blue bin only, not also blue
    assert _names(colour_mentions("the sky-blue one")) == {"light blue"}
    assert _names(colour_mentions("the flag behind the navy one")) == {"blue"}
    assert _names(colour_mentions("the largest flag")) == set()
    assert _names(colour_mentions("the bluest of the flags")) == set()  # not a colour word


def test_colour_match_prefers_the_candidate_with_every_named_colour():
    shares = torch.zeros(3, len(COLOUR_NAMES))
    red, white, blue, light = (COLOUR_NAMES.index(n) for n in ("red", "white", "blue",
                                                               "light blue"))
    shares[0, red], shares[0, white] = 0.5, 0.5  # red and white
    shares[1, red] = 1.0  # all red: more red, but no white
    shares[2, light], shares[2, white] = 0.7, 0.3  # sky blue and white
    m = colour_match(shares, colour_mentions("the red-and-white flag"))
    assert m.shape == (3, MATCH) and m[:, 0].tolist() == [1.0, 1.0, 1.0]
    assert m[:, 1].argmax() == 0 and m[1, 1] == 0  # the smallest named share
    assert torch.allclose(m[:, 3], torch.tensor([0.0, 0.0, 0.7]))  # share not named
    # "blue" covers the light-blue bin: the sky-blue flag is blue-and-white
    blue_white = colour_match(shares, colour_mentions("the blue and white flag"))
    assert blue_white[2, 1].item() == pytest.approx(0.3)
    assert not colour_match(shares, colour_mentions("the smallest flag")).any()



def test_colour_shares_name_colours_under_any_lighting():
    m = 4
    rgb = torch.zeros(3, m, m)
    rgb[0, :, :2] = 0.85  # left half red
    rgb[:, :, 2:] = 0.9  # right half white
    rgb[:, 0, :] = 0.05  # top row black
    masks = torch.stack([_box(m, 0, 1, 2, 4), _box(m, 0, 0, 4, 4)])
    names = list(COLOUR_NAMES)
    for light in (1.0, 0.5):
        shares = colour_shares(masks, rgb * light)
        assert shares[0, names.index("red")].item() == 1.0
        assert shares[1, names.index("black")].item() == 0.25
        assert shares[1, names.index("white")].item() == 0.375
        assert torch.allclose(shares.sum(1), torch.ones(2))


@pytest.mark.parametrize("text,own,other", [
    ("the flag behind the blue-and-white one", set(), {"blue", "white"}),
    ("the flag partly hidden by the red one", set(), {"red"}),
    ("The flag behind the green and blue flag", set(), {"green", "blue"}),
    ("the red flag next to the white one", {"red"}, {"white"}),
    ("the flag that the blue one covers", set(), {"blue"}),
    ("the red one", {"red"}, set()),  # "one" is the referent itself here
    ("the flag in red and white", {"red", "white"}, set()),
    ("the leftmost flag", set(), set()),
])
def test_expression_colours_split_the_referents_colours_from_a_related_flags(text, own, other):
    c = expression_colours(text, relations=True)
    assert _names(c.own) == own and _names(c.other) == other
    plain = expression_colours(text)  # unsplit: every colour is the referent's
    assert plain.other is None and _names(plain.own) == own | other


def _box(m: int, x0: int, y0: int, x1: int, y1: int) -> torch.Tensor:
    out = torch.zeros(m, m)
    out[y0:y1, x0:x1] = 1
    return out


def test_touching_pairs_neighbours_but_not_nested_or_distant_masks():
    m = 16
    masks = torch.stack([_box(m, 0, 0, 6, 6),     # a flag
                         _box(m, 6, 2, 12, 8),    # the flag in front of it, touching
                         _box(m, 0, 0, 6, 5),     # the first again, a tighter proposal
                         _box(m, 13, 12, 16, 16)])  # far away
    t = touching(masks)
    assert t.tolist() == [[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    assert touching(masks, reach=4)[2, 3] == 0 and touching(masks, reach=7)[1, 3] == 1


def test_relation_match_marks_the_flag_touching_the_named_other():
    """'the flag behind the red one': the red candidate fits the other's colours, the white
    one touching it gets that fit as its neighbour's, the distant white one gets nothing."""
    m = 16
    masks = torch.stack([_box(m, 0, 0, 6, 6), _box(m, 6, 0, 12, 6), _box(m, 0, 12, 4, 16)])
    shares = torch.zeros(3, len(COLOUR_NAMES))
    red, white = COLOUR_NAMES.index("red"), COLOUR_NAMES.index("white")
    shares[0, white], shares[1, red], shares[2, white] = 1.0, 1.0, 1.0
    other = expression_colours("the flag behind the red one", relations=True).other
    r = relation_match(masks, shares, other)
    assert r.shape == (3, RELATION)
    assert r.tolist() == [[1.0, 0.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    none = expression_colours("the white flag", relations=True).other
    assert not relation_match(masks, shares, none).any()
